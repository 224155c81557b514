/* Storage benchmark: every storage plugin through the ld_storage_v1 ABI beside its raw engine
 * (SQLite C API, LMDB mdb_* API) doing the same work in the same run; the ratio is the overhead. */
#include <litedist/storage.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <lmdb.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef LD_BENCH_BUILD_TYPE
#define LD_BENCH_BUILD_TYPE "unknown"
#endif
#if defined(__clang__)
#define COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define COMPILER "gcc " __VERSION__
#else
#define COMPILER "unknown"
#endif

/* ---------------------------------------------------------------------------------------------
 * Shapes of the work. Both arms of a backend get exactly these bytes, in this order.
 * ------------------------------------------------------------------------------------------- */
#define KLEN     16u  /* key: big-endian index (so index order is key order), then 8 mixed bytes */
#define VLEN     200u /* value of the key/value workloads */
#define DOC_KLEN 18u  /* "items" \0 "doc-" and 8 digits: the core's collection \0 id key */
#define DOC_VLEN 250u /* a ~200-byte JSON document with the record header */
#define LOG_VLEN 320u /* its op-log entry: ids, stamps, names and the JSON again */
#define POOL_LEN 4096u

enum { SYNC_OFF, SYNC_NORMAL, SYNC_FULL };
static const char *const sync_names[] = {"off", "normal", "full"};

enum { W_PUT_SEQ, W_PUT_RND, W_GET, W_GET1, W_SCAN, W_WS_FULL, W_WS_NORMAL, W_COUNT };

static const struct {
    const char *id, *label, *unit;
} workloads[W_COUNT] = {
    [W_PUT_SEQ] = {"put_seq", "put, keys in order", "puts/s"},
    [W_PUT_RND] = {"put_rnd", "put, keys in random order", "puts/s"},
    [W_GET] = {"get", "get, random keys, one read txn per batch", "gets/s"},
    [W_GET1] = {"get1", "get, one read txn per get", "gets/s"},
    [W_SCAN] = {"scan", "cursor scan of the whole space", "keys/s"},
    [W_WS_FULL] = {"ws_full", "server write shape, Sync full", "ops/s"},
    [W_WS_NORMAL] = {"ws_normal", "server write shape, Sync normal", "ops/s"},
};

enum { ENGINE_NONE, ENGINE_SQLITE, ENGINE_LMDB };

typedef struct opts {
    size_t n;      /* keys */
    size_t txn;    /* puts (and gets) per transaction */
    size_t ws_ops; /* server write shape ops, per Sync level */
    unsigned repeats;
    int kv_sync;       /* Sync of the key/value workloads */
    size_t map_mib;    /* LMDB map, the same for plugin and raw */
    unsigned phase_ms; /* how long a read phase should last on the faster arm */
    const char *dir;   /* parent of the temporary data directory */
    const char *json;
    const char *git_commit;
    bool git_dirty;
    bool verbose;
} opts;

typedef struct dataset {
    size_t n, txn, ws_ops;
    unsigned char *keys;     /* n * KLEN */
    uint32_t *rnd_order;     /* a permutation of 0..n-1: the random puts */
    uint32_t *get_idx;       /* n random indexes (with repeats): the gets, cycled through */
    unsigned char *pool;     /* POOL_LEN + LOG_VLEN bytes values are cut from */
    unsigned char *doc_keys; /* ws_ops * DOC_KLEN: the document each write-shape op upserts */
} dataset;

#define KEY(d, i) ((d)->keys + (size_t)(i)*KLEN)
#define VAL(d, i) ((d)->pool + ((size_t)(i)*61u) % POOL_LEN)

/* How much work the phases that can be repeated do: sized per backend by the warm-up
 * (calibrate), the same for both of its arms. */
typedef struct counts {
    size_t seq_rounds; /* the ordered puts fill this many new databases, one after the other */
    size_t get, get1, scan_passes;
} counts;

#define MAX_SEQ_ROUNDS 8

/* One measured phase. */
typedef struct phase {
    double wall, cpu;
    uint64_t ops;
} phase;

typedef struct timer {
    struct timespec w, c;
} timer;

static timer timer_start(void)
{
    timer t;
    clock_gettime(CLOCK_MONOTONIC, &t.w);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t.c);
    return t;
}

