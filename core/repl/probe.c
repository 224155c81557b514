/* The dashboard's reachability probes (see probe.h): per node one kept-alive evhttp connection
 * for GET /node and one short-lived WebSocket for the health-check, each bounded by a 2 s
 * timeout, and a ring of latency samples. */
#include "probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "../db/names.h"
#include "../http/tls.h"
#include "../util/jsonget.h"
#include "../util/log.h"
#include "../util/timeutil.h"
#include "../ws/ws.h"
#include "peerconn.h"
#include "peers.h"

#define PROBE_TIMEOUT_MS 2000
#define HISTORY_MAX      720
#define HISTORY_SPAN_MS  (60u * 60u * 1000u)
#define HISTORY_GAP_MS   5000u /* samples at least this far apart */
#define PROBE_ERR_LEN    192

typedef enum { PS_UNKNOWN, PS_OK, PS_FAILED } probe_state;

typedef struct sample {
    uint64_t at_ms;        /* wall clock */
    double http_ms, ws_ms; /* < 0: that probe failed */
} sample;

typedef struct pnode {
    ld_probe *p;
    char id[LD_NODE_ID_MAX + 1];
    char *base_url;
    bool active, self, seen;
    ld_peer_addr addr; /* where base_url points */

    ld_peer_conn pc; /* kept alive (peerconn.h) */
    bool http_busy;
    int http_error; /* evhttp's enum evhttp_request_error for the probe in flight, -1: none */
    uint64_t http_t0_us;
    ld_ws_conn *ws; /* set from connect until on_close (or until we drop it) */
    bool ws_busy;   /* a health-check answer is awaited */
    uint64_t ws_t0_us;
    struct event *ws_timer;
    char ws_detail[PROBE_ERR_LEN];

    probe_state http_state, ws_state;
    double http_ms, ws_ms;
    char http_err[PROBE_ERR_LEN], ws_err[PROBE_ERR_LEN];
    uint64_t last_checked_ms;

    sample hist[HISTORY_MAX]; /* ring: hist_n samples ending before hist_head */
    size_t hist_head, hist_n;
} pnode;

struct ld_probe {
    struct event_base *base;
    struct evdns_base *dns;
    struct ld_tls *tls;
    char self_id[LD_NODE_ID_MAX + 1];
    char *cluster_key;
    int interval_s;
    ld_probe_targets_fn targets;
    void *targets_ctx;
    struct event *timer;
    bool running;
    pnode **v; /* v[0] is this node once started */
    size_t n;
};

static void node_drop_probes(pnode *n)
{
    ld_peer_conn_close(&n->pc); /* pending requests go without their callback */
    n->http_busy = false;
    if (n->ws) {
        ld_ws_conn_free(n->ws); /* no callback runs afterwards */
        n->ws = NULL;
    }
    n->ws_busy = false;
    if (n->ws_timer) evtimer_del(n->ws_timer);
}

static void node_free(pnode *n)
{
    if (!n) return;
    node_drop_probes(n);
    if (n->ws_timer) event_free(n->ws_timer);
    free(n->base_url);
    free(n);
}

static bool node_set_url(pnode *n, const char *url)
{
    if (n->base_url && !strcmp(n->base_url, url)) return true;
    if (!ld_peer_addr_parse(url, &n->addr)) return false;
    char *copy = strdup(url);
    if (!copy) return false;
    free(n->base_url);
    n->base_url = copy;
    node_drop_probes(n); /* the old address's probes answer for the wrong node */
    return true;
}

static void ws_timeout_cb(evutil_socket_t fd, short what, void *arg);

