/* Unit tests of the loop-lag monitor (core/util/looplag.c) on a real event_base: an idle loop
 * shows small lags, a callback that holds the loop 30 ms shows as a lag of about that long. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <event2/event.h>

#include "util/looplag.h"
#include "util/timeutil.h"

static void run_for_ms(struct event_base *base, long ms)
{
    struct timeval tv = {0, ms * 1000};
    assert_int_equal(event_base_loopexit(base, &tv), 0);
    assert_true(event_base_dispatch(base) >= 0);
}

static void busy(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    uint64_t until = ld_mono_us() + *(uint64_t *)arg;
    while (ld_mono_us() < until) {
    }
}

static void a_stall_shows_as_lag(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    assert_non_null(base);
    ld_looplag *m = ld_looplag_new(base);
    assert_non_null(m);
    ld_looplag_stats s;
    ld_looplag_get(m, &s);
    assert_int_equal(s.samples, 0);
    assert_int_equal(s.p99_us, 0);

    run_for_ms(base, 60);
    ld_looplag_get(m, &s);
    assert_true(s.samples >= 3); /* a 5 ms period over 60 ms, even on a busy machine */
    uint64_t idle_max = s.max_us;

    uint64_t hold_us = 30000;
    struct timeval soon = {0, 1000};
    assert_int_equal(event_base_once(base, -1, EV_TIMEOUT, busy, &hold_us, &soon), 0);
    run_for_ms(base, 60);
    ld_looplag_get(m, &s);
    /* The timer was due during the 30 ms: it fired at least 30 - 5 ms late. */
    assert_true(s.max_us >= 25000);
    assert_true(s.max_us >= idle_max);
    assert_true(s.p99_us <= s.max_us);
    uint64_t total = 0;
    for (size_t i = 0; i < LD_LOOPLAG_BUCKETS; i++)
        total += s.buckets[i];
    assert_int_equal(total, s.samples);
    /* The stall landed in the bucket bounded by 50 ms (25-50 ms) or, on a slow machine, above. */
    uint64_t at_least_25ms = 0;
    for (size_t i = 0; i < LD_LOOPLAG_BUCKETS; i++)
        if (i == LD_LOOPLAG_BUCKETS - 1 || LD_LOOPLAG_BOUNDS_US[i] > 25000)
            at_least_25ms += s.buckets[i];
    assert_true(at_least_25ms >= 1);
    ld_looplag_free(m);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_stall_shows_as_lag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
