/* The replication scheduler (see repl.h). One link per (database, peer): a cycle pushes our log
 * after the push checkpoint, then pulls the peer's after the pull checkpoint, each until caught
 * up; failures back off exponentially with jitter; a sweep re-runs every link periodically and
 * compares (VV, digest) with the peer to detect divergence. */
#include "repl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "../db/registry.h"
#include "../http/tls.h"
#include "../db/writer.h"
#include "../node.h"
#include "../util/jsonbuf.h"
#include "../util/jsonget.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "../util/timeutil.h"
#include "ingest.h"
#include "oplog.h"
#include "../ws/ws.h"
#include "peers.h"
#include "probe.h"
#include "wire.h"

#define BACKOFF_BASE_MS 1000
#define BACKOFF_CAP_MS  30000
#define JITTER_MS       250
/* How long after answering a peer's pull with HasMore we expect its next pull (see
 * ld_repl_peer_pulled); past it, pushes to that peer resume. */
#define PEER_PULLING_MS 5000
/* How long after the peer's last push to us a cycle leaves out its pull: the peer's pushes are
 * delivering its log, and a pull beside them would mostly fetch the same entries again. */
#define PEER_PUSHING_MS 2000

typedef enum { PH_IDLE, PH_PUSH, PH_PULL, PH_INGEST } phase;

typedef struct ld_link {
    ld_repl *repl;
    char db[LD_DB_NAME_MAX + 1];
    char peer[LD_NODE_ID_MAX + 1];
    char *base_url;
    bool active, removed;
    struct evhttp_connection *conn; /* kept alive; https: tconn's */
    ld_tls_http *tconn;             /* https: replaced once its socket is gone (tls.h) */
    ld_peer_addr addr;              /* where BaseUrl points */
    struct event *retry_ev;

    phase ph;
    bool queued, again, loaded;
    int failures;
    uint64_t next_retry_wall;
    uint64_t push_ckpt, pull_ckpt;
    size_t push_limit; /* ops per push; halved on 413 */
    uint64_t *sent;    /* LogSequences of the push in flight */
    size_t n_sent;
    uint64_t sent_last;

    bool online;
    uint64_t last_success_wall, last_attempt_wall;
    char last_error[256];
    uint64_t peer_max;           /* the peer's LocalMaxLogSequence at the last pull */
    uint64_t peer_pulling_until; /* monotonic ms: the peer is catching up by pulling from us */
    uint64_t peer_pushed_at;     /* monotonic ms: the peer's last push to us arrived */
    bool must_pull;              /* a sweep asked for a cycle: it pulls whatever the peer does */
    /* The peer's version vector as it last told us (its pull request, or the answer to our
     * push): pushes skip the entries it has, which in a mesh it mostly got from their origin. */
    json_t *peer_vv;
    uint64_t local_max; /* ours at the last push read */
    /* Since this process started, for the status route: ops the peer acknowledged / ops pulled
     * and processed, and how many of each the receiving side already held. A restarted node's
     * duplicates show how much it re-moved (the fault test bounds them by one batch). */
    uint64_t ops_pushed, ops_pulled, push_dups, pull_dups;
    bool diverged;
    bool ckpt_saving, ckpt_dirty; /* a checkpoint save is in the writer; another is due */
} ld_link;

/* The WebSocket to one peer that carries our sync-request hints, dialled when first needed and
 * re-dialled after a backoff when it drops. */
typedef struct hint_conn {
    ld_repl *repl;
    char peer[LD_NODE_ID_MAX + 1];
    ld_ws_conn *c;
    int failures;
    uint64_t next_try_mono;
} hint_conn;

struct ld_repl {
    ld_node *node;
    struct evdns_base *dns; /* peers given by host name resolve without blocking the loop */
    hint_conn **hints;
    size_t n_hints;
    char *node_peers_path;
    char *db_peers_dir;
    ld_peer_list node_peers;
    ld_link **links;
    size_t n_links, cap_links;
    ld_link **queue; /* links waiting for a slot, FIFO */
    size_t n_queue, cap_queue;
    int running;
    struct event *sweep_ev;

    pthread_mutex_t mu; /* guards kicked: writer threads add, the loop drains */
    char (*kicked)[LD_DB_NAME_MAX + 1];
    size_t n_kicked, cap_kicked;
    struct event *kick_ev;
    uint64_t divergences;
    ld_probe *probe; /* reachability for the dashboard */
};

static void link_kick(ld_link *l, bool force);
static void step_push(ld_link *l);
static void step_pull(ld_link *l);
static void pull_next(ld_link *l);

/* ---------------------------------------------------------------------------------------------
 * Links
 * ------------------------------------------------------------------------------------------- */

static ld_link *link_find(ld_repl *r, const char *db, const char *peer)
{
    for (size_t i = 0; i < r->n_links; i++)
        if (!strcmp(r->links[i]->db, db) && !strcmp(r->links[i]->peer, peer)) return r->links[i];
    return NULL;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    link_kick(arg, true);
}

/* Points the link at base_url (a new connection when it changed). */
static bool link_set_url(ld_link *l, const char *base_url)
{
    if (l->base_url && !strcmp(l->base_url, base_url)) return true;
    if (!ld_peer_addr_parse(base_url, &l->addr)) return false;
    char *copy = strdup(base_url);
    if (!copy) return false;
    free(l->base_url);
    l->base_url = copy;
    if (l->conn && l->ph == PH_IDLE) {
        if (l->tconn)
            ld_tls_http_release(l->tconn);
        else
            evhttp_connection_free(l->conn);
        l->tconn = NULL;
        l->conn = NULL;
    }
    return true;
}

static ld_link *link_get(ld_repl *r, const char *db, const ld_peer *p)
{
    ld_link *l = link_find(r, db, p->id);
    if (!l) {
        if (r->n_links == r->cap_links) {
            size_t cap = r->cap_links ? 2 * r->cap_links : 8;
            ld_link **v = realloc(r->links, cap * sizeof *v);
            if (!v) return NULL;
            r->links = v;
            r->cap_links = cap;
        }
        l = calloc(1, sizeof *l);
        if (!l) return NULL;
        l->repl = r;
        snprintf(l->db, sizeof l->db, "%s", db);
        snprintf(l->peer, sizeof l->peer, "%s", p->id);
        l->push_limit = (size_t)r->node->cfg.repl_batch_size;
        l->retry_ev = evtimer_new(r->node->base, retry_cb, l);
        if (!l->retry_ev) {
            free(l);
            return NULL;
        }
        r->links[r->n_links++] = l;
    }
    if (!link_set_url(l, p->base_url)) return NULL;
    l->active = p->active;
    l->removed = false;
    return l;
}

static void link_free(ld_link *l)
{
    if (l->tconn)
        ld_tls_http_close(l->tconn); /* a request in flight goes without its callback */
    else if (l->conn)
        evhttp_connection_free(l->conn);
    if (l->retry_ev) event_free(l->retry_ev);
    free(l->sent);
    free(l->base_url);
    json_decref(l->peer_vv);
    free(l);
}

