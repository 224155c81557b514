/* Unit tests of the scheduling hints (core/util/threadsched.c): a thread inherits its creator's
 * slice, so the loop's short slice is set aside while it starts threads (ld_db_open does). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/threadsched.h"

static void *report_slice(void *arg)
{
    *(unsigned long long *)arg = ld_thread_slice_ns();
    return NULL;
}

static unsigned long long child_slice(void)
{
    unsigned long long ns = 0;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, report_slice, &ns), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    return ns;
}

static void *on_a_thread_of_its_own(void *arg)
{
    (void)arg;
    /* A thread that never asked for the short slice has none to set aside. */
    assert_false(ld_thread_slice_default());
    unsigned long long before = ld_thread_slice_ns();

    char why[128];
    if (!ld_thread_short_slice(why, sizeof why) || ld_thread_slice_ns() == before) {
        print_message("the kernel keeps no per-thread slice (%s): nothing to check\n", why);
        return NULL;
    }
    unsigned long long shortest = ld_thread_slice_ns();
    assert_true(shortest < before);
    /* Why the hint exists: a new thread inherits it. */
    assert_int_equal(child_slice(), shortest);

    bool was = ld_thread_slice_default();
    assert_true(was);
    assert_int_equal(ld_thread_slice_ns(), before);
    assert_int_equal(child_slice(), before); /* e.g. a database's writer */
    ld_thread_slice_restore(was);
    assert_int_equal(ld_thread_slice_ns(), shortest);
    return NULL;
}

static void threads_started_by_the_loop_get_the_default_slice(void **state)
{
    (void)state;
    /* On a thread of its own, so that the test runner's thread keeps its slice. */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, on_a_thread_of_its_own, NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(threads_started_by_the_loop_get_the_default_slice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
