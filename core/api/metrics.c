/* GET /metrics: every family in the Prometheus text exposition format 0.0.4 (docs/operations.md
 * lists them). Counters are read from where they are kept (node stats, each database's commit
 * histograms, replication links); gauges are computed now. No key unless Node.MetricsApiKey is
 * set, then "Authorization: Bearer <key>" (what Prometheus' scrape config sends). */
#include <dirent.h>
#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <sodium.h>

#include "../db/memo.h"
#include "../cache/sweeper.h"
#include "../util/timeutil.h"
#include "../http/conns.h"
#include "../http/router.h"
#include "../repl/repl.h"
#include "../resp/server.h"
#include "../util/looplag.h"
#include "../util/timeutil.h"
#include "../util/workers.h"
#include "api.h"

static const char *const class_names[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
static const char *const auth_fail_names[LD_AUTHFAIL_N] = {
    "missing_key",     "unknown_key", "database_denied", "role_denied",
    "replication_key", "metrics_key", "plugin_error"};

static bool requested(ld_node *n, size_t route)
{
    for (int c = 0; c < 5; c++)
        if (ld_counter_get(&n->stats.http_requests[route][c])) return true;
    return false;
}

static void http_families(ld_node *n, ld_mx *w)
{
    size_t nr = ld_router_count();
    const char *fam = "litedist_http_requests_total";
    ld_mx_family(w, fam, "counter", "HTTP requests answered, by route template and status class.");
    for (size_t i = 0; i <= nr; i++) {
        const char *method;
        const char *route = ld_router_template(i, &method);
        for (int c = 0; c < 5; c++) {
            uint64_t v = ld_counter_get(&n->stats.http_requests[i][c]);
            if (!v && c != 1) continue; /* keep the output short: 2xx always, others once seen */
            const char *labels[] = {"method",       method,         "route", route,
                                    "status_class", class_names[c], NULL};
            ld_mx_sample_u64(w, fam, labels, v);
        }
    }
    fam = "litedist_http_request_duration_seconds";
    ld_mx_family(w, fam, "histogram",
                 "Time from a request read in full to its answer, by route template.");
    for (size_t i = 0; i <= nr; i++) {
        const char *method;
        const char *route = ld_router_template(i, &method);
        const char *labels[] = {"method", method, "route", route, NULL};
        if (!ld_counter_get(&n->stats.http_requests[i][1]) && !requested(n, i))
            continue; /* a route never asked for has no series yet: 19 lines each */
        ld_mx_hist(w, fam, labels, &ld_buckets_seconds, &n->stats.http_seconds[i]);
    }
    ld_mx_family(w, "litedist_http_connections_open", "gauge", "Client connections open.");
    ld_mx_sample_u64(w, "litedist_http_connections_open", NULL, ld_conns_open(n->conns));
    ld_mx_family(w, "litedist_http_requests_in_flight", "gauge",
                 "Requests waiting for a writer, a worker or a delayed answer.");
    ld_mx_sample(w, "litedist_http_requests_in_flight", NULL, (double)n->inflight);
    const struct {
        const char *name;
        ld_workers *pool;
    } pools[] = {{"queries", n->workers}, {"replication", n->repl_workers}};
    size_t queued[2];
    uint64_t finished[2];
    for (size_t i = 0; i < 2; i++)
        ld_workers_stats(pools[i].pool, &queued[i], &finished[i]);
    fam = "litedist_worker_jobs_total";
    ld_mx_family(w, fam, "counter", "Reads run to their end by a worker pool, by pool.");
    for (size_t i = 0; i < 2; i++) {
        const char *labels[] = {"pool", pools[i].name, NULL};
        ld_mx_sample_u64(w, fam, labels, finished[i]);
    }
    fam = "litedist_worker_queue_length";
    ld_mx_family(w, fam, "gauge", "Reads waiting for a worker of the pool, by pool.");
    for (size_t i = 0; i < 2; i++) {
        const char *labels[] = {"pool", pools[i].name, NULL};
        ld_mx_sample(w, fam, labels, (double)queued[i]);
    }
    fam = "litedist_auth_failures_total";
    ld_mx_family(w, fam, "counter", "Requests refused for their credentials, by reason.");
    for (int i = 0; i < LD_AUTHFAIL_N; i++) {
        const char *labels[] = {"reason", auth_fail_names[i], NULL};
        ld_mx_sample_u64(w, fam, labels, ld_counter_get(&n->stats.auth_failures[i]));
    }
}

/* Per database: background index steps (builds, a dropped index's deletions) that failed and
 * were retried after a backoff (index.h ld_index_retry_delay_us). */
static void index_step_families(ld_mx *w, ld_db **dbs, size_t ndb)
{
    const char *fam = "litedist_index_step_failures_total";
    ld_mx_family(w, fam, "counter",
                 "Background index build or drop steps that failed (each is retried later).");
    for (size_t i = 0; i < ndb; i++) {
        const char *labels[] = {"database", dbs[i]->name, NULL};
        pthread_mutex_lock(&dbs[i]->mu);
        uint64_t n = dbs[i]->ix_step_failures;
        pthread_mutex_unlock(&dbs[i]->mu);
        ld_mx_sample_u64(w, fam, labels, n);
    }
}

/* Per database, Node.CacheDurability everysec (db/writer.h): how often lazily committed cache
 * writes were made durable, how long ago the last time, and whether some wait for it now. */
static void cache_flush_families(ld_mx *w, ld_db **dbs, size_t ndb)
{
    uint64_t now = ld_wall_ms();
    ld_mx_family(w, "litedist_cache_flush_total", "counter",
                 "Times everysec cache writes committed without fsync were made durable.");
    for (size_t i = 0; i < ndb; i++) {
        const char *labels[] = {"database", dbs[i]->name, NULL};
        pthread_mutex_lock(&dbs[i]->mu);
        uint64_t n = dbs[i]->cache_flushes;
        pthread_mutex_unlock(&dbs[i]->mu);
        ld_mx_sample_u64(w, "litedist_cache_flush_total", labels, n);
    }
    ld_mx_family(w, "litedist_cache_flush_age_seconds", "gauge",
                 "Seconds since everysec cache writes were last made durable (only after one).");
    for (size_t i = 0; i < ndb; i++) {
        const char *labels[] = {"database", dbs[i]->name, NULL};
        pthread_mutex_lock(&dbs[i]->mu);
        uint64_t at = dbs[i]->cache_flush_ms;
        pthread_mutex_unlock(&dbs[i]->mu);
        if (at)
            ld_mx_sample(w, "litedist_cache_flush_age_seconds", labels,
                         (double)(now > at ? now - at : 0) / 1000.0);
    }
    ld_mx_family(w, "litedist_cache_unflushed", "gauge",
                 "1 while everysec cache writes wait for the fsync that makes them durable.");
    for (size_t i = 0; i < ndb; i++) {
        const char *labels[] = {"database", dbs[i]->name, NULL};
        pthread_mutex_lock(&dbs[i]->mu);
        bool waiting = dbs[i]->cache_unflushed;
        pthread_mutex_unlock(&dbs[i]->mu);
        ld_mx_sample_u64(w, "litedist_cache_unflushed", labels, waiting ? 1 : 0);
    }
}

/* Per database: the loop's read memo (db/memo.h; read here, on the loop thread). */
static void read_cache_families(ld_mx *w, ld_db **dbs, size_t ndb)
{
    ld_mx_family(w, "litedist_read_cache_lookups_total", "counter",
                 "Point reads looked up in the read memo (Node.ReadCacheKiB), by result.");
    for (size_t i = 0; i < ndb; i++) {
        uint64_t hits, misses;
        size_t bytes;
        ld_memo_stats(dbs[i]->memo, &hits, &misses, &bytes);
        const char *hit[] = {"database", dbs[i]->name, "result", "hit", NULL};
        const char *miss[] = {"database", dbs[i]->name, "result", "miss", NULL};
        ld_mx_sample_u64(w, "litedist_read_cache_lookups_total", hit, hits);
        ld_mx_sample_u64(w, "litedist_read_cache_lookups_total", miss, misses);
    }
    ld_mx_family(w, "litedist_read_cache_bytes", "gauge",
                 "Bytes of keys and records the read memo holds.");
    for (size_t i = 0; i < ndb; i++) {
        uint64_t hits, misses;
        size_t bytes;
        ld_memo_stats(dbs[i]->memo, &hits, &misses, &bytes);
        const char *labels[] = {"database", dbs[i]->name, NULL};
        ld_mx_sample_u64(w, "litedist_read_cache_bytes", labels, bytes);
    }
}

/* Per database: group commits, op log, bytes on disk. dbs[i] are registry references. */
static void db_families(ld_node *n, ld_mx *w, ld_db **dbs, size_t ndb)
{
    ld_mx_family(w, "litedist_db_commit_writes", "histogram",
                 "Writes per group commit (one storage transaction), per database.");
    for (size_t i = 0; i < ndb; i++) {
        const char *labels[] = {"database", dbs[i]->name, NULL};
        ld_mx_hist(w, "litedist_db_commit_writes", labels, &ld_buckets_ops, &dbs[i]->commit_ops);
    }
    ld_mx_family(w, "litedist_db_commit_duration_seconds", "histogram",
                 "Time of one group commit, from its transaction's start to its commit.");
    for (size_t i = 0; i < ndb; i++) {
        const char *labels[] = {"database", dbs[i]->name, NULL};
        ld_mx_hist(w, "litedist_db_commit_duration_seconds", labels, &ld_buckets_commit_seconds,
                   &dbs[i]->commit_seconds);
    }
    cache_flush_families(w, dbs, ndb);
    read_cache_families(w, dbs, ndb);
    index_step_families(w, dbs, ndb);
    ld_db_state *st = calloc(ndb ? ndb : 1, sizeof *st);
    if (!st) {
        w->failed = true;
        return;
    }
    for (size_t i = 0; i < ndb; i++)
        ld_db_state_get(dbs[i], &st[i]);
    static const char *const fams[4][2] = {
        {"litedist_oplog_entries", "Entries in the operation log (appended minus pruned)."},
        {"litedist_oplog_oldest_sequence",
         "The oldest LogSequence the operation log still serves (0: empty)."},
        {"litedist_oplog_last_sequence", "The last LogSequence of the operation log."},
        {"litedist_oplog_bytes", "Bytes of the operation log's entries held (keys and values)."},
    };
    for (int k = 0; k < 4; k++) {
        ld_mx_family(w, fams[k][0], "gauge", fams[k][1]);
        for (size_t i = 0; i < ndb; i++) {
            const ld_db_state *s = &st[i];
            uint64_t pruned = s->pruned_through < s->last_seq ? s->pruned_through : s->last_seq;
            uint64_t v = k == 0   ? ld_log_span(s, pruned, s->last_seq)
                         : k == 1 ? (s->last_seq ? s->pruned_through + 1 : 0)
                         : k == 2 ? s->last_seq
                                  : s->log_bytes;
            const char *labels[] = {"database", dbs[i]->name, NULL};
            ld_mx_sample_u64(w, fams[k][0], labels, v);
        }
    }
    free(st);
    ld_mx_family(w, "litedist_database_size_bytes", "gauge",
                 "Bytes the database's files take on disk (documents, op log and indexes).");
    for (size_t i = 0; i < ndb; i++) {
        const char *labels[] = {"database", dbs[i]->name, NULL};
        ld_mx_sample_u64(w, "litedist_database_size_bytes", labels,
                         ld_store_size(&n->store, dbs[i]->st));
    }
    ld_mx_family(w, "litedist_databases", "gauge", "Logical databases open on this node.");
    ld_mx_sample_u64(w, "litedist_databases", NULL, ndb);
}

static void cache_families(ld_node *n, ld_mx *w, ld_db **dbs, size_t ndb)
{
    static const char *const keys[2][2] = {
        {"litedist_cache_live_keys", "Unexpired cache keys, as of the sweeper's last complete "
                                     "pass over the database."},
        {"litedist_cache_expired_keys", "Expired cache keys still stored (their bodies freed or "
                                        "about to be), as of that pass."},
    };
    for (int k = 0; k < 2; k++) {
        ld_mx_family(w, keys[k][0], "gauge", keys[k][1]);
        for (size_t i = 0; i < ndb; i++) {
            uint64_t live, expired;
            if (!ld_sweeper_counts(n->sweeper, dbs[i]->name, &live, &expired)) continue;
            const char *labels[] = {"database", dbs[i]->name, NULL};
            ld_mx_sample_u64(w, keys[k][0], labels, k ? expired : live);
        }
    }
    static const char *const fams[3][2] = {
        {"litedist_cache_sweeper_runs_total", "Cache sweeper runs started."},
        {"litedist_cache_sweeper_scanned_entries_total", "Cache entries the sweeper scanned."},
        {"litedist_cache_expired_entries_freed_total",
         "Expired cache entries whose bodies the sweeper freed."},
    };
    const ld_counter *c[3] = {&n->stats.sweeper_runs, &n->stats.sweeper_scanned,
                              &n->stats.sweeper_freed};
    for (int k = 0; k < 3; k++) {
        ld_mx_family(w, fams[k][0], "counter", fams[k][1]);
        ld_mx_sample_u64(w, fams[k][0], NULL, ld_counter_get(c[k]));
    }
    /* The RESP listener (docs/resp.md): zero when Resp.Enabled is false. */
    ld_mx_family(w, "litedist_resp_commands_total", "counter",
                 "Commands the RESP (Redis protocol) listener ran.");
    ld_mx_sample_u64(w, "litedist_resp_commands_total", NULL,
                     ld_counter_get(&n->stats.resp_commands));
    ld_mx_family(w, "litedist_resp_connections", "gauge", "RESP connections open.");
    ld_mx_sample_u64(w, "litedist_resp_connections", NULL, ld_resp_open(n->resp));
}

/* How late the event loop ran a 5 ms timer (util/looplag.h): how long it was busy elsewhere. */
static void loop_families(ld_node *n, ld_mx *w)
{
    if (!n->looplag) return;
    ld_looplag_stats st;
    ld_looplag_get(n->looplag, &st);
    const char *fam = "litedist_event_loop_lag_seconds";
    ld_mx_family(w, fam, "histogram",
                 "How late the event loop ran a timer due every 5 ms: its longest iterations.");
    uint64_t cum = 0;
    for (size_t i = 0; i < LD_LOOPLAG_BUCKETS; i++) {
        char le[32];
        if (i < LD_LOOPLAG_BUCKETS - 1)
            snprintf(le, sizeof le, "%g", (double)LD_LOOPLAG_BOUNDS_US[i] / 1e6);
        else
            snprintf(le, sizeof le, "+Inf");
        cum += st.buckets[i];
        const char *labels[] = {"le", le, NULL};
        ld_mx_sample_u64(w, "litedist_event_loop_lag_seconds_bucket", labels, cum);
    }
    ld_mx_sample(w, "litedist_event_loop_lag_seconds_sum", NULL, (double)st.sum_us / 1e6);
    ld_mx_sample_u64(w, "litedist_event_loop_lag_seconds_count", NULL, st.samples);
    ld_mx_family(w, "litedist_event_loop_lag_max_seconds", "gauge",
                 "The longest the event loop was late since start.");
    ld_mx_sample(w, "litedist_event_loop_lag_max_seconds", NULL, (double)st.max_us / 1e6);
}

/* The standard process_* metrics, from /proc/self (Linux). */
static void process_families(ld_node *n, ld_mx *w)
{
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    unsigned long utime = 0, stime = 0, vsize = 0;
    long rss = 0;
    FILE *f = fopen("/proc/self/stat", "r");
    if (f) {
        char buf[1024];
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        buf[len] = '\0';
        fclose(f);
        /* Fields after the command name, which may hold spaces: from the last ')'. */
        char *p = strrchr(buf, ')');
        if (!p || sscanf(p + 2,
                         "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d "
                         "%*d %*d %*u %lu %ld",
                         &utime, &stime, &vsize, &rss) != 4)
            utime = stime = vsize = 0, rss = 0;
    }
    size_t fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        for (struct dirent *e; (e = readdir(d));)
            if (e->d_name[0] != '.') fds++;
        closedir(d);
        fds--; /* the descriptor opendir itself holds */
    }
    struct rlimit rl = {0, 0};
    getrlimit(RLIMIT_NOFILE, &rl);
    ld_mx_family(w, "process_cpu_seconds_total", "counter", "User and system CPU time spent.");
    ld_mx_sample(w, "process_cpu_seconds_total", NULL,
                 tick > 0 ? (double)(utime + stime) / (double)tick : 0.0);
    ld_mx_family(w, "process_resident_memory_bytes", "gauge", "Resident memory size.");
    ld_mx_sample(w, "process_resident_memory_bytes", NULL, (double)rss * (double)page);
    ld_mx_family(w, "process_virtual_memory_bytes", "gauge", "Virtual memory size.");
    ld_mx_sample(w, "process_virtual_memory_bytes", NULL, (double)vsize);
    ld_mx_family(w, "process_open_fds", "gauge", "Open file descriptors.");
    ld_mx_sample_u64(w, "process_open_fds", NULL, fds);
    ld_mx_family(w, "process_max_fds", "gauge", "The open-file limit (soft).");
    ld_mx_sample(w, "process_max_fds", NULL,
                 rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur);
    ld_mx_family(w, "process_start_time_seconds", "gauge",
                 "When the process started, in seconds since the Unix epoch.");
    ld_mx_sample(w, "process_start_time_seconds", NULL, (double)n->started_ms / 1000.0);
}