static pnode *node_new(ld_probe *p, const char *id)
{
    pnode *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->p = p;
    snprintf(n->id, sizeof n->id, "%s", id);
    n->ws_timer = evtimer_new(p->base, ws_timeout_cb, n);
    if (!n->ws_timer) {
        free(n);
        return NULL;
    }
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Results
 * ------------------------------------------------------------------------------------------- */

static void record(pnode *n)
{
    if (n->http_busy || n->ws_busy) return;
    uint64_t now = ld_wall_ms();
    n->last_checked_ms = now;
    /* Drop what is older than the span, then add at most one sample per gap. */
    while (n->hist_n > 0) {
        size_t oldest = (n->hist_head + HISTORY_MAX - n->hist_n) % HISTORY_MAX;
        if (now - n->hist[oldest].at_ms <= HISTORY_SPAN_MS) break;
        n->hist_n--;
    }
    if (n->hist_n > 0) {
        const sample *last = &n->hist[(n->hist_head + HISTORY_MAX - 1) % HISTORY_MAX];
        if (now - last->at_ms < HISTORY_GAP_MS) return;
    }
    n->hist[n->hist_head] = (sample){
        .at_ms = now,
        .http_ms = n->http_state == PS_OK ? n->http_ms : -1,
        .ws_ms = n->ws_state == PS_OK ? n->ws_ms : -1,
    };
    n->hist_head = (n->hist_head + 1) % HISTORY_MAX;
    if (n->hist_n < HISTORY_MAX) n->hist_n++;
}

static double since_ms(uint64_t t0_us)
{
    return (double)(ld_mono_us() - t0_us) / 1000.0;
}

/* ---------------------------------------------------------------------------------------------
 * HTTP: GET {url}/node, which must answer with the node id we expect
 * ------------------------------------------------------------------------------------------- */

static void http_done(struct evhttp_request *req, void *arg)
{
    pnode *n = arg;
    n->http_busy = false;
    n->http_ms = since_ms(n->http_t0_us);
    int code = req ? evhttp_request_get_response_code(req) : 0;
    n->http_state = PS_FAILED;
    char why[200];
    bool tls_failed = ld_peer_conn_done(&n->pc, code, why, sizeof why, NULL);
    if (tls_failed) {
        snprintf(n->http_err, sizeof n->http_err, "HTTP probe: %.150s", why);
    } else if (code == 0) {
        snprintf(n->http_err, sizeof n->http_err, "HTTP probe: %s",
                 n->http_ms >= PROBE_TIMEOUT_MS ? "timed out after 2 s"
                 : n->http_error == EVREQ_HTTP_EOF || n->http_error == EVREQ_HTTP_INVALID_HEADER
                     ? "closed without an HTTP answer (a TLS port? then its BaseUrl is https://)"
                     : "connection refused or reset");
    } else if (code != 200) {
        snprintf(n->http_err, sizeof n->http_err, "HTTP probe: GET /node answered %d", code);
    } else {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(in);
        json_t *body = len ? json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, NULL) : NULL;
        const char *id = json_string_value(ld_json_get_ci(body, "NodeId"));
        if (!id) {
            snprintf(n->http_err, sizeof n->http_err, "HTTP probe: /node answered no NodeId");
        } else if (strcmp(id, n->id) != 0) {
            /* A peer registered under one id but answering as another is misconfigured. */
            snprintf(n->http_err, sizeof n->http_err,
                     "HTTP probe: the node at this address is '%.128s'", id);
        } else {
            n->http_state = PS_OK;
            n->http_err[0] = '\0';
        }
        json_decref(body);
    }
    record(n);
}

static void http_error_cb(enum evhttp_request_error error, void *arg)
{
    ((pnode *)arg)->http_error = (int)error;
}

static void http_start(pnode *n)
{
    ld_probe *p = n->p;
    if (!ld_peer_conn_prepare(&n->pc, p->tls, p->base, p->dns, &n->addr, PROBE_TIMEOUT_MS / 1000))
        goto fail;
    struct evhttp_request *req = evhttp_request_new(http_done, n);
    if (!req) goto fail;
    n->http_error = -1;
    evhttp_request_set_error_cb(req, http_error_cb);
    char hostport[300], path[300];
    snprintf(hostport, sizeof hostport, "%s:%d", n->addr.host, n->addr.port);
    snprintf(path, sizeof path, "%s/node", n->addr.prefix);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", hostport);
    evhttp_add_header(h, "Accept", "application/json");
    n->http_busy = true;
    n->http_t0_us = ld_mono_us();
    if (ld_peer_conn_request(&n->pc, req, EVHTTP_REQ_GET, path) == 0) return;
    n->http_busy = false; /* evhttp freed req */
fail:
    n->http_state = PS_FAILED;
    n->http_ms = 0;
    snprintf(n->http_err, sizeof n->http_err, "HTTP probe: cannot start the request");
}

