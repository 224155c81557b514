/* A link's HTTP calls to its peer (one request in flight, over its kept-alive connection) and the
 * WebSocket that carries our sync-request hints to each peer. */
#include "link.h"

/* ---------------------------------------------------------------------------------------------
 * HTTP calls
 * ------------------------------------------------------------------------------------------- */

void ld_repl_call_free(call *c)
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
    /* Push and pull answers say whether the peer speaks the compact form (snapshot pages and the
     * other routes do not: they leave what the link knows alone). */
    bool pull = !strcmp(c->what, "pull");
    bool batch = pull || !strcmp(c->what, "push");
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
        ld_repl_call_free(c);
        call_failed(l, fn, raw, "cannot open a connection (out of memory)");
        return;
    }
    ld_repl_call_free(c);
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
    /* Learned (or unlearned: a peer replaced by an older build, or one that refused a compact
     * body, whose error answer does not announce it) from each answer. */
    struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
    const char *wire = evhttp_find_header(ih, LD_WIREOPS_HEADER);
    if (batch) l->peer_compact = ld_wireops_announced(wire);
    if (pull) l->peer_reads_committed = ld_wire_committed_announced(wire);
    l->answer_compact = ld_wireops_is_type(evhttp_find_header(ih, "Content-Type"));
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
    l->call = c; /* until call_done; ld_repl_link_free frees it if the connection goes first */
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char hostport[300], path[512];
    snprintf(hostport, sizeof hostport, "%s:%d", l->addr.host, l->addr.port);
    snprintf(path, sizeof path, "%s/api/replication/%s", l->addr.prefix, c->what);
    evhttp_add_header(h, "Host", hostport);
    evhttp_add_header(h, "Content-Type", c->compact ? LD_WIREOPS_CONTENT_TYPE : "application/json");
    if (c->accept_compact) evhttp_add_header(h, "Accept", LD_WIREOPS_ACCEPT);
    evhttp_add_header(h, "Database", l->db);
    evhttp_add_header(h, "ReplicationApiKey", r->node->cfg.replication_api_key);
    evhttp_add_header(h, "TargetNodeId",
                      l->peer); /* refused by any other node: ld_repl_link_identity */
    if (ld_peer_conn_request(&l->pc, req, EVHTTP_REQ_POST, path) != 0) {
        l->call = NULL; /* evhttp freed req; c is ours again */
        return false;
    }
    return true;
}

/* POSTs body (its contents move into the call) to the peer's /api/replication/<what>; the
 * answer goes to fn as JSON, or to raw as received when raw is set. */
bool ld_repl_call_post_any(ld_link *l, const char *what, struct evbuffer *body, reply_fn fn,
                           raw_reply_fn raw)
{
    return ld_repl_call_post_wire(l, what, body, fn, raw, false, false);
}

bool ld_repl_call_post_wire(ld_link *l, const char *what, struct evbuffer *body, reply_fn fn,
                            raw_reply_fn raw, bool compact_body, bool accept_compact)
{
    call *c = calloc(1, sizeof *c);
    if (!c || !(c->body = evbuffer_new()) || evbuffer_add_buffer(c->body, body) != 0) {
        if (c) ld_repl_call_free(c);
        return false;
    }
    c->link = l;
    c->fn = fn;
    c->raw = raw;
    c->error = -1;
    c->compact = compact_body;
    c->accept_compact = accept_compact;
    snprintf(c->what, sizeof c->what, "%s", what);
    if (call_send(c)) return true;
    ld_repl_call_free(c);
    return false;
}

bool ld_repl_call_post(ld_link *l, const char *what, struct evbuffer *body, reply_fn fn)
{
    return ld_repl_call_post_any(l, what, body, fn, NULL);
}

/* The node at the link's BaseUrl says it is `seen`, not the peer: remembered for the status
 * (IdentityMismatch) and logged once, naming both ids. */
void ld_repl_link_identity(ld_link *l, const char *seen)
{
    if (!seen || !ld_node_id_valid(seen) || !strcmp(seen, l->peer)) return;
    if (strcmp(l->answers_as, seen) != 0)
        ld_log(LD_LOG_WARN, l->db,
               "the node at %s (peer '%s') is '%s': replication with '%s' stops until its "
               "address is fixed or it is removed (DELETE /api/cluster/peers/%s)",
               l->base_url, l->peer, seen, l->peer, l->peer);
    snprintf(l->answers_as, sizeof l->answers_as, "%s", seen);
}

int ld_repl_peer_error_why(ld_link *l, int code, json_t *body, const char *err, const char *what,
                           char *msg, size_t len)
{
    if (code == 409) ld_repl_link_identity(l, json_string_value(ld_json_get_ci(body, "NodeId")));
    if (code == 0) {
        snprintf(msg, len, "%s: %s", what, err);
        return FAIL_UNREACHABLE;
    }
    const char *m = json_string_value(ld_json_get_ci(body, "Error"));
    snprintf(msg, len, "%s: HTTP %d%s%s", what, code, m ? ": " : "", m ? m : "");
    return code >= 500 ? FAIL_HTTP_5XX : code == 409 ? FAIL_PROTOCOL : FAIL_HTTP_4XX;
}

void ld_repl_peer_error(ld_link *l, int code, json_t *body, const char *err, const char *what)
{
    char msg[sizeof l->last_error];
    l->fail_reason = ld_repl_peer_error_why(l, code, body, err, what, msg, sizeof msg);
    ld_repl_cycle_fail(l, "%s", msg);
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
void ld_repl_hint_send(ld_link *l)
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