static double ts_diff(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void timer_stop(const timer *t, uint64_t ops, phase *out)
{
    timer e = timer_start();
    out->wall = ts_diff(&t->w, &e.w);
    out->cpu = ts_diff(&t->c, &e.c);
    out->ops = ops;
}

static void fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("storage_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void be64_put(unsigned char *out, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (unsigned char)v;
}

/* splitmix64: a fixed-seed generator, so every arm and every run gets the same data. */
static uint64_t mix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void dataset_free(dataset *d)
{
    free(d->keys);
    free(d->rnd_order);
    free(d->get_idx);
    free(d->pool);
    free(d->doc_keys);
}

static int dataset_init(dataset *d, const opts *o)
{
    *d = (dataset){.n = o->n, .txn = o->txn, .ws_ops = o->ws_ops};
    d->keys = malloc(o->n * KLEN);
    d->rnd_order = malloc(o->n * sizeof *d->rnd_order);
    d->get_idx = malloc(o->n * sizeof *d->get_idx);
    d->pool = malloc(POOL_LEN + LOG_VLEN);
    d->doc_keys = malloc(o->ws_ops * DOC_KLEN);
    if (!d->keys || !d->rnd_order || !d->get_idx || !d->pool || !d->doc_keys) {
        dataset_free(d);
        fail("out of memory for %zu keys", o->n);
        return -1;
    }
    uint64_t s = 42;
    for (size_t i = 0; i < o->n; i++) {
        be64_put(KEY(d, i), i);
        be64_put(KEY(d, i) + 8, mix64(&s));
        d->rnd_order[i] = (uint32_t)i;
    }
    for (size_t i = o->n - 1; i > 0; i--) { /* Fisher-Yates */
        size_t j = (size_t)(mix64(&s) % (i + 1));
        uint32_t x = d->rnd_order[i];
        d->rnd_order[i] = d->rnd_order[j];
        d->rnd_order[j] = x;
    }
    for (size_t i = 0; i < o->n; i++)
        d->get_idx[i] = (uint32_t)(mix64(&s) % o->n);
    for (size_t i = 0; i < POOL_LEN + LOG_VLEN; i += 8) {
        uint64_t x = mix64(&s);
        memcpy(d->pool + i, &x, 8);
    }
    /* Ids drawn from as many as there are ops: about 63% inserts, the rest updates. */
    for (size_t i = 0; i < o->ws_ops; i++) {
        char id[16];
        snprintf(id, sizeof id, "%08u", (unsigned)(mix64(&s) % o->ws_ops));
        unsigned char *k = d->doc_keys + i * DOC_KLEN;
        memcpy(k, "items\0doc-", 10);
        memcpy(k + 10, id, 8);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------------------------- */
static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT) fail("cannot remove %s: %s", path, strerror(errno));
    return 0;
}

static void rm_tree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int make_dir(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fail("cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Plugins, loaded as litedistd and tests/storage/conformance.c load them
 * ------------------------------------------------------------------------------------------- */
typedef struct bplugin {
    char *path;
    const ld_plugin_descriptor *desc;
    const ld_storage_v1 *ops;
    int engine;
} bplugin;

static bool g_verbose;

static void host_log(const ld_host *host, int32_t level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void host_log(const ld_host *host, int32_t level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (level > LD_LOG_WARN && !g_verbose) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "  [%s %s] %s\n", host->plugin_path,
            level >= 0 && level <= 3 ? names[level] : "?", line);
}

/* Host tables live until exit (plugin.h): one per plugin and Sync level, made once. */
typedef struct hosts {
    ld_host h[3];     /* by SYNC_* */
    char cfg[3][128]; /* their config_json */
} hosts;

static int plugin_load(const char *path, bplugin *out)
{
    /* Never dlclose'd: plugins are not unloaded while the host runs. */
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        fail("dlopen %s: %s", path, dlerror());
        return -1;
    }
    ld_plugin_entry_fn entry = NULL;
    *(void **)&entry = dlsym(dl, LD_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
        fail("%s exports no %s", path, LD_PLUGIN_ENTRY_SYMBOL);
        return -1;
    }
    static ld_host probe;
    probe = (ld_host){
        .abi_major = LD_ABI_MAJOR,
        .abi_minor = LD_ABI_MINOR,
        .struct_size = (uint32_t)sizeof(ld_host),
        .log = host_log,
        .config_json = "{}",
        .data_dir = "/",
        .plugin_path = "storage_bench",
    };
    const ld_plugin_descriptor *desc = entry(&probe);
    if (!desc || desc->abi_major != LD_ABI_MAJOR) {
        fail("%s refused to load or speaks another ABI major", path);
        return -1;
    }
    if (desc->kind != LD_PLUGIN_KIND_STORAGE) return 1; /* an auth plugin: not ours */
    const ld_storage_v1 *ops = desc->ops;
    if (!ops || ops->abi_major != LD_ABI_MAJOR || !LD_ABI_HAS(ops, ld_storage_v1, cursor_close)) {
        fail("%s is not a storage plugin of ABI %d", path, LD_ABI_MAJOR);
        return -1;
    }
    out->path = strdup(path);
    if (!out->path) {
        fail("out of memory");
        return -1;
    }
    out->desc = desc;
    out->ops = ops;
    out->engine = ENGINE_NONE;
    if (desc->name && strcmp(desc->name, "sqlite") == 0) out->engine = ENGINE_SQLITE;
    if (desc->name && strcmp(desc->name, "lmdb") == 0) out->engine = ENGINE_LMDB;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Arms. An arm is one way of doing the work: the plugin through the ABI, or its engine through
 * its own API. A phase is one call of run(); inside it, each arm calls its API directly.
 * ------------------------------------------------------------------------------------------- */
typedef struct pl_db {
    const ld_storage_v1 *o;
    ld_storage *st;
    ld_stdb *db;
} pl_db;

typedef struct sr_db {
    sqlite3 *w, *r; /* the write connection; a read-only one, as the plugin reads on its own */
    sqlite3_stmt *begin, *commit, *rbegin, *rcommit;
} sr_db;

typedef struct arm arm;

typedef struct arm_ops {
    /* Opens database `name` in the arm's directory with the given Sync. */
    int (*open)(arm *a, const char *name, int sync);
    /* Does the work of workload w (W_*) on the open database; the caller times it. */
    int (*run)(arm *a, int w, const dataset *d, const counts *c, uint64_t *sum);
    /* Closes the open database, if any (idempotent). */
    void (*close)(arm *a);
} arm_ops;

struct arm {
    const arm_ops *ops;
    char dir[PATH_MAX];
    size_t map_mib;
    const bplugin *bp; /* the plugin arm's */
    const hosts *hosts;
    pl_db pl;
    sr_db sr;     /* the SQLite arm's */
    MDB_env *env; /* the LMDB arm's */
    int env_sync;
    MDB_dbi rnd;
};

/* ---------------------------------------------------------------------------------------------
 * Arm 1: a plugin through the ABI
 * ------------------------------------------------------------------------------------------- */
static int pl_err(const pl_db *p, ld_status s, const char *what)
{
    fail("plugin %s: status %d (%s)", what, (int)s, p->st ? p->o->last_error(p->st) : "");
    return -1;
}

static int pl_open(const bplugin *bp, const ld_host *host, const char *dir, const char *name,
                   pl_db *out)
{
    *out = (pl_db){.o = bp->ops};
    ld_storage *st = NULL;
    ld_status s = out->o->create(host, &st);
    if (s != LD_OK) {
        fail("plugin create: status %d", (int)s);
        return -1;
    }
    out->st = st;
    s = out->o->open(st, dir, name, &out->db);
    if (s != LD_OK) {
        pl_err(out, s, "open");
        out->o->destroy(st);
        *out = (pl_db){.o = bp->ops};
        return -1;
    }
    return 0;
}

static void pl_close(pl_db *p)
{
    if (p->db) p->o->close(p->db);
    if (p->st) p->o->destroy(p->st);
    p->db = NULL;
    p->st = NULL;
}

static int pl_puts(const pl_db *p, const char *space, const dataset *d, const uint32_t *order)
{
    const ld_storage_v1 *o = p->o;
    for (size_t i = 0; i < d->n;) {
        ld_sttxn *t;
        ld_status s = o->begin(p->db, LD_TXN_WRITE, &t);
        if (s != LD_OK) return pl_err(p, s, "begin");
        size_t end = i + d->txn < d->n ? i + d->txn : d->n;
        for (; i < end; i++) {
            size_t k = order ? order[i] : i;
            s = o->put(t, space, KEY(d, k), KLEN, VAL(d, k), VLEN);
            if (s != LD_OK) {
                pl_err(p, s, "put");
                o->abort(t);
                return -1;
            }
        }
        s = o->commit(t);
        if (s != LD_OK) return pl_err(p, s, "commit");
    }
    return 0;
}

/* `count` gets of the keys d->get_idx[0..count), per_txn in each read transaction. */
static int pl_gets(const pl_db *p, const char *space, const dataset *d, size_t count,
                   size_t per_txn)
{
    const ld_storage_v1 *o = p->o;
    size_t found = 0;
    for (size_t i = 0; i < count;) {
        ld_sttxn *t;
        ld_status s = o->begin(p->db, LD_TXN_READ, &t);
        if (s != LD_OK) return pl_err(p, s, "begin");
        size_t end = i + per_txn < count ? i + per_txn : count;
        for (; i < end; i++) {
            const void *v;
            size_t vl;
            s = o->get(t, space, KEY(d, d->get_idx[i % d->n]), KLEN, &v, &vl);
            if (s == LD_OK && vl == VLEN) found++;
            if (s != LD_OK && s != LD_NOT_FOUND) {
                pl_err(p, s, "get");
                o->abort(t);
                return -1;
            }
        }
        o->commit(t);
    }
    if (found != count) {
        fail("plugin: %zu of %zu gets found their key", found, count);
        return -1;
    }
    return 0;
}

static int pl_scan(const pl_db *p, const char *space, const dataset *d, size_t passes,
                   uint64_t *sum)
{
    const ld_storage_v1 *o = p->o;
    for (size_t pass = 0; pass < passes; pass++) {
        ld_sttxn *t;
        ld_stcursor *c;
        ld_status s = o->begin(p->db, LD_TXN_READ, &t);
        if (s != LD_OK) return pl_err(p, s, "begin");
        s = o->cursor_open(t, space, &c);
        if (s != LD_OK) {
            pl_err(p, s, "cursor_open");
            o->abort(t);
            return -1;
        }
        const void *k, *v;
        size_t kl, vl, seen = 0;
        while ((s = o->cursor_next(c, &k, &kl, &v, &vl)) == LD_OK) {
            /* Touch both, as a caller would; the sum keeps the compiler from skipping it. */
            *sum += ((const unsigned char *)k)[kl - 1] + ((const unsigned char *)v)[0] + vl;
            seen++;
        }
        o->cursor_close(c);
        o->commit(t);
        if (s != LD_NOT_FOUND) return pl_err(p, s, "cursor_next");
        if (seen != d->n) {
            fail("plugin: the scan saw %zu of %zu keys", seen, d->n);
            return -1;
        }
    }
    return 0;
}

/* The server's write shape (core/db/apply.c): per op, read the document's record, write the new
 * one and append the op to the log; per txn, one meta record. */
static int pl_write_shape(const pl_db *p, const dataset *d)
{
    const ld_storage_v1 *o = p->o;
    uint64_t seq = 0;
    for (size_t i = 0; i < d->ws_ops;) {
        ld_sttxn *t;
        ld_status s = o->begin(p->db, LD_TXN_WRITE, &t);
        if (s != LD_OK) return pl_err(p, s, "begin");
        size_t end = i + d->txn < d->ws_ops ? i + d->txn : d->ws_ops;
        const char *what = "get";
        for (; i < end && (s == LD_OK || s == LD_NOT_FOUND); i++) {
            const unsigned char *dk = d->doc_keys + i * DOC_KLEN;
            const void *v;
            size_t vl;
            what = "get";
            s = o->get(t, "docs", dk, DOC_KLEN, &v, &vl);
            if (s != LD_OK && s != LD_NOT_FOUND) break;
            what = "put docs";
            s = o->put(t, "docs", dk, DOC_KLEN, d->pool + (i * 37u) % POOL_LEN, DOC_VLEN);
            if (s != LD_OK) break;
            unsigned char lk[8];
            be64_put(lk, ++seq);
            what = "put log";
            s = o->put(t, "log", lk, 8, d->pool + (seq * 53u) % POOL_LEN, LOG_VLEN);
        }
        if (s == LD_OK) {
            unsigned char b[8];
            be64_put(b, seq);
            what = "put meta";
            s = o->put(t, "meta", "last_seq", 8, b, 8);
        }
        if (s != LD_OK) {
            pl_err(p, s, what);
            o->abort(t);
            return -1;
        }
        s = o->commit(t);
        if (s != LD_OK) return pl_err(p, s, "commit");
    }
    return 0;
}

static int pl_arm_open(arm *a, const char *name, int sync)
{
    return pl_open(a->bp, &a->hosts->h[sync], a->dir, name, &a->pl);
}

static void pl_arm_close(arm *a)
{
    pl_close(&a->pl);
}

static int pl_arm_run(arm *a, int w, const dataset *d, const counts *c, uint64_t *sum)
{
    switch (w) {
    case W_PUT_SEQ:
        return pl_puts(&a->pl, "seq", d, NULL);
    case W_PUT_RND:
        return pl_puts(&a->pl, "rnd", d, d->rnd_order);
    case W_GET:
        return pl_gets(&a->pl, "rnd", d, c->get, d->txn);
    case W_GET1:
        return pl_gets(&a->pl, "rnd", d, c->get1, 1);
    case W_SCAN:
        return pl_scan(&a->pl, "rnd", d, c->scan_passes, sum);
    default:
        return pl_write_shape(&a->pl, d);
    }
}

static const arm_ops pl_arm = {pl_arm_open, pl_arm_run, pl_arm_close};

/* ---------------------------------------------------------------------------------------------
 * Arm 2: SQLite through its own API, with the plugin's schema and settings
 * (plugins/storage-sqlite/sqlite_storage.c: sq_conn_open, sq_sql, sq_create_space)
 * ------------------------------------------------------------------------------------------- */
static int sr_err(sqlite3 *h, int rc, const char *what)
{
    fail("sqlite %s: %s (%d)", what, h ? sqlite3_errmsg(h) : "?", rc);
    return -1;
}

static int sr_exec(sqlite3 *h, const char *sql)
{
    int rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sr_err(h, rc, sql);
}

static int sr_prepare(sqlite3 *h, const char *sql, sqlite3_stmt **out)
{
    int rc = sqlite3_prepare_v3(h, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
    return rc == SQLITE_OK ? 0 : sr_err(h, rc, sql);
}

/* Steps a statement that returns no rows, and resets it. */
static int sr_run(sqlite3 *h, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : sr_err(h, rc, what);
}

static void sr_close(sr_db *s)
{
    sqlite3_finalize(s->begin);
    sqlite3_finalize(s->commit);
    sqlite3_finalize(s->rbegin);
    sqlite3_finalize(s->rcommit);
    sqlite3_close(s->r);
    sqlite3_close(s->w);
    *s = (sr_db){0};
}

static int sr_open(const char *dir, const char *name, int sync, sr_db *out)
{
    static const char *const sync_sql[] = {
        [SYNC_OFF] = "PRAGMA synchronous=OFF",
        [SYNC_NORMAL] = "PRAGMA synchronous=NORMAL",
        [SYNC_FULL] = "PRAGMA synchronous=FULL",
    };
    *out = (sr_db){0};
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s.db", dir, name) >= sizeof path) {
        fail("path too long under %s", dir);
        return -1;
    }
    int rc = sqlite3_open_v2(
        path, &out->w, SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        sr_err(out->w, rc, "open");
        sr_close(out);
        return -1;
    }
    sqlite3_busy_timeout(out->w, 5000);
    if (sr_exec(out->w, "PRAGMA page_size=16384") || sr_exec(out->w, "PRAGMA journal_mode=WAL") ||
        sr_exec(out->w, sync_sql[sync]) || sr_exec(out->w, "PRAGMA journal_size_limit=67108864") ||
        sr_prepare(out->w, "BEGIN IMMEDIATE", &out->begin) ||
        sr_prepare(out->w, "COMMIT", &out->commit)) {
        sr_close(out);
        return -1;
    }
    /* The read connection opens on a file whose first write transaction has not run yet; that
     * is fine for SQLite, which reads the schema at the first statement of each transaction. */
    rc = sqlite3_open_v2(path, &out->r, SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_READONLY, NULL);
    if (rc != SQLITE_OK) {
        sr_err(out->r, rc, "open for reading");
        sr_close(out);
        return -1;
    }
    sqlite3_busy_timeout(out->r, 5000);
    if (sr_prepare(out->r, "BEGIN", &out->rbegin) || sr_prepare(out->r, "COMMIT", &out->rcommit)) {
        sr_close(out);
        return -1;
    }
    return 0;
}

/* Creates table ks_<space> as the plugin does, inside the open write transaction. */
static int sr_create(sqlite3 *h, const char *space)
{
    char sql[160];
    snprintf(sql, sizeof sql,
             "CREATE TABLE IF NOT EXISTS ks_%s (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID",
             space);
    return sr_exec(h, sql);
}

static int sr_stmt(sqlite3 *h, const char *head, const char *space, const char *tail,
                   sqlite3_stmt **out)
{
    char sql[160];
    snprintf(sql, sizeof sql, "%sks_%s%s", head, space, tail);
    return sr_prepare(h, sql, out);
}

static int sr_puts(sr_db *s, const char *space, const dataset *d, const uint32_t *order)
{
    sqlite3_stmt *put = NULL;
    for (size_t i = 0; i < d->n;) {
        if (sr_run(s->w, s->begin, "begin")) goto fail;
        if (!put && (sr_create(s->w, space) || sr_stmt(s->w, "INSERT OR REPLACE INTO ", space,
                                                       " (k, v) VALUES (?1, ?2)", &put)))
            goto fail;
        size_t end = i + d->txn < d->n ? i + d->txn : d->n;
        for (; i < end; i++) {
            size_t k = order ? order[i] : i;
            sqlite3_bind_blob(put, 1, KEY(d, k), KLEN, SQLITE_STATIC);
            sqlite3_bind_blob(put, 2, VAL(d, k), VLEN, SQLITE_STATIC);
            if (sr_run(s->w, put, "put")) goto fail;
        }
        if (sr_run(s->w, s->commit, "commit")) goto fail;
    }
    sqlite3_finalize(put);
    return 0;
fail:
    if (!sqlite3_get_autocommit(s->w)) sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_finalize(put);
    return -1;
}

static int sr_gets(sr_db *s, const char *space, const dataset *d, size_t count, size_t per_txn)
{
    sqlite3_stmt *get = NULL;
    if (sr_stmt(s->r, "SELECT v FROM ", space, " WHERE k = ?1", &get)) return -1;
    size_t found = 0;
    int rc = SQLITE_OK;
    for (size_t i = 0; i < count && rc == SQLITE_OK;) {
        if (sr_run(s->r, s->rbegin, "begin")) break;
        size_t end = i + per_txn < count ? i + per_txn : count;
        for (; i < end; i++) {
            sqlite3_bind_blob(get, 1, KEY(d, d->get_idx[i % d->n]), KLEN, SQLITE_STATIC);
            rc = sqlite3_step(get);
            if (rc == SQLITE_ROW) {
                const void *v = sqlite3_column_blob(get, 0);
                if (v && sqlite3_column_bytes(get, 0) == (int)VLEN) found++;
            }
            sqlite3_reset(get);
            if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
                sr_err(s->r, rc, "get");
                break;
            }
            rc = SQLITE_OK;
        }
        if (sr_run(s->r, s->rcommit, "commit")) break;
    }
    sqlite3_finalize(get);
    if (!sqlite3_get_autocommit(s->r)) sqlite3_exec(s->r, "ROLLBACK", NULL, NULL, NULL);
    if (found != count) {
        fail("sqlite: %zu of %zu gets found their key", found, count);
        return -1;
    }
    return 0;
}

static int sr_scan(sr_db *s, const char *space, const dataset *d, size_t passes, uint64_t *sum)
{
    sqlite3_stmt *scan = NULL;
    if (sr_stmt(s->r, "SELECT k, v FROM ", space, " ORDER BY k", &scan)) return -1;
    int rc = 0;
    for (size_t pass = 0; pass < passes && rc == 0; pass++) {
        if (sr_run(s->r, s->rbegin, "begin")) {
            rc = -1;
            break;
        }
        size_t seen = 0;
        int step;
        while ((step = sqlite3_step(scan)) == SQLITE_ROW) {
            const unsigned char *k = sqlite3_column_blob(scan, 0);
            size_t kl = (size_t)sqlite3_column_bytes(scan, 0);
            const unsigned char *v = sqlite3_column_blob(scan, 1);
            size_t vl = (size_t)sqlite3_column_bytes(scan, 1);
            *sum += k[kl - 1] + v[0] + vl;
            seen++;
        }
        sqlite3_reset(scan);
        if (step != SQLITE_DONE) rc = sr_err(s->r, step, "scan");
        if (sr_run(s->r, s->rcommit, "commit")) rc = -1;
        if (rc == 0 && seen != d->n) {
            fail("sqlite: the scan saw %zu of %zu keys", seen, d->n);
            rc = -1;
        }
    }
    sqlite3_finalize(scan);
    if (!sqlite3_get_autocommit(s->r)) sqlite3_exec(s->r, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int sr_write_shape(sr_db *s, const dataset *d)
{
    sqlite3_stmt *get = NULL, *put_doc = NULL, *put_log = NULL, *put_meta = NULL;
    static const char ins[] = " (k, v) VALUES (?1, ?2)";
    uint64_t seq = 0;
    for (size_t i = 0; i < d->ws_ops;) {
        if (sr_run(s->w, s->begin, "begin")) goto fail;
        if (!get && (sr_create(s->w, "docs") || sr_create(s->w, "log") || sr_create(s->w, "meta") ||
                     sr_stmt(s->w, "SELECT v FROM ", "docs", " WHERE k = ?1", &get) ||
                     sr_stmt(s->w, "INSERT OR REPLACE INTO ", "docs", ins, &put_doc) ||
                     sr_stmt(s->w, "INSERT OR REPLACE INTO ", "log", ins, &put_log) ||
                     sr_stmt(s->w, "INSERT OR REPLACE INTO ", "meta", ins, &put_meta)))
            goto fail;
        size_t end = i + d->txn < d->ws_ops ? i + d->txn : d->ws_ops;
        for (; i < end; i++) {
            const unsigned char *dk = d->doc_keys + i * DOC_KLEN;
            sqlite3_bind_blob(get, 1, dk, DOC_KLEN, SQLITE_STATIC);
            int rc = sqlite3_step(get);
            if (rc == SQLITE_ROW) (void)sqlite3_column_blob(get, 0);
            sqlite3_reset(get);
            if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
                sr_err(s->w, rc, "get");
                goto fail;
            }
            sqlite3_bind_blob(put_doc, 1, dk, DOC_KLEN, SQLITE_STATIC);
            sqlite3_bind_blob(put_doc, 2, d->pool + (i * 37u) % POOL_LEN, DOC_VLEN, SQLITE_STATIC);
            if (sr_run(s->w, put_doc, "put docs")) goto fail;
            unsigned char lk[8];
            be64_put(lk, ++seq);
            sqlite3_bind_blob(put_log, 1, lk, 8, SQLITE_STATIC);
            sqlite3_bind_blob(put_log, 2, d->pool + (seq * 53u) % POOL_LEN, LOG_VLEN,
                              SQLITE_STATIC);
            if (sr_run(s->w, put_log, "put log")) goto fail;
        }
        unsigned char b[8];
        be64_put(b, seq);
        sqlite3_bind_blob(put_meta, 1, "last_seq", 8, SQLITE_STATIC);
        sqlite3_bind_blob(put_meta, 2, b, 8, SQLITE_STATIC);
        if (sr_run(s->w, put_meta, "put meta")) goto fail;
        if (sr_run(s->w, s->commit, "commit")) goto fail;
    }
    sqlite3_finalize(get);
    sqlite3_finalize(put_doc);
    sqlite3_finalize(put_log);
    sqlite3_finalize(put_meta);
    return 0;
fail:
    if (!sqlite3_get_autocommit(s->w)) sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_finalize(get);
    sqlite3_finalize(put_doc);
    sqlite3_finalize(put_log);
    sqlite3_finalize(put_meta);
    return -1;
}

static int sr_arm_open(arm *a, const char *name, int sync)
{
    return sr_open(a->dir, name, sync, &a->sr);
}

static void sr_arm_close(arm *a)
{
    sr_close(&a->sr);
}

static int sr_arm_run(arm *a, int w, const dataset *d, const counts *c, uint64_t *sum)
{
    switch (w) {
    case W_PUT_SEQ:
        return sr_puts(&a->sr, "seq", d, NULL);
    case W_PUT_RND:
        return sr_puts(&a->sr, "rnd", d, d->rnd_order);
    case W_GET:
        return sr_gets(&a->sr, "rnd", d, c->get, d->txn);
    case W_GET1:
        return sr_gets(&a->sr, "rnd", d, c->get1, 1);
    case W_SCAN:
        return sr_scan(&a->sr, "rnd", d, c->scan_passes, sum);
    default:
        return sr_write_shape(&a->sr, d);
    }
}

static const arm_ops sr_arm = {sr_arm_open, sr_arm_run, sr_arm_close};

/* ---------------------------------------------------------------------------------------------
 * Arm 3: LMDB through mdb_*, with the plugin's environment flags and limits
 * (plugins/storage-lmdb/lmdb_storage.c: lm_open)
 * ------------------------------------------------------------------------------------------- */
static int lr_err(int rc, const char *what)
{
    fail("lmdb %s: %s (%d)", what, mdb_strerror(rc), rc);
    return -1;
}

static int lr_open(const char *dir, const char *name, int sync, size_t map_mib, MDB_env **out)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s.lmdb", dir, name) >= sizeof path) {
        fail("path too long under %s", dir);
        return -1;
    }
    if (make_dir(path) != 0) return -1;
    MDB_env *env = NULL;
    unsigned flags = MDB_NOTLS;
    if (sync == SYNC_NORMAL) flags |= MDB_NOMETASYNC;
    if (sync == SYNC_OFF) flags |= MDB_NOSYNC;
    int rc = mdb_env_create(&env);
    if (rc == 0) rc = mdb_env_set_maxreaders(env, 256);
    if (rc == 0) rc = mdb_env_set_maxdbs(env, 128);
    if (rc == 0) rc = mdb_env_set_mapsize(env, map_mib << 20);
    if (rc == 0) rc = mdb_env_open(env, path, flags, 0644);
    if (rc != 0) {
        if (env) mdb_env_close(env);
        return lr_err(rc, "open");
    }
    *out = env;
    return 0;
}

/* As the plugin closes (lm_close): what normal/off left unsynced goes to disk. Not timed. */
static void lr_close(MDB_env *env, int sync)
{
    if (!env) return;
    if (sync != SYNC_FULL) mdb_env_sync(env, 1);
    mdb_env_close(env);
}

static int lr_puts(MDB_env *env, MDB_dbi *dbi, const char *space, const dataset *d,
                   const uint32_t *order)
{
    for (size_t i = 0; i < d->n;) {
        MDB_txn *t;
        int rc = mdb_txn_begin(env, NULL, 0, &t);
        if (rc != 0) return lr_err(rc, "begin");
        if (i == 0) rc = mdb_dbi_open(t, space, MDB_CREATE, dbi);
        size_t end = i + d->txn < d->n ? i + d->txn : d->n;
        for (; i < end && rc == 0; i++) {
            size_t k = order ? order[i] : i;
            MDB_val key = {KLEN, KEY(d, k)}, val = {VLEN, VAL(d, k)};
            rc = mdb_put(t, *dbi, &key, &val, 0);
        }
        if (rc != 0) {
            mdb_txn_abort(t);
            return lr_err(rc, "put");
        }
        rc = mdb_txn_commit(t);
        if (rc != 0) return lr_err(rc, "commit");
    }
    return 0;
}

/* Read txns are reset and renewed, the LMDB idiom for many short readers (the plugin pools them
 * the same way). */
static int lr_gets(MDB_env *env, MDB_dbi dbi, const dataset *d, size_t count, size_t per_txn)
{
    MDB_txn *t = NULL;
    size_t found = 0;
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0;) {
        rc = t ? mdb_txn_renew(t) : mdb_txn_begin(env, NULL, MDB_RDONLY, &t);
        if (rc != 0) {
            lr_err(rc, "begin");
            break;
        }
        size_t end = i + per_txn < count ? i + per_txn : count;
        for (; i < end; i++) {
            MDB_val key = {KLEN, KEY(d, d->get_idx[i % d->n])}, val;
            rc = mdb_get(t, dbi, &key, &val);
            if (rc == 0 && val.mv_size == VLEN) found++;
            if (rc == MDB_NOTFOUND) rc = 0;
            if (rc != 0) {
                lr_err(rc, "get");
                break;
            }
        }
        mdb_txn_reset(t);
    }
    if (t) mdb_txn_abort(t);
    if (rc == 0 && found != count) {
        fail("lmdb: %zu of %zu gets found their key", found, count);
        return -1;
    }
    return rc == 0 ? 0 : -1;
}

