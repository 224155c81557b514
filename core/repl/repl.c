/* The replication scheduler (see repl.h). One link per (database, peer): a cycle pushes our log
 * after the push checkpoint, then pulls the peer's after the pull checkpoint, each until caught
 * up; failures back off exponentially with jitter; a sweep re-runs every link periodically and
 * compares (VV, digest) with the peer to detect divergence. */
#include "repl.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
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

#include "../db/completions.h"
#include "../db/registry.h"
#include "../http/tls.h"
#include "../db/writer.h"
#include "../node.h"
#include "../util/jsonbuf.h"
#include "../util/jsonget.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "../util/timeutil.h"
#include "../util/workers.h"
#include "bootstrap.h"
#include "ingest.h"
#include "oplog.h"
#include "../ws/ws.h"
#include "discovery.h"
#include "peerconn.h"
#include "peers.h"
#include "probe.h"
#include "snapshot_page.h"
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
/* How long a push holds a long log back from a peer that holds nothing, waiting for it to load
 * a snapshot instead: two sweep intervals, in which a peer with a link to us pulls at least once
 * (and it keeps waiting while the peer fetches snapshot pages from us). */
#define PUSH_GATE_MS(r) (2000u * (uint64_t)(r)->node->cfg.anti_entropy_s)

typedef enum { PH_IDLE, PH_PUSH, PH_PULL, PH_INGEST, PH_SNAPSHOT } phase;

/* Pages of a snapshot in the writer at once: the next page downloads while one is merged. */
#define SNAPSHOT_PAGES_AHEAD 2

/* A snapshot this link loads from its peer (bootstrap.h keeps the stored progress). */
typedef struct boot_state {
    uint8_t req_key[LD_SNAP_MAX_KEY]; /* the next page is asked after this key */
    size_t req_key_len;
    bool first;        /* the next page asked for is the first: a new snapshot */
    bool reload;       /* take req_key from the stored progress before the next request */
    bool all_received; /* the last page arrived */
    bool requesting;   /* a page request is out (one at a time: each asks after the last) */
    int jobs;          /* pages in the writer */
    uint64_t done, total, log_seq; /* records merged / in the source; where it stands */
    uint64_t started_wall, started_mono, resumed_done;
} boot_state;

/* Why a replication cycle failed: litedist_replication_failures_total's reason label. */
enum {
    FAIL_LOCAL,       /* this node's side: storage, memory (0: what a new link starts with) */
    FAIL_UNREACHABLE, /* no answer: refused, reset, timed out, TLS failed */
    FAIL_HTTP_4XX,    /* the peer refused the request */
    FAIL_HTTP_5XX,    /* the peer failed it */
    FAIL_PROTOCOL,    /* an answer that does not add up: wrong node, bad operations, digest */
    FAIL_N
};
static const char *const fail_names[FAIL_N] = {"local", "unreachable", "http_4xx", "http_5xx",
                                               "protocol"};

/* A push batch read on a worker, so the op-log walk (bounded by the entries it scans, but
 * milliseconds over a long log the peer already holds) never runs on the loop. */
typedef struct push_read {
    struct ld_link *l; /* NULL once the link was freed: the completion only frees */
    ld_node *node;
    ld_db *db; /* referenced until the completion */
    char peer[LD_NODE_ID_MAX + 1];
    json_t *peer_vv; /* owned copy, or NULL */
    uint64_t after;
    size_t limit, max_bytes;
    ld_oplog_batch b;
    ld_status st;
} push_read;

typedef struct ld_link {
    ld_repl *repl;
    char db[LD_DB_NAME_MAX + 1];
    char peer[LD_NODE_ID_MAX + 1];
    char *base_url;
    bool active, removed;
    ld_peer_conn pc;   /* kept alive (peerconn.h) */
    ld_peer_addr addr; /* where BaseUrl points */
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
    bool sent_more; /* entries remained after the push in flight (cut by count or bytes) */

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
    boot_state *boot;             /* a snapshot being loaded from the peer, or NULL */
    bool peer_too_old;            /* our log cannot serve the peer's pulls: it needs a snapshot */
    uint64_t peer_oldest;         /* the peer's OldestAvailableLogSequence (its 410 answer) */
    bool push_gated;   /* step_push holds our log back until the peer's version vector is known */
    struct call *call; /* the request in flight: freed with the link when it never answers */
    struct push_read *reading; /* a push batch being read on a worker (step_push) */
    uint64_t gated_since;      /* monotonic ms: since when step_push holds our log back */
    uint64_t peer_snapshot_at; /* monotonic ms: the peer's last snapshot page request to us */
    /* The NodeId that answered at BaseUrl when it was not the peer's (a node replaced under a
     * new id at the same address): the link reports IdentityMismatch until a cycle succeeds. */
    char answers_as[LD_NODE_ID_MAX + 1];
    /* For GET /metrics, since this process started: request and answer bytes of every call on
     * the link, and failed cycles by reason. fail_reason: the reason of the failure about to be
     * counted (set by the paths that know it; cycle_fail resets it to FAIL_LOCAL). */
    uint64_t bytes_sent, bytes_received;
    uint64_t fails[FAIL_N];
    int fail_reason;
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
    /* Databases whose peers files links_sync_db has read: a commit to one of them without
     * links does not read its file again (the peers routes and the sweep re-read it). */
    char (*synced)[LD_DB_NAME_MAX + 1];
    size_t n_synced, cap_synced;
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
    /* The newest clock promise heard of each (database, origin), from the origin or relayed:
     * the purge frontier's input (frontier.h). In memory: after a restart the frontier waits
     * for the next reports, and the stored purge floor never goes back meanwhile. */
    struct promise *promises;
    size_t n_promises, cap_promises;
};

typedef struct promise {
    char db[LD_DB_NAME_MAX + 1];
    char origin[LD_NODE_ID_MAX + 1];
    uint64_t seq, hlc;
} promise;

static void link_kick(ld_link *l, bool force);
static void step_push(ld_link *l);
static void step_pull(ld_link *l);
static void pull_next(ld_link *l);
static void step_snapshot(ld_link *l);
static void boot_begin(ld_link *l, bool fresh);

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
    if (l->ph == PH_IDLE) ld_peer_conn_release(&l->pc);
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

static void call_free(struct call *c);

