/* Joining, leaving and replacing nodes (see discovery.h): one small state machine per active
 * node-wide peer that runs its requests one at a time (leave, introduction, news of a new
 * database, the database list) on a connection of its own, and the receiving side of those
 * requests. */
#include "discovery.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "../db/names.h"
#include "../db/registry.h"
#include "../http/request.h"
#include "../http/tls.h"
#include "../node.h"
#include "../util/jsonbuf.h"
#include "../util/jsonget.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "../util/timeutil.h"
#include "oplog.h"
#include "peerconn.h"
#include "peers.h"
#include "repl.h"
#include "wire.h"

/* Requests to a peer, in the order they go out: a leave before anything else, the introduction
 * before the list (the peer then knows us when our links reach it). */
enum { J_LEAVE = 1, J_INTRO = 2, J_NEWS = 4, J_LIST = 8 };

typedef struct dpeer {
    ld_discovery *d;
    char id[LD_NODE_ID_MAX + 1];
    char *base_url;
    ld_peer_addr addr;
    bool present;    /* in the node-wide list at the last sync */
    ld_peer_conn pc; /* kept alive (peerconn.h) */
    unsigned want;   /* J_* still to send */
    unsigned busy;   /* the J_* in flight, 0 when idle */
    char news_db[LD_DB_NAME_MAX + 1];

    bool introduced; /* the peer registered us (or knew us already) */
    char intro_error[256];
    bool list_failed;
    char last_error[256];
    uint64_t last_ok_ms; /* wall: the last list answered */
    char answers_as[LD_NODE_ID_MAX + 1];
    uint64_t heard_ms;   /* wall: the peer last reached us, or answered as itself */
    uint64_t reask_mono; /* a failed list is asked again on contact, at most this often */
} dpeer;

struct ld_discovery {
    ld_node *node;
    struct evdns_base *dns;
    bool started, left;
    char advertised[512]; /* "" when this node does not introduce itself */
    uint64_t started_ms;
    dpeer **v;
    size_t n;
    struct { /* the leave in progress (POST /api/cluster/leave) */
        ld_req *req;
        json_t *peers;
        int pending;
    } leave;
};

static void dpeer_run(dpeer *p);

/* ---------------------------------------------------------------------------------------------
 * Advertised URL
 * ------------------------------------------------------------------------------------------- */

bool ld_discovery_advertised_url(const char *configured, const char *listen, int port, bool tls,
                                 char *out, size_t outlen, char *why, size_t whylen)
{
    if (configured && *configured) {
        char err[200];
        char *norm = ld_peer_url_normalize(configured, err, sizeof err);
        if (!norm) {
            ld_set_err(why, whylen, "Node.AdvertisedUrl: %s", err);
            return false;
        }
        snprintf(out, outlen, "%s", norm);
        free(norm);
        return true;
    }
    const char *a = listen ? listen : "";
    if (!*a || !strcmp(a, "0.0.0.0") || !strcmp(a, "::") || !strcmp(a, "[::]") || !strcmp(a, "*")) {
        ld_set_err(why, whylen,
                   "Node.ListenAddress '%s' listens on every interface, so the address peers "
                   "should use cannot be derived: set Node.AdvertisedUrl (e.g. "
                   "%s://10.0.0.5:%d)",
                   a, tls ? "https" : "http", port);
        return false;
    }
    if (port <= 0) {
        ld_set_err(why, whylen, "the listening port is unknown: set Node.AdvertisedUrl");
        return false;
    }
    const char *scheme = tls ? "https" : "http";
    if (strchr(a, ':') && a[0] != '[')
        snprintf(out, outlen, "%s://[%s]:%d", scheme, a, port);
    else
        snprintf(out, outlen, "%s://%s:%d", scheme, a, port);
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Peers
 * ------------------------------------------------------------------------------------------- */

static dpeer *dpeer_find(ld_discovery *d, const char *id)
{
    for (size_t i = 0; i < d->n; i++)
        if (!strcmp(d->v[i]->id, id)) return d->v[i];
    return NULL;
}

static void dpeer_drop_conn(dpeer *p)
{
    ld_peer_conn_close(&p->pc); /* a request in flight goes without its callback */
    p->busy = 0;
}

static void dpeer_free(dpeer *p)
{
    dpeer_drop_conn(p);
    free(p->base_url);
    free(p);
}

/* Brings the per-peer states in line with the active node-wide peers. Never called from a
 * request's callback: it may free a connection. */
static void sync_peers(ld_discovery *d)
{
    json_t *list = ld_repl_peers_list(d->node->repl, NULL);
    for (size_t i = 0; i < d->n; i++)
        d->v[i]->present = false;
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        const char *id = json_string_value(json_object_get(e, "NodeId"));
        const char *url = json_string_value(json_object_get(e, "BaseUrl"));
        if (!id || !url || !json_is_true(json_object_get(e, "IsActive"))) continue;
        dpeer *p = dpeer_find(d, id);
        if (!p) {
            dpeer **v = realloc(d->v, (d->n + 1) * sizeof *v);
            if (!v) break;
            d->v = v;
            if (!(p = calloc(1, sizeof *p))) break;
            p->d = d;
            snprintf(p->id, sizeof p->id, "%s", id);
            d->v[d->n++] = p;
        }
        /* A new address takes effect once the request in flight is answered (next sync). */
        if (!p->busy && (!p->base_url || strcmp(p->base_url, url) != 0)) {
            ld_peer_addr addr;
            char *copy = strdup(url);
            if (!copy || !ld_peer_addr_parse(url, &addr)) {
                free(copy);
                continue;
            }
            dpeer_drop_conn(p);
            free(p->base_url);
            p->base_url = copy;
            p->addr = addr;
        }
        p->present = true;
    }
    json_decref(list);
    /* Peers removed or deactivated go, unless a leave still waits for their answer. */
    size_t k = 0;
    for (size_t j = 0; j < d->n; j++) {
        dpeer *p = d->v[j];
        if (p->present || (p->want | p->busy) & J_LEAVE)
            d->v[k++] = p;
        else
            dpeer_free(p);
    }
    d->n = k;
}

