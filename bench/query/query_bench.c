/* bench/query: LiteQL scan speed in documents per second. Loads N documents (100k by default)
 * into a database through the server's own code (storage plugin, writer, group commit), runs a
 * WHERE scan and an ORDER BY ... LIMIT 10 through the same executor POST /api/query uses, and
 * beside it SQLite doing json_extract over the same JSON texts in an in-memory table, in the
 * same run; prints medians and the ratio litedist / SQLite for each storage plugin found. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "db/database.h"
#include "db/hlc.h"
#include "db/writer.h"
#include "query/exec.h"
#include "query/parser.h"
#include "storage/storage.h"
#include "util/log.h"

#ifndef LD_BENCH_PLUGIN_DIR
#define LD_BENCH_PLUGIN_DIR "."
#endif

/* The two statements measured, and SQLite's equivalents over a table docs(id, body). $.n is
 * spread over 0..99999, so half the documents pass $.n > 50000, and one in ten has tag 'k'. */
static const char *const Q_WHERE = "SELECT $ FROM c WHERE $.n > 50000 AND $.tag = 'k'";
static const char *const S_WHERE = "SELECT body FROM docs WHERE json_extract(body, '$.n') > 50000 "
                                   "AND json_extract(body, '$.tag') = 'k'";
static const char *const Q_ORDER = "SELECT $ FROM c ORDER BY $.n DESC LIMIT 10";
static const char *const S_ORDER =
    "SELECT body FROM docs ORDER BY json_extract(body, '$.n') DESC LIMIT 10";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Document i: about 150 bytes, with a number, a tag (one in ten is 'k'), text and an array. */
static int doc_text(int i, char *buf, size_t len)
{
    static const char *const tags[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "k"};
    long n = ((long)i * 7919) % 100000;
    return snprintf(buf, len,
                    "{\"Id\":\"d%07d\",\"n\":%ld,\"tag\":\"%s\",\"name\":\"customer %d\","
                    "\"price\":%d.%02d,\"items\":[%d,%d,%d],\"paid\":%s}",
                    i, n, tags[(i * 31) % 10], i % 977, i % 500, i % 100, i % 7, i % 11, i % 13,
                    i % 3 ? "true" : "false");
}

/* ---------------------------------------------------------------------------------------------
 * Loading through the writer
 * ------------------------------------------------------------------------------------------- */

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long done, failed;
} waiter;

