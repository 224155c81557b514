/* Map growth of the LMDB storage plugin (argv[1], dlopen'ed): with MapSizeMiB 1, transactions
 * that write far more than the map must still commit, whole, with readers around. Also the
 * LMDB-only rules: key spaces reloaded at open and their limit, one open per environment. */
#include <litedist/storage.h>

#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "plugin_harness.h"

#define K(lit) (const void *)(lit), (sizeof(lit) - 1)
#define CONFIG "{\"MapSizeMiB\": 1, \"Sync\": \"off\"}"

static const ld_storage_v1 *g_ops;
static char g_dir[PATH_MAX];
static ld_host g_host;
static ld_storage *g_st;
static atomic_int g_grown; /* "map ... grown" log lines seen */
static unsigned g_seq;

static void t_log(const ld_host *host, int32_t level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void t_log(const ld_host *host, int32_t level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (strstr(line, " grown from ")) atomic_fetch_add(&g_grown, 1);
    if (level <= LD_LOG_WARN || getenv("LD_TEST_VERBOSE")) fprintf(stderr, "  [plugin] %s\n", line);
}

typedef struct fx {
    ld_stdb *db;
    char name[32];
} fx;

static int fx_setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->name, sizeof f->name, "m%u", ++g_seq);
    assert_status(g_ops->open(g_st, g_dir, f->name, &f->db), LD_OK);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx *f = *state;
    if (f->db) g_ops->close(f->db);
    ld_status s = g_ops->drop(g_st, g_dir, f->name);
    free(f);
    return s == LD_OK ? 0 : -1;
}

static ld_sttxn *t_begin(ld_stdb *db, uint32_t flags)
{
    ld_sttxn *t = NULL;
    assert_status(g_ops->begin(db, flags, &t), LD_OK);
    return t;
}

/* Deterministic filler: value i of length n. */
static void fill(unsigned char *buf, size_t n, uint32_t i)
{
    uint32_t x = i * 2654435761u + 1u;
    for (size_t j = 0; j < n; j++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[j] = (unsigned char)x;
    }
}

static void key_of(char *k, size_t n, uint32_t i)
{
    snprintf(k, n, "key%08u", i);
}

