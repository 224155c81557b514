/* Unit tests of the loop-lag monitor (core/util/looplag.c) on a real event_base: an idle loop
 * shows small lags, a callback that holds the loop 30 ms shows as a lag of about that long and
 * as a stall with its time; the stall list keeps the latest LD_LOOPLAG_RECENT, oldest first. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <event2/event.h>

#include "util/evbase.h"
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

    ld_looplag_stall recent[LD_LOOPLAG_RECENT];
    size_t before = ld_looplag_recent(m, recent, LD_LOOPLAG_RECENT);
    uint64_t hold_us = 30000, t0 = ld_wall_us();
    struct timeval soon = {0, 1000};
    assert_int_equal(event_base_once(base, -1, EV_TIMEOUT, busy, &hold_us, &soon), 0);
    run_for_ms(base, 60);
    /* The hold is the latest stall, and it ended after it began and before now. */
    size_t n = ld_looplag_recent(m, recent, LD_LOOPLAG_RECENT);
    assert_true(n >= before + 1);
    uint64_t longest = 0;
    for (size_t i = 0; i < n; i++)
        if (recent[i].at_us >= t0 && recent[i].lag_us > longest) longest = recent[i].lag_us;
    assert_true(longest >= 25000);
    assert_true(recent[n - 1].at_us <= ld_wall_us());
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

/* Holds the loop 15 ms at a time, 1 ms apart, until the count runs out: every hold spans a due
 * time of the 5 ms timer, which then fires at least 10 ms late. */
typedef struct {
    struct event_base *base;
    int left;
} holds;

static void hold_again(evutil_socket_t fd, short what, void *arg)
{
    holds *h = arg;
    uint64_t us = 15000;
    busy(fd, what, &us);
    if (--h->left > 0) {
        struct timeval gap = {0, 1000};
        assert_int_equal(event_base_once(h->base, -1, EV_TIMEOUT, hold_again, h, &gap), 0);
    } else {
        assert_int_equal(event_base_loopexit(h->base, NULL), 0);
    }
}

static void the_stall_list_keeps_the_latest_oldest_first(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    assert_non_null(base);
    ld_looplag *m = ld_looplag_new(base);
    assert_non_null(m);
    holds h = {base, LD_LOOPLAG_RECENT + 8};
    struct timeval soon = {0, 1000};
    assert_int_equal(event_base_once(base, -1, EV_TIMEOUT, hold_again, &h, &soon), 0);
    assert_true(event_base_dispatch(base) >= 0);
    assert_int_equal(h.left, 0);

    ld_looplag_stall recent[LD_LOOPLAG_RECENT + 4];
    size_t n = ld_looplag_recent(m, recent, LD_LOOPLAG_RECENT + 4);
    assert_int_equal(n, LD_LOOPLAG_RECENT); /* more stalls than that happened: the ring is full */
    for (size_t i = 0; i < n; i++) {
        assert_true(recent[i].lag_us > LD_LOOPLAG_STALL_US);
        if (i) assert_true(recent[i].at_us >= recent[i - 1].at_us);
    }
    /* Asking for fewer gives the newest. */
    ld_looplag_stall last2[2];
    assert_int_equal(ld_looplag_recent(m, last2, 2), 2);
    assert_true(last2[0].at_us == recent[n - 2].at_us && last2[1].at_us == recent[n - 1].at_us);
    ld_looplag_free(m);
    event_base_free(base);
}

/* How many of this process's descriptors are timerfds. */
static int timerfds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300], target[64];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len <= 0) continue;
        target[len] = '\0';
        if (strcmp(target, "anon_inode:[timerfd]") == 0) n++;
    }
    closedir(d);
    return n;
}

static void the_nodes_base_keeps_time_to_the_microsecond(void **state)
{
    (void)state;
    /* libevent's default base reads the coarse clock (kernel ticks) and waits in whole
     * milliseconds; a precise one reads CLOCK_MONOTONIC and, on epoll, waits on a timerfd. That
     * descriptor is the mark of a precise base: the timing itself depends on the machine's load. */
    int before = timerfds();
    struct event_base *plain = event_base_new();
    assert_non_null(plain);
    assert_int_equal(timerfds(), before);
    struct event_base *base = ld_evbase_new();
    assert_non_null(base);
    if (strcmp(event_base_get_method(base), "epoll") == 0) assert_int_equal(timerfds(), before + 1);
    /* And it runs: a 5 ms timer fires, not before its time. */
    uint64_t t0 = ld_mono_us(), hold_us = 0;
    struct timeval tv = {0, 5000};
    assert_int_equal(event_base_once(base, -1, EV_TIMEOUT, busy, &hold_us, &tv), 0);
    assert_true(event_base_dispatch(base) >= 0);
    assert_true(ld_mono_us() - t0 >= 5000);
    event_base_free(base);
    event_base_free(plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_stall_shows_as_lag),
        cmocka_unit_test(the_stall_list_keeps_the_latest_oldest_first),
        cmocka_unit_test(the_nodes_base_keeps_time_to_the_microsecond),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