/* evbuffer cleanups: the answer was sent (or its connection went) from the node's kept buffer,
 * or from one of its own made while the kept one was busy. */
static void release_kept(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    ((ld_node *)arg)->metrics_busy = false;
}

static void release_own(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    free((void *)data);
}

/* Node.MetricsApiKey, when set: "Authorization: Bearer <key>", compared in constant time. */
static bool metrics_key_ok(ld_req *r)
{
    const char *want = r->node->cfg.metrics_api_key;
    if (!want) return true;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(r->ev), "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return false;
    const char *got = h + 7;
    while (*got == ' ')
        got++;
    size_t n = strlen(want);
    return strlen(got) == n && sodium_memcmp(got, want, n) == 0;
}

void ld_api_metrics(ld_req *r)
{
    ld_node *n = r->node;
    if (!metrics_key_ok(r)) {
        ld_counter_add(&n->stats.auth_failures[LD_AUTHFAIL_METRICS_KEY], 1);
        evhttp_add_header(evhttp_request_get_output_headers(r->ev), "WWW-Authenticate",
                          "Bearer realm=\"litedist metrics\"");
        ld_reply_error(r, 401,
                       "GET /metrics needs Node.MetricsApiKey as 'Authorization: Bearer "
                       "<key>'.");
        return;
    }
    /* The text goes into the buffer kept from the last scrape (no fresh memory to fault in)
     * unless that one is still being sent; either way the answer refers to it, uncopied. */
    bool own = !n->metrics_busy;
    ld_mx w = {.buf = own ? n->metrics_buf : NULL, .cap = own ? n->metrics_cap : 0};
    size_t nnames = 0, ndb = 0;
    char **names = ld_registry_names(&n->reg, &nnames);
    ld_db **dbs = calloc(nnames ? nnames : 1, sizeof *dbs);
    struct evbuffer *out = evbuffer_new();
    bool ok = out && names && dbs;
    if (ok) {
        for (size_t i = 0; i < nnames; i++)
            if ((dbs[ndb] = ld_registry_get(&n->reg, names[i]))) ndb++;
        ld_mx_family(&w, "litedist_build_info", "gauge", "The litedist version running (1).");
        const char *labels[] = {"version", LD_VERSION, "node_id", n->node_id, NULL};
        ld_mx_sample(&w, "litedist_build_info", labels, 1);
        http_families(n, &w);
        db_families(n, &w, dbs, ndb);
        ld_repl_metrics(n->repl, &w);
        cache_families(n, &w, dbs, ndb);
        loop_families(n, &w);
        process_families(n, &w);
        ok = ld_mx_finish(&w);
    }
    for (size_t i = 0; i < ndb; i++)
        ld_registry_release(&n->reg, dbs[i]);
    free(dbs);
    if (names) ld_registry_names_free(names, nnames);
    if (own) { /* realloc may have moved it */
        n->metrics_buf = w.buf;
        n->metrics_cap = w.cap;
    }
    if (ok)
        ok = evbuffer_add_reference(out, w.buf, w.len, own ? release_kept : release_own,
                                    own ? (void *)n : NULL) == 0;
    if (!ok) {
        if (!own) free(w.buf);
        if (out) evbuffer_free(out);
        ld_reply_error(r, 500, "Out of memory.");
        return;
    }
    if (own) n->metrics_busy = true;
    ld_reply_bytes(r, 200, "text/plain; version=0.0.4; charset=utf-8", out);
    evbuffer_free(out);
}
