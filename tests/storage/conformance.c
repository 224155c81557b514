/* Storage conformance suite (installed as litedist-conformance): loads the storage plugin named
 * on the command line through its ABI entry point and checks it against storage.h. ctest runs
 * it once per bundled plugin; docs/testing-storage.md tells plugin authors how to run it. */
#include <litedist/storage.h>

#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "plugin_harness.h"

/* A string literal as (pointer, length), so keys may hold NUL bytes. */
#define K(lit) (const void *)(lit), (sizeof(lit) - 1)

/* An optional op is present when it lies within struct_size and is non-NULL. */
#define HAS_OP(f) (LD_ABI_HAS(g_ops, ld_storage_v1, f) && g_ops->f != NULL)

static const ld_storage_v1 *g_ops;
static const ld_plugin_descriptor *g_desc;
static char g_dir[PATH_MAX];
static ld_host g_host;
static ld_storage *g_st; /* instance of the running test, for last_error() in failure messages */
static unsigned g_dbseq;

/* ---------------------------------------------------------------------------------------------
 * Host and fixtures
 * ------------------------------------------------------------------------------------------- */
static void t_log(const ld_host *host, int32_t level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void t_log(const ld_host *host, int32_t level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (level >= LD_LOG_DEBUG && !getenv("LD_TEST_VERBOSE")) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "  [plugin %s] %s\n", level >= 0 && level <= 3 ? names[level] : "?", line);
}

/* A host table that lives until exit, as plugin.h promises. */
static const ld_host *t_host(const char *config)
{
    static ld_host hosts[32];
    static unsigned n;
    if (n == sizeof hosts / sizeof hosts[0]) fail_msg("out of host tables");
    hosts[n] = g_host;
    hosts[n].config_json = config;
    hosts[n].settings_json = config;
    return &hosts[n++];
}

/* Fails the test with the plugin's last_error when a call does not return `want`. */
typedef struct fx {
    ld_storage *st;
    ld_stdb *db;
    char name[32];
} fx;

static int fx_setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(g_ops->create(&g_host, &f->st), LD_OK);
    g_st = f->st;
    snprintf(f->name, sizeof f->name, "t%u", ++g_dbseq);
    assert_status(g_ops->open(f->st, g_dir, f->name, &f->db), LD_OK);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx *f = *state;
    if (f->db) g_ops->close(f->db);
    ld_status s = g_ops->drop(f->st, g_dir, f->name);
    g_ops->destroy(f->st);
    g_st = NULL;
    free(f);
    return s == LD_OK ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------------
 * Helpers (main thread only: cmocka asserts longjmp)
 * ------------------------------------------------------------------------------------------- */
static ld_sttxn *t_begin(ld_stdb *db, uint32_t flags)
{
    ld_sttxn *t = NULL;
    assert_status(g_ops->begin(db, flags, &t), LD_OK);
    assert_non_null(t);
    return t;
}

static void t_put(ld_sttxn *t, const char *space, const void *k, size_t kl, const void *v,
                  size_t vl)
{
    assert_status(g_ops->put(t, space, k, kl, v, vl), LD_OK);
}

static void t_expect(ld_sttxn *t, const char *space, const void *k, size_t kl, const void *v,
                     size_t vl)
{
    const void *got = NULL;
    size_t gl = (size_t)-1;
    assert_status(g_ops->get(t, space, k, kl, &got, &gl), LD_OK);
    assert_non_null(got);
    assert_int_equal(gl, vl);
    if (vl) assert_memory_equal(got, v, vl);
}

static void t_missing(ld_sttxn *t, const char *space, const void *k, size_t kl)
{
    const void *got;
    size_t gl;
    assert_status(g_ops->get(t, space, k, kl, &got, &gl), LD_NOT_FOUND);
}

static void t_put1(ld_stdb *db, const char *space, const void *k, size_t kl, const void *v,
                   size_t vl)
{
    ld_sttxn *t = t_begin(db, LD_TXN_WRITE);
    t_put(t, space, k, kl, v, vl);
    assert_status(g_ops->commit(t), LD_OK);
}

static void t_expect1(ld_stdb *db, const char *space, const void *k, size_t kl, const void *v,
                      size_t vl)
{
    ld_sttxn *t = t_begin(db, LD_TXN_READ);
    t_expect(t, space, k, kl, v, vl);
    assert_status(g_ops->commit(t), LD_OK);
}

static void t_missing1(ld_stdb *db, const char *space, const void *k, size_t kl)
{
    ld_sttxn *t = t_begin(db, LD_TXN_READ);
    t_missing(t, space, k, kl);
    assert_status(g_ops->commit(t), LD_OK);
}

static void t_u64(unsigned char out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (unsigned char)v;
}