static int lr_scan(MDB_env *env, MDB_dbi dbi, const dataset *d, size_t passes, uint64_t *sum)
{
    for (size_t pass = 0; pass < passes; pass++) {
        MDB_txn *t;
        MDB_cursor *c;
        int rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &t);
        if (rc != 0) return lr_err(rc, "begin");
        rc = mdb_cursor_open(t, dbi, &c);
        if (rc != 0) {
            mdb_txn_abort(t);
            return lr_err(rc, "cursor_open");
        }
        MDB_val k, v;
        size_t seen = 0;
        for (MDB_cursor_op op = MDB_FIRST; (rc = mdb_cursor_get(c, &k, &v, op)) == 0;
             op = MDB_NEXT) {
            *sum += ((const unsigned char *)k.mv_data)[k.mv_size - 1] +
                    ((const unsigned char *)v.mv_data)[0] + v.mv_size;
            seen++;
        }
        mdb_cursor_close(c);
        mdb_txn_abort(t);
        if (rc != MDB_NOTFOUND) return lr_err(rc, "scan");
        if (seen != d->n) {
            fail("lmdb: the scan saw %zu of %zu keys", seen, d->n);
            return -1;
        }
    }
    return 0;
}

static int lr_write_shape(MDB_env *env, const dataset *d)
{
    MDB_dbi docs = 0, logdb = 0, meta = 0;
    uint64_t seq = 0;
    for (size_t i = 0; i < d->ws_ops;) {
        MDB_txn *t;
        int rc = mdb_txn_begin(env, NULL, 0, &t);
        if (rc != 0) return lr_err(rc, "begin");
        if (i == 0) {
            rc = mdb_dbi_open(t, "docs", MDB_CREATE, &docs);
            if (rc == 0) rc = mdb_dbi_open(t, "log", MDB_CREATE, &logdb);
            if (rc == 0) rc = mdb_dbi_open(t, "meta", MDB_CREATE, &meta);
        }
        size_t end = i + d->txn < d->ws_ops ? i + d->txn : d->ws_ops;
        for (; i < end && rc == 0; i++) {
            unsigned char *dk = d->doc_keys + i * DOC_KLEN;
            MDB_val k = {DOC_KLEN, dk}, v;
            rc = mdb_get(t, docs, &k, &v);
            if (rc == MDB_NOTFOUND) rc = 0;
            if (rc != 0) break;
            v = (MDB_val){DOC_VLEN, d->pool + (i * 37u) % POOL_LEN};
            rc = mdb_put(t, docs, &k, &v, 0);
            if (rc != 0) break;
            unsigned char lk[8];
            be64_put(lk, ++seq);
            k = (MDB_val){8, lk};
            v = (MDB_val){LOG_VLEN, d->pool + (seq * 53u) % POOL_LEN};
            rc = mdb_put(t, logdb, &k, &v, 0);
        }
        if (rc == 0) {
            unsigned char b[8];
            be64_put(b, seq);
            MDB_val k = {8, "last_seq"}, v = {8, b};
            rc = mdb_put(t, meta, &k, &v, 0);
        }
        if (rc != 0) {
            mdb_txn_abort(t);
            return lr_err(rc, "write");
        }
        rc = mdb_txn_commit(t);
        if (rc != 0) return lr_err(rc, "commit");
    }
    return 0;
}