static void check_value(ld_sttxn *t, const char *space, uint32_t i, size_t vlen)
{
    char k[32];
    key_of(k, sizeof k, i);
    unsigned char *want = malloc(vlen ? vlen : 1);
    assert_non_null(want);
    fill(want, vlen, i);
    const void *v = NULL;
    size_t vl = 0;
    assert_status(g_ops->get(t, space, k, strlen(k), &v, &vl), LD_OK);
    assert_int_equal(vl, vlen);
    assert_memory_equal(v, want, vlen);
    free(want);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------------------------------------
 * One transaction of 24 MiB, with a cursor walking another space across the growth.
 * ------------------------------------------------------------------------------------------- */
#define BIG_N    6000u
#define BIG_VLEN 4096u

static void test_one_big_txn(void **state)
{
    fx *f = *state;
    int grown0 = atomic_load(&g_grown);
    ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
    assert_status(g_ops->put(t, "walk", K("k1"), K("1")), LD_OK);
    assert_status(g_ops->put(t, "walk", K("k2"), K("2")), LD_OK);
    assert_status(g_ops->put(t, "walk", K("k3"), K("3")), LD_OK);
    assert_status(g_ops->commit(t), LD_OK);

    t = t_begin(f->db, LD_TXN_WRITE);
    ld_stcursor *c = NULL;
    const void *k, *v;
    size_t kl, vl;
    assert_status(g_ops->cursor_open(t, "walk", &c), LD_OK);
    assert_status(g_ops->cursor_next(c, &k, &kl, &v, &vl), LD_OK);
    assert_int_equal(kl, 2);
    assert_memory_equal(k, "k1", 2);

    unsigned char *buf = malloc(BIG_VLEN);
    assert_non_null(buf);
    for (uint32_t i = 0; i < BIG_N; i++) {
        char key[32];
        key_of(key, sizeof key, i);
        fill(buf, BIG_VLEN, i);
        assert_status(g_ops->put(t, "bulk", key, strlen(key), buf, BIG_VLEN), LD_OK);
        if (i == BIG_N / 2) {
            /* Mid-way, after several replays: the txn still sees its own earlier writes and the
             * cursor is where it was. */
            check_value(t, "bulk", 0, BIG_VLEN);
            check_value(t, "bulk", i, BIG_VLEN);
            assert_status(g_ops->cursor_next(c, &k, &kl, &v, &vl), LD_OK);
            assert_int_equal(kl, 2);
            assert_memory_equal(k, "k2", 2);
        }
    }
    for (uint32_t i = 0; i < BIG_N; i += 10) {
        char key[32];
        key_of(key, sizeof key, i);
        assert_status(g_ops->del(t, "bulk", key, strlen(key)), LD_OK);
    }
    assert_status(g_ops->del(t, "bulk", K("never")), LD_NOT_FOUND); /* txn stays usable */
    assert_status(g_ops->cursor_next(c, &k, &kl, &v, &vl), LD_OK);
    assert_memory_equal(k, "k3", 2);
    assert_memory_equal(v, "3", 1);
    assert_int_equal(g_ops->cursor_next(c, &k, &kl, &v, &vl), LD_NOT_FOUND);
    g_ops->cursor_close(c);
    assert_status(g_ops->commit(t), LD_OK);
    assert_true(atomic_load(&g_grown) > grown0);

    t = t_begin(f->db, LD_TXN_READ);
    for (uint32_t i = 0; i < BIG_N; i++) {
        if (i % 10 == 0) {
            char key[32];
            key_of(key, sizeof key, i);
            assert_status(g_ops->get(t, "bulk", key, strlen(key), &v, &vl), LD_NOT_FOUND);
        } else {
            check_value(t, "bulk", i, BIG_VLEN);
        }
    }
    assert_status(g_ops->commit(t), LD_OK);
    uint64_t size = 0;
    assert_status(g_ops->size_bytes(f->db, &size), LD_OK);
    assert_true(size > (uint64_t)BIG_N * BIG_VLEN * 9 / 10);
    free(buf);
    print_message("24 MiB in one txn over a 1 MiB map: %d growths, %.1f MiB on disk\n",
                  atomic_load(&g_grown) - grown0, (double)size / 1048576.0);
}

/* ---------------------------------------------------------------------------------------------
 * Many small txns (early growth at begin), then an aborted big one leaving nothing behind.
 * ------------------------------------------------------------------------------------------- */
static void test_many_txns(void **state)
{
    fx *f = *state;
    unsigned char buf[1024];
    uint32_t n = 0;
    for (int txn = 0; txn < 200; txn++) {
        ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
        for (int j = 0; j < 100; j++, n++) {
            char key[32];
            key_of(key, sizeof key, n);
            fill(buf, sizeof buf, n);
            assert_status(g_ops->put(t, "s", key, strlen(key), buf, sizeof buf), LD_OK);
        }
        assert_status(g_ops->commit(t), LD_OK);
    }
    /* A txn that grows the map, in a space it creates, then aborts. */
    ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
    for (uint32_t i = 0; i < 20000; i++) {
        char key[32];
        key_of(key, sizeof key, i);
        fill(buf, sizeof buf, i + 7);
        assert_status(g_ops->put(t, "gone", key, strlen(key), buf, sizeof buf), LD_OK);
        assert_status(g_ops->put(t, "s", key, strlen(key), K("overwritten")), LD_OK);
    }
    g_ops->abort(t);

    t = t_begin(f->db, LD_TXN_READ);
    ld_stcursor *c = NULL;
    const void *k, *v;
    size_t kl, vl;
    assert_status(g_ops->cursor_open(t, "s", &c), LD_OK);
    uint32_t seen = 0;
    while (g_ops->cursor_next(c, &k, &kl, &v, &vl) == LD_OK) {
        assert_int_equal(vl, sizeof buf);
        seen++;
    }
    g_ops->cursor_close(c);
    assert_int_equal(seen, n);
    check_value(t, "s", 0, sizeof buf);
    check_value(t, "s", n - 1, sizeof buf);
    assert_status(g_ops->get(t, "gone", K("key00000001"), &v, &vl), LD_NOT_FOUND);
    assert_status(g_ops->commit(t), LD_OK);

    /* The space of the aborted txn can be created afresh. */
    t = t_begin(f->db, LD_TXN_WRITE);
    assert_status(g_ops->put(t, "gone", K("k"), K("v")), LD_OK);
    assert_status(g_ops->commit(t), LD_OK);
}

/* ---------------------------------------------------------------------------------------------
 * Values larger than the whole map, and the largest value allowed.
 * ------------------------------------------------------------------------------------------- */
static void test_big_values(void **state)
{
    fx *f = *state;
    static const size_t sizes[] = {0, 16u << 20, LD_STORAGE_MAX_VALUE};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *buf = malloc(sizes[i] ? sizes[i] : 1);
        assert_non_null(buf);
        fill(buf, sizes[i], (uint32_t)i);
        char key[32];
        key_of(key, sizeof key, (uint32_t)i);
        ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
        assert_status(g_ops->put(t, "vals", key, strlen(key), buf, sizes[i]), LD_OK);
        assert_status(g_ops->commit(t), LD_OK);
        free(buf);
    }
    ld_sttxn *t = t_begin(f->db, LD_TXN_READ);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        check_value(t, "vals", (uint32_t)i, sizes[i]);
    assert_status(g_ops->commit(t), LD_OK);
}