/* ---------------------------------------------------------------------------------------------
 * WebSocket: connect to /ws/replication and send a health-check, which must be accepted
 * ------------------------------------------------------------------------------------------- */

static void ws_finish(pnode *n, bool ok, const char *err)
{
    if (!n->ws_busy) return;
    n->ws_busy = false;
    evtimer_del(n->ws_timer);
    n->ws_ms = since_ms(n->ws_t0_us);
    n->ws_state = ok ? PS_OK : PS_FAILED;
    if (ok)
        n->ws_err[0] = '\0';
    else
        /* The reason is cut to what fits after the prefix, on purpose. */
        snprintf(n->ws_err, sizeof n->ws_err, "WebSocket probe: %.*s",
                 (int)(sizeof n->ws_err - sizeof "WebSocket probe: "), err);
    record(n);
}

static void ws_on_text(ld_ws_conn *c, const char *msg, size_t len, void *arg)
{
    pnode *n = arg;
    json_t *f = json_loadb(msg, len, 0, NULL);
    json_t *acc = ld_json_get_ci(f, "accepted");
    const char *why = json_string_value(ld_json_get_ci(f, "error"));
    char err[128];
    snprintf(err, sizeof err, "health-check refused (%.80s)", why ? why : "no reason");
    ws_finish(n, json_is_true(acc), err);
    json_decref(f);
    ld_ws_close(c, LD_WS_CLOSE_NORMAL, NULL);
}

static void ws_on_error(ld_ws_conn *c, ld_ws_error e, const char *detail, void *arg)
{
    pnode *n = arg;
    int status = ld_ws_http_status(c);
    if (e == LD_WS_ERR_HANDSHAKE && status > 0)
        snprintf(n->ws_detail, sizeof n->ws_detail, "the upgrade was answered %d", status);
    else
        snprintf(n->ws_detail, sizeof n->ws_detail, "%s", detail ? detail : ld_ws_error_str(e));
}

static void ws_on_close(ld_ws_conn *c, int code, const char *reason, void *arg)
{
    (void)c;
    pnode *n = arg;
    n->ws = NULL;
    if (n->ws_busy) {
        char err[PROBE_ERR_LEN];
        if (n->ws_detail[0])
            snprintf(err, sizeof err, "%s", n->ws_detail);
        else
            snprintf(err, sizeof err, "closed before answering (%d %.80s)", code,
                     reason ? reason : "");
        ws_finish(n, false, err);
    }
}

static void ws_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pnode *n = arg;
    if (n->ws) {
        ld_ws_conn_free(n->ws);
        n->ws = NULL;
    }
    ws_finish(n, false, "timed out after 2 s");
}

static void ws_start(pnode *n)
{
    ld_probe *p = n->p;
    static const ld_ws_callbacks cbs = {
        .on_text = ws_on_text, .on_error = ws_on_error, .on_close = ws_on_close};
    const ld_ws_options opt = {.connect_timeout_ms = PROBE_TIMEOUT_MS,
                               .handshake_timeout_ms = PROBE_TIMEOUT_MS,
                               .close_timeout_ms = 1000,
                               .tls = p->tls};
    if (n->ws) { /* still closing from the last round */
        ld_ws_conn_free(n->ws);
        n->ws = NULL;
    }
    char url[600], when[LD_ISO_TIME_LEN];
    snprintf(url, sizeof url, "%s://%s:%d%s/ws/replication", n->addr.tls ? "wss" : "ws",
             n->addr.host, n->addr.port, n->addr.prefix);
    const char *headers[] = {"ReplicationApiKey", p->cluster_key, NULL};
    n->ws_detail[0] = '\0';
    n->ws_busy = true;
    n->ws_t0_us = ld_mono_us();
    if (ld_ws_connect(p->base, p->dns, url, headers, &opt, &cbs, n, &n->ws) != LD_OK) {
        n->ws = NULL;
        ws_finish(n, false, "cannot start the connection");
        return;
    }
    ld_iso_time(ld_wall_ms(), when);
    json_t *f = json_pack("{s:s, s:s, s:s}", "type", "health-check", "sourceNodeId", p->self_id,
                          "timestampUtc", when);
    char *text = f ? json_dumps(f, JSON_COMPACT) : NULL;
    json_decref(f);
    if (!text || ld_ws_send_text(n->ws, text, strlen(text)) != LD_OK) {
        free(text);
        ld_ws_conn_free(n->ws);
        n->ws = NULL;
        ws_finish(n, false, "cannot queue the health-check");
        return;
    }
    free(text);
    struct timeval tv = {PROBE_TIMEOUT_MS / 1000, (PROBE_TIMEOUT_MS % 1000) * 1000};
    evtimer_add(n->ws_timer, &tv);
}