static uint64_t t_get_u64(const void *p)
{
    const unsigned char *b = p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

static int t_keycmp(const void *a, size_t al, const void *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

/* Runs fn(arg) on a thread of its own and waits for it (a thread has one txn per database). */
static void t_on_thread(void *(*fn)(void *), void *arg)
{
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fn, arg), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
}

static double t_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------------------------------------
 * ABI and configuration
 * ------------------------------------------------------------------------------------------- */
static void test_abi(void **state)
{
    (void)state;
    assert_int_equal(g_desc->abi_major, LD_ABI_MAJOR);
    assert_true(g_desc->struct_size >= offsetof(ld_plugin_descriptor, ops) + sizeof(void *));
    assert_int_equal(g_desc->kind, LD_PLUGIN_KIND_STORAGE);
    assert_non_null(g_desc->name);
    assert_true(strlen(g_desc->name) > 0);
    assert_true(strspn(g_desc->name, "abcdefghijklmnopqrstuvwxyz0123456789_-") ==
                strlen(g_desc->name));
    assert_non_null(g_desc->version);
    assert_non_null(g_ops);
    assert_int_equal(g_ops->abi_major, LD_ABI_MAJOR);
    /* ABI 1.0's table: what the loader requires (the fields after it are optional). */
    assert_true(g_ops->struct_size >= offsetof(ld_storage_v1, cursor_last));
    assert_non_null(g_ops->create);
    assert_non_null(g_ops->destroy);
    assert_non_null(g_ops->open);
    assert_non_null(g_ops->close);
    assert_non_null(g_ops->drop);
    assert_non_null(g_ops->list);
    assert_non_null(g_ops->last_error);
    assert_non_null(g_ops->begin);
    assert_non_null(g_ops->commit);
    assert_non_null(g_ops->abort);
    assert_non_null(g_ops->get);
    assert_non_null(g_ops->put);
    assert_non_null(g_ops->del);
    assert_non_null(g_ops->cursor_open);
    assert_non_null(g_ops->cursor_seek);
    assert_non_null(g_ops->cursor_next);
    assert_non_null(g_ops->cursor_close);
    print_message("plugin %s %s: cursor_last %s, size_bytes %s\n", g_desc->name, g_desc->version,
                  HAS_OP(cursor_last) ? "yes" : "no", HAS_OP(size_bytes) ? "yes" : "no");
}

/* The Sync values of storage.h are accepted; anything else is refused as bad config. */
static void test_config(void **state)
{
    (void)state;
    static const char *const good[] = {"{}", "{\"Sync\":\"full\"}", "{\"Sync\":\"normal\"}",
                                       "{\"Sync\":\"off\"}", "{\"Plugin\":\"x\"}"};
    static const char *const bad[] = {"{\"Sync\":\"bogus\"}", "{\"Sync\":1}", "[1]", "{"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        ld_storage *st = NULL;
        assert_int_equal(g_ops->create(t_host(good[i]), &st), LD_OK);
        g_ops->destroy(st);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ld_storage *st = NULL;
        assert_int_equal(g_ops->create(t_host(bad[i]), &st), LD_INVALID);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Basic reads and writes
 * ------------------------------------------------------------------------------------------- */
static void test_get_put_del(void **state)
{
    fx *f = *state;
    ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
    t_missing(t, "main", K("k1"));
    t_put(t, "main", K("k1"), K("v1"));
    t_expect(t, "main", K("k1"), K("v1")); /* a write txn sees its own writes */
    t_put(t, "main", K("k2"), K("v2"));
    assert_status(g_ops->del(t, "main", K("k2")), LD_OK);
    assert_status(g_ops->del(t, "main", K("k2")), LD_NOT_FOUND);
    t_missing(t, "main", K("k2"));
    assert_status(g_ops->del(t, "main", K("never")), LD_NOT_FOUND);
    t_put(t, "main", K("k3"), K("v3")); /* still usable after NOT_FOUND */
    assert_status(g_ops->commit(t), LD_OK);

    t = t_begin(f->db, LD_TXN_READ);
    t_expect(t, "main", K("k1"), K("v1"));
    t_missing(t, "main", K("k2"));
    t_expect(t, "main", K("k3"), K("v3"));
    t_missing(t, "main", K("k"));   /* prefix of a present key */
    t_missing(t, "main", K("k10")); /* extension of a present key */
    t_missing(t, "other", K("k1")); /* spaces are separate */
    assert_status(g_ops->commit(t), LD_OK);

    t = t_begin(f->db, LD_TXN_WRITE);
    assert_status(g_ops->del(t, "main", K("k1")), LD_OK);
    assert_status(g_ops->commit(t), LD_OK);
    t_missing1(f->db, "main", K("k1"));
    t_expect1(f->db, "main", K("k3"), K("v3"));
}

static void test_overwrite(void **state)
{
    fx *f = *state;
    t_put1(f->db, "main", K("k"), K("a much longer first value"));
    t_put1(f->db, "main", K("k"), K("short"));
    t_expect1(f->db, "main", K("k"), K("short"));

    ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
    t_put(t, "main", K("k"), K("one"));
    t_put(t, "main", K("k"), K("two"));
    t_expect(t, "main", K("k"), K("two"));
    assert_status(g_ops->commit(t), LD_OK);
    t_expect1(f->db, "main", K("k"), K("two"));
}

/* ---------------------------------------------------------------------------------------------
 * Cursors
 * ------------------------------------------------------------------------------------------- */
typedef struct tkey {
    const char *k;
    size_t kl;
} tkey;

#define TK(lit)                                                                                    \
    {                                                                                              \
        (lit), sizeof(lit) - 1                                                                     \
    }

/* Keys meant to trip an order that is not memcmp with shorter-first. */
static const tkey order_keys[] = {
    TK("ab"), TK("a\0\0"), TK("\xff"), TK("a"),    TK("\x00"),     TK("\xff\xff"), TK("a\x01"),
    TK("b"),  TK("a\0"),   TK("\x7f"), TK("\x80"), TK("\x00\x01"), TK("a\0\xff"),  TK("aa"),
};
#define N_ORDER_KEYS (sizeof order_keys / sizeof order_keys[0])

static int tkey_cmp(const void *a, const void *b)
{
    const tkey *x = a, *y = b;
    return t_keycmp(x->k, x->kl, y->k, y->kl);
}

static void put_order_keys(ld_sttxn *t, const char *space)
{
    for (size_t i = 0; i < N_ORDER_KEYS; i++) {
        unsigned char v = (unsigned char)i;
        t_put(t, space, order_keys[i].k, order_keys[i].kl, &v, 1);
    }
}

/* The value put_order_keys stored for key (k, kl). */
static unsigned char order_value(const void *k, size_t kl)
{
    for (size_t i = 0; i < N_ORDER_KEYS; i++)
        if (t_keycmp(k, kl, order_keys[i].k, order_keys[i].kl) == 0) return (unsigned char)i;
    fail_msg("unexpected key of %zu bytes", kl);
    return 0;
}

/* A cursor's output. Checked through a pointer, after the call: argument order is unspecified. */
typedef struct trow {
    const void *k, *v;
    size_t kl, vl;
} trow;

#define ROW(r) &(r).k, &(r).kl, &(r).v, &(r).vl

static void expect_row(ld_status s, const trow *r, const tkey *want)
{
    assert_int_equal(s, LD_OK);
    assert_int_equal(r->kl, want->kl);
    assert_memory_equal(r->k, want->k, r->kl);
    assert_int_equal(r->vl, 1);
    assert_int_equal(*(const unsigned char *)r->v, order_value(want->k, want->kl));
}

static void check_order(ld_sttxn *t, const char *space)
{
    tkey sorted[N_ORDER_KEYS];
    memcpy(sorted, order_keys, sizeof sorted);
    qsort(sorted, N_ORDER_KEYS, sizeof sorted[0], tkey_cmp);

    ld_stcursor *c = NULL, *c2 = NULL;
    trow r;
    assert_status(g_ops->cursor_open(t, space, &c), LD_OK);
    /* next before any seek starts at the first key */
    for (size_t i = 0; i < N_ORDER_KEYS; i++)
        expect_row(g_ops->cursor_next(c, ROW(r)), &r, &sorted[i]);
    assert_int_equal(g_ops->cursor_next(c, ROW(r)), LD_NOT_FOUND);
    assert_int_equal(g_ops->cursor_next(c, ROW(r)), LD_NOT_FOUND);

    /* seek with an empty key: the first key */
    expect_row(g_ops->cursor_seek(c, NULL, 0, ROW(r)), &r, &sorted[0]);
    /* exact hits, including keys that are prefixes of others */
    for (size_t i = 0; i < N_ORDER_KEYS; i++)
        expect_row(g_ops->cursor_seek(c, sorted[i].k, sorted[i].kl, ROW(r)), &r, &sorted[i]);
    /* between keys: "a\0\x01" lies after "a\0\0" and before "a\0\xff" */
    tkey want = TK("a\0\xff");
    expect_row(g_ops->cursor_seek(c, K("a\0\x01"), ROW(r)), &r, &want);
    tkey after = TK("a\x01");
    expect_row(g_ops->cursor_next(c, ROW(r)), &r, &after);

    /* a second cursor on the same space moves on its own */
    assert_status(g_ops->cursor_open(t, space, &c2), LD_OK);
    expect_row(g_ops->cursor_next(c2, ROW(r)), &r, &sorted[0]);
    tkey after2 = TK("aa");
    expect_row(g_ops->cursor_next(c, ROW(r)), &r, &after2);
    expect_row(g_ops->cursor_next(c2, ROW(r)), &r, &sorted[1]);
    g_ops->cursor_close(c2);

    /* the last key, then past the end */
    tkey last = TK("\xff\xff");
    expect_row(g_ops->cursor_seek(c, K("\xff\x00"), ROW(r)), &r, &last);
    assert_int_equal(g_ops->cursor_next(c, ROW(r)), LD_NOT_FOUND);
    assert_int_equal(g_ops->cursor_seek(c, K("\xff\xff\x00"), ROW(r)), LD_NOT_FOUND);
    assert_int_equal(g_ops->cursor_next(c, ROW(r)), LD_NOT_FOUND);
    /* and back: a seek revives an exhausted cursor */
    tkey b = TK("b");
    expect_row(g_ops->cursor_seek(c, K("b"), ROW(r)), &r, &b);
    g_ops->cursor_close(c);
}

static void test_cursor_order(void **state)
{
    fx *f = *state;
    ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
    put_order_keys(t, "ord");
    t_put(t, "ord2", K("a0"), K("x")); /* another space must not leak in */
    t_put(t, "orc", K("a0"), K("x"));
    check_order(t, "ord"); /* uncommitted writes, in the write txn */
    assert_status(g_ops->commit(t), LD_OK);

    t = t_begin(f->db, LD_TXN_READ);
    check_order(t, "ord");
    assert_status(g_ops->commit(t), LD_OK);
}

static void test_cursor_last(void **state)
{
    fx *f = *state;
    if (!HAS_OP(cursor_last)) skip();
    trow r;
    ld_stcursor *c = NULL;
    ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
    t_put(t, "other", K("\xff\xff\xff"), K("x"));
    assert_status(g_ops->cursor_open(t, "ord", &c), LD_OK);
    assert_int_equal(g_ops->cursor_last(c, ROW(r)), LD_NOT_FOUND);
    g_ops->cursor_close(c);
    put_order_keys(t, "ord");
    assert_status(g_ops->commit(t), LD_OK);

    tkey last = TK("\xff\xff");
    t = t_begin(f->db, LD_TXN_READ);
    assert_status(g_ops->cursor_open(t, "ord", &c), LD_OK);
    expect_row(g_ops->cursor_last(c, ROW(r)), &r, &last);
    assert_int_equal(g_ops->cursor_next(c, ROW(r)), LD_NOT_FOUND);
    tkey first = TK("\x00");
    expect_row(g_ops->cursor_seek(c, NULL, 0, ROW(r)), &r, &first);
    expect_row(g_ops->cursor_last(c, ROW(r)), &r, &last);
    g_ops->cursor_close(c);
    assert_status(g_ops->cursor_open(t, "nothing", &c), LD_OK);
    assert_int_equal(g_ops->cursor_last(c, ROW(r)), LD_NOT_FOUND);
    g_ops->cursor_close(c);
    assert_status(g_ops->commit(t), LD_OK);
}

/* A write txn may write to other spaces, even create one, while a cursor walks a space. */
static void test_cursor_while_writing(void **state)
{
    fx *f = *state;
    ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
    t_put(t, "walk", K("k1"), K("1"));
    t_put(t, "walk", K("k2"), K("2"));
    t_put(t, "walk", K("k3"), K("3"));
    t_put(t, "side", K("s"), K("x"));
    assert_status(g_ops->commit(t), LD_OK);

    t = t_begin(f->db, LD_TXN_WRITE);
    ld_stcursor *c = NULL;
    trow r;
    assert_status(g_ops->cursor_open(t, "walk", &c), LD_OK);
    assert_status(g_ops->cursor_next(c, ROW(r)), LD_OK);
    assert_memory_equal(r.k, "k1", 2);
    t_put(t, "brandnew", K("n"), K("y")); /* a new space mid-walk */
    t_expect(t, "walk", K("k3"), K("3"));
    assert_status(g_ops->cursor_next(c, ROW(r)), LD_OK);
    assert_int_equal(r.kl, 2);
    assert_memory_equal(r.k, "k2", 2);
    assert_status(g_ops->del(t, "side", K("s")), LD_OK);
    assert_status(g_ops->cursor_next(c, ROW(r)), LD_OK);
    assert_memory_equal(r.k, "k3", 2);
    assert_memory_equal(r.v, "3", 1);
    assert_int_equal(g_ops->cursor_next(c, ROW(r)), LD_NOT_FOUND);
    g_ops->cursor_close(c);
    assert_status(g_ops->commit(t), LD_OK);

    t = t_begin(f->db, LD_TXN_READ);
    t_expect(t, "brandnew", K("n"), K("y"));
    t_missing(t, "side", K("s"));
    assert_status(g_ops->commit(t), LD_OK);
}

/* A space that was never written to reads as empty, in both kinds of transaction. */
static void check_unknown_space(ld_sttxn *t)
{
    const void *k, *v;
    size_t kl, vl;
    ld_stcursor *c = NULL;
    t_missing(t, "nosuch", K("k"));
    assert_status(g_ops->cursor_open(t, "nosuch", &c), LD_OK);
    assert_int_equal(g_ops->cursor_next(c, &k, &kl, &v, &vl), LD_NOT_FOUND);
    assert_int_equal(g_ops->cursor_seek(c, NULL, 0, &k, &kl, &v, &vl), LD_NOT_FOUND);
    assert_int_equal(g_ops->cursor_seek(c, K("a"), &k, &kl, &v, &vl), LD_NOT_FOUND);
    if (HAS_OP(cursor_last))
        assert_int_equal(g_ops->cursor_last(c, &k, &kl, &v, &vl), LD_NOT_FOUND);
    g_ops->cursor_close(c);
}

static void test_unknown_space(void **state)
{
    fx *f = *state;
    ld_sttxn *t = t_begin(f->db, LD_TXN_READ);
    check_unknown_space(t);
    assert_status(g_ops->commit(t), LD_OK);

    t = t_begin(f->db, LD_TXN_WRITE);
    check_unknown_space(t);
    assert_status(g_ops->del(t, "nosuch", K("k")), LD_NOT_FOUND);
    t_put(t, "known", K("k"), K("v")); /* the txn stays usable */
    assert_status(g_ops->commit(t), LD_OK);

    t = t_begin(f->db, LD_TXN_READ);
    check_unknown_space(t);
    t_expect(t, "known", K("k"), K("v"));
    assert_status(g_ops->commit(t), LD_OK);
}

/* ---------------------------------------------------------------------------------------------
 * Transactions
 * ------------------------------------------------------------------------------------------- */
static void test_abort_discards(void **state)
{
    fx *f = *state;
    t_put1(f->db, "main", K("keep"), K("old"));

    ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
    t_put(t, "main", K("keep"), K("new"));
    t_put(t, "main", K("added"), K("x"));
    t_put(t, "fresh", K("k"), K("x")); /* a space born in the aborted txn */
    assert_status(g_ops->del(t, "main", K("keep")), LD_OK);
    g_ops->abort(t);

    t = t_begin(f->db, LD_TXN_READ);
    t_expect(t, "main", K("keep"), K("old"));
    t_missing(t, "main", K("added"));
    t_missing(t, "fresh", K("k"));
    assert_status(g_ops->commit(t), LD_OK);

    /* the space of the aborted txn can still be created later, and aborting a read is fine */
    t = t_begin(f->db, LD_TXN_WRITE);
    t_missing(t, "fresh", K("k"));
    t_put(t, "fresh", K("k2"), K("y"));
    assert_status(g_ops->commit(t), LD_OK);
    t = t_begin(f->db, LD_TXN_READ);
    t_missing(t, "fresh", K("k"));
    t_expect(t, "fresh", K("k2"), K("y"));
    g_ops->abort(t);
}

static void test_atomic_spaces(void **state)
{
    fx *f = *state;
    static const char *const spaces[] = {"docs", "log", "meta"};
    ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
    for (int i = 0; i < 3; i++)
        t_put(t, spaces[i], K("k"), K("1"));
    assert_status(g_ops->commit(t), LD_OK);

    t = t_begin(f->db, LD_TXN_WRITE);
    for (int i = 0; i < 3; i++)
        t_put(t, spaces[i], K("k"), K("2"));
    t_put(t, "extra", K("k"), K("2"));
    g_ops->abort(t);

    t = t_begin(f->db, LD_TXN_READ);
    for (int i = 0; i < 3; i++)
        t_expect(t, spaces[i], K("k"), K("1"));
    t_missing(t, "extra", K("k"));
    assert_status(g_ops->commit(t), LD_OK);
}

typedef struct wjob {
    ld_stdb *db;
    ld_status status;
} wjob;

/* Commits x=new, y in a new space, z in the old one; runs on a thread of its own. */
static void *snapshot_writer(void *arg)
{
    wjob *j = arg;
    ld_sttxn *t = NULL;
    j->status = g_ops->begin(j->db, LD_TXN_WRITE, &t);
    if (j->status != LD_OK) return NULL;
    if ((j->status = g_ops->put(t, "main", K("x"), K("new"))) != LD_OK ||
        (j->status = g_ops->put(t, "later", K("y"), K("1"))) != LD_OK ||
        (j->status = g_ops->put(t, "main", K("z"), K("1"))) != LD_OK) {
        g_ops->abort(t);
        return NULL;
    }
    j->status = g_ops->commit(t);
    return NULL;
}

static void test_snapshot(void **state)
{
    fx *f = *state;
    t_put1(f->db, "main", K("x"), K("old"));

    /* r1 reads nothing before the commit, yet must see the state of its begin. */
    ld_sttxn *r1 = t_begin(f->db, LD_TXN_READ);
    wjob j = {.db = f->db, .status = -1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, snapshot_writer, &j), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_status(j.status, LD_OK);

    t_expect(r1, "main", K("x"), K("old"));
    t_missing(r1, "main", K("z"));
    t_missing(r1, "later", K("y"));
    ld_stcursor *c = NULL;
    const void *k, *v;
    size_t kl, vl;
    assert_status(g_ops->cursor_open(r1, "main", &c), LD_OK);
    assert_status(g_ops->cursor_next(c, &k, &kl, &v, &vl), LD_OK);
    assert_int_equal(kl, 1);
    assert_memory_equal(k, "x", 1);
    assert_int_equal(g_ops->cursor_next(c, &k, &kl, &v, &vl), LD_NOT_FOUND);
    g_ops->cursor_close(c);
    assert_status(g_ops->commit(r1), LD_OK);

    t_expect1(f->db, "main", K("x"), K("new"));
    t_expect1(f->db, "later", K("y"), K("1"));
}

/* A read txn that has already read keeps its snapshot across a later commit too. */
static void *snapshot_writer2(void *arg)
{
    wjob *j = arg;
    ld_sttxn *t = NULL;
    j->status = g_ops->begin(j->db, LD_TXN_WRITE, &t);
    if (j->status != LD_OK) return NULL;
    if ((j->status = g_ops->put(t, "main", K("x"), K("v3"))) != LD_OK ||
        (j->status = g_ops->del(t, "main", K("z"))) != LD_OK) {
        g_ops->abort(t);
        return NULL;
    }
    j->status = g_ops->commit(t);
    return NULL;
}

static void test_snapshot_after_read(void **state)
{
    fx *f = *state;
    ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
    t_put(t, "main", K("x"), K("v2"));
    t_put(t, "main", K("z"), K("1"));
    assert_status(g_ops->commit(t), LD_OK);

    ld_sttxn *r = t_begin(f->db, LD_TXN_READ);
    t_expect(r, "main", K("x"), K("v2"));
    wjob j = {.db = f->db, .status = -1};
    t_on_thread(snapshot_writer2, &j);
    assert_status(j.status, LD_OK);
    t_expect(r, "main", K("x"), K("v2"));
    t_expect(r, "main", K("z"), K("1"));
    assert_status(g_ops->commit(r), LD_OK);
    t_expect1(f->db, "main", K("x"), K("v3"));
    t_missing1(f->db, "main", K("z"));
}

/* ---------------------------------------------------------------------------------------------
 * Concurrent readers and one writer
 * ------------------------------------------------------------------------------------------- */
#define N_READERS    4
#define N_WRITER_TXN 300

typedef struct reader {
    ld_stdb *db;
    atomic_int *stop;
    unsigned long txns;
    char err[256]; /* first failure, "" when none */
} reader;

#define READER_FAIL(r, ...)                                                                        \
    do {                                                                                           \
        snprintf((r)->err, sizeof(r)->err, __VA_ARGS__);                                           \
        return NULL;                                                                               \
    } while (0)

/* Reads "left/k" and "right/k" in one read txn: written together, they must always agree, and
 * never go back in time from one txn to the next. */
static void *reader_main(void *arg)
{
    reader *r = arg;
    uint64_t prev = 0;
    while (!atomic_load(r->stop) || r->txns == 0) {
        ld_sttxn *t = NULL;
        const void *v;
        size_t vl;
        ld_status s = g_ops->begin(r->db, LD_TXN_READ, &t);
        if (s != LD_OK) READER_FAIL(r, "begin: %d", s);
        if ((s = g_ops->get(t, "left", K("k"), &v, &vl)) != LD_OK || vl != 8) {
            g_ops->abort(t);
            READER_FAIL(r, "get left: %d len %zu", s, vl);
        }
        uint64_t a = t_get_u64(v); /* copy: the next call may invalidate v */
        sched_yield();
        if ((s = g_ops->get(t, "right", K("k"), &v, &vl)) != LD_OK || vl != 8) {
            g_ops->abort(t);
            READER_FAIL(r, "get right: %d len %zu", s, vl);
        }
        uint64_t b = t_get_u64(v);
        ld_stcursor *c = NULL;
        const void *k;
        size_t kl;
        if ((s = g_ops->cursor_open(t, "right", &c)) != LD_OK) {
            g_ops->abort(t);
            READER_FAIL(r, "cursor_open: %d", s);
        }
        s = g_ops->cursor_next(c, &k, &kl, &v, &vl);
        uint64_t cb = (s == LD_OK && vl == 8) ? t_get_u64(v) : UINT64_MAX;
        g_ops->cursor_close(c);
        g_ops->commit(t);
        if (a != b || b != cb)
            READER_FAIL(r, "torn read: left=%llu right=%llu cursor=%llu", (unsigned long long)a,
                        (unsigned long long)b, (unsigned long long)cb);
        if (a < prev)
            READER_FAIL(r, "went back in time: %llu after %llu", (unsigned long long)a,
                        (unsigned long long)prev);
        prev = a;
        r->txns++;
    }
    return NULL;
}

static void test_concurrent_readers(void **state)
{
    fx *f = *state;
    unsigned char v[8];
    t_u64(v, 0);
    ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
    t_put(t, "left", K("k"), v, 8);
    t_put(t, "right", K("k"), v, 8);
    assert_status(g_ops->commit(t), LD_OK);

    atomic_int stop = 0;
    reader rs[N_READERS];
    pthread_t th[N_READERS];
    for (int i = 0; i < N_READERS; i++) {
        rs[i] = (reader){.db = f->db, .stop = &stop};
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rs[i]), 0);
    }
    for (uint64_t n = 1; n <= N_WRITER_TXN; n++) {
        t_u64(v, n);
        t = t_begin(f->db, LD_TXN_WRITE);
        t_put(t, "left", K("k"), v, 8);
        t_put(t, "right", K("k"), v, 8);
        assert_status(g_ops->commit(t), LD_OK);
    }
    atomic_store(&stop, 1);
    unsigned long total = 0;
    for (int i = 0; i < N_READERS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        total += rs[i].txns;
    }
    for (int i = 0; i < N_READERS; i++)
        if (rs[i].err[0]) fail_msg("reader %d: %s", i, rs[i].err);
    print_message("%lu read txns during %d write txns\n", total, N_WRITER_TXN);
}

/* ---------------------------------------------------------------------------------------------
 * Sizes and volume
 * ------------------------------------------------------------------------------------------- */
static void test_value_sizes(void **state)
{
    fx *f = *state;
    static const size_t sizes[] = {0, 1, 1u << 20, 16u << 20};
    const size_t n = sizeof sizes / sizeof sizes[0];
    unsigned char *buf = malloc(sizes[n - 1]);
    assert_non_null(buf);
    for (size_t i = 0; i < sizes[n - 1]; i++)
        buf[i] = (unsigned char)(i * 131 + i / 4099);

    for (size_t i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "v%zu", sizes[i]);
        t_put1(f->db, "vals", key, strlen(key), buf, sizes[i]);
    }
    ld_sttxn *t = t_begin(f->db, LD_TXN_READ);
    for (size_t i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "v%zu", sizes[i]);
        t_expect(t, "vals", key, strlen(key), buf, sizes[i]);
    }
    assert_status(g_ops->commit(t), LD_OK);

    /* Key sizes: 1 and 511 bytes are fine; 0 and 512 are not. */
    unsigned char kbuf[LD_STORAGE_MAX_KEY + 1];
    memset(kbuf, 0xab, sizeof kbuf);
    t = t_begin(f->db, LD_TXN_WRITE);
    t_put(t, "vals", kbuf, 1, K("one"));
    t_put(t, "vals", kbuf, LD_STORAGE_MAX_KEY, K("max"));
    assert_status(g_ops->commit(t), LD_OK);
    t = t_begin(f->db, LD_TXN_READ);
    t_expect(t, "vals", kbuf, 1, K("one"));
    t_expect(t, "vals", kbuf, LD_STORAGE_MAX_KEY, K("max"));
    assert_status(g_ops->commit(t), LD_OK);

    /* A refused put leaves the txn good for abort only, so each gets its own. */
    t = t_begin(f->db, LD_TXN_WRITE);
    assert_status(g_ops->put(t, "vals", kbuf, 0, K("x")), LD_INVALID);
    g_ops->abort(t);
    t = t_begin(f->db, LD_TXN_WRITE);
    assert_status(g_ops->put(t, "vals", kbuf, LD_STORAGE_MAX_KEY + 1, K("x")), LD_INVALID);
    g_ops->abort(t);
    unsigned char *big = malloc((size_t)LD_STORAGE_MAX_VALUE + 1);
    assert_non_null(big);
    t = t_begin(f->db, LD_TXN_WRITE);
    assert_status(g_ops->put(t, "vals", K("big"), big, (size_t)LD_STORAGE_MAX_VALUE + 1),
                  LD_INVALID);
    g_ops->abort(t);
    t_missing1(f->db, "vals", K("big"));

    /* The largest value allowed (64 MiB each way). */
    double t0 = t_now();
    for (size_t i = 0; i < LD_STORAGE_MAX_VALUE; i++)
        big[i] = (unsigned char)(i ^ (i >> 13));
    t_put1(f->db, "vals", K("max"), big, LD_STORAGE_MAX_VALUE);
    t_expect1(f->db, "vals", K("max"), big, LD_STORAGE_MAX_VALUE);
    print_message("largest value: %.2f s\n", t_now() - t0);
    free(big);
    free(buf);
}