static int lr_arm_open(arm *a, const char *name, int sync)
{
    a->env_sync = sync;
    return lr_open(a->dir, name, sync, a->map_mib, &a->env);
}

static void lr_arm_close(arm *a)
{
    lr_close(a->env, a->env_sync);
    a->env = NULL;
}

static int lr_arm_run(arm *a, int w, const dataset *d, const counts *c, uint64_t *sum)
{
    switch (w) {
    case W_PUT_SEQ: {
        MDB_dbi dbi;
        return lr_puts(a->env, &dbi, "seq", d, NULL);
    }
    case W_PUT_RND:
        return lr_puts(a->env, &a->rnd, "rnd", d, d->rnd_order);
    case W_GET:
        return lr_gets(a->env, a->rnd, d, c->get, d->txn);
    case W_GET1:
        return lr_gets(a->env, a->rnd, d, c->get1, 1);
    case W_SCAN:
        return lr_scan(a->env, a->rnd, d, c->scan_passes, sum);
    default:
        return lr_write_shape(a->env, d);
    }
}

static const arm_ops lr_arm = {lr_arm_open, lr_arm_run, lr_arm_close};

/* ---------------------------------------------------------------------------------------------
 * The run: per repeat and backend, the plugin and the raw engine next to each other
 * ------------------------------------------------------------------------------------------- */
