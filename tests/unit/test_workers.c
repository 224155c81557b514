/* Unit tests for the worker pool: every submitted item runs its work on a worker thread and its
 * completion on the loop thread, exactly once each, also when the pool is freed with work still
 * queued. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "util/workers.h"

#define ITEMS 200

typedef struct item {
    pthread_t loop;
    atomic_int worked;
    int done;
    bool work_off_loop;
    bool done_on_loop;
    struct event_base *base;
    int *remaining;
} item;

static void work(void *arg)
{
    item *it = arg;
    it->work_off_loop = !pthread_equal(pthread_self(), it->loop);
    atomic_fetch_add(&it->worked, 1);
    struct timespec ts = {0, 100 * 1000}; /* 0.1 ms: let items overlap */
    nanosleep(&ts, NULL);
}

static void done(void *arg)
{
    item *it = arg;
    it->done++;
    it->done_on_loop = pthread_equal(pthread_self(), it->loop);
    if (--*it->remaining == 0) event_base_loopbreak(it->base);
}

static void runs_everything_once(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    assert_non_null(base);
    ld_workers *p = ld_workers_new(base, 3);
    assert_non_null(p);
    static item items[ITEMS];
    int remaining = ITEMS;
    for (int i = 0; i < ITEMS; i++) {
        items[i] = (item){.loop = pthread_self(), .base = base, .remaining = &remaining};
        assert_true(ld_workers_submit(p, work, done, &items[i]));
    }
    /* bounded: the loop breaks when the last completion ran, or after 10 s */
    struct timeval limit = {10, 0};
    event_base_loopexit(base, &limit);
    event_base_dispatch(base);
    assert_int_equal(remaining, 0);
    for (int i = 0; i < ITEMS; i++) {
        assert_int_equal(atomic_load(&items[i].worked), 1);
        assert_int_equal(items[i].done, 1);
        assert_true(items[i].work_off_loop);
        assert_true(items[i].done_on_loop);
    }
    ld_workers_free(p);
    event_base_free(base);
}

static void free_finishes_queued_work(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    ld_workers *p = ld_workers_new(base, 1);
    assert_non_null(p);
    static item items[50];
    int remaining = 50;
    for (int i = 0; i < 50; i++) {
        items[i] = (item){.loop = pthread_self(), .base = base, .remaining = &remaining};
        assert_true(ld_workers_submit(p, work, done, &items[i]));
    }
    ld_workers_free(p); /* the loop never ran: free runs the completions */
    assert_int_equal(remaining, 0);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(atomic_load(&items[i].worked), 1);
        assert_int_equal(items[i].done, 1);
    }
    event_base_free(base);
}

int main(void)
{
    if (evthread_use_pthreads() != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(runs_everything_once),
        cmocka_unit_test(free_finishes_queued_work),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