#define MANY_BATCH 10000u

static void key_of(unsigned char out[5], uint32_t i)
{
    out[0] = 'n';
    out[1] = (unsigned char)(i >> 24);
    out[2] = (unsigned char)(i >> 16);
    out[3] = (unsigned char)(i >> 8);
    out[4] = (unsigned char)i;
}

/* Inserts n keys in a scattered order in batches, then scans them back in byte order. */
static void many_keys(fx *f, uint32_t n)
{
    const uint32_t stride = 7919; /* prime, coprime with every n used here */
    unsigned char k[5], v[8];
    double t0 = t_now();
    for (uint32_t done = 0; done < n;) {
        ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
        for (uint32_t j = 0; j < MANY_BATCH && done < n; j++, done++) {
            uint32_t i = (uint32_t)(((uint64_t)done * stride) % n);
            key_of(k, i);
            t_u64(v, (uint64_t)i * 3);
            t_put(t, "many", k, sizeof k, v, sizeof v);
        }
        assert_status(g_ops->commit(t), LD_OK);
    }
    double t1 = t_now();

    ld_sttxn *t = t_begin(f->db, LD_TXN_READ);
    ld_stcursor *c = NULL;
    assert_status(g_ops->cursor_open(t, "many", &c), LD_OK);
    const void *kp, *vp;
    size_t kl, vl;
    uint32_t seen = 0;
    ld_status s;
    while ((s = g_ops->cursor_next(c, &kp, &kl, &vp, &vl)) == LD_OK) {
        key_of(k, seen);
        if (kl != sizeof k || memcmp(kp, k, sizeof k) != 0 || vl != 8 ||
            t_get_u64(vp) != (uint64_t)seen * 3)
            fail_msg("entry %u out of order or wrong", seen);
        seen++;
    }
    assert_int_equal(s, LD_NOT_FOUND);
    assert_int_equal(seen, n);
    /* seek into the middle */
    key_of(k, n / 2);
    assert_status(g_ops->cursor_seek(c, k, sizeof k, &kp, &kl, &vp, &vl), LD_OK);
    assert_memory_equal(kp, k, sizeof k);
    g_ops->cursor_close(c);
    assert_status(g_ops->commit(t), LD_OK);
    double t2 = t_now();
    print_message("%u keys: %.0f puts/s in %u-key txns, %.0f keys/s scanned\n", n, n / (t1 - t0),
                  MANY_BATCH, n / (t2 - t1));
}

