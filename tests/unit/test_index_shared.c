/* Unit tests of the readers' shared index definitions (core/index/index.c ld_index_set_*) on a
 * real storage plugin (argv[1]): one parse per generation, a new set after DDL, and two threads
 * acquiring and releasing while definitions change (run under ASan for the counts' soundness). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <pthread.h>

#include "db_fixture.h"
#include "index/index.h"

static const char *g_plugin;

typedef ld_tdb fx;

static int fx_setup(void **state)
{
    return ld_tdb_setup(state, g_plugin, "ixshared", true);
}

static int fx_teardown(void **state)
{
    return ld_tdb_teardown(state);
}

/* The set as of a new read snapshot. */
static ld_index_set *acquire(fx *f)
{
    ld_txn t;
    assert_int_equal(ld_txn_begin(&f->store, f->db->st, false, &t), LD_OK);
    ld_index_set *set = NULL;
    assert_int_equal(ld_index_set_acquire(f->db->ix_shared, &t, &set), LD_OK);
    ld_txn_abort(&t);
    assert_non_null(set);
    return set;
}

static void define(fx *f, const char *name, const char *path)
{
    char id[128], body[256];
    snprintf(id, sizeof id, "orders.%s", name);
    snprintf(body, sizeof body, "{\"Collection\":\"orders\",\"Name\":\"%s\",\"Paths\":[\"%s\"]}",
             name, path);
    ld_tdb_write(f, LD_INDEX_DEFS_COLL, id, body);
}

/* Polls (bounded) until index `name` is READY in a new snapshot's set. */
static void wait_ready(fx *f, const char *name)
{
    for (int i = 0; i < 2000; i++) {
        ld_index_set *set = acquire(f);
        bool ready = false;
        for (size_t j = 0; j < set->n; j++)
            if (!strcmp(set->defs[j].name, name) && ld_index_usable(&set->defs[j], "orders", 6))
                ready = true;
        ld_index_set_release(f->db->ix_shared, set);
        if (ready) return;
        usleep(5000);
    }
    fail_msg("index %s never became ready", name);
}

static void one_set_per_generation(void **state)
{
    fx *f = *state;
    ld_index_set *a = acquire(f), *b = acquire(f);
    assert_ptr_equal(a, b); /* nothing changed: the same parsed set, not a new parse */
    assert_int_equal(a->n, 0);
    ld_index_set_release(f->db->ix_shared, a);
    ld_index_set_release(f->db->ix_shared, b);

    ld_tdb_write(f, "orders", "o1", "{\"Total\":5}");
    define(f, "by_total", "$.Total");
    wait_ready(f, "by_total");
    ld_index_set *c = acquire(f);
    assert_int_equal(c->n, 1);
    assert_string_equal(c->defs[0].paths[0], "$.Total");
    assert_true(ld_index_usable(&c->defs[0], "orders", 6));
    assert_false(ld_index_usable(&c->defs[0], "order", 5));
    /* A holder keeps its set whole while a newer generation replaces it as the shared one. */
    ld_tdb_write(f, LD_INDEX_DEFS_COLL, "orders.by_total", NULL);
    ld_index_set *d = acquire(f);
    assert_ptr_not_equal(c, d);
    assert_int_equal(d->n, 0);
    assert_int_equal(c->n, 1);
    assert_string_equal(c->defs[0].name, "by_total");
    ld_index_set_release(f->db->ix_shared, c);
    ld_index_set_release(f->db->ix_shared, d);
}

typedef struct reader {
    fx *f;
    volatile int *stop;
    int acquired; /* read by the main thread while the reader runs: atomics */
    bool bad;     /* a set whose definitions were not whole */
    ld_status st; /* the status that stopped it, LD_OK when told to stop */
} reader;

static void *read_loop(void *arg)
{
    reader *r = arg;
    /* Bounded: stops when told, or after many rounds either way. */
    for (int i = 0; i < 200000 && !__atomic_load_n(r->stop, __ATOMIC_ACQUIRE); i++) {
        ld_txn t;
        ld_status st = ld_txn_begin(&r->f->store, r->f->db->st, false, &t);
        if (st != LD_OK) {
            r->st = st;
            break;
        }
        ld_index_set *set = NULL;
        st = ld_index_set_acquire(r->f->db->ix_shared, &t, &set);
        ld_txn_abort(&t);
        if (st != LD_OK || !set) {
            r->st = st != LD_OK ? st : LD_CORRUPT;
            break;
        }
        for (size_t j = 0; j < set->n; j++)
            if (!set->defs[j].name || set->defs[j].npaths != 1 || !set->defs[j].parsed[0].nsegs)
                r->bad = true;
        __atomic_add_fetch(&r->acquired, 1, __ATOMIC_RELEASE);
        ld_index_set_release(r->f->db->ix_shared, set);
    }
    return NULL;
}

static void two_threads_share_while_definitions_change(void **state)
{
    fx *f = *state;
    ld_tdb_write(f, "orders", "o1", "{\"Total\":5,\"Tag\":\"a\"}");
    volatile int stop = 0;
    reader r[2] = {{.f = f, .stop = &stop}, {.f = f, .stop = &stop}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, read_loop, &r[i]), 0);
    /* Both readers running before the definitions change (bounded: 10 s). */
    for (int i = 0; i < 2000 && (__atomic_load_n(&r[0].acquired, __ATOMIC_ACQUIRE) == 0 ||
                                 __atomic_load_n(&r[1].acquired, __ATOMIC_ACQUIRE) == 0);
         i++)
        usleep(5000);
    /* Each change is a new generation the readers must pick up (and the old sets go). */
    for (int i = 0; i < 6; i++) {
        char name[16];
        snprintf(name, sizeof name, "ix%d", i);
        define(f, name, i % 2 ? "$.Tag" : "$.Total");
        if (i % 3 == 2) ld_tdb_write(f, LD_INDEX_DEFS_COLL, "orders.ix0", NULL);
    }
    wait_ready(f, "ix5");
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        if (r[i].st != LD_OK) fail_msg("reader %d stopped: %s", i, ld_status_str(r[i].st));
        assert_false(r[i].bad);
        assert_true(r[i].acquired > 0);
    }
    ld_index_set *last = acquire(f);
    assert_int_equal(last->n, 5); /* ix1..ix5: ix0 dropped */
    ld_index_set_release(f->db->ix_shared, last);
    /* teardown closes the database: the shared set goes with it (ASan: no leak) */
}

#define FX_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <storage plugin .so>\n", argv[0]);
        return 2;
    }
    g_plugin = argv[1];
    const struct CMUnitTest tests[] = {
        FX_TEST(one_set_per_generation),
        FX_TEST(two_threads_share_while_definitions_change),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