/* ---------------------------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------------------------- */

static void leave_answered(dpeer *p, bool removed, const char *error);

static void set_error(char *buf, size_t len, int code, json_t *body, const char *what,
                      const char *neterr)
{
    const char *msg = json_string_value(ld_json_get_ci(body, "Error"));
    if (code == 0)
        snprintf(buf, len, "%s: %s", what, neterr);
    else
        snprintf(buf, len, "%s: HTTP %d%s%.200s", what, code, msg ? ": " : "", msg ? msg : "");
}

/* A 409 from the peer's address names the node that answered there (api/context.c). */
static void note_identity(dpeer *p, int code, json_t *body)
{
    const char *seen = code == 409 ? json_string_value(ld_json_get_ci(body, "NodeId")) : NULL;
    if (seen && ld_node_id_valid(seen) && strcmp(seen, p->id) != 0) {
        if (strcmp(p->answers_as, seen) != 0)
            ld_log_warn("discovery: the node at %s (peer '%s') is '%s'", p->base_url, p->id, seen);
        snprintf(p->answers_as, sizeof p->answers_as, "%s", seen);
    }
}

static void on_intro(dpeer *p, int code, json_t *body, const char *neterr)
{
    char err[256] = "";
    if (code == 200 && json_is_true(ld_json_get_ci(body, "Registered"))) {
        if (!p->introduced)
            ld_log_info("discovery: peer '%s' registered this node as %s", p->id, p->d->advertised);
        p->introduced = true;
    } else if (code == 200) {
        const char *why = json_string_value(ld_json_get_ci(body, "Reason"));
        snprintf(err, sizeof err, "%.250s", why ? why : "the peer did not register this node");
    } else {
        note_identity(p, code, body);
        set_error(err, sizeof err, code, body, "introduction", neterr);
    }
    if (err[0] && strcmp(err, p->intro_error) != 0)
        ld_log_warn("discovery: peer '%s' did not register this node: %s", p->id, err);
    snprintf(p->intro_error, sizeof p->intro_error, "%s", err);
}