static void link_free(ld_link *l)
{
    ld_peer_conn_close(&l->pc);           /* a request in flight goes without its callback */
    if (l->call) call_free(l->call);      /* its callback will not run */
    if (l->reading) l->reading->l = NULL; /* its completion only frees what it read */
    if (l->retry_ev) event_free(l->retry_ev);
    free(l->sent);
    free(l->base_url);
    json_decref(l->peer_vv);
    free(l->boot);
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

static bool db_synced(const ld_repl *r, const char *db)
{
    for (size_t i = 0; i < r->n_synced; i++)
        if (!strcmp(r->synced[i], db)) return true;
    return false;
}

/* Remembers that db's peers were read; out of memory it is only read again next time. */
static void mark_synced(ld_repl *r, const char *db)
{
    if (db_synced(r, db)) return;
    if (r->n_synced == r->cap_synced) {
        size_t cap = r->cap_synced ? 2 * r->cap_synced : 8;
        void *v = realloc(r->synced, cap * sizeof *r->synced);
        if (!v) return;
        r->synced = v;
        r->cap_synced = cap;
    }
    snprintf(r->synced[r->n_synced++], LD_DB_NAME_MAX + 1, "%s", db);
}

/* Brings the links of db in line with its peers. */
static void links_sync_db(ld_repl *r, const char *db)
{
    ld_peer_list peers;
    effective_peers(r, db, &peers);
    mark_synced(r, db);
    for (size_t i = 0; i < r->n_links; i++)
        if (!strcmp(r->links[i]->db, db) && !ld_peer_list_find(&peers, r->links[i]->peer))
            r->links[i]->removed = true;
    for (size_t i = 0; i < peers.n; i++)
        if (strcmp(peers.v[i].id, r->node->node_id) != 0) link_get(r, db, &peers.v[i]);
    ld_peer_list_free(&peers);
}

/* Nothing refers to a removed link any more: no cycle, no queue slot, no request, no writer
 * job (a checkpoint save or a snapshot page) whose completion would find it. */
static bool link_unreferenced(const ld_link *l)
{
    return l->removed && l->ph == PH_IDLE && !l->queued && !l->call && !l->reading &&
           !l->ckpt_saving && !(l->boot && (l->boot->jobs > 0 || l->boot->requesting));
}

/* Frees the removed links nothing refers to; the others go at a later sync. Callers hold no
 * link pointer across it. */
static void links_reap(ld_repl *r)
{
    size_t kept = 0;
    for (size_t i = 0; i < r->n_links; i++) {
        if (link_unreferenced(r->links[i])) {
            ld_log(LD_LOG_INFO, r->links[i]->db, "peer %s removed: its link is freed",
                   r->links[i]->peer);
            link_free(r->links[i]);
        } else {
            r->links[kept++] = r->links[i];
        }
    }
    r->n_links = kept;
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
    /* A database dropped since is read afresh if it comes back. */
    size_t kept = 0;
    for (size_t i = 0; i < r->n_synced; i++) {
        bool found = false;
        for (size_t j = 0; names && j < n && !found; j++)
            found = !strcmp(names[j], r->synced[i]);
        if (found) memmove(r->synced[kept++], r->synced[i], sizeof r->synced[i]);
    }
    r->n_synced = kept;
    ld_registry_names_free(names, n);
    links_reap(r);
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
                /* A snapshot cut short (kill -9, a network failure) resumes after the last
                 * page that committed, with the peer it came from. */
                ld_boot_progress p;
                bool found = false;
                if (ld_boot_progress_load(db, &p, &found) == LD_OK && found) {
                    ld_link *src = link_find(r, l->db, p.peer);
                    if (src && !src->removed && src->active && !src->boot) {
                        ld_log(LD_LOG_INFO, l->db,
                               "snapshot from %s was cut after %" PRIu64 " of %" PRIu64
                               " records: resuming",
                               p.peer, p.done, p.total);
                        boot_begin(src, false);
                        src->boot->done = src->boot->resumed_done = p.done;
                        src->boot->total = p.total;
                        src->boot->log_seq = p.log_seq;
                        if (src != l) link_kick(src, true);
                    }
                }
                ld_boot_progress_clear(&p);
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
    l->fails[l->fail_reason >= 0 && l->fail_reason < FAIL_N ? l->fail_reason : FAIL_LOCAL]++;
    l->fail_reason = FAIL_LOCAL;
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
    l->answers_as[0] = '\0';
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
/* An answer that is not JSON (a snapshot page): the body as received, NULL on failure. */
typedef void (*raw_reply_fn)(ld_link *l, int code, struct evbuffer *body, const char *err);

typedef struct call {
    ld_link *link;
    reply_fn fn;
    raw_reply_fn raw; /* instead of fn when set */
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

/* Hands a failure without an answer to the call's callback. */
static void call_failed(ld_link *l, reply_fn fn, raw_reply_fn raw, const char *why)
{
    if (raw)
        raw(l, 0, NULL, why);
    else
        fn(l, 0, NULL, why);
}

static void call_done(struct evhttp_request *req, void *arg)
{
    call *c = arg;
    ld_link *l = c->link;
    l->call = NULL;
    reply_fn fn = c->fn;
    raw_reply_fn raw = c->raw;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    int error = c->error;
    char why[256];
    bool reused;
    bool described = ld_peer_conn_done(&l->pc, code, why, sizeof why, &reused);
    /* The peer may have closed the idle https connection as the request left: one more try on
     * a fresh connection (pushes and pulls are idempotent), never after a timeout. */
    if (code == 0 && !described && !c->retried && error != EVREQ_HTTP_TIMEOUT && reused) {
        c->retried = true;
        c->error = -1;
        if (call_send(c)) return;
        call_free(c);
        call_failed(l, fn, raw, "cannot open a connection (out of memory)");
        return;
    }
    call_free(c);
    if (described) {
        call_failed(l, fn, raw, why);
        return;
    }
    if (code == 0) {
        /* A plain connection is reset on the next call. */
        call_failed(l, fn, raw, no_answer(error));
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    l->bytes_received += evbuffer_get_length(in);
    if (raw) {
        raw(l, code, in, NULL);
        return;
    }
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
    if (!ld_peer_conn_prepare(&l->pc, r->node->tls, r->node->base, r->dns, &l->addr,
                              r->node->cfg.repl_timeout_s))
        return false;
    struct evhttp_request *req = evhttp_request_new(call_done, c);
    if (!req || evbuffer_add_buffer_reference(evhttp_request_get_output_buffer(req), c->body)) {
        if (req) evhttp_request_free(req);
        return false;
    }
    l->bytes_sent += evbuffer_get_length(c->body);
    evhttp_request_set_error_cb(req, call_error);
    l->call = c; /* until call_done; link_free frees it if the connection goes first */
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char hostport[300], path[512];
    snprintf(hostport, sizeof hostport, "%s:%d", l->addr.host, l->addr.port);
    snprintf(path, sizeof path, "%s/api/replication/%s", l->addr.prefix, c->what);
    evhttp_add_header(h, "Host", hostport);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Database", l->db);
    evhttp_add_header(h, "ReplicationApiKey", r->node->cfg.replication_api_key);
    evhttp_add_header(h, "TargetNodeId", l->peer); /* refused by any other node: link_identity */
    if (ld_peer_conn_request(&l->pc, req, EVHTTP_REQ_POST, path) != 0) {
        l->call = NULL; /* evhttp freed req; c is ours again */
        return false;
    }
    return true;
}

/* POSTs body (its contents move into the call) to the peer's /api/replication/<what>; the
 * answer goes to fn as JSON, or to raw as received when raw is set. */
static bool call_post_any(ld_link *l, const char *what, struct evbuffer *body, reply_fn fn,
                          raw_reply_fn raw)
{
    call *c = calloc(1, sizeof *c);
    if (!c || !(c->body = evbuffer_new()) || evbuffer_add_buffer(c->body, body) != 0) {
        if (c) call_free(c);
        return false;
    }
    c->link = l;
    c->fn = fn;
    c->raw = raw;
    c->error = -1;
    snprintf(c->what, sizeof c->what, "%s", what);
    if (call_send(c)) return true;
    call_free(c);
    return false;
}

static bool call_post(ld_link *l, const char *what, struct evbuffer *body, reply_fn fn)
{
    return call_post_any(l, what, body, fn, NULL);
}

/* The node at the link's BaseUrl says it is `seen`, not the peer: remembered for the status
 * (IdentityMismatch) and logged once, naming both ids. */
static void link_identity(ld_link *l, const char *seen)
{
    if (!seen || !ld_node_id_valid(seen) || !strcmp(seen, l->peer)) return;
    if (strcmp(l->answers_as, seen) != 0)
        ld_log(LD_LOG_WARN, l->db,
               "the node at %s (peer '%s') is '%s': replication with '%s' stops until its "
               "address is fixed or it is removed (DELETE /api/cluster/peers/%s)",
               l->base_url, l->peer, seen, l->peer, l->peer);
    snprintf(l->answers_as, sizeof l->answers_as, "%s", seen);
}

static void peer_error(ld_link *l, int code, json_t *body, const char *err, const char *what)
{
    if (code == 409) link_identity(l, json_string_value(ld_json_get_ci(body, "NodeId")));
    if (code == 0) {
        l->fail_reason = FAIL_UNREACHABLE;
        cycle_fail(l, "%s: %s", what, err);
        return;
    }
    l->fail_reason = code >= 500 ? FAIL_HTTP_5XX : code == 409 ? FAIL_PROTOCOL : FAIL_HTTP_4XX;
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
    ld_wjob *job = ld_wjob_custom(ld_ckpt_save_apply, ckpt_saved, l);
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
    job->lazy = true; /* a checkpoint that lags is re-derived, so it need not cost a flush */
    job->ctx = v;
    job->id = peer;
    job->collection = coll;
    l->ckpt_saving = true;
    ld_node_submit(l->repl->node, db, job);
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
        l->fail_reason = FAIL_PROTOCOL;
        cycle_fail(l, "push: %s", perr);
        return;
    }
    uint64_t ack = 0;
    bool known = false;
    if (ld_json_as_u64(ld_json_get_ci(body, "LastProcessedLogSequence"), &ack))
        for (size_t i = 0; i < l->n_sent && !known; i++)
            known = l->sent[i] == ack;
    size_t sent = l->n_sent;
    bool full = sent >= l->push_limit || l->sent_more;
    l->n_sent = 0;
    if (!known || ack <= l->push_ckpt) {
        /* Nothing acknowledged (the peer stopped at a gap, or the answer is not about this
         * batch): the pull below brings what the peer lacks; the next cycle retries. */
        step_pull(l);
        return;
    }
    l->push_ckpt = ack;
    l->ops_pushed += sent;
    ld_repl_promises_merge(l->repl, l->db, ld_json_get_ci(body, "PurgePromises"));
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

/* Whether version vector vv names no origin but `node`. */
static bool vv_only_of(json_t *vv, const char *node)
{
    const char *origin;
    json_t *v;
    json_object_foreach(vv, origin, v)
    {
        if (strcmp(origin, node) != 0) return false;
    }
    return true;
}

static void push_batch_read(ld_link *l, ld_status st, ld_oplog_batch b);

static void push_read_work(void *arg)
{
    push_read *pr = arg;
    pr->st = ld_oplog_read(pr->db, pr->after, pr->limit, pr->max_bytes, pr->peer, pr->peer_vv,
                           pr->peer_vv != NULL, &pr->b);
}

static void push_read_done(void *arg)
{
    push_read *pr = arg;
    ld_link *l = pr->l;
    ld_node *node = pr->node;
    ld_status st = pr->st;
    ld_oplog_batch b = pr->b; /* ld_oplog_read freed it when it failed */
    node->inflight--;
    ld_registry_release(&node->reg, pr->db);
    json_decref(pr->peer_vv);
    free(pr);
    if (l) l->reading = NULL;
    if (!l || node->shutting_down) {
        if (st == LD_OK) ld_oplog_batch_free(&b);
        if (l) cycle_end(l);
        return;
    }
    push_batch_read(l, st, b);
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
    ld_db_state now;
    ld_db_state_get(db, &now);
    bool gate = l->push_ckpt == 0 && now.last_seq > (uint64_t)r->node->cfg.repl_batch_size &&
                (!l->peer_vv || vv_only_of(l->peer_vv, l->peer));
    uint64_t mono = ld_mono_ms();
    if (!gate)
        l->gated_since = 0;
    else if (!l->gated_since)
        l->gated_since = mono;
    /* A peer that does not take the snapshot (it has no link to us: a one-way setup) gets the
     * log after a while; one that is loading it from us keeps the wait going. */
    if (gate && mono - l->gated_since >= PUSH_GATE_MS(r) &&
        mono - l->peer_snapshot_at >= PUSH_GATE_MS(r)) {
        if (l->push_gated)
            ld_log(LD_LOG_INFO, l->db, "%s takes no snapshot from this node: pushing the log",
                   l->peer);
        gate = false;
    }
    if (gate) {
        /* A peer that holds nothing of this database but its own writes loads a snapshot from
         * us (its pull sees more than a batch to replay), which is far faster than our whole
         * log op by op. Until its version vector is known (our pull below reports it), or
         * while it says so, we do not push; a hint makes it pull now. */
        ld_registry_release(&r->node->reg, db);
        l->push_gated = true;
        if (l->peer_vv) hint_send(l);
        step_pull(l);
        return;
    }
    l->push_gated = false;
    if (r->node->shutting_down) {
        /* No new read: the loop's exit is decided when nothing is in flight, and a read begun
         * in its grace could outlive it. The cycle ends here. */
        ld_registry_release(&r->node->reg, db);
        cycle_end(l);
        return;
    }
    push_read *pr = calloc(1, sizeof *pr);
    json_t *vv = l->peer_vv ? json_deep_copy(l->peer_vv) : NULL;
    if (!pr || (l->peer_vv && !vv)) {
        free(pr);
        json_decref(vv);
        ld_registry_release(&r->node->reg, db);
        cycle_fail(l, "push: out of memory");
        return;
    }
    /* The peer has its own ops: never send them back; nor what its version vector covers (a
     * copy: the loop may replace the link's while the worker reads). */
    *pr = (push_read){.l = l,
                      .node = r->node,
                      .db = db,
                      .peer_vv = vv,
                      .after = l->push_ckpt,
                      .limit = l->push_limit,
                      .max_bytes = r->node->cfg.repl_batch_bytes};
    snprintf(pr->peer, sizeof pr->peer, "%s", l->peer);
    l->reading = pr;
    r->node->inflight++;
    if (!ld_workers_submit(r->node->workers, push_read_work, push_read_done, pr)) {
        r->node->inflight--;
        l->reading = NULL;
        json_decref(vv);
        ld_registry_release(&r->node->reg, db);
        free(pr);
        cycle_fail(l, "push: out of memory");
    }
}

/* The push batch read by push_read_work, back on the loop: the request goes out from here. */
static void push_batch_read(ld_link *l, ld_status st, ld_oplog_batch b)
{
    ld_repl *r = l->repl;
    /* What this node promises (and passes on) for the purge frontier rides with the batch. */
    json_t *promises = NULL;
    if (st == LD_OK && !b.needs_snapshot && b.n) {
        ld_db *db = ld_registry_get(&r->node->reg, l->db);
        if (db) {
            promises = ld_repl_promises_json(r, db);
            ld_registry_release(&r->node->reg, db);
        }
    }
    if (st != LD_OK) {
        cycle_fail(l, "push: reading the op log: %s", ld_status_str(st));
        return;
    }
    if (b.needs_snapshot) {
        /* The peer lacks ops that are not in our log: every push would stop at a gap. It takes
         * a snapshot when its pull from us is refused (410). */
        l->peer_too_old = true;
        ld_oplog_batch_free(&b);
        step_pull(l);
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
    l->sent_more = b.more;
    struct evbuffer *body = evbuffer_new();
    bool ok =
        body &&
        evbuffer_add_printf(body, "{\"ProtocolVersion\":%d,\"SourceNodeId\":", LD_REPL_PROTOCOL) >
            0 &&
        ld_json_string_evbuffer(r->node->node_id, strlen(r->node->node_id), body) &&
        evbuffer_add(body, ",\"Operations\":[", 15) == 0 && evbuffer_add_buffer(body, b.ops) == 0 &&
        evbuffer_add(body, "],\"PurgePromises\":", 18) == 0 && promises &&
        ld_json_dump_evbuffer(promises, JSON_COMPACT, body) && evbuffer_add(body, "}", 1) == 0 &&
        call_post(l, "push", body, push_reply);
    json_decref(promises);
    ld_oplog_batch_free(&b);
    if (body) evbuffer_free(body);
    if (!ok) l->fail_reason = FAIL_UNREACHABLE;
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

/* Whether another link of db is loading a snapshot: this one leaves its pulls out meanwhile,
 * so the database is not loaded twice (once by the snapshot, once by replaying a log). */
static bool db_boot_elsewhere(ld_repl *r, const char *db, const ld_link *self)
{
    for (size_t i = 0; i < r->n_links; i++) {
        const ld_link *o = r->links[i];
        if (o != self && o->boot && !o->removed && o->active && !strcmp(o->db, db)) return true;
    }
    return false;
}

/* Whether db holds no op of any node but this one (a new database, or one written only here):
 * catching it up from a peer's whole log is what a snapshot does faster. */
static bool db_has_only_own_ops(ld_repl *r, const char *name)
{
    ld_db *db = ld_registry_get(&r->node->reg, name);
    if (!db) return true;
    json_t *vv = NULL;
    char digest[2 * LD_DIGEST_LEN + 1];
    bool only = ld_oplog_state(db, &vv, digest) == LD_OK;
    ld_registry_release(&r->node->reg, db);
    const char *origin;
    json_t *v;
    json_object_foreach(only ? vv : NULL, origin, v)
    {
        if (strcmp(origin, ld_env_origin(&r->node->env)) != 0) only = false;
    }
    json_decref(vv);
    return only;
}

/* The pull step turns into a snapshot load (a fresh one), unless another link loads one. */
static void pull_to_snapshot(ld_link *l, const char *why)
{
    if (db_boot_elsewhere(l->repl, l->db, l)) {
        cycle_ok(l);
        return;
    }
    ld_log(LD_LOG_INFO, l->db, "loading a snapshot from %s: %s", l->peer, why);
    boot_begin(l, true);
    step_snapshot(l);
}

static void pull_reply(ld_link *l, int code, json_t *body, const char *err)
{
    ld_repl *r = l->repl;
    if (code == 410 && json_is_true(ld_json_get_ci(body, "SnapshotRequired"))) {
        ld_json_as_u64(ld_json_get_ci(body, "OldestAvailableLogSequence"), &l->peer_oldest);
        pull_to_snapshot(l, "its log does not hold every operation this node lacks");
        return;
    }
    if (code < 200 || code > 299) {
        peer_error(l, code, body, err, "pull");
        return;
    }
    char perr[256];
    if (!ld_wire_protocol_ok(body, perr, sizeof perr)) {
        l->fail_reason = FAIL_PROTOCOL;
        cycle_fail(l, "pull: %s", perr);
        return;
    }
    const char *answered = json_string_value(ld_json_get_ci(body, "NodeId"));
    if (answered && strcmp(answered, l->peer) != 0) { /* a node without TargetNodeId checks */
        link_identity(l, answered);
        l->fail_reason = FAIL_PROTOCOL;
        cycle_fail(l, "pull: the node at this address is '%.128s', not '%s'", answered, l->peer);
        return;
    }
    json_t *ops = ld_json_get_ci(body, "Operations");
    uint64_t scanned = 0;
    if (!json_is_array(ops)) {
        l->fail_reason = FAIL_PROTOCOL;
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
    ld_wjob *job = ld_wjob_custom(ld_ingest_apply, ingest_done, pc);
    if (!pc || !in || !job || (n && !(in->ops = calloc(n, sizeof *in->ops)))) {
        free(pc);
        ld_ingest_free(in);
        free(job);
        cycle_fail(l, "pull: out of memory");
        return;
    }
    pc->link = l;
    pc->more = json_is_true(more) || (!more && n >= (size_t)r->node->cfg.repl_batch_size);
    if (l->pull_ckpt == 0 && pc->more && l->peer_max > (uint64_t)r->node->cfg.repl_batch_size &&
        db_has_only_own_ops(r, l->db)) {
        /* More than a batch of ops to replay into a database that holds nothing from other
         * nodes (a few large ops that fill a batch by bytes replay as fast as a snapshot). */
        free(pc);
        ld_ingest_free(in);
        free(job);
        pull_to_snapshot(l, "this database holds nothing from other nodes yet");
        return;
    }
    json_t *pvv = ld_json_get_ci(body, "VersionVector");
    pc->peer_vv = json_is_object(pvv) ? json_incref(pvv) : NULL;
    if (pc->peer_vv) { /* what the peer holds, for our next pushes */
        json_decref(l->peer_vv);
        l->peer_vv = json_incref(pvv);
    }
    ld_repl_promises_merge(r, l->db, ld_json_get_ci(body, "PurgePromises"));
    const char *pd = json_string_value(ld_json_get_ci(body, "Digest"));
    snprintf(pc->peer_digest, sizeof pc->peer_digest, "%s", pd ? pd : "");
    for (size_t i = 0; i < n; i++) {
        char derr[256];
        if (!ld_wire_op_decode(json_array_get(ops, i), &in->ops[i], derr, sizeof derr)) {
            ld_ingest_free(in);
            free(job);
            json_decref(pc->peer_vv);
            free(pc);
            l->fail_reason = FAIL_PROTOCOL;
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
    job->ctx = in;
    l->ph = PH_INGEST;
    ld_node_submit(r->node, db, job);
    ld_registry_release(&r->node->reg, db);
}

/* The pull step of a cycle. */
static void step_pull(ld_link *l)
{
    if (l->boot) { /* a snapshot in progress comes before any pull */
        step_snapshot(l);
        return;
    }
    if (db_boot_elsewhere(l->repl, l->db, l)) {
        l->ph = PH_PULL;
        cycle_ok(l);
        return;
    }
    /* (Unless step_push waits to learn what the peer holds: the pull's answer says.) */
    bool learn = !l->peer_vv && l->push_gated;
    if (!l->must_pull && !learn && l->peer_pushed_at &&
        ld_mono_ms() - l->peer_pushed_at < PEER_PUSHING_MS) {
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
    json_t *vv = NULL, *promises = NULL;
    char digest[2 * LD_DIGEST_LEN + 1];
    ld_db *db = ld_registry_get(&r->node->reg, l->db);
    if (db) {
        ld_status st = ld_oplog_state(db, &vv, digest);
        if (st == LD_OK) promises = ld_repl_promises_json(r, db);
        ld_registry_release(&r->node->reg, db);
        if (st != LD_OK) {
            cycle_fail(l, "pull: reading the version vector: %s", ld_status_str(st));
            return;
        }
    }
    json_t *body = json_pack("{s:i, s:s, s:I, s:i, s:o, s:o?}", "ProtocolVersion", LD_REPL_PROTOCOL,
                             "RequestingNodeId", r->node->node_id, "AfterLogSequence",
                             (json_int_t)l->pull_ckpt, "BatchSize", r->node->cfg.repl_batch_size,
                             "VersionVector", vv ? vv : json_object(), "PurgePromises", promises);
    struct evbuffer *text = body ? evbuffer_new() : NULL;
    bool ok = text && ld_json_dump_evbuffer(body, JSON_COMPACT, text) &&
              call_post(l, "pull", text, pull_reply);
    json_decref(body);
    if (text) evbuffer_free(text);
    if (!ok) l->fail_reason = FAIL_UNREACHABLE;
    if (!ok) cycle_fail(l, "pull: cannot send the request");
}

/* ---------------------------------------------------------------------------------------------
 * Snapshot bootstrap: pages of the peer's records merged without op-log entries, then the pull
 * of its log after the position the snapshot stands at (bootstrap.h, snapshot_page.h)
 * ------------------------------------------------------------------------------------------- */

static void boot_begin(ld_link *l, bool fresh)
{
    if (!l->boot) {
        l->boot = calloc(1, sizeof *l->boot);
        if (!l->boot) return; /* the next cycle tries again */
    }
    boot_state *b = l->boot;
    b->first = fresh;
    b->reload = !fresh;
    b->all_received = false;
    b->req_key_len = 0;
    if (fresh) b->done = b->resumed_done = b->total = b->log_seq = 0;
    b->started_wall = ld_wall_ms();
    b->started_mono = ld_mono_ms();
}

static void boot_end(ld_link *l)
{
    free(l->boot);
    l->boot = NULL;
}

static void snap_reply(ld_link *l, int code, struct evbuffer *in, const char *err);

static void snap_request(ld_link *l)
{
    ld_repl *r = l->repl;
    boot_state *b = l->boot;
    char key_b64[sodium_base64_ENCODED_LEN(LD_SNAP_MAX_KEY, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(key_b64, sizeof key_b64, b->req_key, b->req_key_len,
                      sodium_base64_VARIANT_ORIGINAL);
    json_t *body =
        json_pack("{s:i, s:s, s:s?, s:I}", "ProtocolVersion", LD_REPL_PROTOCOL, "RequestingNodeId",
                  r->node->node_id, "AfterKey", b->first ? NULL : key_b64, "MaxBytes",
                  (json_int_t)r->node->cfg.snapshot_page_bytes);
    struct evbuffer *text = body ? evbuffer_new() : NULL;
    bool ok = text && ld_json_dump_evbuffer(body, JSON_COMPACT, text) &&
              call_post_any(l, "snapshot", text, NULL, snap_reply);
    json_decref(body);
    if (text) evbuffer_free(text);
    b->requesting = ok;
    if (!ok) {
        b->reload = true;
        l->fail_reason = FAIL_UNREACHABLE;
        cycle_fail(l, "snapshot: cannot send the request");
    }
}

/* The snapshot step of a cycle: asks for the next page unless pages are still being merged
 * (their completion calls it again) or the last one arrived. */
static void step_snapshot(ld_link *l)
{
    l->ph = PH_SNAPSHOT;
    boot_state *b = l->boot;
    if (!b) {
        cycle_fail(l, "snapshot: out of memory");
        return;
    }
    if (b->requesting || b->jobs >= SNAPSHOT_PAGES_AHEAD ||
        (b->jobs > 0 && (b->reload || b->all_received)))
        return;
    if (b->all_received) {
        /* Every page was merged but none finished the snapshot (one was refused as stale):
         * go on from what is stored. */
        b->all_received = false;
        b->reload = true;
    }
    if (b->reload) {
        ld_db *db = ld_registry_get(&l->repl->node->reg, l->db);
        ld_boot_progress p;
        bool found = false;
        ld_status st = db ? ld_boot_progress_load(db, &p, &found) : LD_NOT_FOUND;
        if (db) ld_registry_release(&l->repl->node->reg, db);
        if (st != LD_OK && st != LD_NOT_FOUND) {
            cycle_fail(l, "snapshot: reading its progress: %s", ld_status_str(st));
            return;
        }
        b->reload = false;
        if (found && !strcmp(p.peer, l->peer)) {
            b->first = false;
            memcpy(b->req_key, p.next_key, p.next_key_len);
            b->req_key_len = p.next_key_len;
            b->done = p.done;
            b->total = p.total;
            b->log_seq = p.log_seq;
            /* A snapshot stored before its first record cannot name the page after: restart. */
            if (p.next_key_len == 0) b->first = true;
        } else {
            b->first = true; /* nothing stored (or another node's): a new snapshot */
            b->req_key_len = 0;
        }
        ld_boot_progress_clear(&p);
    }
    snap_request(l);
}

static void boot_job_done(ld_wjob *job)
{
    ld_link *l = job->arg;
    ld_boot_page *pg = job->ctx;
    ld_wresult res = job->result;
    ld_boot_outcome oc = pg->outcome;
    boot_state *b = l->boot;
    if (b) {
        b->jobs--;
        if (res == LD_WR_OK && (oc == LD_BOOT_APPLIED || oc == LD_BOOT_FINISHED)) {
            b->done = pg->done;
            b->total = pg->total;
            b->log_seq = pg->log_seq;
        } else {
            b->reload = true;
        }
    }
    uint64_t log_seq = pg->log_seq, done = pg->done;
    ld_boot_page_free(pg);
    ld_wjob_free(job);
    if (!b) return;
    /* A request still out answers into snap_reply, which sees `reload` and goes on from the
     * stored progress; failing the cycle under it would mix its answer into the next cycle. */
    bool in_cycle = l->ph == PH_SNAPSHOT && !b->requesting;
    if (res != LD_WR_OK) {
        if (in_cycle) cycle_fail(l, "snapshot: a page could not be committed");
        return;
    }
    if (oc == LD_BOOT_MISMATCH) {
        /* The progress is gone: the reload starts a new snapshot. */
        l->repl->divergences++;
        ld_log(LD_LOG_ERROR, l->db,
               "snapshot from %s: the records received do not add up to its digest although it "
               "did not change meanwhile; starting over",
               l->peer);
        b->all_received = false;
        l->fail_reason = FAIL_PROTOCOL;
        if (in_cycle) cycle_fail(l, "snapshot: the records do not match the source's digest");
        return;
    }
    if (oc == LD_BOOT_FINISHED) {
        uint64_t ms = ld_mono_ms() - b->started_mono;
        uint64_t moved = done - b->resumed_done;
        ld_log(LD_LOG_INFO, l->db,
               "snapshot from %s loaded: %" PRIu64 " records (%" PRIu64 " in %" PRIu64
               " ms, %.0f/s); replication continues after its log sequence %" PRIu64,
               l->peer, done, moved, ms, ms ? 1000.0 * (double)moved / (double)ms : 0.0, log_seq);
        if (log_seq > l->pull_ckpt) l->pull_ckpt = log_seq;
        boot_end(l);
        if (in_cycle) pull_next(l);
        return;
    }
    if (in_cycle) step_snapshot(l);
}

static void snap_reply(ld_link *l, int code, struct evbuffer *in, const char *err)
{
    ld_repl *r = l->repl;
    boot_state *b = l->boot;
    if (!b) { /* cannot happen: the link keeps its boot state while a request is out */
        cycle_fail(l, "snapshot: lost its state");
        return;
    }
    b->requesting = false;
    if (b->reload && l->ph == PH_SNAPSHOT && code >= 200 && code <= 299) {
        /* An earlier page failed or did not add up: this one cannot follow it. */
        step_snapshot(l);
        return;
    }
    if (code < 200 || code > 299) {
        b->reload = true;
        json_error_t je;
        size_t len = in ? evbuffer_get_length(in) : 0;
        json_t *body = len ? json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &je) : NULL;
        /* The peer no longer holds the database: this snapshot cannot end; another peer's
         * pull (or snapshot) takes over, and what was merged stays. */
        if (code == 404 && b->jobs == 0) boot_end(l);
        peer_error(l, code, body, err, "snapshot");
        json_decref(body);
        return;
    }
    ld_boot_page *pg = calloc(1, sizeof *pg);
    ld_wjob *job = ld_wjob_custom(ld_boot_apply, boot_job_done, l);
    size_t len = evbuffer_get_length(in);
    if (pg) pg->buf = malloc(len ? len : 1);
    if (!pg || !job || !pg->buf) {
        ld_boot_page_free(pg);
        free(job);
        b->reload = true;
        cycle_fail(l, "snapshot: out of memory");
        return;
    }
    pg->len = len;
    evbuffer_remove(in, pg->buf, len);
    char perr[200];
    if (!ld_snap_parse(pg->buf, pg->len, &pg->hdr, &pg->recs, &pg->recs_len, perr, sizeof perr) ||
        pg->hdr.first != b->first) {
        if (perr[0] == '\0') snprintf(perr, sizeof perr, "the page is not the one asked for");
        ld_boot_page_free(pg);
        free(job);
        b->reload = true;
        l->fail_reason = FAIL_PROTOCOL;
        cycle_fail(l, "snapshot: %s", perr);
        return;
    }
    snprintf(pg->peer, sizeof pg->peer, "%s", l->peer);
    memcpy(pg->after, b->req_key, b->req_key_len);
    pg->after_len = b->first ? 0 : b->req_key_len;
    pg->policy = r->node->cfg.conflict_policy;
    if (b->first) {
        b->total = pg->hdr.total;
        b->log_seq = pg->hdr.log_seq;
        b->done = b->resumed_done = 0;
    }
    /* The next page starts after this page's last key. */
    const uint8_t *q = pg->recs, *end = pg->recs + pg->recs_len, *key = NULL, *val;
    size_t kl = 0, vl;
    while (ld_snap_next(&q, end, &key, &kl, &val, &vl)) {
    }
    if (key) {
        memcpy(b->req_key, key, kl);
        b->req_key_len = kl;
    }
    b->first = false;
    b->all_received = pg->hdr.done;
    ld_db *db = NULL;
    if (ld_registry_get_or_create(&r->node->reg, l->db, &db) != LD_OK) {
        ld_boot_page_free(pg);
        free(job);
        b->reload = true;
        cycle_fail(l, "snapshot: cannot open the database");
        return;
    }
    job->ctx = pg;
    b->jobs++;
    ld_node_submit(r->node, db, job);
    ld_registry_release(&r->node->reg, db);
    step_snapshot(l); /* the next page downloads while this one is merged */
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
    /* A database we have not seen before (created by this write) gets its links now, and the
     * node-wide peers hear of it (those that do not replicate it with us yet ask for it). */
    if (!any) {
        if (!db_synced(r, db)) links_sync_db(r, db);
        ld_discovery_db_created(r->node->disc, db);
    }
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

uint64_t ld_repl_prune_limit(ld_repl *r, const char *db, char *blocker, size_t len)
{
    links_sync_db(r, db);
    uint64_t limit = UINT64_MAX;
    if (len) blocker[0] = '\0';
    for (size_t i = 0; i < r->n_links; i++) {
        const ld_link *l = r->links[i];
        if (l->removed || !l->active || strcmp(l->db, db) != 0) continue;
        /* A link whose stored checkpoints are not loaded yet counts as having nothing. */
        uint64_t has = l->loaded ? l->push_ckpt : 0;
        if (has < limit) {
            limit = has;
            snprintf(blocker, len, "%s", l->peer);
        }
    }
    return limit;
}

static promise *promise_find(ld_repl *r, const char *db, const char *origin)
{
    for (size_t i = 0; i < r->n_promises; i++)
        if (!strcmp(r->promises[i].db, db) && !strcmp(r->promises[i].origin, origin))
            return &r->promises[i];
    return NULL;
}

void ld_repl_promises_merge(ld_repl *r, const char *db, json_t *promises)
{
    if (!json_is_object(promises)) return;
    const char *origin;
    json_t *v;
    json_object_foreach(promises, origin, v)
    {
        uint64_t seq, hlc;
        if (!ld_node_id_valid(origin) || !strcmp(origin, r->node->node_id) ||
            !ld_json_as_u64(ld_json_get_ci(v, "Sequence"), &seq) ||
            !ld_json_as_u64(ld_json_get_ci(v, "Hlc"), &hlc))
            continue; /* a malformed entry promises nothing */
        promise *p = promise_find(r, db, origin);
        if (!p) {
            if (r->n_promises == r->cap_promises) {
                size_t cap = r->cap_promises ? 2 * r->cap_promises : 8;
                promise *g = realloc(r->promises, cap * sizeof *g);
                if (!g) return; /* the frontier stays lower: safe */
                r->promises = g;
                r->cap_promises = cap;
            }
            p = &r->promises[r->n_promises++];
            snprintf(p->db, sizeof p->db, "%s", db);
            snprintf(p->origin, sizeof p->origin, "%s", origin);
            p->seq = p->hlc = 0;
        }
        /* An origin's promises grow in both fields: the later one (higher stamp) wins. */
        if (hlc > p->hlc || (hlc == p->hlc && seq > p->seq)) {
            p->seq = seq;
            p->hlc = hlc;
        }
    }
}

json_t *ld_repl_promises_json(ld_repl *r, ld_db *db)
{
    json_t *o = json_object();
    if (!o) return NULL;
    ld_db_state s;
    ld_db_state_get(db, &s);
    char hb[24];
    bool ok = true;
    snprintf(hb, sizeof hb, "%" PRIu64, s.promise_hlc);
    ok = !json_object_set_new(
        o, r->node->node_id,
        json_pack("{s:I, s:s}", "Sequence", (json_int_t)s.promise_seq, "Hlc", hb));
    for (size_t i = 0; ok && i < r->n_promises; i++) {
        const promise *p = &r->promises[i];
        if (strcmp(p->db, db->name) != 0) continue;
        snprintf(hb, sizeof hb, "%" PRIu64, p->hlc);
        ok = !json_object_set_new(
            o, p->origin, json_pack("{s:I, s:s}", "Sequence", (json_int_t)p->seq, "Hlc", hb));
    }
    /* Our active peers we have no promise of yet: named with an empty promise, so the
     * receiver counts them as writers too (they hold its frontier until they report). */
    for (size_t i = 0; ok && i < r->n_links; i++) {
        const ld_link *l = r->links[i];
        if (l->removed || !l->active || strcmp(l->db, db->name) != 0 || json_object_get(o, l->peer))
            continue;
        ok = !json_object_set_new(o, l->peer,
                                  json_pack("{s:I, s:s}", "Sequence", (json_int_t)0, "Hlc", "0"));
    }
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

size_t ld_repl_purge_origins(ld_repl *r, const char *db, ld_purge_origin **out)
{
    links_sync_db(r, db);
    size_t n = 0;
    *out = NULL;
    ld_purge_origin *a = calloc(r->n_promises + r->n_links + 1, sizeof *a);
    if (!a) return SIZE_MAX;
    for (size_t i = 0; i < r->n_promises; i++) {
        const promise *p = &r->promises[i];
        if (strcmp(p->db, db) != 0) continue;
        snprintf(a[n].origin, sizeof a[n].origin, "%s", p->origin);
        a[n].has_promise = true;
        a[n].seq = p->seq;
        a[n].hlc = p->hlc;
        n++;
    }
    for (size_t i = 0; i < r->n_links; i++) {
        const ld_link *l = r->links[i];
        if (l->removed || !l->active || strcmp(l->db, db) != 0) continue;
        bool seen = false;
        for (size_t j = 0; j < n && !seen; j++)
            seen = !strcmp(a[j].origin, l->peer);
        if (seen) continue;
        snprintf(a[n].origin, sizeof a[n].origin, "%s", l->peer);
        n++;
    }
    *out = a;
    return n;
}

void ld_repl_peer_snapshotting(ld_repl *r, const char *db, const char *peer_id)
{
    ld_link *l = link_find(r, db, peer_id);
    if (l) l->peer_snapshot_at = ld_mono_ms();
}

void ld_repl_peer_too_old(ld_repl *r, const char *db, const char *peer_id, bool too_old)
{
    ld_link *l = link_find(r, db, peer_id);
    if (l) l->peer_too_old = too_old;
}

static bool db_has_links(ld_repl *r, const char *db)
{
    for (size_t i = 0; i < r->n_links; i++)
        if (!strcmp(r->links[i]->db, db)) return true;
    return false;
}

void ld_repl_db_discovered(ld_repl *r, const char *db)
{
    links_sync_db(r, db);
    for (size_t i = 0; i < r->n_links; i++)
        if (!strcmp(r->links[i]->db, db)) link_kick(r->links[i], true);
}

void ld_repl_peer_pushed(ld_repl *r, const char *db, const char *peer_id)
{
    ld_link *l = link_find(r, db, peer_id);
    if (!l) { /* the push just created db here: its links too */
        bool created = !db_has_links(r, db);
        links_sync_db(r, db);
        if (created) ld_discovery_db_created(r->node->disc, db);
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
    ld_discovery_sweep(r->node->disc);
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
                         bool remove, const char *learned, int *status, char *err, size_t errlen)
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
        ok = ld_peer_list_upsert_from(l, id, url, active, ld_wall_ms(), learned);
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
    /* A new or re-activated peer starts at once, and a node-wide one is introduced to and
     * asked for its databases now, not at the next sweep. */
    for (size_t i = 0; i < r->n_links; i++)
        if (!remove && !strcmp(r->links[i]->peer, id) && (!db || !strcmp(r->links[i]->db, db)))
            link_kick(r->links[i], true);
    if (!remove && !db) ld_discovery_peer_added(r->node->disc, id);
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
    bool ok = peers_change(r, db, id, url, active, false, "api", status, err, errlen);
    free(url);
    return ok;
}

bool ld_repl_peer_introduced(ld_repl *r, const char *id, const char *base_url, bool *added,
                             char *err, size_t errlen)
{
    *added = false;
    if (ld_peer_list_find(&r->node_peers, id)) return true;
    int status;
    *added = peers_change(r, NULL, id, base_url, true, false, "announce", &status, err, errlen);
    return *added;
}

bool ld_repl_peer_remove(ld_repl *r, const char *db, const char *id, int *status, char *err,
                         size_t errlen)
{
    return peers_change(r, db, id, NULL, false, true, NULL, status, err, errlen);
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

/* The snapshot this link loads, for the status and the dashboard; NULL when none. */
static json_t *boot_json(const ld_link *l)
{
    const boot_state *b = l->boot;
    if (!b) return NULL;
    uint64_t ms = ld_mono_ms() - b->started_mono;
    uint64_t moved = b->done > b->resumed_done ? b->done - b->resumed_done : 0;
    return json_pack("{s:s, s:s, s:I, s:I, s:f, s:I, s:o}", "State", "Loading", "SourceNodeId",
                     l->peer, "RecordsDone", (json_int_t)b->done, "RecordsTotal",
                     (json_int_t)b->total, "RecordsPerSecond",
                     ms ? 1000.0 * (double)moved / (double)ms : 0.0, "LogSequence",
                     (json_int_t)b->log_seq, "StartedUtc", time_or_null(b->started_wall));
}

static json_t *link_json(ld_link *l, const ld_db_state *s)
{
    uint64_t local_max = s->last_seq;
    uint64_t pending = ld_log_span(s, l->push_ckpt, local_max);
    uint64_t behind = l->peer_max > l->pull_ckpt ? l->peer_max - l->pull_ckpt : 0;
    /* TooOldNeedsSnapshot: we load one from the peer, or the peer needs one from us. */
    const char *catchup = !l->active                     ? "Inactive"
                          : (l->boot || l->peer_too_old) ? "TooOldNeedsSnapshot"
                          : pending == 0                 ? "Ready"
                                                         : "CatchingUp";
    char reason[200];
    const char *why = l->last_error[0] ? l->last_error : NULL;
    if (l->boot) {
        snprintf(reason, sizeof reason,
                 "loading a snapshot from %s: %" PRIu64 " of %" PRIu64 " records", l->peer,
                 l->boot->done, l->boot->total);
        why = reason;
    } else if (l->peer_too_old && !why) {
        why = "the peer lacks operations that are not in this node's log: it loads a snapshot";
    }
    bool retrying = l->failures > 0 && l->next_retry_wall > ld_wall_ms();
    return json_pack("{s:s, s:s, s:b, s:s, s:s?, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:o, s:o, "
                     "s:s?, s:i, s:o, s:b, s:o}",
                     "PeerNodeId", l->peer, "BaseUrl", l->base_url, "IsActive", l->active,
                     "CatchUpStatus", catchup, "CatchUpReason", why, "OldestAvailableLogSequence",
                     (json_int_t)(l->peer_oldest ? l->peer_oldest : 1),
                     "LastPushedLocalLogSequence", (json_int_t)l->push_ckpt,
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
    json_t *snap = boot_json(l);
    if (j && (json_object_set_new(j, "Snapshot", snap ? snap : json_null()) ||
              json_object_set_new(j, "PushedOperations", json_integer((json_int_t)l->ops_pushed)) ||
              json_object_set_new(j, "PushedDuplicates", json_integer((json_int_t)l->push_dups)) ||
              json_object_set_new(j, "PulledOperations", json_integer((json_int_t)l->ops_pulled)) ||
              json_object_set_new(j, "PulledDuplicates", json_integer((json_int_t)l->pull_dups)))) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* A link whose address answers as another node says so in its status j (and the dashboard's):
 * CatchUpStatus IdentityMismatch and PeerAnswersAs, the id found there. */
static json_t *link_identity_json(const ld_link *l, json_t *j)
{
    if (j && l->answers_as[0] && !l->removed &&
        (json_object_set_new(j, "CatchUpStatus", json_string("IdentityMismatch")) ||
         json_object_set_new(j, "PeerAnswersAs", json_string(l->answers_as)))) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* The purge's fields of a database's status row (docs/replication.md, "Purging tombstones").
 * Non-zero when out of memory. */
static int purge_json(json_t *row, const ld_db_state *s)
{
    char floor[24], when[LD_ISO_TIME_LEN];
    snprintf(floor, sizeof floor, "%" PRIu64, s->purge_floor);
    json_t *last = json_null();
    if (s->last_prune_ms) {
        ld_iso_time(s->last_prune_ms, when);
        last = json_pack("{s:s, s:I, s:I}", "TimeUtc", when, "EntriesRemoved",
                         (json_int_t)s->last_prune_entries, "TombstonesPurged",
                         (json_int_t)s->last_prune_purged);
    }
    return !last || json_object_set_new(row, "LastPrune", last) ||
           json_object_set_new(row, "Tombstones",
                               s->last_prune_ms ? json_integer((json_int_t)s->dead_records)
                                                : json_null()) ||
           json_object_set_new(row, "PurgeFloor", json_string(floor)) ||
           json_object_set_new(row, "RefusedBelowFloor", json_integer((json_int_t)s->refused)) ||
           json_object_set_new(row, "ConflictRecords", json_integer((json_int_t)s->conflicts)) ||
           json_object_set_new(row, "OperationLogBytes", json_integer((json_int_t)s->log_bytes));
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
        json_t *floor = NULL;
        ld_status st = ld_oplog_status(db, &vv, digest, &floor);
        ld_registry_release(&r->node->reg, db);
        json_t *peers = json_array(), *snap = NULL;
        uint64_t total = 0;
        int active = 0;
        for (size_t j = 0; peers && j < r->n_links; j++) {
            ld_link *l = r->links[j];
            if (l->removed || strcmp(l->db, names[i]) != 0) continue;
            if (!snap) snap = boot_json(l);
            if (l->active) {
                active++;
                total += ld_log_span(&s, l->push_ckpt, s.last_seq);
            }
            json_array_append_new(peers, link_identity_json(l, link_counters(l, link_json(l, &s))));
        }
        json_array_append_new(
            dbs,
            json_pack("{s:s, s:s, s:s?, s:I, s:I, s:i, s:I, s:I, s:o, s:o, s:s, s:o, s:o}",
                      "DatabaseName", names[i], "Status", st == LD_OK ? "Healthy" : "Error",
                      "Error", st == LD_OK ? NULL : ld_status_str(st), "OldestAvailableLogSequence",
                      (json_int_t)(s.last_seq ? s.pruned_through + 1 : 0), "LocalMaxLogSequence",
                      (json_int_t)s.last_seq, "ActivePeerCount", active,
                      "TotalEstimatedPendingPushOperations", (json_int_t)total,
                      "OperationLogEntries",
                      (json_int_t)ld_log_span(&s, s.pruned_through, s.last_seq), "VersionVector",
                      vv ? vv : json_object(), "LogFloorVersionVector",
                      floor ? floor : json_object(), "Digest", digest, "Snapshot",
                      snap ? snap : json_null(), "Peers", peers ? peers : json_array()));
        json_t *row = json_array_get(dbs, json_array_size(dbs) - 1);
        if (row && purge_json(row, &s)) {
            json_decref(dbs); /* out of memory: no half answer */
            dbs = NULL;
        }
    }
    ld_registry_names_free(names, n);
    uint64_t full, resumed;
    ld_tls_handshakes(r->node->tls, &full, &resumed);
    return json_pack("{s:s, s:s, s:I, s:{s:I, s:I}, s:o}", "NodeId", r->node->node_id,
                     "TimestampUtc", now, "DivergenceCount", (json_int_t)r->divergences,
                     "TlsClientHandshakes", "Full", (json_int_t)full, "Resumed",
                     (json_int_t)resumed, "Databases", dbs ? dbs : json_array());
}

bool ld_repl_cluster_key_changed(ld_repl *r)
{
    return !r->probe || ld_probe_set_key(r->probe, r->node->cfg.replication_api_key);
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
        if (!have || strcmp(have->base_url, norm) != 0 || have->active != active ||
            strcmp(have->learned, "config") != 0) {
            changed = true;
            if (!ld_peer_list_upsert_from(&r->node_peers, id, norm, active, ld_wall_ms(),
                                          "config")) {
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
    free(r->synced);
    free(r->promises);
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

/* ---------------------------------------------------------------------------------------------
 * Metrics and readiness
 * ------------------------------------------------------------------------------------------- */

/* The links to report: active or not, never removed ones. */
static bool link_reported(const ld_link *l)
{
    return !l->removed;
}

/* One gauge or counter family over every link; value(l, local_max) gives each sample. */
static void links_family(ld_repl *r, ld_mx *w, const uint64_t *local_max, const char *name,
                         const char *type, const char *help,
                         double (*value)(const ld_link *l, uint64_t local_max))
{
    ld_mx_family(w, name, type, help);
    for (size_t i = 0; i < r->n_links; i++) {
        const ld_link *l = r->links[i];
        if (!link_reported(l)) continue;
        const char *labels[] = {"database", l->db, "peer", l->peer, NULL};
        ld_mx_sample(w, name, labels, value(l, local_max[i]));
    }
}

static double v_behind(const ld_link *l, uint64_t m)
{
    (void)m;
    return (double)(l->peer_max > l->pull_ckpt ? l->peer_max - l->pull_ckpt : 0);
}
static double v_pending(const ld_link *l, uint64_t m)
{
    return (double)(m > l->push_ckpt ? m - l->push_ckpt : 0);
}
static double v_since(const ld_link *l, uint64_t m)
{
    (void)m;
    if (!l->last_success_wall) return INFINITY; /* never succeeded since start-up */
    uint64_t now = ld_wall_ms();
    return now > l->last_success_wall ? (double)(now - l->last_success_wall) / 1000.0 : 0.0;
}
static double v_sent_ops(const ld_link *l, uint64_t m)
{
    (void)m;
    return (double)l->ops_pushed;
}
static double v_recv_ops(const ld_link *l, uint64_t m)
{
    (void)m;
    return (double)l->ops_pulled;
}
static double v_sent_bytes(const ld_link *l, uint64_t m)
{
    (void)m;
    return (double)l->bytes_sent;
}
static double v_recv_bytes(const ld_link *l, uint64_t m)
{
    (void)m;
    return (double)l->bytes_received;
}
static double v_diverged(const ld_link *l, uint64_t m)
{
    (void)m;
    return l->diverged ? 1.0 : 0.0;
}
static double v_online(const ld_link *l, uint64_t m)
{
    (void)m;
    return l->online ? 1.0 : 0.0;
}

void ld_repl_metrics(ld_repl *r, ld_mx *w)
{
    uint64_t *local_max = calloc(r->n_links ? r->n_links : 1, sizeof *local_max);
    if (!local_max) {
        w->failed = true;
        return;
    }
    /* Each database's last sequence once, though it has a link per peer. */
    for (size_t i = 0; i < r->n_links; i++) {
        const ld_link *l = r->links[i];
        if (i > 0 &&
            !strcmp(r->links[i - 1]->db, l->db)) { /* a database's links are made together */
            local_max[i] = local_max[i - 1];
            continue;
        }
        ld_db *db = ld_registry_get(&r->node->reg, l->db);
        if (!db) continue;
        ld_db_state s;
        ld_db_state_get(db, &s);
        ld_registry_release(&r->node->reg, db);
        local_max[i] = s.last_seq;
    }
    links_family(r, w, local_max, "litedist_replication_ops_behind", "gauge",
                 "Operations the peer's log holds beyond our pull checkpoint (at the last pull).",
                 v_behind);
    links_family(r, w, local_max, "litedist_replication_pending_push_ops", "gauge",
                 "Operations of our log past the peer's push checkpoint.", v_pending);
    links_family(r, w, local_max, "litedist_replication_seconds_since_last_success", "gauge",
                 "Seconds since the last successful cycle with the peer (+Inf: none since start).",
                 v_since);
    links_family(r, w, local_max, "litedist_replication_peer_online", "gauge",
                 "1 when the last cycle with the peer succeeded.", v_online);
    links_family(r, w, local_max, "litedist_replication_sent_ops_total", "counter",
                 "Operations pushed to the peer and acknowledged.", v_sent_ops);
    links_family(r, w, local_max, "litedist_replication_received_ops_total", "counter",
                 "Operations pulled from the peer and processed.", v_recv_ops);
    links_family(r, w, local_max, "litedist_replication_sent_bytes_total", "counter",
                 "Request body bytes sent to the peer (pushes, pulls, snapshot page requests).",
                 v_sent_bytes);
    links_family(r, w, local_max, "litedist_replication_received_bytes_total", "counter",
                 "Answer body bytes received from the peer.", v_recv_bytes);
    links_family(r, w, local_max, "litedist_replication_diverged", "gauge",
                 "1 when the peer's digest disagreed with ours at equal version vectors.",
                 v_diverged);
    free(local_max);

    const char *fam = "litedist_replication_failures_total";
    ld_mx_family(w, fam, "counter", "Failed replication cycles with the peer, by reason.");
    for (size_t i = 0; i < r->n_links; i++) {
        const ld_link *l = r->links[i];
        if (!link_reported(l)) continue;
        for (int k = 0; k < FAIL_N; k++) {
            if (!l->fails[k]) continue; /* a reason appears once it happened: 300 links x 5 */
            const char *labels[] = {"database", l->db,         "peer", l->peer,
                                    "reason",   fail_names[k], NULL};
            ld_mx_sample_u64(w, fam, labels, l->fails[k]);
        }
    }
    ld_mx_family(w, "litedist_replication_divergences_total", "counter",
                 "Digest disagreements at equal version vectors found since start-up.");
    ld_mx_sample_u64(w, "litedist_replication_divergences_total", NULL, r->divergences);

    /* Snapshot loads in progress: one series per link loading. */
    static const char *const snap[2][2] = {
        {"litedist_replication_snapshot_records_done", "Records of the snapshot being loaded "
                                                       "from the peer merged so far."},
        {"litedist_replication_snapshot_records_total", "Records of the snapshot being loaded "
                                                        "from the peer, as the peer counted them."},
    };
    for (int k = 0; k < 2; k++) {
        ld_mx_family(w, snap[k][0], "gauge", snap[k][1]);
        for (size_t i = 0; i < r->n_links; i++) {
            const ld_link *l = r->links[i];
            if (!link_reported(l) || !l->boot) continue;
            const char *labels[] = {"database", l->db, "peer", l->peer, NULL};
            ld_mx_sample_u64(w, snap[k][0], labels, k ? l->boot->total : l->boot->done);
        }
    }
}

bool ld_repl_catchup_settled(ld_repl *r, char *why, size_t len)
{
    links_sync_all(r);
    for (size_t i = 0; i < r->n_links; i++) {
        const ld_link *l = r->links[i];
        if (l->removed || !l->active) continue;
        if (l->boot) {
            snprintf(why, len, "loading a snapshot of '%s' from %s", l->db, l->peer);
            return false;
        }
        /* Settled: a cycle succeeded, or the peer did not answer (unreachable peers do not
         * hold readiness back: a node alone must become ready). */
        bool unreachable = l->failures > 0 && !l->online && l->fails[FAIL_UNREACHABLE] > 0;
        if (!l->last_success_wall && !unreachable) {
            snprintf(why, len, "catching up '%s' with %s", l->db, l->peer);
            return false;
        }
    }
    return true;
}