enum { ARM_PLUGIN, ARM_RAW };

typedef struct backend {
    bplugin plugin;
    hosts *hosts;
    counts c;
    phase (*res[2])[W_COUNT]; /* [arm][repeat][workload]; res[ARM_RAW] NULL: no raw engine */
} backend;

static uint64_t phase_ops(int w, const dataset *d, const counts *c)
{
    switch (w) {
    case W_GET:
        return c->get;
    case W_GET1:
        return c->get1;
    case W_SCAN:
        return (uint64_t)d->n * c->scan_passes;
    case W_PUT_SEQ:
        return (uint64_t)d->n * c->seq_rounds;
    case W_WS_FULL:
    case W_WS_NORMAL:
        return d->ws_ops;
    default:
        return d->n;
    }
}

/* Runs workload w on arm a and adds its time and `ops` to *out. */
static int measure(arm *a, int w, const dataset *d, const counts *c, uint64_t ops, phase *out,
                   uint64_t *sum)
{
    phase p;
    timer t = timer_start();
    int rc = a->ops->run(a, w, d, c, sum);
    timer_stop(&t, ops, &p);
    out->wall += p.wall;
    out->cpu += p.cpu;
    out->ops += p.ops;
    return rc;
}

/* One repeat of a backend: the databases of both arms side by side, each phase run by one arm
 * right after the other, so that drift of the machine hits both alike; which arm goes first
 * alternates by phase and by `turn`. The arms' directories are removed afterwards. */