/* The peer's databases: those missing here are created and their links started. */
static void on_list(dpeer *p, int code, json_t *body, const char *neterr)
{
    ld_node *n = p->d->node;
    const char *answered = json_string_value(ld_json_get_ci(body, "NodeId"));
    json_t *dbs = ld_json_get_ci(body, "Databases");
    if (code == 200 && answered && strcmp(answered, p->id) != 0) {
        snprintf(p->answers_as, sizeof p->answers_as, "%.128s", answered);
        snprintf(p->last_error, sizeof p->last_error,
                 "databases: the node at this address is '%.128s'", answered);
        p->list_failed = true;
        return;
    }
    if (code != 200 || !json_is_array(dbs)) {
        note_identity(p, code, body);
        if (code == 200)
            snprintf(p->last_error, sizeof p->last_error, "databases: the answer has no list");
        else
            set_error(p->last_error, sizeof p->last_error, code, body, "databases", neterr);
        if (!p->list_failed)
            ld_log(LD_LOG_DEBUG, NULL, "discovery with %s failed: %s", p->id, p->last_error);
        p->list_failed = true;
        return;
    }
    p->list_failed = false;
    p->last_error[0] = '\0';
    p->answers_as[0] = '\0';
    p->last_ok_ms = p->heard_ms = ld_wall_ms();
    size_t i;
    json_t *e;
    json_array_foreach(dbs, i, e)
    {
        const char *raw = json_string_value(ld_json_get_ci(e, "DatabaseName"));
        char name[LD_DB_NAME_MAX + 1];
        if (!raw || !ld_db_name_normalize(raw, name)) continue;
        ld_db *db = ld_registry_get(&n->reg, name);
        if (db) {
            ld_registry_release(&n->reg, db);
            continue;
        }
        ld_status st = ld_registry_get_or_create(&n->reg, name, &db);
        if (st != LD_OK) {
            ld_log(LD_LOG_WARN, name,
                   "discovery: peer '%s' holds it, but it cannot be created "
                   "here: %s",
                   p->id, ld_status_str(st));
            continue;
        }
        ld_registry_release(&n->reg, db);
        ld_log(LD_LOG_INFO, name, "discovery: created here because peer '%s' holds it", p->id);
        ld_repl_db_discovered(n->repl, name);
    }
}

static void dpeer_done(struct evhttp_request *req, void *arg)
{
    dpeer *p = arg;
    unsigned job = p->busy;
    p->busy = 0;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    char why[256] = "peer unreachable or timed out";
    ld_peer_conn_done(&p->pc, code, why, sizeof why, NULL);
    json_t *body = NULL;
    if (code != 0) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(in);
        body = len ? json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, NULL) : NULL;
    }
    switch (job) {
    case J_LEAVE: {
        char err[256] = "";
        bool removed = code == 200 && json_is_true(ld_json_get_ci(body, "Removed"));
        if (code != 200) set_error(err, sizeof err, code, body, "leave", why);
        leave_answered(p, removed, err[0] ? err : NULL);
        break;
    }
    case J_INTRO:
        on_intro(p, code, body, why);
        break;
    case J_LIST:
        on_list(p, code, body, why);
        break;
    default: /* J_NEWS: best effort, the sweep's lists cover a lost one */
        if (code != 200) ld_log_debug("discovery: news to %s not delivered (%d)", p->id, code);
        break;
    }
    json_decref(body);
    dpeer_run(p);
}

/* Sends one request on the peer's connection; false when it could not leave. */
static bool dpeer_send(dpeer *p, enum evhttp_cmd_type method, const char *what, json_t *body)
{
    ld_discovery *d = p->d;
    ld_node *n = d->node;
    if (!ld_peer_conn_prepare(&p->pc, n->tls, n->base, d->dns, &p->addr, n->cfg.repl_timeout_s))
        return false;
    struct evhttp_request *req = evhttp_request_new(dpeer_done, p);
    if (!req) return false;
    if (body && !ld_json_dump_evbuffer(body, JSON_COMPACT, evhttp_request_get_output_buffer(req))) {
        evhttp_request_free(req);
        return false;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char hostport[300], path[512];
    snprintf(hostport, sizeof hostport, "%s:%d", p->addr.host, p->addr.port);
    snprintf(path, sizeof path, "%s/api/replication/%s", p->addr.prefix, what);
    evhttp_add_header(h, "Host", hostport);
    evhttp_add_header(h, "Accept", "application/json");
    if (body) evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "ReplicationApiKey", n->cfg.replication_api_key);
    evhttp_add_header(h, "TargetNodeId", p->id);
    return ld_peer_conn_request(&p->pc, req, method, path) == 0; /* else evhttp freed req */
}