/* ---------------------------------------------------------------------------------------------
 * A reader holding a snapshot while the writer needs to grow: the writer waits for it.
 * ------------------------------------------------------------------------------------------- */
typedef struct rjob {
    ld_stdb *db;
    atomic_int began;   /* the read txn is open */
    atomic_int release; /* main thread: end it now (0: after hold_ms) */
    unsigned hold_ms;
    ld_status status;
    char value[16];
} rjob;

static void *reader_hold(void *arg)
{
    rjob *j = arg;
    ld_sttxn *t = NULL;
    j->status = g_ops->begin(j->db, LD_TXN_READ, &t);
    atomic_store(&j->began, 1);
    if (j->status != LD_OK) return NULL;
    double until = now_s() + j->hold_ms / 1000.0;
    while (!atomic_load(&j->release) && (j->hold_ms == 0 || now_s() < until))
        usleep(1000);
    const void *v;
    size_t vl;
    j->status = g_ops->get(t, "main", K("x"), &v, &vl);
    if (j->status == LD_OK) snprintf(j->value, sizeof j->value, "%.*s", (int)vl, (const char *)v);
    g_ops->commit(t);
    return NULL;
}

static void write_mib(ld_sttxn *t, unsigned mib, ld_status want_last)
{
    unsigned char buf[8192];
    ld_status s = LD_OK;
    for (uint32_t i = 0; i < mib * 128u; i++) {
        char key[32];
        key_of(key, sizeof key, i);
        fill(buf, sizeof buf, i);
        s = g_ops->put(t, "fill", key, strlen(key), buf, sizeof buf);
        if (s != LD_OK) break;
    }
    assert_status(s, want_last);
}

static void test_reader_during_growth(void **state)
{
    fx *f = *state;
    ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
    assert_status(g_ops->put(t, "main", K("x"), K("old")), LD_OK);
    assert_status(g_ops->commit(t), LD_OK);

    rjob j = {.db = f->db, .hold_ms = 300};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reader_hold, &j), 0);
    while (!atomic_load(&j.began))
        usleep(1000);
    double t0 = now_s();
    t = t_begin(f->db, LD_TXN_WRITE);
    assert_status(g_ops->put(t, "main", K("x"), K("new")), LD_OK);
    write_mib(t, 8, LD_OK);
    assert_status(g_ops->commit(t), LD_OK);
    double waited = now_s() - t0;
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_status(j.status, LD_OK);
    assert_string_equal(j.value, "old"); /* its snapshot, across the remap */
    t = t_begin(f->db, LD_TXN_READ);
    const void *v;
    size_t vl;
    assert_status(g_ops->get(t, "main", K("x"), &v, &vl), LD_OK);
    assert_int_equal(vl, 3);
    assert_memory_equal(v, "new", 3);
    assert_status(g_ops->commit(t), LD_OK);
    print_message("writer waited %.2f s for a reader to let the map grow\n", waited);
}

