/* Unit tests for the purge frontier (repl/frontier.h): what bounds an origin's next op, the hard
 * cap, and a floor that never goes back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "repl/frontier.h"

static void no_origin_is_the_clock(void **state)
{
    (void)state;
    assert_int_equal(ld_frontier(1000, 0, NULL, 0), 1000);
}

static void last_stamp_bounds_a_lagging_origin(void **state)
{
    (void)state;
    /* We hold b's ops through 5 (stamped 300); b promised "after 9, above 900": we lack 6..9,
     * so only the last stamp holds. */
    ld_frontier_origin b = {
        .vv = 5, .last_stamp = 300, .has_promise = true, .promise_seq = 9, .promise_hlc = 900};
    assert_int_equal(ld_frontier_origin_bound(&b), 300);
    assert_int_equal(ld_frontier(1000, 0, &b, 1), 300);
    /* Once 6..9 are held, the promise lifts the bound past the last op's stamp. */
    b.vv = 9;
    b.last_stamp = 700;
    assert_int_equal(ld_frontier(1000, 0, &b, 1), 900);
}

static void silent_origin_moves_by_its_promise(void **state)
{
    (void)state;
    /* An origin that wrote long ago and nothing since: its promise, not its last write. */
    ld_frontier_origin o = {
        .vv = 3, .last_stamp = 10, .has_promise = true, .promise_seq = 3, .promise_hlc = 950};
    assert_int_equal(ld_frontier(1000, 0, &o, 1), 950);
    /* A promise older than the last op held changes nothing. */
    o.promise_hlc = 5;
    assert_int_equal(ld_frontier(1000, 0, &o, 1), 10);
}

static void origin_without_promise_holds_until_the_cap(void **state)
{
    (void)state;
    ld_frontier_origin os[2] = {
        {.vv = 4, .last_stamp = 800, .has_promise = true, .promise_seq = 4, .promise_hlc = 990},
        {.vv = 0}, /* a registered peer never heard from */
    };
    assert_int_equal(ld_frontier(1000, 0, os, 2), 0);
    /* Past the hard cap it stops holding the frontier back. */
    assert_int_equal(ld_frontier(1000, 400, os, 2), 400);
    assert_int_equal(ld_frontier(1000, 995, os, 2), 995);
    /* Never above the clock. */
    assert_int_equal(ld_frontier(500, 995, os, 2), 500);
}

static void minimum_over_origins(void **state)
{
    (void)state;
    ld_frontier_origin os[3] = {
        {.vv = 2, .last_stamp = 600},
        {.vv = 7, .last_stamp = 200, .has_promise = true, .promise_seq = 7, .promise_hlc = 700},
        {.vv = 1, .last_stamp = 650, .has_promise = true, .promise_seq = 2, .promise_hlc = 990},
    };
    assert_int_equal(ld_frontier(1000, 0, os, 3), 600);
}

static void floor_is_min_of_frontier_and_retention_and_never_lowers(void **state)
{
    (void)state;
    assert_int_equal(ld_purge_floor_next(0, 800, 500), 500);
    assert_int_equal(ld_purge_floor_next(0, 300, 500), 300);
    assert_int_equal(ld_purge_floor_next(400, 300, 500), 400);
    assert_int_equal(ld_purge_floor_next(400, 900, 900), 900);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_origin_is_the_clock),
        cmocka_unit_test(last_stamp_bounds_a_lagging_origin),
        cmocka_unit_test(silent_origin_moves_by_its_promise),
        cmocka_unit_test(origin_without_promise_holds_until_the_cap),
        cmocka_unit_test(minimum_over_origins),
        cmocka_unit_test(floor_is_min_of_frontier_and_retention_and_never_lowers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