static json_t *announce_body(ld_discovery *d, const char *event, const char *db)
{
    return json_pack("{s:i, s:s, s:s, s:s, s:s?}", "ProtocolVersion", LD_REPL_PROTOCOL, "NodeId",
                     d->node->node_id, "BaseUrl", d->advertised, "Event", event, "Database", db);
}

/* Sends the next wanted request when the peer is idle. */
static void dpeer_run(dpeer *p)
{
    while (!p->busy && p->want && !p->d->node->shutting_down) {
        unsigned job = p->want & J_LEAVE   ? J_LEAVE
                       : p->want & J_INTRO ? J_INTRO
                       : p->want & J_NEWS  ? J_NEWS
                                           : J_LIST;
        p->want &= ~job;
        if (job == J_INTRO && p->d->left) continue; /* queued before the leave: it would undo it */
        json_t *body = NULL;
        if (job == J_LEAVE)
            body = announce_body(p->d, "leave", NULL);
        else if (job == J_INTRO)
            body = announce_body(p->d, "join", NULL);
        else if (job == J_NEWS)
            body = announce_body(p->d, "database", p->news_db);
        if (job != J_LIST && !body) {
            if (job == J_LEAVE) leave_answered(p, false, "out of memory");
            continue;
        }
        p->busy = job;
        bool sent = dpeer_send(p, job == J_LIST ? EVHTTP_REQ_GET : EVHTTP_REQ_POST,
                               job == J_LIST ? "databases" : "announce", body);
        json_decref(body);
        if (sent) return;
        p->busy = 0;
        if (job == J_LEAVE) leave_answered(p, false, "cannot send the request");
        if (job == J_LIST) {
            p->list_failed = true;
            snprintf(p->last_error, sizeof p->last_error, "databases: cannot send the request");
        }
    }
}

/* Asks the peer for its databases, introducing this node first while it has not been
 * registered there. */
static void ask(dpeer *p)
{
    ld_discovery *d = p->d;
    bool intro = d->advertised[0] && d->node->cfg.auto_register_peers && !d->left;
    p->want |= J_LIST | (intro && !p->introduced ? J_INTRO : 0);
    dpeer_run(p);
}

/* Asks every active node-wide peer again (start-up, sweep). */
static void round_all(ld_discovery *d)
{
    sync_peers(d);
    for (size_t i = 0; i < d->n; i++)
        if (d->v[i]->present) ask(d->v[i]);
}

/* A peer whose address has answered as another registered node (registered there by its own
 * introduction, or by an operator) goes once it has been silent past the setting: the new node
 * took its place. Before, only an operator's DELETE retires it (docs/replication.md). */
static void retire_replaced(ld_discovery *d)
{
    int silence = d->node->cfg.peer_replacement_silence_s;
    if (silence <= 0) return;
    uint64_t now = ld_wall_ms();
    json_t *list = ld_repl_peers_list(d->node->repl, NULL);
    for (size_t i = 0; i < d->n; i++) {
        dpeer *p = d->v[i];
        uint64_t since = p->heard_ms > d->started_ms ? p->heard_ms : d->started_ms;
        if (!p->present || !p->answers_as[0] || now - since < (uint64_t)silence * 1000u) continue;
        bool successor = false;
        size_t j;
        json_t *e;
        json_array_foreach(list, j, e)
        {
            const char *id = json_string_value(json_object_get(e, "NodeId"));
            const char *url = json_string_value(json_object_get(e, "BaseUrl"));
            successor |= id && url && !strcmp(id, p->answers_as) && !strcmp(url, p->base_url);
        }
        if (!successor) continue;
        char err[256];
        int status;
        char id[LD_NODE_ID_MAX + 1], by[LD_NODE_ID_MAX + 1];
        snprintf(id, sizeof id, "%s", p->id);
        snprintf(by, sizeof by, "%s", p->answers_as);
        if (ld_repl_peer_remove(d->node->repl, NULL, id, &status, err, sizeof err))
            ld_log_warn("peer '%s' removed: its address %s answers as '%s', registered there, "
                        "and '%s' has been silent for over %d s "
                        "(Node.PeerReplacementSilenceSeconds)",
                        id, p->base_url, by, id, silence);
        else
            ld_log_warn("peer '%s' could not be removed: %s", id, err);
    }
    json_decref(list);
    sync_peers(d);
}