static int run_repeat(const backend *b, const opts *o, const dataset *d, const char *work,
                      unsigned turn, phase *res[2], uint64_t *sum)
{
    static const char *const kind[2] = {"plugin", "raw"};
    static const char *const ws_name[2] = {"wsfull", "wsnormal"};
    static const int ws_sync[2] = {SYNC_FULL, SYNC_NORMAL};
    const unsigned narms = b->res[ARM_RAW] ? 2 : 1;
    arm arms[2];
    unsigned made = 0;
    int rc = -1;
    for (; made < narms; made++) {
        arm *a = &arms[made];
        *a = (arm){.bp = &b->plugin, .hosts = b->hosts, .map_mib = o->map_mib};
        a->ops = made == ARM_PLUGIN                  ? &pl_arm
                 : b->plugin.engine == ENGINE_SQLITE ? &sr_arm
                                                     : &lr_arm;
        if ((size_t)snprintf(a->dir, sizeof a->dir, "%s/%s-%s", work, b->plugin.desc->name,
                             kind[made]) >= sizeof a->dir) {
            fail("path too long under %s", work);
            goto out;
        }
        if (make_dir(a->dir) != 0) goto out;
    }
    for (unsigned i = 0; i < narms; i++)
        for (int w = 0; w < W_COUNT; w++)
            res[i][w] = (phase){0};
    /* The ordered puts: each round into a new database, so that every round is the same work
     * (more key spaces in one database would make each plugin call look its space up among
     * more). Opening and closing are not timed. */
    for (size_t r = 0; r < b->c.seq_rounds; r++)
        for (unsigned k = 0; k < narms; k++) {
            unsigned i = (k + turn + (unsigned)r) % narms;
            char name[32];
            snprintf(name, sizeof name, "seq%zu", r);
            if (arms[i].ops->open(&arms[i], name, o->kv_sync) != 0) goto out;
            int mrc = measure(&arms[i], W_PUT_SEQ, d, &b->c, d->n, &res[i][W_PUT_SEQ], sum);
            arms[i].ops->close(&arms[i]);
            if (mrc != 0) goto out;
        }
    for (unsigned i = 0; i < narms; i++)
        if (arms[i].ops->open(&arms[i], "kv", o->kv_sync) != 0) goto out;
    for (int w = W_PUT_RND; w <= W_SCAN; w++)
        for (unsigned k = 0; k < narms; k++) {
            unsigned i = (k + turn + (unsigned)w) % narms;
            if (measure(&arms[i], w, d, &b->c, phase_ops(w, d, &b->c), &res[i][w], sum) != 0)
                goto out;
        }
    for (unsigned i = 0; i < narms; i++)
        arms[i].ops->close(&arms[i]);
    for (int w = W_WS_FULL; w <= W_WS_NORMAL; w++)
        for (unsigned k = 0; k < narms; k++) {
            unsigned i = (k + turn + (unsigned)w) % narms;
            arm *a = &arms[i];
            if (a->ops->open(a, ws_name[w - W_WS_FULL], ws_sync[w - W_WS_FULL]) != 0) goto out;
            int mrc = measure(a, w, d, &b->c, phase_ops(w, d, &b->c), &res[i][w], sum);
            a->ops->close(a);
            if (mrc != 0) goto out;
        }
    rc = 0;
out:
    for (unsigned i = 0; i < made; i++) {
        arms[i].ops->close(&arms[i]);
        rm_tree(arms[i].dir);
    }
    return rc;
}

static double rate(const phase *p)
{
    return p->wall > 0 ? (double)p->ops / p->wall : 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct stats {
    double median, min, max;
} stats;

static stats stats_of(const double *v, unsigned n)
{
    double s[256];
    memcpy(s, v, n * sizeof *v);
    qsort(s, n, sizeof *s, cmp_double);
    return (stats){
        .median = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2, .min = s[0], .max = s[n - 1]};
}

/* ---------------------------------------------------------------------------------------------
 * Machine facts and the JSON result
 * ------------------------------------------------------------------------------------------- */
static void read_line_value(const char *file, const char *prefix, char sep, char *out, size_t n)
{
    snprintf(out, n, "unknown");
    FILE *f = fopen(file, "r");
    if (!f) return;
    char line[512];
    size_t pl = strlen(prefix);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, prefix, pl) != 0) continue;
        char *v = strchr(line + pl, sep);
        if (!v) continue;
        v++;
        while (*v == ' ' || *v == '\t' || *v == '"')
            v++;
        size_t l = strcspn(v, "\"\n");
        snprintf(out, n, "%.*s", (int)l, v);
        break;
    }
    fclose(f);
}

static const char *fs_name(const char *path)
{
    static char buf[32];
    struct statfs sf;
    if (statfs(path, &sf) != 0) return "unknown";
    switch ((unsigned long)sf.f_type) {
    case 0xEF53:
        return "ext4";
    case 0x58465342:
        return "xfs";
    case 0x9123683E:
        return "btrfs";
    case 0x01021994:
        return "tmpfs";
    case 0x794C7630:
        return "overlayfs";
    default:
        snprintf(buf, sizeof buf, "0x%lx", (unsigned long)sf.f_type);
        return buf;
    }
}

static json_t *machine_json(const opts *o, const char *stamp, const char *work)
{
    char cpu[256], os[256];
    read_line_value("/proc/cpuinfo", "model name", ':', cpu, sizeof cpu);
    read_line_value("/etc/os-release", "PRETTY_NAME", '=', os, sizeof os);
    struct utsname u;
    if (uname(&u) != 0) snprintf(u.release, sizeof u.release, "unknown");
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    char *parent = strdup(work), *slash = parent ? strrchr(parent, '/') : NULL;
    if (slash) *slash = '\0';
    json_t *m = json_object();
    json_object_set_new(m, "started_utc", json_string(stamp));
    json_object_set_new(m, "nproc", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
    json_object_set_new(m, "cpu_model", json_string(cpu));
    json_object_set_new(m, "kernel", json_string(u.release));
    json_object_set_new(m, "os", json_string(os));
    json_object_set_new(m, "memory_mb", json_integer((json_int_t)pages * psize / (1024 * 1024)));
    json_object_set_new(m, "data_fs", json_string(fs_name(work)));
    json_object_set_new(m, "data_dir_parent", json_string(parent ? parent : "unknown"));
    json_object_set_new(m, "sqlite", json_string(sqlite3_libversion()));
    int maj, min, patch;
    char lmdb[32];
    mdb_version(&maj, &min, &patch);
    snprintf(lmdb, sizeof lmdb, "%d.%d.%d", maj, min, patch);
    json_object_set_new(m, "lmdb", json_string(lmdb));
    json_object_set_new(m, "compiler", json_string(COMPILER));
    json_object_set_new(m, "build_type", json_string(LD_BENCH_BUILD_TYPE));
    json_object_set_new(m, "git_commit", json_string(o->git_commit));
    json_object_set_new(m, "git_dirty", json_boolean(o->git_dirty));
    free(parent);
    return m;
}

static json_t *phases_json(phase (*res)[W_COUNT], int w, unsigned repeats)
{
    json_t *o = json_object(), *r = json_array(), *wall = json_array(), *cpu = json_array();
    for (unsigned i = 0; i < repeats; i++) {
        json_array_append_new(r, json_real(rate(&res[i][w])));
        json_array_append_new(wall, json_real(res[i][w].wall));
        json_array_append_new(cpu, json_real(res[i][w].cpu));
    }
    json_object_set_new(o, "rate", r);
    json_object_set_new(o, "wall_s", wall);
    json_object_set_new(o, "cpu_s", cpu);
    return o;
}

static int write_json(const opts *o, const dataset *d, const backend *bs, size_t nb,
                      const char *stamp, const char *work, double total_s)
{
    json_t *root = json_object();
    json_object_set_new(root, "kind", json_string("storage"));
    json_object_set_new(root, "machine", machine_json(o, stamp, work));
    json_t *set = json_object();
    json_object_set_new(set, "keys", json_integer((json_int_t)d->n));
    json_object_set_new(set, "key_bytes", json_integer(KLEN));
    json_object_set_new(set, "value_bytes", json_integer(VLEN));
    json_object_set_new(set, "txn_ops", json_integer((json_int_t)d->txn));
    json_object_set_new(set, "repeats", json_integer(o->repeats));
    json_object_set_new(set, "warmup_repeats", json_integer(1));
    json_object_set_new(set, "phase_ms", json_integer(o->phase_ms));
    json_object_set_new(set, "kv_sync", json_string(sync_names[o->kv_sync]));
    json_object_set_new(set, "ws_ops", json_integer((json_int_t)d->ws_ops));
    json_object_set_new(set, "ws_doc_key_bytes", json_integer(DOC_KLEN));
    json_object_set_new(set, "ws_doc_value_bytes", json_integer(DOC_VLEN));
    json_object_set_new(set, "ws_log_value_bytes", json_integer(LOG_VLEN));
    json_object_set_new(set, "lmdb_map_mib", json_integer((json_int_t)o->map_mib));
    json_object_set_new(set, "total_s", json_real(total_s));
    json_object_set_new(root, "settings", set);
    json_t *results = json_array();
    for (size_t i = 0; i < nb; i++) {
        const backend *b = &bs[i];
        const char *api = !b->res[ARM_RAW]                    ? "none"
                          : b->plugin.engine == ENGINE_SQLITE ? "sqlite3_*"
                                                              : "mdb_*";
        for (int w = 0; w < W_COUNT; w++) {
            json_t *r = json_object();
            json_object_set_new(r, "backend", json_string(b->plugin.desc->name));
            json_object_set_new(r, "plugin_path", json_string(b->plugin.path));
            json_object_set_new(r, "raw_api", json_string(api));
            json_object_set_new(r, "workload", json_string(workloads[w].id));
            json_object_set_new(r, "label", json_string(workloads[w].label));
            json_object_set_new(r, "unit", json_string(workloads[w].unit));
            json_object_set_new(r, "ops", json_integer((json_int_t)phase_ops(w, d, &b->c)));
            json_object_set_new(r, "plugin", phases_json(b->res[ARM_PLUGIN], w, o->repeats));
            if (b->res[ARM_RAW])
                json_object_set_new(r, "raw", phases_json(b->res[ARM_RAW], w, o->repeats));
            json_array_append_new(results, r);
        }
    }
    json_object_set_new(root, "results", results);
    int rc = json_dump_file(root, o->json, JSON_INDENT(2) | JSON_REAL_PRECISION(8));
    json_decref(root);
    FILE *f = rc == 0 ? fopen(o->json, "a") : NULL;
    /* jansson ends the file without a newline; the other results files have one. */
    if (!f || fputc('\n', f) == EOF || fclose(f) != 0) {
        fail("cannot write %s", o->json);
        return -1;
    }
    return 0;
}

/* Sizes the phases that can be repeated from the warm-up so that each lasts about opts.phase_ms on
 * the faster of the two arms: long enough that a scheduling hiccup is small beside it, the same for
 * both. */
static void calibrate(backend *b, const opts *o, const dataset *d, phase warm[2][W_COUNT])
{
    double target = o->phase_ms / 1000.0, want[W_COUNT] = {0};
    for (int w = W_PUT_SEQ; w <= W_SCAN; w++)
        for (int i = 0; i < (b->res[ARM_RAW] ? 2 : 1); i++)
            if (rate(&warm[i][w]) * target > want[w]) want[w] = rate(&warm[i][w]) * target;
    double lo = 1000, hi = 100.0 * (double)d->n;
    b->c.get = (size_t)(want[W_GET] < lo ? lo : want[W_GET] > hi ? hi : want[W_GET]);
    b->c.get1 = (size_t)(want[W_GET1] < lo ? lo : want[W_GET1] > hi ? hi : want[W_GET1]);
    double rounds = want[W_PUT_SEQ] / (double)d->n + 0.5;
    b->c.seq_rounds = rounds < 1 ? 1 : rounds > MAX_SEQ_ROUNDS ? MAX_SEQ_ROUNDS : (size_t)rounds;
    double passes = want[W_SCAN] / (double)d->n + 0.5;
    b->c.scan_passes = passes < 1 ? 1 : passes > 10000 ? 10000 : (size_t)passes;
}

/* ---------------------------------------------------------------------------------------------
 * Main
 * ------------------------------------------------------------------------------------------- */
static void usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [options] [PLUGIN.so ...]\n"
            "  --keys N        keys of the key/value workloads (default 100000)\n"
            "  --txn N         puts, batched gets and write-shape ops per transaction (default "
            "1000)\n"
            "  --ws-ops N      server write-shape ops per Sync level (default 20000)\n"
            "  --repeats N     measured runs of every arm, after one warm-up (default 5)\n"
            "  --phase-ms N    how long each read phase should take (default 300)\n"
            "  --sync S        Sync of the key/value workloads: full, normal, off (default off)\n"
            "  --map-mib N     LMDB map for plugin and raw alike (default 1024, or what N keys "
            "need)\n"
            "  --dir D         where the temporary databases go (default $TMPDIR or /tmp)\n"
            "  --json FILE     write every figure and the machine's description there\n"
            "  --git-commit C, --git-dirty   recorded in the JSON\n"
            "  -v              plugin log lines below warnings too\n"
            "Without PLUGIN.so arguments: every storage plugin in <this program's dir>/plugins.\n",
            prog);
}

