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

/* The slice a thread started now gets; 0 when none could be started (fails the checks). */
static unsigned long long child_slice(void)
{
    unsigned long long ns = 0;
    pthread_t t;
    if (pthread_create(&t, NULL, report_slice, &ns) != 0 || pthread_join(t, NULL) != 0) return 0;
    return ns;
}

/* What a thread of its own saw (cmocka's assertions belong on the test's thread). */
typedef struct seen {
    bool set_aside_without_short; /* ld_thread_slice_default on a thread without the short one */
    bool supported;               /* the kernel took the short slice and reports it */
    unsigned long long before, shortest, child_short, own_aside, child_aside, back;
    bool was;
} seen;

static void *on_a_thread_of_its_own(void *arg)
{
    seen *s = arg;
    s->set_aside_without_short = ld_thread_slice_default();
    s->before = ld_thread_slice_ns();
    /* ld_thread_short_slice says why only when it fails: the other reason is set here. */
    char why[128] = "the kernel took the short slice but reports the same one";
    s->supported = ld_thread_short_slice(why, sizeof why) && ld_thread_slice_ns() != s->before;
    if (!s->supported) {
        print_message("the kernel keeps no per-thread slice (%s)\n", why);
        return NULL;
    }
    s->shortest = ld_thread_slice_ns();
    s->child_short = child_slice(); /* why the hint exists: a new thread inherits it */
    s->was = ld_thread_slice_default();
    s->own_aside = ld_thread_slice_ns();
    s->child_aside = child_slice(); /* e.g. a database's writer */
    ld_thread_slice_restore(s->was);
    s->back = ld_thread_slice_ns();
    return NULL;
}

static void threads_started_by_the_loop_get_the_default_slice(void **state)
{
    (void)state;
    /* On a thread of its own, so that the test runner's thread keeps its slice. */
    seen s = {0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, on_a_thread_of_its_own, &s), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    /* A thread that never asked for the short slice has none to set aside. */
    assert_false(s.set_aside_without_short);
    if (!s.supported) skip();
    assert_true(s.shortest < s.before);
    assert_int_equal(s.child_short, s.shortest);
    assert_true(s.was);
    assert_int_equal(s.own_aside, s.before);
    assert_int_equal(s.child_aside, s.before);
    assert_int_equal(s.back, s.shortest);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(threads_started_by_the_loop_get_the_default_slice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