static void test_100k_keys(void **state)
{
    many_keys(*state, 100000);
}

/* Many keys: 1 000 000 with LD_CONFORMANCE_LARGE=1; in `make test` 300 000 (a few seconds),
 * already several times SQLite's default 2 MiB page cache, where its insert rate drops. */
static void test_many_keys(void **state)
{
    const char *e = getenv("LD_CONFORMANCE_LARGE");
    many_keys(*state, e && strcmp(e, "1") == 0 ? 1000000 : 300000);
}

/* ---------------------------------------------------------------------------------------------
 * Databases: list, drop, reopen, size
 * ------------------------------------------------------------------------------------------- */
typedef struct seen_dbs {
    char names[8][64];
    int n;
    int stop_after; /* 0: never */
} seen_dbs;

static int list_cb(void *ctx, const char *name)
{
    seen_dbs *s = ctx;
    if (s->n < 8) snprintf(s->names[s->n], sizeof s->names[0], "%s", name);
    s->n++;
    return s->stop_after && s->n >= s->stop_after;
}

/* Asserts that list(dir) reports exactly the names given (NULL-terminated), in any order. */
static void expect_list(ld_storage *st, const char *dir, const char *const *want)
{
    seen_dbs s = {0};
    assert_status(g_ops->list(st, dir, list_cb, &s), LD_OK);
    int nwant = 0;
    while (want[nwant])
        nwant++;
    if (s.n != nwant) fail_msg("list found %d databases, expected %d", s.n, nwant);
    for (int i = 0; i < nwant; i++) {
        int hits = 0;
        for (int j = 0; j < s.n; j++)
            hits += strcmp(s.names[j], want[i]) == 0;
        if (hits != 1) fail_msg("list reported %s %d times", want[i], hits);
    }
}