static bool parse_size(const char *s, size_t lo, size_t hi, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || !*s || v < lo || v > hi) return false;
    *out = (size_t)v;
    return true;
}

/* The storage plugins in <dir of this program>/plugins, as paths in *out (caller frees). */
static int find_plugins(char ***out, size_t *n)
{
    char exe[PATH_MAX];
    ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (l <= 0) {
        fail("cannot find this program's directory: %s", strerror(errno));
        return -1;
    }
    exe[l] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    char dir[PATH_MAX];
    if ((size_t)snprintf(dir, sizeof dir, "%s/plugins", exe) >= sizeof dir) {
        fail("path too long: %s", exe);
        return -1;
    }
    struct dirent **ents = NULL;
    int ne = scandir(dir, &ents, NULL, alphasort);
    if (ne < 0) {
        fail("cannot read %s: %s", dir, strerror(errno));
        return -1;
    }
    char **paths = calloc((size_t)ne + 1, sizeof *paths);
    size_t np = 0;
    int rc = paths ? 0 : -1;
    for (int i = 0; i < ne; i++) {
        size_t nl = strlen(ents[i]->d_name);
        if (rc == 0 && nl > 3 && strcmp(ents[i]->d_name + nl - 3, ".so") == 0) {
            size_t pl = strlen(dir) + nl + 2;
            paths[np] = malloc(pl);
            if (!paths[np])
                rc = -1;
            else
                snprintf(paths[np++], pl, "%s/%s", dir, ents[i]->d_name);
        }
        free(ents[i]);
    }
    free(ents);
    if (rc != 0) {
        for (size_t i = 0; i < np; i++)
            free(paths[i]);
        free(paths);
        fail("out of memory");
        return -1;
    }
    *out = paths;
    *n = np;
    return 0;
}

static void print_table(const opts *o, const backend *bs, size_t nb)
{
    printf("\n%-7s %-44s %11s %23s %11s %23s %5s %11s %9s\n", "backend", "workload (per second)",
           "plugin", "min - max", "raw", "min - max", "ratio", "min - max", "cpu p/r");
    for (size_t i = 0; i < nb; i++) {
        const backend *b = &bs[i];
        for (int w = 0; w < W_COUNT; w++) {
            double v[2][256], busy[2][256], ratio[256];
            unsigned narms = b->res[ARM_RAW] ? 2 : 1;
            for (unsigned r = 0; r < o->repeats; r++)
                for (unsigned a = 0; a < narms; a++) {
                    const phase *p = &b->res[a][r][w];
                    v[a][r] = rate(p);
                    busy[a][r] = p->wall > 0 ? 100 * p->cpu / p->wall : 0;
                    ratio[r] = a == ARM_RAW && v[a][r] > 0 ? v[ARM_PLUGIN][r] / v[a][r] : 0;
                }
            char label[64];
            snprintf(label, sizeof label, "%s, %s", workloads[w].label, workloads[w].unit);
            stats p = stats_of(v[ARM_PLUGIN], o->repeats);
            printf("%-7s %-44.44s %11.0f %11.0f-%-11.0f", b->plugin.desc->name, label, p.median,
                   p.min, p.max);
            if (narms == 2) {
                stats r = stats_of(v[ARM_RAW], o->repeats), q = stats_of(ratio, o->repeats);
                printf(" %11.0f %11.0f-%-11.0f %5.2f %5.2f-%-5.2f %4.0f/%-4.0f%s", r.median, r.min,
                       r.max, q.median, q.min, q.max, stats_of(busy[0], o->repeats).median,
                       stats_of(busy[1], o->repeats).median, q.median < 0.8 ? " < 0.8" : "");
            }
            putchar('\n');
        }
    }
}