static char *db_peers_path(ld_repl *r, const char *db)
{
    size_t n = strlen(r->db_peers_dir) + strlen(db) + 8;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s.json", r->db_peers_dir, db);
    return p;
}

/* The peers of db: its own list over the node-wide one (same id: its own entry wins). */
static bool effective_peers(ld_repl *r, const char *db, ld_peer_list *out)
{
    memset(out, 0, sizeof *out);
    char *path = db_peers_path(r, db);
    char err[256];
    ld_peer_list own;
    bool ok = path && ld_peer_list_load(path, &own, err, sizeof err);
    free(path);
    if (!ok) {
        ld_log(LD_LOG_WARN, db, "peers: %s", err);
        memset(&own, 0, sizeof own);
    }
    for (size_t i = 0; i < r->node_peers.n; i++) {
        const ld_peer *p = &r->node_peers.v[i];
        if (!ld_peer_list_find(&own, p->id))
            ld_peer_list_upsert(&own, p->id, p->base_url, p->active, p->updated_ms);
    }
    *out = own;
    return true;
}

/* Brings the links of db in line with its peers. */
static void links_sync_db(ld_repl *r, const char *db)
{
    ld_peer_list peers;
    effective_peers(r, db, &peers);
    for (size_t i = 0; i < r->n_links; i++)
        if (!strcmp(r->links[i]->db, db) && !ld_peer_list_find(&peers, r->links[i]->peer))
            r->links[i]->removed = true;
    for (size_t i = 0; i < peers.n; i++)
        if (strcmp(peers.v[i].id, r->node->node_id) != 0) link_get(r, db, &peers.v[i]);
    ld_peer_list_free(&peers);
}

static void links_sync_all(ld_repl *r)
{
    size_t n;
    char **names = ld_registry_names(&r->node->reg, &n);
    for (size_t i = 0; names && i < n; i++)
        links_sync_db(r, names[i]);
    /* Links of databases that are gone stop. */
    for (size_t i = 0; i < r->n_links; i++) {
        bool found = false;
        for (size_t j = 0; names && j < n && !found; j++)
            found = !strcmp(names[j], r->links[i]->db);
        if (!found) r->links[i]->removed = true;
    }
    ld_registry_names_free(names, n);
}

/* ---------------------------------------------------------------------------------------------
 * Cycle control
 * ------------------------------------------------------------------------------------------- */

static void start_queued(ld_repl *r);

static bool queue_push(ld_repl *r, ld_link *l)
{
    if (r->n_queue == r->cap_queue) {
        size_t cap = r->cap_queue ? 2 * r->cap_queue : 8;
        ld_link **v = realloc(r->queue, cap * sizeof *v);
        if (!v) return false;
        r->queue = v;
        r->cap_queue = cap;
    }
    r->queue[r->n_queue++] = l;
    l->queued = true;
    return true;
}

static void cycle_begin(ld_link *l)
{
    ld_repl *r = l->repl;
    r->running++;
    l->last_attempt_wall = ld_wall_ms();
    if (!l->loaded) {
        /* The checkpoints from storage: what this link already moved in an earlier life. */
        ld_db *db = ld_registry_get(&r->node->reg, l->db);
        if (db) {
            ld_txn t;
            if (ld_txn_begin(db->env->store, db->st, false, &t) == LD_OK) {
                uint8_t key[LD_NODE_ID_MAX + 6];
                for (int push = 0; push < 2; push++) {
                    size_t kl = ld_ckpt_key(l->peer, push, key);
                    const void *v;
                    size_t vl;
                    uint64_t *ckpt = push ? &l->push_ckpt : &l->pull_ckpt;
                    /* ld_repl_peer_pulled may have moved it already: keep the larger. */
                    if (ld_txn_get(&t, LD_SPACE_CKPT, key, kl, &v, &vl) == LD_OK && vl == 8 &&
                        ld_be64_get(v) > *ckpt)
                        *ckpt = ld_be64_get(v);
                }
                ld_txn_abort(&t);
                l->loaded = true;
                /* After a restart this says how much will move again: what lies between these
                 * stored checkpoints and where the link was when the process ended. */
                ld_log(LD_LOG_INFO, l->db,
                       "replication with %s resumes after push checkpoint %" PRIu64
                       ", pull checkpoint %" PRIu64,
                       l->peer, l->push_ckpt, l->pull_ckpt);
            }
            ld_registry_release(&r->node->reg, db);
        }
    }
    step_push(l);
}

static void cycle_end(ld_link *l)
{
    ld_repl *r = l->repl;
    l->ph = PH_IDLE;
    r->running--;
    if (l->again && !r->node->shutting_down) {
        l->again = false;
        link_kick(l, false);
    }
    start_queued(r);
}

static void cycle_fail(ld_link *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cycle_fail(ld_link *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->last_error, sizeof l->last_error, fmt, ap);
    va_end(ap);
    l->online = false;
    l->failures++;
    int shift = l->failures - 1 < 5 ? l->failures - 1 : 5;
    uint64_t delay = (uint64_t)BACKOFF_BASE_MS << shift;
    if (delay > BACKOFF_CAP_MS) delay = BACKOFF_CAP_MS;
    delay += randombytes_uniform(JITTER_MS + 1);
    l->next_retry_wall = ld_wall_ms() + delay;
    if (l->failures == 1 || l->failures % 10 == 0)
        ld_log(LD_LOG_WARN, l->db,
               "replication with %s failed (%d in a row): %s; retry in %" PRIu64 " ms", l->peer,
               l->failures, l->last_error, delay);
    struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)(delay % 1000) * 1000};
    evtimer_add(l->retry_ev, &tv);
    l->again = false;
    cycle_end(l);
}

static void cycle_ok(ld_link *l)
{
    if (l->failures) ld_log(LD_LOG_INFO, l->db, "replication with %s recovered", l->peer);
    l->failures = 0;
    l->online = true;
    l->last_error[0] = '\0';
    l->last_success_wall = ld_wall_ms();
    cycle_end(l);
}

static void start_queued(ld_repl *r)
{
    while (r->n_queue > 0 && r->running < r->node->cfg.repl_peer_concurrency &&
           !r->node->shutting_down) {
        ld_link *l = r->queue[0];
        memmove(r->queue, r->queue + 1, (r->n_queue - 1) * sizeof *r->queue);
        r->n_queue--;
        l->queued = false;
        if (l->removed || !l->active) continue;
        l->ph = PH_PUSH;
        cycle_begin(l);
    }
}

/* Asks for a cycle: coalesced with one running or queued; `force` ignores the backoff. */
static void link_kick(ld_link *l, bool force)
{
    ld_repl *r = l->repl;
    if (l->removed || !l->active || r->node->shutting_down) return;
    if (l->ph != PH_IDLE) {
        l->again = true;
        return;
    }
    if (l->queued) return;
    if (!force && l->failures > 0 && ld_wall_ms() < l->next_retry_wall) return; /* timer set */
    evtimer_del(l->retry_ev);
    if (queue_push(r, l)) start_queued(r);
}