/* A reader that never lets go: the writer gives up with LD_FULL, and recovers afterwards. */
static void test_reader_blocks_growth(void **state)
{
    fx *f = *state;
    ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
    assert_status(g_ops->put(t, "main", K("x"), K("old")), LD_OK);
    assert_status(g_ops->commit(t), LD_OK);

    rjob j = {.db = f->db};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reader_hold, &j), 0);
    while (!atomic_load(&j.began))
        usleep(1000);
    t = t_begin(f->db, LD_TXN_WRITE);
    assert_status(g_ops->put(t, "main", K("x"), K("new")), LD_OK);
    write_mib(t, 8, LD_FULL);
    const void *v;
    size_t vl;
    assert_int_not_equal(g_ops->get(t, "main", K("x"), &v, &vl), LD_OK); /* abort only */
    assert_status(g_ops->commit(t), LD_FULL);

    /* Readers still work while the stuck one holds on. */
    ld_sttxn *r = t_begin(f->db, LD_TXN_READ);
    assert_status(g_ops->get(r, "main", K("x"), &v, &vl), LD_OK);
    assert_memory_equal(v, "old", 3);
    g_ops->abort(r);

    atomic_store(&j.release, 1);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_status(j.status, LD_OK);

    t = t_begin(f->db, LD_TXN_WRITE);
    assert_status(g_ops->put(t, "main", K("x"), K("new")), LD_OK);
    write_mib(t, 8, LD_OK);
    assert_status(g_ops->commit(t), LD_OK);
    r = t_begin(f->db, LD_TXN_READ);
    assert_status(g_ops->get(r, "main", K("x"), &v, &vl), LD_OK);
    assert_memory_equal(v, "new", 3);
    g_ops->abort(r);
}

/* ---------------------------------------------------------------------------------------------
 * Readers checking consistency on other threads while the writer keeps growing the map.
 * ------------------------------------------------------------------------------------------- */
#define N_READERS 4

typedef struct cjob {
    ld_stdb *db;
    atomic_int *stop;
    unsigned long txns;
    char err[200];
} cjob;

