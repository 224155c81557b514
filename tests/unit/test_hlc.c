/* Unit tests for the hybrid logical clock: strict increase, wall-clock tracking, observation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "db/hlc.h"

static uint64_t fake_now;
static uint64_t fake_wall(void)
{
    return fake_now;
}

static void next_follows_wall_clock(void **state)
{
    (void)state;
    assert_int_equal(ld_hlc_next(0, 1000), ld_hlc_make(1000, 0));
    /* Wall clock ahead of the last stamp: counter resets. */
    assert_int_equal(ld_hlc_next(ld_hlc_make(1000, 7), 1001), ld_hlc_make(1001, 0));
}

static void next_increments_when_clock_stalls_or_goes_back(void **state)
{
    (void)state;
    uint64_t last = ld_hlc_make(5000, 3);
    assert_int_equal(ld_hlc_next(last, 5000), ld_hlc_make(5000, 4));
    assert_int_equal(ld_hlc_next(last, 4000), ld_hlc_make(5000, 4)); /* clock went back */
    /* Counter overflow moves into the next millisecond, still strictly increasing. */
    uint64_t full = ld_hlc_make(5000, 0xffff);
    assert_true(ld_hlc_next(full, 5000) > full);
    assert_int_equal(ld_hlc_ms(ld_hlc_next(full, 5000)), 5001);
}

static void clock_is_strictly_increasing(void **state)
{
    (void)state;
    ld_hlc c;
    ld_hlc_init(&c, fake_wall);
    fake_now = 100;
    uint64_t prev = 0;
    for (int i = 0; i < 100000; i++) {
        if (i % 1000 == 0) fake_now += (i % 3000 == 0) ? -1 : 1; /* jitter, including back */
        uint64_t s = ld_hlc_now(&c);
        assert_true(s > prev);
        prev = s;
    }
    ld_hlc_destroy(&c);
}

static void observe_moves_clock_forward_only(void **state)
{
    (void)state;
    ld_hlc c;
    ld_hlc_init(&c, fake_wall);
    fake_now = 10;
    uint64_t a = ld_hlc_now(&c);
    uint64_t remote = ld_hlc_make(99999, 5);
    ld_hlc_observe(&c, remote);
    uint64_t b = ld_hlc_now(&c);
    assert_true(b > remote);
    ld_hlc_observe(&c, a); /* an older stamp changes nothing */
    assert_true(ld_hlc_now(&c) > b);
    /* A restart seeded from the stored high-water mark never goes back. */
    ld_hlc d;
    ld_hlc_init(&d, fake_wall);
    ld_hlc_observe(&d, b);
    assert_true(ld_hlc_now(&d) > b);
    ld_hlc_destroy(&c);
    ld_hlc_destroy(&d);
}

/* Node.TestClockOffsetMilliseconds: the offset moves the wall reading and the stamps, and a
 * clock whose offset is removed (a restart without it) never issues a stamp below what it had. */
static void offset_skews_wall_and_stamps(void **state)
{
    (void)state;
    ld_hlc c;
    ld_hlc_init(&c, fake_wall);
    fake_now = 50000;
    assert_int_equal(ld_hlc_wall(&c), 50000);
    ld_hlc_set_offset(&c, 20000);
    assert_int_equal(ld_hlc_wall(&c), 70000);
    uint64_t ahead = ld_hlc_now(&c);
    assert_int_equal(ld_hlc_ms(ahead), 70000);
    ld_hlc_set_offset(&c, -20000);
    assert_int_equal(ld_hlc_wall(&c), 30000);
    assert_true(ld_hlc_now(&c) > ahead); /* behind the wall: the counter carries on */
    ld_hlc_set_offset(&c, -60000);
    assert_int_equal(ld_hlc_wall(&c), 0); /* clamped at the epoch, never wrapped */
    ld_hlc_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(next_follows_wall_clock),
        cmocka_unit_test(next_increments_when_clock_stalls_or_goes_back),
        cmocka_unit_test(clock_is_strictly_increasing),
        cmocka_unit_test(observe_moves_clock_forward_only),
        cmocka_unit_test(offset_skews_wall_and_stamps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