/* ---------------------------------------------------------------------------------------------
 * HTTP calls
 * ------------------------------------------------------------------------------------------- */

typedef void (*reply_fn)(ld_link *l, int code, json_t *body, const char *err);

typedef struct call {
    ld_link *link;
    reply_fn fn;
    char what[16];
    /* What was sent, shared with the request (no copy): an https request that finds its kept
     * connection closed by the peer is sent once more on a fresh one. */
    struct evbuffer *body;
    int error; /* evhttp's enum evhttp_request_error, -1 while none */
    bool retried;
} call;

static void call_free(call *c)
{
    if (c->body) evbuffer_free(c->body);
    free(c);
}

static void call_error(enum evhttp_request_error error, void *arg)
{
    ((call *)arg)->error = (int)error;
}

static bool call_send(call *c);

/* What a failure without an answer says about the peer, for plain connections (https ones
 * are described by tls.c). */
static const char *no_answer(int error)
{
    switch (error) {
    case EVREQ_HTTP_TIMEOUT:
        return "peer timed out";
    case EVREQ_HTTP_EOF:
        return "the peer closed the connection without an answer (a TLS port? then its BaseUrl "
               "is https://)";
    case EVREQ_HTTP_INVALID_HEADER:
        return "the peer's answer is not HTTP (a TLS port? then its BaseUrl is https://)";
    case EVREQ_HTTP_DATA_TOO_LONG:
        return "the peer's answer is too large";
    default:
        return "peer unreachable (connection refused or reset)";
    }
}

static void call_done(struct evhttp_request *req, void *arg)
{
    call *c = arg;
    ld_link *l = c->link;
    reply_fn fn = c->fn;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    int error = c->error;
    char why[256];
    bool described = false;
    if (l->tconn) {
        described = code == 0 && ld_tls_http_failure(l->tconn, why, sizeof why);
        /* The peer may have closed the idle connection as the request left: one more try on
         * a fresh connection (pushes and pulls are idempotent), never after a timeout. */
        bool stale = code == 0 && !described && !c->retried && error != EVREQ_HTTP_TIMEOUT &&
                     ld_tls_http_reused(l->tconn);
        if (code == 0 || !ld_tls_http_usable(l->tconn)) { /* freed after this callback */
            ld_tls_http_release(l->tconn);
            l->tconn = NULL;
            l->conn = NULL;
        }
        if (stale) {
            c->retried = true;
            c->error = -1;
            if (call_send(c)) return;
            call_free(c);
            fn(l, 0, NULL, "cannot open a connection (out of memory)");
            return;
        }
    }
    call_free(c);
    if (described) {
        fn(l, 0, NULL, why);
        return;
    }
    if (code == 0) {
        /* A plain connection is reset on the next call. */
        fn(l, 0, NULL, no_answer(error));
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    json_error_t je;
    json_t *body = len ? json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &je) : NULL;
    fn(l, code, body, NULL);
    json_decref(body);
}

/* Sends c on the link's connection, opening one when there is none (or the kept https one is
 * gone). False when that fails; c stays the caller's. */
static bool call_send(call *c)
{
    ld_link *l = c->link;
    ld_repl *r = l->repl;
    if (l->tconn && !ld_tls_http_usable(l->tconn)) {
        ld_tls_http_release(l->tconn);
        l->tconn = NULL;
        l->conn = NULL;
    }
    if (!l->conn) {
        if (l->addr.tls) { /* kept alive until the peer closes it: see ld_tls_http_open */
            l->tconn =
                ld_tls_http_open(r->node->tls, r->node->base, r->dns, l->addr.host, l->addr.port);
            l->conn = l->tconn ? ld_tls_http_evcon(l->tconn) : NULL;
        } else {
            l->conn = evhttp_connection_base_new(r->node->base, r->dns, l->addr.host,
                                                 (ev_uint16_t)l->addr.port);
        }
        if (!l->conn) return false;
        evhttp_connection_set_timeout(l->conn, r->node->cfg.repl_timeout_s);
        evhttp_connection_set_retries(l->conn, 0);
    }
    struct evhttp_request *req = evhttp_request_new(call_done, c);
    if (!req || evbuffer_add_buffer_reference(evhttp_request_get_output_buffer(req), c->body)) {
        if (req) evhttp_request_free(req);
        return false;
    }
    evhttp_request_set_error_cb(req, call_error);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char hostport[300], path[512];
    snprintf(hostport, sizeof hostport, "%s:%d", l->addr.host, l->addr.port);
    snprintf(path, sizeof path, "%s/api/replication/%s", l->addr.prefix, c->what);
    evhttp_add_header(h, "Host", hostport);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Database", l->db);
    evhttp_add_header(h, "ReplicationApiKey", r->node->cfg.replication_api_key);
    int rc = l->tconn ? ld_tls_http_request(l->tconn, req, EVHTTP_REQ_POST, path)
                      : evhttp_make_request(l->conn, req, EVHTTP_REQ_POST, path);
    if (rc != 0) {
        /* evhttp freed req; c is ours again */
        if (l->tconn) { /* unless call_done gave it back already */
            ld_tls_http_release(l->tconn);
            l->tconn = NULL;
            l->conn = NULL;
        }
        return false;
    }
    return true;
}

/* POSTs body (its contents move into the call) to the peer's /api/replication/<what>. */
static bool call_post(ld_link *l, const char *what, struct evbuffer *body, reply_fn fn)
{
    call *c = calloc(1, sizeof *c);
    if (!c || !(c->body = evbuffer_new()) || evbuffer_add_buffer(c->body, body) != 0) {
        if (c) call_free(c);
        return false;
    }
    c->link = l;
    c->fn = fn;
    c->error = -1;
    snprintf(c->what, sizeof c->what, "%s", what);
    if (call_send(c)) return true;
    call_free(c);
    return false;
}

static void peer_error(ld_link *l, int code, json_t *body, const char *err, const char *what)
{
    if (code == 0) {
        cycle_fail(l, "%s: %s", what, err);
        return;
    }
    const char *msg = json_string_value(ld_json_get_ci(body, "Error"));
    cycle_fail(l, "%s: HTTP %d%s%s", what, code, msg ? ": " : "", msg ? msg : "");
}

/* ---------------------------------------------------------------------------------------------
 * Sync-request hints over WebSocket
 * ------------------------------------------------------------------------------------------- */

static void hint_on_open(ld_ws_conn *c, void *arg)
{
    (void)c;
    hint_conn *h = arg;
    h->failures = 0;
}

static void hint_on_close(ld_ws_conn *c, int code, const char *reason, void *arg)
{
    (void)c;
    hint_conn *h = arg;
    h->c = NULL;
    if (code != 1000 && code != 1001) {
        h->failures++;
        int shift = h->failures - 1 < 5 ? h->failures - 1 : 5;
        uint64_t delay = (uint64_t)BACKOFF_BASE_MS << shift;
        h->next_try_mono = ld_mono_ms() + (delay > BACKOFF_CAP_MS ? BACKOFF_CAP_MS : delay);
        ld_log(LD_LOG_DEBUG, NULL, "hint socket to %s closed (%d %s)", h->peer, code,
               reason ? reason : "");
    }
}