static void test_drop_list_reopen(void **state)
{
    fx *f = *state;
    char dir[PATH_MAX + 16], path[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/listdir", g_dir);
    static const char *const none[] = {NULL};
    expect_list(f->st, dir, none); /* missing dir: empty, not an error */
    assert_int_equal(mkdir(dir, 0700), 0);
    expect_list(f->st, dir, none);

    /* Files no backend would make a database of. */
    snprintf(path, sizeof path, "%s/notes.txt", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    snprintf(path, sizeof path, "%s/UPPER.db", dir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);

    static const char *const names[] = {"alpha", "beta-1", "c_3", NULL};
    for (int i = 0; names[i]; i++) {
        ld_stdb *db = NULL;
        assert_status(g_ops->open(f->st, dir, names[i], &db), LD_OK);
        t_put1(db, "main", K("who"), names[i], strlen(names[i]));
        g_ops->close(db);
    }
    expect_list(f->st, dir, names);
    seen_dbs s = {.stop_after = 1};
    assert_status(g_ops->list(f->st, dir, list_cb, &s), LD_OK);
    assert_int_equal(s.n, 1);

    /* data persists across close/open */
    ld_stdb *db = NULL;
    assert_status(g_ops->open(f->st, dir, "alpha", &db), LD_OK);
    t_expect1(db, "main", K("who"), K("alpha"));
    g_ops->close(db);

    assert_status(g_ops->drop(f->st, dir, "beta-1"), LD_OK);
    assert_status(g_ops->drop(f->st, dir, "beta-1"), LD_NOT_FOUND);
    assert_status(g_ops->drop(f->st, dir, "never"), LD_NOT_FOUND);
    static const char *const left[] = {"alpha", "c_3", NULL};
    expect_list(f->st, dir, left);

    /* a dropped name opens afresh, empty */
    assert_status(g_ops->open(f->st, dir, "beta-1", &db), LD_OK);
    t_missing1(db, "main", K("who"));
    g_ops->close(db);
    expect_list(f->st, dir, names);

    for (int i = 0; names[i]; i++)
        assert_status(g_ops->drop(f->st, dir, names[i]), LD_OK);
    expect_list(f->st, dir, none);
}

static void test_size_bytes(void **state)
{
    fx *f = *state;
    if (!HAS_OP(size_bytes)) skip();
    unsigned char v[100];
    memset(v, 0x5a, sizeof v);
    ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
    for (uint32_t i = 0; i < 1000; i++) {
        unsigned char k[5];
        key_of(k, i);
        t_put(t, "main", k, sizeof k, v, sizeof v);
    }
    assert_status(g_ops->commit(t), LD_OK);
    uint64_t size = 0;
    assert_status(g_ops->size_bytes(f->db, &size), LD_OK);
    assert_true(size > 0);
}

/* Sizes f's database as it stands after a close: closes and reopens it. */
static uint64_t size_after_close(fx *f)
{
    g_ops->close(f->db);
    f->db = NULL;
    assert_status(g_ops->open(f->st, g_dir, f->name, &f->db), LD_OK);
    uint64_t size = 0;
    assert_status(g_ops->size_bytes(f->db, &size), LD_OK);
    return size;
}

/* Churn must not hold disk for ever (docs/storage.md, "Free pages at a clean stop"): after most
 * of a large space is deleted, a clean close hands the free pages back, and what is left reads
 * back whole. 8 MB of values; 90% deleted. The ABI does not require it (a plugin may keep its
 * free space for reuse), so it runs only when asked: LD_CONFORMANCE_SHRINK=1, which litedist's
 * own plugins' tests set. */
static void test_close_gives_back_free_pages(void **state)
{
    fx *f = *state;
    const char *want = getenv("LD_CONFORMANCE_SHRINK");
    if (!HAS_OP(size_bytes) || !want || strcmp(want, "1") != 0) skip();
    enum { N = 8000, VLEN = 1000, BATCH = 1000 };
    unsigned char v[VLEN];
    for (uint32_t i = 0; i < N; i += BATCH) {
        ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
        for (uint32_t j = i; j < i + BATCH; j++) {
            unsigned char k[5];
            key_of(k, j);
            memset(v, (int)(j & 0xff), sizeof v);
            t_put(t, "main", k, sizeof k, v, sizeof v);
        }
        assert_status(g_ops->commit(t), LD_OK);
    }
    uint64_t full = size_after_close(f);
    assert_true(full >= (uint64_t)N * VLEN);
    ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
    for (uint32_t j = 0; j < N; j++) {
        if (j % 10 == 0) continue;
        unsigned char k[5];
        key_of(k, j);
        assert_status(g_ops->del(t, "main", k, sizeof k), LD_OK);
    }
    assert_status(g_ops->commit(t), LD_OK);
    uint64_t after = size_after_close(f);
    if (after * 2 > full)
        fail_msg("%llu bytes before the deletes, %llu after them and a close: not given back",
                 (unsigned long long)full, (unsigned long long)after);
    t = t_begin(f->db, LD_TXN_READ);
    for (uint32_t j = 0; j < N; j++) {
        unsigned char k[5];
        key_of(k, j);
        if (j % 10 != 0) {
            t_missing(t, "main", k, sizeof k);
            continue;
        }
        memset(v, (int)(j & 0xff), sizeof v);
        t_expect(t, "main", k, sizeof k, v, sizeof v);
    }
    assert_status(g_ops->commit(t), LD_OK);
}

/* location names something that exists inside the directory the database was opened in, and a
 * buffer too small is refused rather than truncated. */
static void test_location(void **state)
{
    fx *f = *state;
    if (!HAS_OP(location)) skip();
    char path[PATH_MAX];
    assert_status(g_ops->location(f->db, path, sizeof path), LD_OK);
    size_t dl = strlen(g_dir);
    assert_true(strncmp(path, g_dir, dl) == 0 && path[dl] == '/');
    assert_non_null(strstr(path + dl, f->name));
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    char tiny[4];
    assert_status(g_ops->location(f->db, tiny, sizeof tiny), LD_INVALID);
}

/* copy (ABI 1.3) writes a database that opens and reads back the same, under its own name only
 * (no leftover of the hidden name it writes first), and refuses to overwrite or to copy nothing. */
static void test_copy(void **state)
{
    fx *f = *state;
    if (!HAS_OP(copy)) skip();
    char src[PATH_MAX + 16], dst[PATH_MAX + 16];
    snprintf(src, sizeof src, "%s/copysrc", g_dir);
    snprintf(dst, sizeof dst, "%s/copydst", g_dir);
    assert_int_equal(mkdir(src, 0700), 0);
    assert_int_equal(mkdir(dst, 0700), 0);
    ld_stdb *db = NULL;
    assert_status(g_ops->open(f->st, src, "orig", &db), LD_OK);
    ld_sttxn *t = t_begin(db, LD_TXN_WRITE);
    t_put(t, "main", K("k1"), K("v1"));
    t_put(t, "other", K("k2"), K("v2"));
    assert_status(g_ops->commit(t), LD_OK);
    g_ops->close(db); /* copy reads a database not open in this instance (storage.h) */

    assert_status(g_ops->copy(f->st, src, "orig", dst), LD_OK);
    assert_status(g_ops->copy(f->st, src, "orig", dst), LD_EXISTS);
    assert_status(g_ops->copy(f->st, src, "absent", dst), LD_NOT_FOUND);
    static const char *const only[] = {"orig", NULL};
    expect_list(f->st, dst, only);
    assert_status(g_ops->open(f->st, dst, "orig", &db), LD_OK);
    t_expect1(db, "main", K("k1"), K("v1"));
    t_expect1(db, "other", K("k2"), K("v2"));
    g_ops->close(db);
    assert_status(g_ops->drop(f->st, dst, "orig"), LD_OK);
    assert_status(g_ops->drop(f->st, src, "orig"), LD_OK);
}

/* ---------------------------------------------------------------------------------------------
 * Refusals and errors
 * ------------------------------------------------------------------------------------------- */
static void test_read_txn_refuses_writes(void **state)
{
    fx *f = *state;
    t_put1(f->db, "main", K("k"), K("v"));
    ld_sttxn *t = t_begin(f->db, LD_TXN_READ);
    assert_status(g_ops->put(t, "main", K("k"), K("new")), LD_INVALID);
    assert_status(g_ops->put(t, "main", K("k2"), K("new")), LD_INVALID);
    assert_status(g_ops->del(t, "main", K("k")), LD_INVALID);
    g_ops->abort(t);
    t_expect1(f->db, "main", K("k"), K("v"));
    t_missing1(f->db, "main", K("k2"));
}

static void test_bad_space_names(void **state)
{
    fx *f = *state;
    static const char *const bad[] = {"",
                                      "A",
                                      "1a",
                                      "_a",
                                      "a-b",
                                      "a b",
                                      "a.b",
                                      "aB",
                                      "ks;drop",
                                      "a\"b",
                                      "abcdefghijklmnopqrstuvwxyz0123456"}; /* 33 chars */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
        const void *v;
        size_t vl;
        if (g_ops->put(t, bad[i], K("k"), K("v")) != LD_INVALID)
            fail_msg("put into space \"%s\" was not refused with LD_INVALID", bad[i]);
        g_ops->abort(t);
        t = t_begin(f->db, LD_TXN_READ);
        if (g_ops->get(t, bad[i], K("k"), &v, &vl) == LD_OK)
            fail_msg("get from space \"%s\" succeeded", bad[i]);
        g_ops->abort(t);
    }
    static const char *const good[] = {"a", "z9_", "abcdefghijklmnopqrstuvwxyz012345"};
    ld_sttxn *t = t_begin(f->db, LD_TXN_WRITE);
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        t_put(t, good[i], K("k"), K("v"));
    assert_status(g_ops->commit(t), LD_OK);
    t = t_begin(f->db, LD_TXN_READ);
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        t_expect(t, good[i], K("k"), K("v"));
    assert_status(g_ops->commit(t), LD_OK);
}

static void *last_error_thread(void *arg)
{
    const char **out = arg;
    *out = g_ops->last_error(g_st);
    return NULL;
}

static void test_last_error(void **state)
{
    fx *f = *state;
    assert_non_null(g_ops->last_error(f->st));
    ld_sttxn *t = t_begin(f->db, LD_TXN_READ);
    assert_int_equal(g_ops->put(t, "main", K("k"), K("v")), LD_INVALID);
    const char *e = g_ops->last_error(f->st);
    assert_non_null(e);
    assert_true(strlen(e) > 0);
    g_ops->abort(t);
    const char *other = NULL;
    t_on_thread(last_error_thread, (void *)&other);
    assert_non_null(other);
}

/* ---------------------------------------------------------------------------------------------
 * Crash durability: a child commits numbered txns with Sync full and acknowledges each one
 * after commit returns; it is killed mid-stream and every acknowledged txn must be there, whole.
 * ------------------------------------------------------------------------------------------- */
#define CRASH_MAX_ACKS 300
#define CRASH_MAX_SECS 5.0

static void crash_key(char *out, size_t n, uint32_t txn, char which)
{
    snprintf(out, n, "t%u_%c", txn, which);
}

/* The child: never returns. With `mixed`, every other commit is LD_TXN_LAZY, which must
 * survive a process crash like any other (only power loss may take it). */
static void crash_child(int fd, const char *dir, bool mixed)
{
    ld_storage *st = NULL;
    ld_stdb *db = NULL;
    if (g_ops->create(t_host("{\"Sync\":\"full\"}"), &st) != LD_OK ||
        g_ops->open(st, dir, "crash", &db) != LD_OK)
        _exit(3);
    for (uint32_t n = 1;; n++) {
        ld_sttxn *t = NULL;
        char ka[32], kb[32];
        crash_key(ka, sizeof ka, n, 'a');
        crash_key(kb, sizeof kb, n, 'b');
        unsigned char v[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                              (unsigned char)(n >> 8), (unsigned char)n};
        uint32_t flags = mixed && n % 2 ? LD_TXN_WRITE | LD_TXN_LAZY : LD_TXN_WRITE;
        if (g_ops->begin(db, flags, &t) != LD_OK) _exit(4);
        if (g_ops->put(t, "d", ka, strlen(ka), v, 4) != LD_OK ||
            g_ops->put(t, "d", kb, strlen(kb), v, 4) != LD_OK ||
            g_ops->put(t, "d", K("last"), v, 4) != LD_OK)
            _exit(5);
        if (g_ops->commit(t) != LD_OK) _exit(6);
        if (write(fd, &n, sizeof n) != (ssize_t)sizeof n) _exit(7);
    }
}

static uint32_t be32(const void *p)
{
    const unsigned char *b = p;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void run_crash(fx *f, bool mixed)
{
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/crash%s", g_dir, mixed ? "-lazy" : "");
    assert_int_equal(mkdir(dir, 0700), 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        crash_child(p[1], dir, mixed);
    }
    close(p[1]);

    uint32_t acked = 0, nacks = 0;
    double t0 = t_now();
    bool killed = false;
    for (;;) {
        if (!killed && (nacks >= CRASH_MAX_ACKS || t_now() - t0 > CRASH_MAX_SECS)) {
            kill(pid, SIGKILL);
            killed = true;
        }
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        int pr = poll(&pfd, 1, 100);
        if (pr < 0 && errno == EINTR) continue;
        assert_true(pr >= 0);
        if (pr == 0) continue;
        uint32_t n;
        ssize_t r = read(p[0], &n, sizeof n); /* pipe writes of 4 bytes are atomic */
        if (r == 0) break; /* the child is gone; every ack it wrote has been read */
        if (r < 0 && errno == EINTR) continue;
        assert_int_equal(r, sizeof n);
        assert_int_equal(n, acked + 1);
        acked = n;
        nacks++;
    }
    close(p[0]);
    int wst = 0;
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    if (!(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL))
        fail_msg("crash child ended on its own (status 0x%x) after %u acks", wst, acked);
    assert_true(acked > 0);

    ld_stdb *db = NULL;
    assert_status(g_ops->open(f->st, dir, "crash", &db), LD_OK);
    ld_sttxn *t = t_begin(db, LD_TXN_READ);
    const void *v;
    size_t vl;
    assert_status(g_ops->get(t, "d", K("last"), &v, &vl), LD_OK);
    assert_int_equal(vl, 4);
    uint32_t last = be32(v);
    if (last < acked) fail_msg("txn %u was acknowledged but the database ends at %u", acked, last);
    for (uint32_t n = 1; n <= last; n++) {
        char ka[32], kb[32];
        crash_key(ka, sizeof ka, n, 'a');
        crash_key(kb, sizeof kb, n, 'b');
        unsigned char want[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                                 (unsigned char)(n >> 8), (unsigned char)n};
        t_expect(t, "d", ka, strlen(ka), want, 4);
        t_expect(t, "d", kb, strlen(kb), want, 4);
    }
    /* Nothing of a later, partial txn: exactly two keys per txn plus "last". */
    ld_stcursor *c = NULL;
    const void *k;
    size_t kl;
    uint32_t count = 0;
    assert_status(g_ops->cursor_open(t, "d", &c), LD_OK);
    while (g_ops->cursor_next(c, &k, &kl, &v, &vl) == LD_OK)
        count++;
    g_ops->cursor_close(c);
    assert_int_equal(count, 2 * last + 1);
    assert_status(g_ops->commit(t), LD_OK);
    g_ops->close(db);
    assert_status(g_ops->drop(f->st, dir, "crash"), LD_OK);
    print_message("%u txns acknowledged in %.2f s, %u found after SIGKILL%s\n", acked, t_now() - t0,
                  last, mixed ? " (every other one lazy)" : "");
}

static void test_crash_durability(void **state)
{
    run_crash(*state, false);
}

/* LD_TXN_LAZY (ABI 1.1): accepted only with LD_TXN_WRITE, visible at commit like any write, and
 * whole after a SIGKILL in the middle of lazy and durable commits. */
static void test_lazy_commits(void **state)
{
    fx *f = *state;
    if (g_desc->abi_minor < 1) skip();
    ld_sttxn *t = NULL;
    assert_status(g_ops->begin(f->db, LD_TXN_LAZY, &t), LD_INVALID);
    assert_status(g_ops->begin(f->db, LD_TXN_READ | 4u, &t), LD_INVALID);
    t = t_begin(f->db, LD_TXN_WRITE | LD_TXN_LAZY);
    t_put(t, "main", K("lazy"), K("1"));
    assert_status(g_ops->commit(t), LD_OK);
    t = t_begin(f->db, LD_TXN_READ);
    t_expect(t, "main", K("lazy"), K("1"));
    assert_status(g_ops->commit(t), LD_OK);
    /* A durable write after a lazy one, and an aborted lazy one, leave no trace of the mode. */
    t = t_begin(f->db, LD_TXN_WRITE | LD_TXN_LAZY);
    t_put(t, "main", K("gone"), K("x"));
    g_ops->abort(t);
    t_put1(f->db, "main", K("durable"), K("2"));
    t = t_begin(f->db, LD_TXN_READ);
    t_expect(t, "main", K("durable"), K("2"));
    const void *v;
    size_t vl;
    assert_status(g_ops->get(t, "main", K("gone"), &v, &vl), LD_NOT_FOUND);
    assert_status(g_ops->commit(t), LD_OK);
    run_crash(f, true);
}

/* ---------------------------------------------------------------------------------------------
 * Driver
 * ------------------------------------------------------------------------------------------- */
#define FX_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

#define ABI_TEXT_(x) #x
#define ABI_TEXT(x)  ABI_TEXT_(x)

static void usage(FILE *out)
{
    fputs(
        "usage: litedist-conformance [--help] PLUGIN.so\n"
        "\n"
        "Checks a litedist storage plugin against include/litedist/storage.h (plugin ABI "
        "1.0-" ABI_TEXT(LD_ABI_MAJOR) "." ABI_TEXT(
            LD_ABI_MINOR) "): the descriptor, get/put/del, cursor order, atomicity,\n"
                          "snapshot isolation, size limits, drop/list, 100 000 keys and crash "
                          "durability. "
                          "PLUGIN.so is a path (give ./x.so for a file in the current directory).\n"
                          "\n"
                          "Environment:\n"
                          "  LD_TEST_STORAGE_CONFIG  the plugin's Storage settings as JSON object "
                          "text\n"
                          "                          (default {\"Sync\":\"normal\"})\n"
                          "  LD_CONFORMANCE_LARGE=1  also write a 64 MiB value and 1 000 000 keys "
                          "(minutes)\n"
                          "  LD_CONFORMANCE_SHRINK=1 also check that a clean close gives the "
                          "free pages\n"
                          "                          of a mostly deleted space back (not an ABI "
                          "rule)\n"
                          "  LD_TEST_VERBOSE=1       show the plugin's debug log lines\n"
                          "  TMPDIR                  where the scratch directory is made (removed "
                          "at the end)\n"
                          "  CMOCKA_MESSAGE_OUTPUT   cmocka's report format: stdout (default), "
                          "subunit, tap, xml\n"
                          "  CMOCKA_XML_FILE         with xml, the file to write (%g is replaced "
                          "by the group)\n"
                          "\n"
                          "Exit status: 0 when every test passed (skipped ones are for optional "
                          "functions),\n"
                          "1 when the plugin cannot be loaded, 2 on a usage error, otherwise the "
                          "number of\n"
                          "failed tests.\n",
        out);
}

int main(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        if (argc == 2) fprintf(stderr, "litedist-conformance: unknown option '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    const char *config = getenv("LD_TEST_STORAGE_CONFIG");
    if (!config) config = "{\"Sync\":\"normal\"}";
    if (!ld_tp_scratch_dir(g_dir, sizeof g_dir, "ld-conformance")) return 1;
    g_host = (ld_host){
        .abi_major = LD_ABI_MAJOR,
        .abi_minor = LD_ABI_MINOR,
        .struct_size = (uint32_t)sizeof(ld_host),
        .log = t_log,
        .config_json = config,
        .data_dir = g_dir,
        .plugin_path = argv[1],
        .plugin_name = "conformance",
        .settings_json = config,
    };

    int rc = 1;
    /* Never dlclose'd: plugins are not unloaded while the host runs. */
    void *dl = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    ld_plugin_entry_fn entry = NULL;
    if (!dl) {
        fprintf(stderr, "dlopen %s: %s\n", argv[1], dlerror());
        goto out;
    }
    *(void **)&entry = dlsym(dl, LD_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
        fprintf(stderr, "%s exports no %s\n", argv[1], LD_PLUGIN_ENTRY_SYMBOL);
        goto out;
    }
    g_desc = entry(&g_host);
    if (!g_desc || g_desc->abi_major != LD_ABI_MAJOR) {
        fprintf(stderr, "%s refused to load or speaks another ABI major\n", argv[1]);
        goto out;
    }
    g_ops = g_desc->ops;
    if (!g_ops || g_ops->abi_major != LD_ABI_MAJOR || g_desc->kind != LD_PLUGIN_KIND_STORAGE) {
        fprintf(stderr, "%s is not a storage plugin of ABI %d\n", argv[1], LD_ABI_MAJOR);
        goto out;
    }

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_abi),
        cmocka_unit_test(test_config),
        FX_TEST(test_get_put_del),
        FX_TEST(test_overwrite),
        FX_TEST(test_cursor_order),
        FX_TEST(test_cursor_last),
        FX_TEST(test_cursor_while_writing),
        FX_TEST(test_unknown_space),
        FX_TEST(test_abort_discards),
        FX_TEST(test_atomic_spaces),
        FX_TEST(test_snapshot),
        FX_TEST(test_snapshot_after_read),
        FX_TEST(test_concurrent_readers),
        FX_TEST(test_value_sizes),
        FX_TEST(test_100k_keys),
        FX_TEST(test_many_keys),
        FX_TEST(test_drop_list_reopen),
        FX_TEST(test_size_bytes),
        FX_TEST(test_close_gives_back_free_pages),
        FX_TEST(test_location),
        FX_TEST(test_copy),
        FX_TEST(test_read_txn_refuses_writes),
        FX_TEST(test_bad_space_names),
        FX_TEST(test_last_error),
        FX_TEST(test_crash_durability),
        FX_TEST(test_lazy_commits),
    };
    rc = cmocka_run_group_tests_name("storage conformance", tests, NULL, NULL);
out:
    ld_tp_remove_dir(g_dir);
    return rc;
}