/* ---------------------------------------------------------------------------------------------
 * Life cycle and triggers
 * ------------------------------------------------------------------------------------------- */

ld_discovery *ld_discovery_new(ld_node *node)
{
    ld_discovery *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->node = node;
    d->dns = evdns_base_new(node->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (!d->dns) d->dns = evdns_base_new(node->base, 0); /* no resolv.conf: numeric peers only */
    if (!d->dns) {
        free(d);
        return NULL;
    }
    return d;
}

void ld_discovery_free(ld_discovery *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->n; i++)
        dpeer_free(d->v[i]);
    free(d->v);
    json_decref(d->leave.peers);
    evdns_base_free(d->dns, 0);
    free(d);
}

bool ld_discovery_start(ld_discovery *d, int port, char *err, size_t errlen)
{
    ld_node *n = d->node;
    char why[300];
    if (!ld_discovery_advertised_url(n->cfg.advertised_url, n->cfg.listen_address, port,
                                     ld_tls_serves(n->tls), d->advertised, sizeof d->advertised,
                                     why, sizeof why)) {
        d->advertised[0] = '\0';
        if (n->cfg.advertised_url) {
            ld_set_err(err, errlen, "%s", why);
            return false;
        }
        if (n->cfg.auto_register_peers)
            ld_log_warn("this node does not introduce itself to its peers: %s", why);
    }
    d->started = true;
    d->started_ms = ld_wall_ms();
    round_all(d);
    return true;
}

const char *ld_discovery_advertised(const ld_discovery *d)
{
    return d ? d->advertised : "";
}

void ld_discovery_sweep(ld_discovery *d)
{
    if (!d || !d->started) return;
    retire_replaced(d);
    round_all(d);
}

void ld_discovery_db_created(ld_discovery *d, const char *db)
{
    if (!d || !d->started) return;
    sync_peers(d);
    for (size_t i = 0; i < d->n; i++) {
        dpeer *p = d->v[i];
        if (!p->present) continue;
        snprintf(p->news_db, sizeof p->news_db, "%s", db);
        p->want |= J_NEWS;
        dpeer_run(p);
    }
}

void ld_discovery_peer_added(ld_discovery *d, const char *peer_id)
{
    if (!d || !d->started) return;
    sync_peers(d);
    dpeer *p = dpeer_find(d, peer_id);
    if (p && p->present) ask(p);
}

void ld_discovery_heard(ld_discovery *d, const char *peer_id)
{
    if (!d || !d->started) return;
    dpeer *p = dpeer_find(d, peer_id);
    if (!p) return;
    p->heard_ms = ld_wall_ms();
    /* Back from an outage: ask at once. Once a second at most: a peer whose pushes keep coming
     * while its list fails (an older version without the route) costs one request a second. */
    if (p->list_failed && !p->busy && ld_mono_ms() >= p->reask_mono) {
        p->reask_mono = ld_mono_ms() + 1000;
        ask(p);
    }
}

void ld_discovery_annotate_peers(ld_discovery *d, json_t *peers)
{
    size_t i;
    json_t *e;
    json_array_foreach(peers, i, e)
    {
        const char *id = json_string_value(json_object_get(e, "NodeId"));
        dpeer *p = d && id ? dpeer_find(d, id) : NULL;
        if (!p || !p->present) continue;
        char when[LD_ISO_TIME_LEN];
        if (p->last_ok_ms) ld_iso_time(p->last_ok_ms, when);
        json_object_set_new(e, "Discovery",
                            json_pack("{s:s?, s:s?, s:b, s:s?, s:s?}", "LastSuccessUtc",
                                      p->last_ok_ms ? when : NULL, "LastError",
                                      p->last_error[0] ? p->last_error : NULL, "Introduced",
                                      p->introduced, "IntroductionError",
                                      p->intro_error[0] ? p->intro_error : NULL, "AnswersAs",
                                      p->answers_as[0] ? p->answers_as : NULL));
    }
}

/* ---------------------------------------------------------------------------------------------
 * Serving side
 * ------------------------------------------------------------------------------------------- */