static hint_conn *hint_get(ld_repl *r, const char *peer)
{
    for (size_t i = 0; i < r->n_hints; i++)
        if (!strcmp(r->hints[i]->peer, peer)) return r->hints[i];
    hint_conn **v = realloc(r->hints, (r->n_hints + 1) * sizeof *v);
    if (!v) return NULL;
    r->hints = v;
    hint_conn *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->repl = r;
    snprintf(h->peer, sizeof h->peer, "%s", peer);
    r->hints[r->n_hints++] = h;
    return h;
}

/* Tells the peer to run a cycle with us for l->db now. Best effort: a hint that cannot be sent
 * is dropped, the peer's own triggers and the sweep cover it. */
static void hint_send(ld_link *l)
{
    ld_repl *r = l->repl;
    hint_conn *h = hint_get(r, l->peer);
    if (!h) return;
    if (!h->c) {
        if (ld_mono_ms() < h->next_try_mono) return;
        char url[600];
        snprintf(url, sizeof url, "%s://%s:%d%s/ws/replication", l->addr.tls ? "wss" : "ws",
                 l->addr.host, l->addr.port, l->addr.prefix);
        const char *headers[] = {"ReplicationApiKey", r->node->cfg.replication_api_key, NULL};
        static const ld_ws_callbacks cbs = {.on_open = hint_on_open, .on_close = hint_on_close};
        const ld_ws_options opt = {.tls = r->node->tls};
        if (ld_ws_connect(r->node->base, r->dns, url, headers, &opt, &cbs, h, &h->c) != LD_OK) {
            h->c = NULL;
            return;
        }
    }
    char when[LD_ISO_TIME_LEN];
    ld_iso_time(ld_wall_ms(), when);
    json_t *f = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "sync-request", "sourceNodeId",
                          r->node->node_id, "database", l->db, "replicationApiKey",
                          r->node->cfg.replication_api_key, "reason", "push", "timestampUtc", when);
    char *text = f ? json_dumps(f, JSON_COMPACT) : NULL;
    if (text) ld_ws_send_text(h->c, text, strlen(text)); /* queued until the handshake is done */
    free(text);
    json_decref(f);
}

/* ---------------------------------------------------------------------------------------------
 * Push
 * ------------------------------------------------------------------------------------------- */

static void save_ckpts(ld_link *l);

static void ckpt_saved(ld_wjob *job)
{
    ld_link *l = job->arg;
    free(job->ctx);
    ld_wjob_free(job);
    l->ckpt_saving = false;
    if (l->ckpt_dirty) save_ckpts(l); /* also while shutting down: the loop waits for it */
}

/* Stores the link's checkpoints through the writer without waiting for the commit: a stored
 * checkpoint that lags only means re-reading entries the peer filters out by VV (or re-sending
 * duplicates it skips), never losing any. One save per link in flight; what moves meanwhile is
 * saved when it completes, so a burst of cycles costs one commit, not one each. */
static void save_ckpts(ld_link *l)
{
    if (l->ckpt_saving) {
        l->ckpt_dirty = true;
        return;
    }
    l->ckpt_dirty = false;
    ld_db *db = ld_registry_get(&l->repl->node->reg, l->db);
    if (!db) return;
    ld_wjob *job = calloc(1, sizeof *job);
    ld_ckpt_pair *v = malloc(sizeof *v);
    char *peer = strdup(l->peer);
    char *coll = strdup("");
    if (!job || !v || !peer || !coll) {
        free(job);
        free(v);
        free(peer);
        free(coll);
        ld_registry_release(&l->repl->node->reg, db);
        return;
    }
    *v = (ld_ckpt_pair){.push = l->push_ckpt, .pull = l->pull_ckpt};
    job->kind = LD_W_CUSTOM;
    job->apply = ld_ckpt_save_apply;
    job->lazy = true; /* a checkpoint that lags is re-derived, so it need not cost a flush */
    job->ctx = v;
    job->id = peer;
    job->collection = coll;
    job->done = ckpt_saved;
    job->arg = l;
    l->ckpt_saving = true;
    l->repl->node->inflight++;
    ld_writer_submit(db->writer, job);
    ld_registry_release(&l->repl->node->reg, db);
}

static void push_reply(ld_link *l, int code, json_t *body, const char *err)
{
    if (code == 413 && l->push_limit > 1) {
        /* The peer's body limit is below our batch: split and go again. */
        l->push_limit /= 2;
        step_push(l);
        return;
    }
    if (code < 200 || code > 299) {
        peer_error(l, code, body, err, "push");
        return;
    }
    char perr[256];
    if (!ld_wire_protocol_ok(body, perr, sizeof perr)) {
        cycle_fail(l, "push: %s", perr);
        return;
    }
    uint64_t ack = 0;
    bool known = false;
    if (ld_json_as_u64(ld_json_get_ci(body, "LastProcessedLogSequence"), &ack))
        for (size_t i = 0; i < l->n_sent && !known; i++)
            known = l->sent[i] == ack;
    size_t sent = l->n_sent;
    bool full = sent >= l->push_limit;
    l->n_sent = 0;
    if (!known || ack <= l->push_ckpt) {
        /* Nothing acknowledged (the peer stopped at a gap, or the answer is not about this
         * batch): the pull below brings what the peer lacks; the next cycle retries. */
        step_pull(l);
        return;
    }
    l->push_ckpt = ack;
    l->ops_pushed += sent;
    json_t *vv = ld_json_get_ci(body, "VersionVector");
    if (json_is_object(vv)) {
        json_decref(l->peer_vv);
        l->peer_vv = json_incref(vv);
    }
    uint64_t accepted = 0, processed = 0;
    bool have_accepted = ld_json_as_u64(ld_json_get_ci(body, "AcceptedCount"), &accepted);
    if (have_accepted && ld_json_as_u64(ld_json_get_ci(body, "ProcessedCount"), &processed) &&
        processed > accepted)
        l->push_dups += processed - accepted;
    if (have_accepted && accepted > 0) hint_send(l);
    save_ckpts(l);
    if (full && ack == l->sent_last)
        step_push(l);
    else
        step_pull(l);
}