/* The writer's completion: count and free the jobs (the server posts them to its loop). */
static void on_complete(void *ctx, ld_wjob *jobs)
{
    waiter *w = ctx;
    long n = 0, bad = 0;
    while (jobs) {
        ld_wjob *next = jobs->next;
        n++;
        if (jobs->result != LD_WR_OK) bad++;
        ld_wjob_free(jobs);
        jobs = next;
    }
    pthread_mutex_lock(&w->mu);
    w->done += n;
    w->failed += bad;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static bool load(ld_db *db, waiter *w, int ndocs)
{
    char buf[512];
    for (int i = 0; i < ndocs; i++) {
        ld_wjob *job = calloc(1, sizeof *job);
        int len = doc_text(i, buf, sizeof buf);
        char id[16];
        snprintf(id, sizeof id, "d%07d", i);
        if (!job || !(job->collection = strdup("c")) || !(job->id = strdup(id)) ||
            !(job->json = strndup(buf, (size_t)len))) {
            ld_wjob_free(job);
            return false;
        }
        job->kind = LD_W_PUT;
        job->json_len = (size_t)len;
        job->may_create = job->may_update = true;
        ld_writer_submit(db->writer, job);
        /* Keep at most a few batches queued, as concurrent clients would. */
        pthread_mutex_lock(&w->mu);
        while (i + 1 - w->done > 5000)
            pthread_cond_wait(&w->cv, &w->mu);
        pthread_mutex_unlock(&w->mu);
    }
    pthread_mutex_lock(&w->mu);
    while (w->done < ndocs)
        pthread_cond_wait(&w->cv, &w->mu);
    bool ok = w->failed == 0;
    pthread_mutex_unlock(&w->mu);
    return ok;
}

/* ---------------------------------------------------------------------------------------------
 * The two engines
 * ------------------------------------------------------------------------------------------- */

/* Runs a LiteQL SELECT once; returns seconds, with the rows returned in *rows. */
static double run_liteql(ld_store *store, ld_db *db, const char *q, uint64_t *rows)
{
    ld_ql_error err;
    ld_ql_limits lim = {.max_length = 65536, .max_depth = 64};
    ld_ql_stmt *s = ld_ql_parse(q, strlen(q), &lim, &err);
    if (!s) {
        fprintf(stderr, "query_bench: %s: %s\n", q, err.msg);
        exit(1);
    }
    ld_ql_select_opts o = {.row_limit = 10000};
    ld_ql_result res;
    double t0 = now_s();
    ld_txn t;
    ld_status st = ld_txn_begin(store, db->st, false, &t);
    if (st == LD_OK) {
        st = ld_ql_select(&t, db->ix_shared, s, &o, &res, &err);
        ld_txn_abort(&t);
    }
    double dt = now_s() - t0;
    if (st != LD_OK) {
        fprintf(stderr, "query_bench: %s: %s %s\n", q, ld_status_str(st), err.msg);
        exit(1);
    }
    *rows = res.returned;
    ld_ql_result_free(&res);
    ld_ql_stmt_free(s);
    return dt;
}

/* Runs an SQLite statement once, copying every row's text as a client would read it. */
static double run_sqlite(sqlite3 *db, const char *sql, uint64_t *rows)
{
    sqlite3_stmt *st;
    double t0 = now_s();
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "query_bench: sqlite: %s\n", sqlite3_errmsg(db));
        exit(1);
    }
    uint64_t n = 0;
    size_t bytes = 0;
    char *copy = NULL;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *body = sqlite3_column_text(st, 0);
        size_t len = (size_t)sqlite3_column_bytes(st, 0);
        char *p = realloc(copy, bytes + len + 1);
        if (!p) exit(1);
        copy = p;
        memcpy(copy + bytes, body, len);
        bytes += len;
        n++;
    }
    sqlite3_finalize(st);
    free(copy);
    *rows = n;
    return now_s() - t0;
}

static sqlite3 *sqlite_load(int ndocs)
{
    sqlite3 *db;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) return NULL;
    sqlite3_exec(db, "CREATE TABLE docs(id TEXT PRIMARY KEY, body TEXT) WITHOUT ROWID", NULL, NULL,
                 NULL);
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    sqlite3_stmt *ins;
    sqlite3_prepare_v2(db, "INSERT INTO docs VALUES (?1, ?2)", -1, &ins, NULL);
    char buf[512], id[16];
    for (int i = 0; i < ndocs; i++) {
        int len = doc_text(i, buf, sizeof buf);
        snprintf(id, sizeof id, "d%07d", i);
        sqlite3_bind_text(ins, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 2, buf, len, SQLITE_TRANSIENT);
        sqlite3_step(ins);
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    return db;
}

/* ---------------------------------------------------------------------------------------------
 * One backend
 * ------------------------------------------------------------------------------------------- */