json_t *ld_discovery_databases_json(ld_node *n)
{
    size_t cnt;
    char **names = ld_registry_names(&n->reg, &cnt);
    json_t *arr = json_array();
    if (!names || !arr) {
        ld_registry_names_free(names, cnt);
        json_decref(arr);
        return NULL;
    }
    for (size_t i = 0; i < cnt; i++) {
        ld_db *db = ld_registry_get(&n->reg, names[i]);
        if (!db) continue; /* deleted meanwhile */
        ld_db_state s;
        ld_db_state_get(db, &s);
        json_t *vv = NULL;
        char digest[2 * LD_DIGEST_LEN + 1] = "";
        ld_status st = ld_oplog_state(db, &vv, digest);
        ld_registry_release(&n->reg, db);
        if (st != LD_OK) { /* listed all the same: the peer may still want it */
            json_decref(vv);
            vv = NULL;
            digest[0] = '\0';
        }
        if (json_array_append_new(arr, json_pack("{s:s, s:o, s:I, s:s}", "DatabaseName", names[i],
                                                 "VersionVector", vv ? vv : json_object(),
                                                 "LocalMaxLogSequence", (json_int_t)s.last_seq,
                                                 "Digest", digest))) {
            ld_registry_names_free(names, cnt);
            json_decref(arr);
            return NULL;
        }
    }
    ld_registry_names_free(names, cnt);
    return json_pack("{s:i, s:s, s:o}", "ProtocolVersion", LD_REPL_PROTOCOL, "NodeId", n->node_id,
                     "Databases", arr);
}

static void announce_join(ld_discovery *d, ld_req *r, const char *id, json_t *body)
{
    ld_node *n = r->node;
    if (!n->cfg.auto_register_peers) {
        char why[LD_NODE_ID_MAX * 2 + 160];
        snprintf(why, sizeof why,
                 "Node.AutoRegisterPeers is false on '%s': register '%s' by hand "
                 "(POST /api/cluster/peers).",
                 n->node_id, id);
        ld_reply_json(r, 200,
                      json_pack("{s:i, s:s, s:b, s:s}", "ProtocolVersion", LD_REPL_PROTOCOL,
                                "NodeId", n->node_id, "Registered", 0, "Reason", why));
        return;
    }
    char err[300];
    char *url =
        ld_peer_url_normalize(json_string_value(ld_json_get_ci(body, "BaseUrl")), err, sizeof err);
    if (!url) {
        ld_reply_error(r, 400, "%s", err);
        return;
    }
    /* Who else is registered at this address (a node this one replaces), and where this id is
     * registered already (an operator's entry is never rewritten: it may be a proxy). */
    json_t *list = ld_repl_peers_list(n->repl, NULL);
    char before[LD_NODE_ID_MAX + 1] = "", known_url[512] = "";
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        const char *pid = json_string_value(json_object_get(e, "NodeId"));
        const char *purl = json_string_value(json_object_get(e, "BaseUrl"));
        if (!pid || !purl) continue;
        if (!strcmp(pid, id))
            snprintf(known_url, sizeof known_url, "%s", purl);
        else if (!strcmp(purl, url))
            snprintf(before, sizeof before, "%s", pid);
    }
    json_decref(list);
    bool added = false;
    if (!ld_repl_peer_introduced(n->repl, id, url, &added, err, sizeof err)) {
        free(url);
        ld_reply_error(r, 500, "The peer could not be registered: %s", err);
        return;
    }
    if (added) {
        ld_log_info("peer '%s' introduced itself at %s: registered (LearnedFrom announce)", id,
                    url);
        if (before[0])
            ld_log_warn("peer '%s' registered at %s, where peer '%s' is registered too: '%s' "
                        "now reports IdentityMismatch; remove it (DELETE /api/cluster/peers/%s) "
                        "if '%s' replaces it, or it goes after %d s of silence "
                        "(Node.PeerReplacementSilenceSeconds)",
                        id, url, before, before, before, id, n->cfg.peer_replacement_silence_s);
        if (d && d->started) { /* ask the newcomer for its databases too */
            sync_peers(d);
            dpeer *p = dpeer_find(d, id);
            if (p) {
                p->want |= J_LIST;
                dpeer_run(p);
            }
        }
    } else if (known_url[0] && strcmp(known_url, url) != 0) {
        ld_log_warn("peer '%s' introduced itself at %s but is registered at %s: the entry is "
                    "kept (it may be a proxy); update it with POST /api/cluster/peers if '%s' "
                    "moved",
                    id, url, known_url, id);
    }
    free(url);
    ld_reply_json(r, 200,
                  json_pack("{s:i, s:s, s:b, s:b}", "ProtocolVersion", LD_REPL_PROTOCOL, "NodeId",
                            n->node_id, "Registered", 1, "Added", added));
}