static void step_push(ld_link *l)
{
    ld_repl *r = l->repl;
    l->ph = PH_PUSH;
    if (l->peer_pulling_until > ld_mono_ms()) {
        /* The peer is pulling our log batch after batch: pushing the same entries beside it
         * would send each twice. Its pulls move push_ckpt (ld_repl_peer_pulled). */
        step_pull(l);
        return;
    }
    ld_db *db = ld_registry_get(&r->node->reg, l->db);
    if (!db) {
        l->removed = true;
        cycle_end(l);
        return;
    }
    ld_oplog_batch b;
    /* The peer has its own ops: never send them back; nor what its version vector covers. */
    ld_status st = ld_oplog_read(db, l->push_ckpt, l->push_limit, r->node->cfg.repl_batch_bytes,
                                 l->peer, l->peer_vv, &b);
    ld_registry_release(&r->node->reg, db);
    if (st != LD_OK) {
        cycle_fail(l, "push: reading the op log: %s", ld_status_str(st));
        return;
    }
    l->local_max = b.local_max;
    if (b.n == 0) {
        /* Only skipped entries (or none) after the checkpoint: the peer has them all. */
        if (b.scanned > l->push_ckpt) {
            l->push_ckpt = b.scanned;
            save_ckpts(l);
        }
        bool more = b.more;
        ld_oplog_batch_free(&b);
        if (more)
            step_push(l);
        else
            step_pull(l);
        return;
    }
    free(l->sent);
    l->sent = b.seqs;
    b.seqs = NULL;
    l->n_sent = b.n;
    l->sent_last = l->sent[b.n - 1];
    struct evbuffer *body = evbuffer_new();
    bool ok =
        body &&
        evbuffer_add_printf(body, "{\"ProtocolVersion\":%d,\"SourceNodeId\":", LD_REPL_PROTOCOL) >
            0 &&
        ld_json_string_evbuffer(r->node->node_id, strlen(r->node->node_id), body) &&
        evbuffer_add(body, ",\"Operations\":[", 15) == 0 && evbuffer_add_buffer(body, b.ops) == 0 &&
        evbuffer_add(body, "]}", 2) == 0 && call_post(l, "push", body, push_reply);
    ld_oplog_batch_free(&b);
    if (body) evbuffer_free(body);
    if (!ok) cycle_fail(l, "push: cannot send the request");
}

/* ---------------------------------------------------------------------------------------------
 * Pull
 * ------------------------------------------------------------------------------------------- */

typedef struct pull_ctx {
    ld_link *link;
    bool more;
    json_t *peer_vv;
    char peer_digest[2 * LD_DIGEST_LEN + 1];
} pull_ctx;

static void check_divergence(ld_link *l, pull_ctx *pc)
{
    ld_db *db = ld_registry_get(&l->repl->node->reg, l->db);
    if (!db || !pc->peer_vv || !pc->peer_digest[0]) {
        if (db) ld_registry_release(&l->repl->node->reg, db);
        return;
    }
    json_t *vv = NULL;
    char digest[2 * LD_DIGEST_LEN + 1];
    if (ld_oplog_state(db, &vv, digest) == LD_OK) {
        bool same_vv = json_equal(vv, pc->peer_vv);
        bool diverged = same_vv && strcmp(digest, pc->peer_digest) != 0;
        if (diverged && !l->diverged) {
            l->repl->divergences++;
            ld_log(LD_LOG_ERROR, l->db,
                   "divergence with %s: equal version vectors but digests %s (here) and %s "
                   "(there)",
                   l->peer, digest, pc->peer_digest);
        }
        l->diverged = diverged;
    }
    json_decref(vv);
    ld_registry_release(&l->repl->node->reg, db);
}

static void ingest_done(ld_wjob *job)
{
    ld_ingest *in = job->ctx;
    pull_ctx *pc = job->arg;
    ld_link *l = pc->link;
    ld_wresult res = job->result;
    if (res == LD_WR_OK) {
        if (in->pull_ckpt > l->pull_ckpt) l->pull_ckpt = in->pull_ckpt;
        l->ops_pulled += in->processed;
        l->pull_dups += in->processed - in->accepted;
    }
    bool stopped = in->stopped;
    char reason[sizeof in->stop_reason];
    snprintf(reason, sizeof reason, "%s", in->stop_reason);
    ld_ingest_free(in);
    ld_wjob_free(job);
    if (res != LD_WR_OK) {
        json_decref(pc->peer_vv);
        free(pc);
        cycle_fail(l, "pull: the ingest could not be committed");
        return;
    }
    if (stopped) {
        json_decref(pc->peer_vv);
        free(pc);
        cycle_fail(l, "pull: %s", reason);
        return;
    }
    if (pc->more) {
        json_decref(pc->peer_vv);
        free(pc);
        pull_next(l);
        return;
    }
    check_divergence(l, pc);
    json_decref(pc->peer_vv);
    free(pc);
    cycle_ok(l);
}

static void pull_reply(ld_link *l, int code, json_t *body, const char *err)
{
    ld_repl *r = l->repl;
    if (code < 200 || code > 299) {
        peer_error(l, code, body, err, "pull");
        return;
    }
    char perr[256];
    if (!ld_wire_protocol_ok(body, perr, sizeof perr)) {
        cycle_fail(l, "pull: %s", perr);
        return;
    }
    json_t *ops = ld_json_get_ci(body, "Operations");
    uint64_t scanned = 0;
    if (!json_is_array(ops)) {
        cycle_fail(l, "pull: the answer has no Operations array");
        return;
    }
    size_t n = json_array_size(ops);
    if (!ld_json_as_u64(ld_json_get_ci(body, "LastLogSequence"), &scanned)) {
        /* The original sends no LastLogSequence: the last op's LogSequence stands for it. */
        json_t *last = n ? ld_json_get_ci(json_array_get(ops, n - 1), "LogSequence") : NULL;
        if (!ld_json_as_u64(last, &scanned)) scanned = l->pull_ckpt;
    }
    ld_json_as_u64(ld_json_get_ci(body, "LocalMaxLogSequence"), &l->peer_max);
    json_t *more = ld_json_get_ci(body, "HasMore");
    pull_ctx *pc = calloc(1, sizeof *pc);
    ld_ingest *in = calloc(1, sizeof *in);
    ld_wjob *job = calloc(1, sizeof *job);
    if (!pc || !in || !job || (n && !(in->ops = calloc(n, sizeof *in->ops)))) {
        free(pc);
        ld_ingest_free(in);
        free(job);
        cycle_fail(l, "pull: out of memory");
        return;
    }
    pc->link = l;
    pc->more = json_is_true(more) || (!more && n >= (size_t)r->node->cfg.repl_batch_size);
    json_t *pvv = ld_json_get_ci(body, "VersionVector");
    pc->peer_vv = json_is_object(pvv) ? json_incref(pvv) : NULL;
    if (pc->peer_vv) { /* what the peer holds, for our next pushes */
        json_decref(l->peer_vv);
        l->peer_vv = json_incref(pvv);
    }
    const char *pd = json_string_value(ld_json_get_ci(body, "Digest"));
    snprintf(pc->peer_digest, sizeof pc->peer_digest, "%s", pd ? pd : "");
    for (size_t i = 0; i < n; i++) {
        char derr[256];
        if (!ld_wire_op_decode(json_array_get(ops, i), &in->ops[i], derr, sizeof derr)) {
            ld_ingest_free(in);
            free(job);
            json_decref(pc->peer_vv);
            free(pc);
            cycle_fail(l, "pull: operation %zu: %s", i, derr);
            return;
        }
        in->n++;
    }
    in->policy = r->node->cfg.conflict_policy;
    in->max_skew_ms = (uint64_t)r->node->cfg.max_clock_skew_s * 1000u;
    snprintf(in->peer, sizeof in->peer, "%s", l->peer);
    in->set_pull_ckpt = scanned > l->pull_ckpt;
    in->pull_scanned = scanned;
    if (n == 0) {
        /* Nothing to ingest: at most the checkpoint moves past entries we already have, saved
         * without holding up the cycle (the next push may be waiting for it to end). */
        ld_ingest_free(in);
        free(job);
        bool advanced = scanned > l->pull_ckpt;
        if (advanced) {
            l->pull_ckpt = scanned;
            save_ckpts(l);
        }
        bool again = pc->more && advanced; /* a peer saying "more" without moving: stop */
        if (!again) check_divergence(l, pc);
        json_decref(pc->peer_vv);
        free(pc);
        if (again)
            pull_next(l);
        else
            cycle_ok(l);
        return;
    }
    ld_db *db = NULL;
    if (ld_registry_get_or_create(&r->node->reg, l->db, &db) != LD_OK) {
        ld_ingest_free(in);
        free(job);
        json_decref(pc->peer_vv);
        free(pc);
        cycle_fail(l, "pull: cannot open the database");
        return;
    }
    job->kind = LD_W_CUSTOM;
    job->apply = ld_ingest_apply;
    job->ctx = in;
    job->done = ingest_done;
    job->arg = pc;
    l->ph = PH_INGEST;
    r->node->inflight++;
    ld_writer_submit(db->writer, job);
    ld_registry_release(&r->node->reg, db);
}