/* ---------------------------------------------------------------------------------------------
 * Rounds
 * ------------------------------------------------------------------------------------------- */

static void add_target(ld_probe *p, const ld_probe_target *t)
{
    if (!t->id || !t->base_url || !strcmp(t->id, p->self_id)) return;
    pnode *n = NULL;
    for (size_t i = 0; i < p->n && !n; i++)
        if (!p->v[i]->self && !strcmp(p->v[i]->id, t->id)) n = p->v[i];
    if (!n) {
        pnode **v = realloc(p->v, (p->n + 1) * sizeof *v);
        if (!v) return;
        p->v = v;
        if (!(n = node_new(p, t->id))) return;
        p->v[p->n++] = n;
    } else if (n->seen) {
        n->active = n->active || t->active; /* listed twice (node-wide and per database) */
        return;
    }
    if (!node_set_url(n, t->base_url)) return;
    n->active = t->active;
    n->seen = true;
}

/* Brings the probed nodes in line with the peer lists (a removed peer's probes stop). */
static void sync_targets(ld_probe *p)
{
    for (size_t i = 0; i < p->n; i++)
        p->v[i]->seen = p->v[i]->self;
    p->targets(p->targets_ctx, p, add_target);
    size_t k = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (p->v[i]->seen)
            p->v[k++] = p->v[i];
        else
            node_free(p->v[i]); /* the peer was removed */
    }
    p->n = k;
}

static void round_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ld_probe *p = arg;
    sync_targets(p);
    for (size_t i = 0; i < p->n; i++) {
        pnode *n = p->v[i];
        if (!n->http_busy) http_start(n);
        if (!n->ws_busy) ws_start(n);
    }
}

bool ld_probe_set_key(ld_probe *p, const char *cluster_key)
{
    char *k = strdup(cluster_key);
    if (!k) return false;
    free(p->cluster_key);
    p->cluster_key = k;
    return true;
}

ld_probe *ld_probe_new(struct event_base *base, struct evdns_base *dns, struct ld_tls *tls,
                       const char *self_id, const char *cluster_key, int interval_s,
                       ld_probe_targets_fn targets, void *targets_ctx)
{
    ld_probe *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->base = base;
    p->dns = dns;
    p->tls = tls;
    snprintf(p->self_id, sizeof p->self_id, "%s", self_id);
    p->cluster_key = strdup(cluster_key);
    p->interval_s = interval_s;
    p->targets = targets;
    p->targets_ctx = targets_ctx;
    p->timer = event_new(base, -1, EV_PERSIST, round_cb, p);
    if (!p->cluster_key || !p->timer) {
        ld_probe_free(p);
        return NULL;
    }
    return p;
}

void ld_probe_start(ld_probe *p, const char *self_url)
{
    if (!p || p->running) return;
    pnode *self = node_new(p, p->self_id);
    pnode **v = self ? realloc(p->v, (p->n + 1) * sizeof *v) : NULL;
    if (!v || !node_set_url(self, self_url)) {
        node_free(self);
        ld_log(LD_LOG_WARN, NULL, "probes: out of memory; the dashboard shows no probes");
        return;
    }
    p->v = v;
    memmove(p->v + 1, p->v, p->n * sizeof *p->v);
    p->v[0] = self;
    p->n++;
    self->self = self->seen = self->active = true;
    if (p->interval_s <= 0) return;
    p->running = true;
    struct timeval tv = {p->interval_s, 0};
    event_add(p->timer, &tv);
    round_cb(-1, 0, p); /* (activating the persistent timer instead would skip its next run) */
}

void ld_probe_stop(ld_probe *p)
{
    if (!p) return;
    p->running = false;
    event_del(p->timer);
    for (size_t i = 0; i < p->n; i++)
        node_drop_probes(p->v[i]);
}