static uint32_t be32(const void *p)
{
    const unsigned char *b = p;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void *reader_loop(void *arg)
{
    cjob *j = arg;
    uint32_t prev = 0;
    while (!atomic_load(j->stop)) {
        ld_sttxn *t = NULL;
        const void *v;
        size_t vl;
        ld_status s = g_ops->begin(j->db, LD_TXN_READ, &t);
        if (s != LD_OK) {
            snprintf(j->err, sizeof j->err, "begin: %d", s);
            return NULL;
        }
        uint32_t a = 0, b = 0;
        s = g_ops->get(t, "left", K("n"), &v, &vl);
        if (s == LD_OK && vl == 4) a = be32(v);
        s = g_ops->get(t, "right", K("n"), &v, &vl);
        if (s == LD_OK && vl == 4) b = be32(v);
        g_ops->commit(t);
        if (a != b || a < prev) {
            snprintf(j->err, sizeof j->err, "left %u right %u after %u", a, b, prev);
            return NULL;
        }
        prev = a;
        j->txns++;
    }
    return NULL;
}

static void test_readers_while_growing(void **state)
{
    fx *f = *state;
    atomic_int stop = 0;
    cjob jobs[N_READERS];
    pthread_t th[N_READERS];
    for (int i = 0; i < N_READERS; i++) {
        jobs[i] = (cjob){.db = f->db, .stop = &stop};
        assert_int_equal(pthread_create(&th[i], NULL, reader_loop, &jobs[i]), 0);
    }
    unsigned char buf[2048];
    uint32_t n = 0;
    for (uint32_t txn = 1; txn <= 150; txn++) {
        ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
        unsigned char c[4] = {(unsigned char)(txn >> 24), (unsigned char)(txn >> 16),
                              (unsigned char)(txn >> 8), (unsigned char)txn};
        assert_status(g_ops->put(t, "left", K("n"), c, 4), LD_OK);
        for (int i = 0; i < 100; i++, n++) {
            char key[32];
            key_of(key, sizeof key, n);
            fill(buf, sizeof buf, n);
            assert_status(g_ops->put(t, "bulk", key, strlen(key), buf, sizeof buf), LD_OK);
        }
        assert_status(g_ops->put(t, "right", K("n"), c, 4), LD_OK);
        assert_status(g_ops->commit(t), LD_OK);
    }
    atomic_store(&stop, 1);
    unsigned long total = 0;
    for (int i = 0; i < N_READERS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        total += jobs[i].txns;
    }
    for (int i = 0; i < N_READERS; i++)
        if (jobs[i].err[0]) fail_msg("reader %d: %s", i, jobs[i].err);
    print_message("%lu read txns while 30 MiB went into a 1 MiB map\n", total);
}

/* ---------------------------------------------------------------------------------------------
 * A grown map survives close and reopen, even with MapSizeMiB still 1.
 * ------------------------------------------------------------------------------------------- */
static void test_reopen(void **state)
{
    fx *f = *state;
    ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
    write_mib(t, 12, LD_OK);
    assert_status(g_ops->commit(t), LD_OK);
    g_ops->close(f->db);
    f->db = NULL;
    assert_status(g_ops->open(g_st, g_dir, f->name, &f->db), LD_OK);
    int grown0 = atomic_load(&g_grown);
    t = t_begin(f->db, LD_TXN_WRITE);
    assert_status(g_ops->put(t, "main", K("after"), K("reopen")), LD_OK);
    assert_status(g_ops->commit(t), LD_OK);
    assert_int_equal(atomic_load(&g_grown), grown0); /* the recorded map was kept */
    t = t_begin(f->db, LD_TXN_READ);
    check_value(t, "fill", 0, 8192);
    check_value(t, "fill", 12 * 128 - 1, 8192);
    assert_status(g_ops->commit(t), LD_OK);
}

/* ---------------------------------------------------------------------------------------------
 * Beyond the map: key spaces reloaded at open and their limit, a second open refused, drop.
 * ------------------------------------------------------------------------------------------- */
static void test_spaces_reopen_and_limit(void **state)
{
    fx *f = *state;
    ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
    for (int i = 0; i < 100; i++) {
        char sp[16];
        snprintf(sp, sizeof sp, "s%d", i);
        assert_status(g_ops->put(t, sp, K("k"), sp, strlen(sp)), LD_OK);
    }
    assert_status(g_ops->commit(t), LD_OK);
    g_ops->close(f->db);
    f->db = NULL;
    assert_status(g_ops->open(g_st, g_dir, f->name, &f->db), LD_OK);

    /* Every space is found again, by readers and by the writer. */
    t = t_begin(f->db, LD_TXN_READ);
    const void *v;
    size_t vl;
    for (int i = 0; i < 100; i++) {
        char sp[16];
        snprintf(sp, sizeof sp, "s%d", i);
        assert_status(g_ops->get(t, sp, K("k"), &v, &vl), LD_OK);
        assert_int_equal(vl, strlen(sp));
        assert_memory_equal(v, sp, vl);
    }
    assert_status(g_ops->commit(t), LD_OK);

    /* 128 spaces per database: the 129th fails the txn, which then leaves nothing. */
    t = t_begin(f->db, LD_TXN_WRITE);
    assert_status(g_ops->put(t, "s5", K("k"), K("new")), LD_OK);
    ld_status s = LD_OK;
    int i;
    for (i = 100; i < 200 && s == LD_OK; i++) {
        char sp[16];
        snprintf(sp, sizeof sp, "s%d", i);
        s = g_ops->put(t, sp, K("k"), K("v"));
    }
    assert_int_equal(s, LD_FULL);
    assert_int_equal(i, 129);
    assert_status(g_ops->commit(t), LD_FULL);
    t = t_begin(f->db, LD_TXN_READ);
    assert_status(g_ops->get(t, "s5", K("k"), &v, &vl), LD_OK);
    assert_memory_equal(v, "s5", 2);
    assert_status(g_ops->get(t, "s100", K("k"), &v, &vl), LD_NOT_FOUND);
    assert_status(g_ops->commit(t), LD_OK);
    t = t_begin(f->db, LD_TXN_WRITE);
    assert_status(g_ops->put(t, "s100", K("k"), K("v")), LD_OK); /* slots were given back */
    assert_status(g_ops->commit(t), LD_OK);
}

static int count_cb(void *ctx, const char *name)
{
    (void)name;
    (*(int *)ctx)++;
    return 0;
}

static void test_open_twice_and_drop(void **state)
{
    fx *f = *state;
    ld_stdb *again = NULL;
    assert_status(g_ops->open(g_st, g_dir, f->name, &again), LD_BUSY);
    assert_status(g_ops->drop(g_st, g_dir, f->name), LD_BUSY);

    /* A database left half-dropped (its renamed directory) is neither listed nor in the way. */
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/.drop-gone.lmdb", g_dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/.drop-gone.lmdb/data.mdb", g_dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    ld_stdb *db = NULL;
    assert_status(g_ops->open(g_st, g_dir, "gone", &db), LD_OK);
    g_ops->close(db);
    int n = 0;
    assert_status(g_ops->list(g_st, g_dir, count_cb, &n), LD_OK);
    assert_int_equal(n, 2); /* f->name and gone */
    assert_status(g_ops->drop(g_st, g_dir, "gone"), LD_OK);
    snprintf(path, sizeof path, "%s/.drop-gone.lmdb", g_dir);
    struct stat sb;
    assert_int_not_equal(stat(path, &sb), 0);
    n = 0;
    assert_status(g_ops->list(g_st, g_dir, count_cb, &n), LD_OK);
    assert_int_equal(n, 1);
}

/* ---------------------------------------------------------------------------------------------
 * Driver
 * ------------------------------------------------------------------------------------------- */
#define FX_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s storage-lmdb.so\n", argv[0]);
        return 2;
    }
    if (!ld_tp_scratch_dir(g_dir, sizeof g_dir, "ld-lmdb-mapfull")) return 1;
    g_host = (ld_host){
        .abi_major = LD_ABI_MAJOR,
        .abi_minor = LD_ABI_MINOR,
        .struct_size = (uint32_t)sizeof(ld_host),
        .log = t_log,
        .config_json = CONFIG,
        .data_dir = g_dir,
        .plugin_path = argv[1],
    };
    int rc = 1;
    const ld_plugin_descriptor *desc = ld_tp_load_storage(argv[1], &g_host, "lmdb");
    if (!desc) goto out;
    g_ops = desc->ops;
    if (g_ops->create(&g_host, &g_st) != LD_OK) {
        fprintf(stderr, "create with %s failed: %s\n", CONFIG, g_ops->last_error(NULL));
        goto out;
    }
    const struct CMUnitTest tests[] = {
        FX_TEST(test_one_big_txn),
        FX_TEST(test_many_txns),
        FX_TEST(test_big_values),
        FX_TEST(test_reader_during_growth),
        FX_TEST(test_reader_blocks_growth),
        FX_TEST(test_readers_while_growing),
        FX_TEST(test_reopen),
        FX_TEST(test_spaces_reopen_and_limit),
        FX_TEST(test_open_twice_and_drop),
    };
    rc = cmocka_run_group_tests_name("lmdb map growth", tests, NULL, NULL);
    g_ops->destroy(g_st);
out:
    ld_tp_remove_dir(g_dir);
    return rc;
}