/* The pull step of a cycle. */
static void step_pull(ld_link *l)
{
    if (!l->must_pull && l->peer_pushed_at && ld_mono_ms() - l->peer_pushed_at < PEER_PUSHING_MS) {
        /* The peer is pushing its log to us: what a pull would fetch is on its way, and the
         * sweep (must_pull) still pulls and compares digests. Should its pushes stop, pulls
         * resume after PEER_PUSHING_MS. */
        l->ph = PH_PULL;
        cycle_ok(l);
        return;
    }
    l->must_pull = false;
    pull_next(l);
}

/* The next pull request of the pull step; a started pull step runs until caught up (the peer
 * pauses its pushes meanwhile: ld_repl_peer_pulled). */
static void pull_next(ld_link *l)
{
    ld_repl *r = l->repl;
    l->ph = PH_PULL;
    json_t *vv = NULL;
    char digest[2 * LD_DIGEST_LEN + 1];
    ld_db *db = ld_registry_get(&r->node->reg, l->db);
    if (db) {
        ld_status st = ld_oplog_state(db, &vv, digest);
        ld_registry_release(&r->node->reg, db);
        if (st != LD_OK) {
            cycle_fail(l, "pull: reading the version vector: %s", ld_status_str(st));
            return;
        }
    }
    json_t *body = json_pack("{s:i, s:s, s:I, s:i, s:o}", "ProtocolVersion", LD_REPL_PROTOCOL,
                             "RequestingNodeId", r->node->node_id, "AfterLogSequence",
                             (json_int_t)l->pull_ckpt, "BatchSize", r->node->cfg.repl_batch_size,
                             "VersionVector", vv ? vv : json_object());
    struct evbuffer *text = body ? evbuffer_new() : NULL;
    bool ok = text && ld_json_dump_evbuffer(body, JSON_COMPACT, text) &&
              call_post(l, "pull", text, pull_reply);
    json_decref(body);
    if (text) evbuffer_free(text);
    if (!ok) cycle_fail(l, "pull: cannot send the request");
}

/* ---------------------------------------------------------------------------------------------
 * Triggers
 * ------------------------------------------------------------------------------------------- */

static void kick_db(ld_repl *r, const char *db)
{
    bool any = false;
    for (size_t i = 0; i < r->n_links; i++)
        if (!strcmp(r->links[i]->db, db)) {
            any = true;
            break;
        }
    /* A database we have not seen before (created by this write) gets its links now. */
    if (!any) links_sync_db(r, db);
    for (size_t i = 0; i < r->n_links; i++)
        if (!strcmp(r->links[i]->db, db)) link_kick(r->links[i], false);
}

static void kicked_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ld_repl *r = arg;
    pthread_mutex_lock(&r->mu);
    size_t n = r->n_kicked;
    char(*names)[LD_DB_NAME_MAX + 1] = r->kicked;
    r->kicked = NULL;
    r->n_kicked = r->cap_kicked = 0;
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < n; i++)
        kick_db(r, names[i]);
    free(names);
}

void ld_repl_committed(void *repl, ld_db *db)
{
    ld_repl *r = repl;
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    bool dup = false;
    for (size_t i = 0; i < r->n_kicked && !dup; i++)
        dup = !strcmp(r->kicked[i], db->name);
    if (!dup) {
        if (r->n_kicked == r->cap_kicked) {
            size_t cap = r->cap_kicked ? 2 * r->cap_kicked : 8;
            void *v = realloc(r->kicked, cap * sizeof *r->kicked);
            if (v) {
                r->kicked = v;
                r->cap_kicked = cap;
            }
        }
        /* Out of memory: the sweep still covers this database. */
        if (r->n_kicked < r->cap_kicked)
            snprintf(r->kicked[r->n_kicked++], LD_DB_NAME_MAX + 1, "%s", db->name);
    }
    pthread_mutex_unlock(&r->mu);
    event_active(r->kick_ev, EV_READ, 0);
}

void ld_repl_sync_request(ld_repl *r, const char *db, const char *peer_id)
{
    ld_link *l = link_find(r, db, peer_id);
    if (!l) {
        links_sync_db(r, db);
        l = link_find(r, db, peer_id);
    }
    if (l) link_kick(l, true);
}

void ld_repl_peer_pulled(ld_repl *r, const char *db, const char *peer_id, uint64_t after,
                         uint64_t local_max, bool more, json_t *vv)
{
    ld_link *l = link_find(r, db, peer_id);
    if (!l) return;
    if (json_is_object(vv)) {
        json_decref(l->peer_vv);
        l->peer_vv = json_incref(vv);
    }
    uint64_t held = after < local_max ? after : local_max;
    if (held > l->push_ckpt) {
        l->push_ckpt = held;
        save_ckpts(l);
    }
    l->peer_pulling_until = more ? ld_mono_ms() + PEER_PULLING_MS : 0;
}

void ld_repl_peer_pushed(ld_repl *r, const char *db, const char *peer_id)
{
    ld_link *l = link_find(r, db, peer_id);
    if (!l) { /* the push just created db here: its links too */
        links_sync_db(r, db);
        l = link_find(r, db, peer_id);
    }
    if (l) l->peer_pushed_at = ld_mono_ms();
}