void ld_probe_free(ld_probe *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n; i++)
        node_free(p->v[i]);
    free(p->v);
    if (p->timer) event_free(p->timer);
    free(p->cluster_key);
    free(p);
}

/* ---------------------------------------------------------------------------------------------
 * JSON
 * ------------------------------------------------------------------------------------------- */

static const char *state_str(probe_state s)
{
    return s == PS_OK ? "Online" : s == PS_FAILED ? "Offline" : "Unknown";
}

/* Online when both probes pass, Degraded when only HTTP does (hints cannot reach it, but
 * replication over HTTP still works), Offline when HTTP fails. */
static const char *overall_str(const pnode *n)
{
    if (n->http_state == PS_UNKNOWN) return "Unknown";
    if (n->http_state == PS_FAILED) return "Offline";
    return n->ws_state == PS_FAILED ? "Degraded" : n->ws_state == PS_OK ? "Online" : "Unknown";
}

static json_t *ms_or_null(probe_state s, double ms)
{
    return s == PS_UNKNOWN ? json_null() : json_real((double)(int64_t)(ms * 100.0) / 100.0);
}

static json_t *node_json(const pnode *n)
{
    char when[LD_ISO_TIME_LEN], err[2 * PROBE_ERR_LEN + 4];
    ld_iso_time(n->last_checked_ms, when);
    snprintf(err, sizeof err, "%s%s%s", n->http_err, n->http_err[0] && n->ws_err[0] ? "; " : "",
             n->ws_err);
    return json_pack("{s:s, s:s, s:b, s:s, s:s, s:s, s:o, s:o, s:s?, s:s?}", "NodeId", n->id,
                     "BaseUrl", n->base_url ? n->base_url : "", "IsOnline", n->http_state == PS_OK,
                     "Status", overall_str(n), "HttpStatus", state_str(n->http_state),
                     "WebSocketStatus", state_str(n->ws_state), "HttpProbeDurationMs",
                     ms_or_null(n->http_state, n->http_ms), "WebSocketProbeDurationMs",
                     ms_or_null(n->ws_state, n->ws_ms), "Error", err[0] ? err : NULL,
                     "LastCheckedUtc", n->last_checked_ms ? when : NULL);
}

json_t *ld_probe_nodes_json(ld_probe *p)
{
    sync_targets(p); /* a peer registered since the last round shows, as Unknown */
    json_t *a = json_array();
    for (size_t i = 0; a && i < p->n; i++)
        if (json_array_append_new(a, node_json(p->v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *history_json(const pnode *n)
{
    json_t *a = json_array();
    for (size_t k = 0; a && k < n->hist_n; k++) {
        const sample *s = &n->hist[(n->hist_head + HISTORY_MAX - n->hist_n + k) % HISTORY_MAX];
        char when[LD_ISO_TIME_LEN];
        ld_iso_time(s->at_ms, when);
        json_array_append_new(a,
                              json_pack("{s:s, s:o, s:o}", "TimestampUtc", when, "HttpDurationMs",
                                        ms_or_null(s->http_ms < 0 ? PS_UNKNOWN : PS_OK, s->http_ms),
                                        "WebSocketDurationMs",
                                        ms_or_null(s->ws_ms < 0 ? PS_UNKNOWN : PS_OK, s->ws_ms)));
    }
    return a;
}

json_t *ld_probe_connections_json(ld_probe *p)
{
    sync_targets(p);
    json_t *a = json_array();
    for (size_t i = 0; a && i < p->n; i++) {
        const pnode *n = p->v[i];
        if (n->self) continue;
        json_t *o = node_json(n);
        /* json_object_set_new takes its value even when it fails. */
        bool ok = o && !json_object_set_new(o, "IsPeerActive", json_boolean(n->active)) &&
                  !json_object_set_new(o, "OverallStatus",
                                       json_string(n->active ? overall_str(n) : "Inactive")) &&
                  !json_object_set_new(o, "LatencyHistory", history_json(n));
        if (!ok) json_decref(o);
        if (!ok || json_array_append_new(a, o) != 0) { /* append takes o even when it fails */
            json_decref(a);
            return NULL;
        }
    }
    return a;
}