static int bench_plugin(const char *plugin, const char *name, int ndocs, int repeat, sqlite3 *sq)
{
    char dir[] = "/tmp/ld-query-bench-XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "query_bench: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    char err[512];
    ld_store store;
    if (ld_store_init(&store, plugin, NULL, "{\"Sync\":\"off\"}", dir, err, sizeof err) != LD_OK) {
        fprintf(stderr, "query_bench: %s\n", err);
        rmdir(dir);
        return 1;
    }
    ld_hlc clock;
    ld_hlc_init(&clock, NULL);
    waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    ld_db_env env = {.store = &store,
                     .clock = &clock,
                     .node_id = "bench",
                     .dir = dir,
                     .writer_batch_max = 1000,
                     .complete = on_complete,
                     .complete_ctx = &w};
    ld_db *db;
    ld_status st = ld_db_open(&env, "bench", &db);
    if (st != LD_OK) {
        fprintf(stderr, "query_bench: open: %s\n", ld_status_str(st));
        ld_store_destroy(&store);
        rmdir(dir);
        return 1;
    }
    double t0 = now_s();
    if (!load(db, &w, ndocs)) {
        fprintf(stderr, "query_bench: loading failed\n");
        return 1;
    }
    double load_s = now_s() - t0;

    struct {
        const char *label, *q, *sql;
    } cases[] = {
        {"WHERE $.n > X AND $.tag = 'k'", Q_WHERE, S_WHERE},
        {"ORDER BY $.n DESC LIMIT 10", Q_ORDER, S_ORDER},
    };
    printf("\n%s: %d documents loaded through the writer in %.2f s (%.0f docs/s, Sync off)\n", name,
           ndocs, load_s, ndocs / load_s);
    printf("%-32s %14s %14s %8s %7s\n", "query (median of runs)", "litedist doc/s", "sqlite doc/s",
           "ratio", "rows");
    int rc = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double tl[64], ts[64];
        uint64_t rl = 0, rs = 0;
        for (int r = 0; r < repeat; r++) { /* interleaved, so drift hits both alike */
            tl[r] = run_liteql(&store, db, cases[c].q, &rl);
            ts[r] = run_sqlite(sq, cases[c].sql, &rs);
        }
        double ml = median(tl, repeat), ms = median(ts, repeat);
        printf("%-32s %14.0f %14.0f %8.2f %7llu\n", cases[c].label, ndocs / ml, ndocs / ms, ms / ml,
               (unsigned long long)rl);
        if (rl != rs) {
            fprintf(stderr, "query_bench: %s: litedist returned %llu rows, sqlite %llu\n",
                    cases[c].label, (unsigned long long)rl, (unsigned long long)rs);
            rc = 1;
        }
    }
    ld_db_close(db, true);
    ld_hlc_destroy(&clock);
    ld_store_destroy(&store);
    rmdir(dir);
    return rc;
}

int main(int argc, char **argv)
{
    int ndocs = 100000, repeat = 5;
    const char *plugin_dir = LD_BENCH_PLUGIN_DIR;
    static const struct option opts[] = {
        {"docs", required_argument, NULL, 'n'},
        {"repeat", required_argument, NULL, 'r'},
        {"plugin-dir", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "n:r:p:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            ndocs = atoi(optarg);
            break;
        case 'r':
            repeat = atoi(optarg);
            break;
        case 'p':
            plugin_dir = optarg;
            break;
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: query_bench [--docs N (100000)] [--repeat R (5)] [--plugin-dir DIR]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (ndocs < 1 || repeat < 1 || repeat > 64) {
        fprintf(stderr, "query_bench: --docs must be positive and --repeat 1..64\n");
        return 2;
    }
    if (sodium_init() < 0) return 1;
    ld_log_set_level(LD_LOG_WARN);
    sqlite3 *sq = sqlite_load(ndocs);
    if (!sq) return 1;
    printf("LiteQL scans beside SQLite %s json_extract (in-memory table of the same %d JSON "
           "texts)\nratio = litedist docs/s / sqlite docs/s\n",
           sqlite3_libversion(), ndocs);
    const char *names[] = {"storage-sqlite", "storage-lmdb"};
    int rc = 0, ran = 0;
    for (size_t i = 0; i < 2; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.so", plugin_dir, names[i]);
        if (access(path, R_OK) != 0) continue;
        rc |= bench_plugin(path, names[i], ndocs, repeat, sq);
        ran++;
    }
    sqlite3_close(sq);
    if (!ran) {
        fprintf(stderr, "query_bench: no storage plugin in %s\n", plugin_dir);
        return 1;
    }
    return rc;
}