int main(int argc, char **argv)
{
    opts o = {.n = 100000,
              .txn = 1000,
              .ws_ops = 20000,
              .repeats = 5,
              .phase_ms = 300,
              .kv_sync = SYNC_OFF,
              .git_commit = "unknown"};
    size_t map = 0, reps = 5, phase_ms = 300;
    int first_plugin = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (!strcmp(a, "--keys") && v)
            ok = parse_size(argv[++i], 1000, 50000000, &o.n);
        else if (!strcmp(a, "--txn") && v)
            ok = parse_size(argv[++i], 1, 10000000, &o.txn);
        else if (!strcmp(a, "--ws-ops") && v)
            ok = parse_size(argv[++i], 1, 10000000, &o.ws_ops);
        else if (!strcmp(a, "--repeats") && v)
            ok = parse_size(argv[++i], 1, 255, &reps);
        else if (!strcmp(a, "--phase-ms") && v)
            ok = parse_size(argv[++i], 1, 600000, &phase_ms);
        else if (!strcmp(a, "--map-mib") && v)
            ok = parse_size(argv[++i], 1, (size_t)1 << 24, &map);
        else if (!strcmp(a, "--sync") && v) {
            i++;
            o.kv_sync = !strcmp(v, "full")     ? SYNC_FULL
                        : !strcmp(v, "normal") ? SYNC_NORMAL
                        : !strcmp(v, "off")    ? SYNC_OFF
                                               : -1;
            ok = o.kv_sync >= 0;
        } else if (!strcmp(a, "--dir") && v)
            o.dir = argv[++i];
        else if (!strcmp(a, "--json") && v)
            o.json = argv[++i];
        else if (!strcmp(a, "--git-commit") && v)
            o.git_commit = argv[++i];
        else if (!strcmp(a, "--git-dirty"))
            o.git_dirty = true;
        else if (!strcmp(a, "-v"))
            o.verbose = true;
        else if (a[0] != '-') {
            first_plugin = i;
            break;
        } else
            ok = false;
        if (!ok) {
            usage(argv[0]);
            return 2;
        }
    }
    o.repeats = (unsigned)reps;
    o.phase_ms = (unsigned)phase_ms;
    /* Room for both key spaces and the write shape with slack, so that neither arm's map ever
     * grows (the plugin would grow its own; the raw arm would fail). */
    size_t need_mib = (o.n * 2 * 600 + o.ws_ops * 2000) >> 20;
    o.map_mib = map ? map : (need_mib > 1024 ? need_mib : 1024);
    g_verbose = o.verbose;
    const char *tmp = getenv("TMPDIR");
    if (!o.dir) o.dir = tmp && *tmp ? tmp : "/tmp";

    char **found = NULL;
    size_t nfound = 0;
    if (first_plugin == argc && find_plugins(&found, &nfound) != 0) return 1;
    size_t ncand = first_plugin < argc ? (size_t)(argc - first_plugin) : nfound;
    backend *bs = calloc(ncand ? ncand : 1, sizeof *bs);
    size_t nb = 0;
    int rc = 1;
    dataset d = {0};
    char work[PATH_MAX] = "";
    if (!bs) {
        fail("out of memory");
        goto out;
    }
    for (size_t i = 0; i < ncand; i++) {
        const char *path = first_plugin < argc ? argv[first_plugin + (int)i] : found[i];
        int lr = plugin_load(path, &bs[nb].plugin);
        if (lr < 0) goto out;
        if (lr > 0) continue; /* not a storage plugin */
        backend *b = &bs[nb++];
        bool raw = b->plugin.engine != ENGINE_NONE;
        b->hosts = calloc(1, sizeof *b->hosts);
        b->res[ARM_PLUGIN] = calloc(o.repeats, sizeof *b->res[ARM_PLUGIN]);
        if (raw) b->res[ARM_RAW] = calloc(o.repeats, sizeof *b->res[ARM_RAW]);
        if (!b->hosts || !b->res[ARM_PLUGIN] || (raw && !b->res[ARM_RAW])) {
            fail("out of memory");
            goto out;
        }
        for (int s = 0; s < 3; s++) {
            snprintf(b->hosts->cfg[s], sizeof b->hosts->cfg[s],
                     "{\"Sync\": \"%s\", \"MapSizeMiB\": %zu}", sync_names[s], o.map_mib);
            b->hosts->h[s] = (ld_host){
                .abi_major = LD_ABI_MAJOR,
                .abi_minor = LD_ABI_MINOR,
                .struct_size = (uint32_t)sizeof(ld_host),
                .log = host_log,
                .config_json = b->hosts->cfg[s],
                .data_dir = o.dir,
                .plugin_path = b->plugin.path,
            };
        }
        /* Until the warm-up sizes them. */
        b->c = (counts){
            .seq_rounds = 1, .get = o.n, .get1 = o.n / 4 > 1000 ? o.n / 4 : 1000, .scan_passes = 1};
        if (!raw)
            fprintf(stderr, "storage_bench: %s (%s) has no raw engine to compare with\n", path,
                    b->plugin.desc->name);
    }
    if (nb == 0) {
        fail("no storage plugin to measure");
        goto out;
    }
    if (dataset_init(&d, &o) != 0) goto out;
    if ((size_t)snprintf(work, sizeof work, "%s/ld-storage-bench-XXXXXX", o.dir) >= sizeof work ||
        !mkdtemp(work)) {
        fail("cannot make a directory in %s: %s", o.dir, strerror(errno));
        work[0] = '\0';
        goto out;
    }

    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%d-%H%M%S", &tm);
    printf("storage_bench: %zu keys of %u B with values of %u B, %zu per txn, Sync %s; write "
           "shape: %zu ops per Sync level; 1 warm-up + %u repeats; data in %s (%s)\n",
           d.n, KLEN, VLEN, d.txn, sync_names[o.kv_sync], d.ws_ops, o.repeats, work, fs_name(work));
    for (size_t i = 0; i < nb; i++)
        printf("  %s %s: %s%s\n", bs[i].plugin.desc->name,
               bs[i].plugin.desc->version ? bs[i].plugin.desc->version : "", bs[i].plugin.path,
               !bs[i].res[ARM_RAW]                    ? ""
               : bs[i].plugin.engine == ENGINE_SQLITE ? ", raw: sqlite3_* API"
                                                      : ", raw: mdb_* API");
    fflush(stdout);

    uint64_t sum = 0;
    timer all = timer_start();
    for (int r = -1; r < (int)o.repeats; r++) {
        for (size_t i = 0; i < nb; i++) {
            backend *b = &bs[i];
            phase warm[2][W_COUNT];
            phase *res[2] = {warm[0], warm[1]};
            if (r >= 0) {
                res[ARM_PLUGIN] = b->res[ARM_PLUGIN][r];
                res[ARM_RAW] = b->res[ARM_RAW] ? b->res[ARM_RAW][r] : warm[1];
            }
            if (run_repeat(b, &o, &d, work, r < 0 ? 0 : (unsigned)r, res, &sum) != 0) {
                fail("%s failed in %s", b->plugin.desc->name, r < 0 ? "the warm-up" : "a repeat");
                goto out;
            }
            if (r < 0) {
                calibrate(b, &o, &d, warm);
                fprintf(stderr,
                        "storage_bench: %s warmed up; phases sized to %zu ordered-put rounds, %zu "
                        "gets, %zu single gets, %zu scan passes\n",
                        b->plugin.desc->name, b->c.seq_rounds, b->c.get, b->c.get1,
                        b->c.scan_passes);
            } else {
                fprintf(stderr, "storage_bench: %s repeat %d/%u done\n", b->plugin.desc->name,
                        r + 1, o.repeats);
            }
        }
    }
    phase total;
    timer_stop(&all, 0, &total);
    print_table(&o, bs, nb);
    printf("\nPer second: median over %u repeats and min - max; ratio: plugin / raw of the same "
           "repeat; cpu p/r: CPU time over wall time, %% (plugin/raw). %.0f s in all "
           "(checksum %llu).\n",
           o.repeats, total.wall, (unsigned long long)sum);
    if (o.json) {
        if (write_json(&o, &d, bs, nb, stamp, work, total.wall) != 0) goto out;
        printf("wrote %s\n", o.json);
    }
    rc = 0;
out:
    if (work[0]) rm_tree(work);
    dataset_free(&d);
    for (size_t i = 0; bs && i < nb; i++) {
        free(bs[i].plugin.path);
        free(bs[i].hosts);
        free(bs[i].res[ARM_PLUGIN]);
        free(bs[i].res[ARM_RAW]);
    }
    free(bs);
    for (size_t i = 0; i < nfound; i++)
        free(found[i]);
    free(found);
    return rc;
}