void ld_discovery_announce(ld_discovery *d, ld_req *r, json_t *body)
{
    ld_node *n = r->node;
    const char *id = json_string_value(ld_json_get_ci(body, "NodeId"));
    const char *event = json_string_value(ld_json_get_ci(body, "Event"));
    if (!id || !ld_node_id_valid(id)) {
        ld_reply_error(r, 400, "NodeId is required: 1-128 of A-Z a-z 0-9 . _ : -");
        return;
    }
    if (!strcmp(id, n->node_id)) {
        ld_reply_error(r, 409, "NodeId is this node's own id: node ids must be unique.");
        return;
    }
    ld_discovery_heard(d, id);
    if (event && !strcasecmp(event, "join")) {
        announce_join(d, r, id, body);
    } else if (event && !strcasecmp(event, "leave")) {
        char err[300];
        int status;
        bool removed = ld_repl_peer_remove(n->repl, NULL, id, &status, err, sizeof err);
        if (!removed && status != 404) {
            ld_reply_error(r, 500, "The peer could not be removed: %s", err);
            return;
        }
        if (removed) ld_log_info("peer '%s' announced its leave: removed", id);
        ld_reply_json(r, 200,
                      json_pack("{s:i, s:s, s:b}", "ProtocolVersion", LD_REPL_PROTOCOL, "NodeId",
                                n->node_id, "Removed", removed));
    } else if (event && !strcasecmp(event, "database")) {
        dpeer *p = d && d->started ? dpeer_find(d, id) : NULL;
        if (p && p->present) {
            p->want |= J_LIST;
            dpeer_run(p);
        }
        ld_reply_json(r, 200,
                      json_pack("{s:i, s:s, s:b}", "ProtocolVersion", LD_REPL_PROTOCOL, "NodeId",
                                n->node_id, "Known", p && p->present));
    } else {
        ld_reply_error(r, 400, "Event must be 'join', 'leave' or 'database'.");
    }
}

/* ---------------------------------------------------------------------------------------------
 * Leave
 * ------------------------------------------------------------------------------------------- */

static void leave_reply(ld_discovery *d)
{
    ld_req *r = d->leave.req;
    json_t *peers = d->leave.peers;
    d->leave.req = NULL;
    d->leave.peers = NULL;
    r->node->inflight--;
    ld_reply_json(r, 200,
                  json_pack("{s:s, s:b, s:o}", "NodeId", r->node->node_id, "Left", 1, "Peers",
                            peers ? peers : json_array()));
}

static void leave_answered(dpeer *p, bool removed, const char *error)
{
    ld_discovery *d = p->d;
    if (!d->leave.req) return;
    json_array_append_new(d->leave.peers,
                          json_pack("{s:s, s:s, s:b, s:s?}", "NodeId", p->id, "BaseUrl",
                                    p->base_url, "Removed", removed, "Error", error));
    if (--d->leave.pending == 0) leave_reply(d);
}

void ld_discovery_leave(ld_discovery *d, ld_req *r)
{
    if (!d || !d->started) {
        ld_reply_error(r, 503, "This node is not listening yet.");
        return;
    }
    if (d->leave.req) {
        ld_reply_error(r, 409, "A leave is already under way.");
        return;
    }
    if (!(d->leave.peers = json_array())) {
        ld_reply_error(r, 500, "Out of memory.");
        return;
    }
    /* From now on this node no longer introduces itself: a sweep must not undo the leave. */
    d->left = true;
    d->leave.req = r;
    d->leave.pending = 1; /* held until every peer has its request */
    r->node->inflight++;
    ld_log_info("leaving the cluster: telling every node-wide peer");
    sync_peers(d);
    for (size_t i = 0; i < d->n; i++) {
        dpeer *p = d->v[i];
        if (!p->present) continue;
        d->leave.pending++;
        p->want |= J_LEAVE;
    }
    for (size_t i = 0; i < d->n; i++)
        dpeer_run(d->v[i]);
    if (--d->leave.pending == 0) leave_reply(d);
}