void ld_repl_peer_alive(ld_repl *r, const char *peer_id)
{
    for (size_t i = 0; i < r->n_links; i++) {
        ld_link *l = r->links[i];
        if (l->failures > 0 && !strcmp(l->peer, peer_id)) link_kick(l, true);
    }
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ld_repl *r = arg;
    links_sync_all(r);
    for (size_t i = 0; i < r->n_links; i++) {
        r->links[i]->must_pull = true;
        link_kick(r->links[i], false);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Peers
 * ------------------------------------------------------------------------------------------- */

json_t *ld_repl_peers_list(ld_repl *r, const char *db)
{
    if (!db) return ld_peer_list_json(&r->node_peers);
    char *path = db_peers_path(r, db);
    ld_peer_list l;
    char err[256];
    json_t *out = NULL;
    if (path && ld_peer_list_load(path, &l, err, sizeof err)) {
        out = ld_peer_list_json(&l);
        ld_peer_list_free(&l);
    }
    free(path);
    return out;
}

/* Loads, changes and saves the list of db (NULL: node-wide), then re-syncs the links. */
static bool peers_change(ld_repl *r, const char *db, const char *id, const char *url, bool active,
                         bool remove, int *status, char *err, size_t errlen)
{
    ld_peer_list tmp, *l = &r->node_peers;
    char *path = db ? db_peers_path(r, db) : r->node_peers_path;
    *status = 500;
    if (!path) {
        ld_set_err(err, errlen, "Out of memory.");
        return false;
    }
    if (db) {
        if (mkdir(r->db_peers_dir, 0700) != 0 && errno != EEXIST) {
            ld_set_err(err, errlen, "cannot create %s: %s", r->db_peers_dir, strerror(errno));
            free(path);
            return false;
        }
        if (!ld_peer_list_load(path, &tmp, err, errlen)) {
            free(path);
            return false;
        }
        l = &tmp;
    }
    bool ok;
    if (remove) {
        ok = ld_peer_list_remove(l, id);
        if (!ok) {
            *status = 404;
            ld_set_err(err, errlen, "Peer '%s' is not registered.", id);
        }
    } else {
        ok = ld_peer_list_upsert(l, id, url, active, ld_wall_ms());
        if (!ok) ld_set_err(err, errlen, "Out of memory.");
    }
    ok = ok && ld_peer_list_save(path, l, err, errlen);
    if (db) {
        ld_peer_list_free(&tmp);
        free(path);
    }
    if (!ok) return false;
    if (db)
        links_sync_db(r, db);
    else
        links_sync_all(r);
    /* A new or re-activated peer starts at once. */
    for (size_t i = 0; i < r->n_links; i++)
        if (!remove && !strcmp(r->links[i]->peer, id) && (!db || !strcmp(r->links[i]->db, db)))
            link_kick(r->links[i], true);
    return true;
}

bool ld_repl_peer_upsert(ld_repl *r, const char *db, const char *id, const char *base_url,
                         bool active, int *status, char *err, size_t errlen)
{
    *status = 400;
    if (!id || !ld_node_id_valid(id)) {
        ld_set_err(err, errlen, "NodeId is required: 1-128 of A-Z a-z 0-9 . _ : -");
        return false;
    }
    if (!strcmp(id, r->node->node_id)) {
        ld_set_err(err, errlen, "Cannot register local node as a peer.");
        return false;
    }
    char *url = ld_peer_url_normalize(base_url, err, errlen);
    if (!url) return false;
    bool ok = peers_change(r, db, id, url, active, false, status, err, errlen);
    free(url);
    return ok;
}

bool ld_repl_peer_remove(ld_repl *r, const char *db, const char *id, int *status, char *err,
                         size_t errlen)
{
    return peers_change(r, db, id, NULL, false, true, status, err, errlen);
}

/* ---------------------------------------------------------------------------------------------
 * Status
 * ------------------------------------------------------------------------------------------- */

static json_t *time_or_null(uint64_t ms)
{
    char when[LD_ISO_TIME_LEN];
    if (!ms) return json_null();
    ld_iso_time(ms, when);
    return json_string(when);
}

static json_t *link_json(ld_link *l, uint64_t local_max)
{
    uint64_t pending = local_max > l->push_ckpt ? local_max - l->push_ckpt : 0;
    uint64_t behind = l->peer_max > l->pull_ckpt ? l->peer_max - l->pull_ckpt : 0;
    const char *catchup = !l->active ? "Inactive" : pending == 0 ? "Ready" : "CatchingUp";
    bool retrying = l->failures > 0 && l->next_retry_wall > ld_wall_ms();
    return json_pack("{s:s, s:s, s:b, s:s, s:s?, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:o, s:o, "
                     "s:s?, s:i, s:o, s:b, s:o}",
                     "PeerNodeId", l->peer, "BaseUrl", l->base_url, "IsActive", l->active,
                     "CatchUpStatus", catchup, "CatchUpReason",
                     l->last_error[0] ? l->last_error : NULL, "OldestAvailableLogSequence",
                     (json_int_t)1, "LastPushedLocalLogSequence", (json_int_t)l->push_ckpt,
                     "LastPulledPeerLogSequence", (json_int_t)l->pull_ckpt, "LocalMaxLogSequence",
                     (json_int_t)local_max, "EstimatedPendingPushOperations", (json_int_t)pending,
                     "OpsBehind", (json_int_t)behind, "IsOnline", l->online, "LastSuccessUtc",
                     time_or_null(l->last_success_wall), "LastAttemptUtc",
                     time_or_null(l->last_attempt_wall), "LastError",
                     l->last_error[0] ? l->last_error : NULL, "ConsecutiveFailures", l->failures,
                     "NextRetryUtc", time_or_null(retrying ? l->next_retry_wall : 0), "Diverged",
                     l->diverged, "UpdatedUtc", time_or_null(ld_wall_ms()));
}

/* Adds the link's counters since start-up (beyond the contract's fields) to its status j. */
static json_t *link_counters(const ld_link *l, json_t *j)
{
    if (j && (json_object_set_new(j, "PushedOperations", json_integer((json_int_t)l->ops_pushed)) ||
              json_object_set_new(j, "PushedDuplicates", json_integer((json_int_t)l->push_dups)) ||
              json_object_set_new(j, "PulledOperations", json_integer((json_int_t)l->ops_pulled)) ||
              json_object_set_new(j, "PulledDuplicates", json_integer((json_int_t)l->pull_dups)))) {
        json_decref(j);
        return NULL;
    }
    return j;
}

json_t *ld_repl_status(ld_repl *r)
{
    links_sync_all(r);
    char now[LD_ISO_TIME_LEN];
    ld_iso_time(ld_wall_ms(), now);
    json_t *dbs = json_array();
    size_t n;
    char **names = ld_registry_names(&r->node->reg, &n);
    for (size_t i = 0; names && dbs && i < n; i++) {
        ld_db *db = ld_registry_get(&r->node->reg, names[i]);
        if (!db) continue;
        ld_db_state s;
        ld_db_state_get(db, &s);
        json_t *vv = NULL;
        char digest[2 * LD_DIGEST_LEN + 1] = "";
        ld_status st = ld_oplog_state(db, &vv, digest);
        ld_registry_release(&r->node->reg, db);
        json_t *peers = json_array();
        uint64_t total = 0;
        int active = 0;
        for (size_t j = 0; peers && j < r->n_links; j++) {
            ld_link *l = r->links[j];
            if (l->removed || strcmp(l->db, names[i]) != 0) continue;
            if (l->active) {
                active++;
                total += s.last_seq > l->push_ckpt ? s.last_seq - l->push_ckpt : 0;
            }
            json_array_append_new(peers, link_counters(l, link_json(l, s.last_seq)));
        }
        json_array_append_new(
            dbs, json_pack("{s:s, s:s, s:s?, s:I, s:I, s:i, s:I, s:o, s:s, s:o}", "DatabaseName",
                           names[i], "Status", st == LD_OK ? "Healthy" : "Error", "Error",
                           st == LD_OK ? NULL : ld_status_str(st), "OldestAvailableLogSequence",
                           (json_int_t)(s.last_seq ? 1 : 0), "LocalMaxLogSequence",
                           (json_int_t)s.last_seq, "ActivePeerCount", active,
                           "TotalEstimatedPendingPushOperations", (json_int_t)total,
                           "VersionVector", vv ? vv : json_object(), "Digest", digest, "Peers",
                           peers ? peers : json_array()));
    }
    ld_registry_names_free(names, n);
    uint64_t full, resumed;
    ld_tls_handshakes(r->node->tls, &full, &resumed);
    return json_pack("{s:s, s:s, s:I, s:{s:I, s:I}, s:o}", "NodeId", r->node->node_id,
                     "TimestampUtc", now, "DivergenceCount", (json_int_t)r->divergences,
                     "TlsClientHandshakes", "Full", (json_int_t)full, "Resumed",
                     (json_int_t)resumed, "Databases", dbs ? dbs : json_array());
}

uint64_t ld_repl_divergences(ld_repl *r)
{
    return r->divergences;
}

/* ---------------------------------------------------------------------------------------------
 * Probes (dashboard)
 * ------------------------------------------------------------------------------------------- */

/* Every peer of any list: the node-wide ones and each database's own (through its links). */
static void probe_targets(void *ctx, ld_probe *p, void (*add)(ld_probe *, const ld_probe_target *))
{
    ld_repl *r = ctx;
    links_sync_all(r);
    for (size_t i = 0; i < r->node_peers.n; i++) {
        const ld_peer *e = &r->node_peers.v[i];
        add(p, &(ld_probe_target){.id = e->id, .base_url = e->base_url, .active = e->active});
    }
    for (size_t i = 0; i < r->n_links; i++) {
        const ld_link *l = r->links[i];
        if (!l->removed)
            add(p, &(ld_probe_target){.id = l->peer, .base_url = l->base_url, .active = l->active});
    }
}

void ld_repl_listening(ld_repl *r, const char *self_url)
{
    ld_probe_start(r->probe, self_url);
}

void ld_repl_stop_probes(ld_repl *r)
{
    ld_probe_stop(r->probe);
}

json_t *ld_repl_overview_nodes(ld_repl *r)
{
    return ld_probe_nodes_json(r->probe);
}

json_t *ld_repl_overview_connections(ld_repl *r)
{
    return ld_probe_connections_json(r->probe);
}

/* ---------------------------------------------------------------------------------------------
 * Life cycle
 * ------------------------------------------------------------------------------------------- */

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

ld_repl *ld_repl_new(ld_node *node, char *err, size_t errlen)
{
    ld_repl *r = calloc(1, sizeof *r);
    if (!r) {
        ld_set_err(err, errlen, "out of memory");
        return NULL;
    }
    r->node = node;
    pthread_mutex_init(&r->mu, NULL);
    r->node_peers_path = join(node->data_dir, "peers.json");
    r->db_peers_dir = join(node->data_dir, "peers");
    r->kick_ev = event_new(node->base, -1, 0, kicked_cb, r);
    r->dns = evdns_base_new(node->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (!r->dns) r->dns = evdns_base_new(node->base, 0); /* no resolv.conf: numeric peers only */
    r->sweep_ev = event_new(node->base, -1, EV_PERSIST, sweep_cb, r);
    r->probe =
        ld_probe_new(node->base, r->dns, node->tls, node->node_id, node->cfg.replication_api_key,
                     node->cfg.peer_probe_interval_s, probe_targets, r);
    if (!r->node_peers_path || !r->db_peers_dir || !r->kick_ev || !r->sweep_ev || !r->probe) {
        ld_set_err(err, errlen, "out of memory");
        goto fail;
    }
    if (!ld_peer_list_load(r->node_peers_path, &r->node_peers, err, errlen)) goto fail;

    /* Node.SeedPeers join the node-wide list (blank ids or URLs and the local id skipped). */
    size_t i;
    json_t *e;
    bool changed = false;
    json_array_foreach(node->cfg.seed_peers, i, e)
    {
        const char *id = json_string_value(ld_json_get_ci(e, "NodeId"));
        const char *url = json_string_value(ld_json_get_ci(e, "BaseUrl"));
        json_t *act = ld_json_get_ci(e, "IsActive");
        if (!id || !*id || !url || !*url || !strcmp(id, node->node_id)) continue;
        char uerr[200];
        char *norm = ld_peer_url_normalize(url, uerr, sizeof uerr);
        if (!ld_node_id_valid(id) || !norm) {
            ld_set_err(err, errlen, "Node.SeedPeers[%zu]: %s", i,
                       norm ? "NodeId is not a valid node id" : uerr);
            free(norm);
            goto fail;
        }
        const ld_peer *have = ld_peer_list_find(&r->node_peers, id);
        bool active = !json_is_false(act);
        if (!have || strcmp(have->base_url, norm) != 0 || have->active != active) {
            changed = true;
            if (!ld_peer_list_upsert(&r->node_peers, id, norm, active, ld_wall_ms())) {
                free(norm);
                ld_set_err(err, errlen, "out of memory");
                goto fail;
            }
        }
        free(norm);
    }
    if (changed && !ld_peer_list_save(r->node_peers_path, &r->node_peers, err, errlen)) goto fail;

    struct timeval tv = {node->cfg.anti_entropy_s, 0};
    event_add(r->sweep_ev, &tv);
    links_sync_all(r);
    /* Start-up is a sweep: catch up with every peer at once. */
    for (size_t j = 0; j < r->n_links; j++)
        link_kick(r->links[j], true);
    return r;
fail:
    ld_repl_free(r);
    return NULL;
}

void ld_repl_free(ld_repl *r)
{
    if (!r) return;
    ld_probe_free(r->probe); /* before the links and dns it reads */
    for (size_t i = 0; i < r->n_links; i++)
        link_free(r->links[i]);
    free(r->links);
    for (size_t i = 0; i < r->n_hints; i++) {
        if (r->hints[i]->c) ld_ws_conn_free(r->hints[i]->c);
        free(r->hints[i]);
    }
    free(r->hints);
    if (r->dns) evdns_base_free(r->dns, 0);
    free(r->queue);
    free(r->kicked);
    if (r->kick_ev) event_free(r->kick_ev);
    if (r->sweep_ev) event_free(r->sweep_ev);
    ld_peer_list_free(&r->node_peers);
    free(r->node_peers_path);
    free(r->db_peers_dir);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
