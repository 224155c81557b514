/* The route table and dispatch (see router.h). Paths are split into percent-decoded segments
 * kept with their lengths: a segment may hold any byte ("%00", ".."), and each handler
 * validates its parameters (names, ids) by length, never as C strings first. */
#include "router.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <sodium.h>

#include "../api/api.h"
#include "../util/log.h"
#include "../util/timeutil.h"
#include "conns.h"
#include "cors.h"
#include "request.h"
#include "tls.h"

#define M_GET    EVHTTP_REQ_GET
#define M_POST   EVHTTP_REQ_POST
#define M_PUT    EVHTTP_REQ_PUT
#define M_DELETE EVHTTP_REQ_DELETE

typedef struct route {
    unsigned methods;
    /* Literal segments, "*" for a parameter, a final "**" for any number of further segments
     * (the Studio's files); NULL-ended. */
    const char *pattern[LD_MAX_SEGS + 1];
    void (*handler)(ld_req *r);
    const char *tmpl; /* the route template: metrics and access-log label, never the values */
} route;

/* Order matters where patterns overlap: the first route matching path AND method wins. */
static const route routes[] = {
    {M_GET, {NULL}, ld_api_root, "/"},
    {M_GET, {"studio", "**", NULL}, ld_api_studio, "/studio/{path}"},
    {M_GET, {"health", NULL}, ld_api_health, "/health"},
    {M_GET, {"node", NULL}, ld_api_node, "/node"},
    {M_GET, {"livez", NULL}, ld_api_livez, "/livez"},
    {M_GET, {"readyz", NULL}, ld_api_readyz, "/readyz"},
    {M_GET, {"metrics", NULL}, ld_api_metrics, "/metrics"},
    {M_GET, {"api", "databases", NULL}, ld_api_databases_list, "/api/databases"},
    {M_DELETE,
     {"api", "databases", "*", NULL},
     ld_api_databases_delete,
     "/api/databases/{database}"},
    {M_GET, {"api", "documents", NULL}, ld_api_collections_list, "/api/documents"},
    {M_GET, {"api", "documents", "*", NULL}, ld_api_docs_list, "/api/documents/{collection}"},
    {M_POST, {"api", "documents", "*", NULL}, ld_api_docs_post, "/api/documents/{collection}"},
    {M_POST,
     {"api", "documents", "*", "register", NULL},
     ld_api_collection_register,
     "/api/documents/{collection}/register"},
    {M_GET,
     {"api", "documents", "*", "*", NULL},
     ld_api_doc_get,
     "/api/documents/{collection}/{id}"},
    {M_PUT,
     {"api", "documents", "*", "*", NULL},
     ld_api_doc_put,
     "/api/documents/{collection}/{id}"},
    {M_DELETE,
     {"api", "documents", "*", "*", NULL},
     ld_api_doc_delete,
     "/api/documents/{collection}/{id}"},
    {M_POST, {"api", "query", NULL}, ld_api_query, "/api/query"},
    {M_GET, {"api", "indexes", NULL}, ld_api_indexes_list, "/api/indexes"},
    {M_GET, {"api", "changes", NULL}, ld_api_changes, "/api/changes"},
    {M_GET, {"ws", "changes", NULL}, ld_api_changes_ws, "/ws/changes"},
    {M_GET, {"api", "cache", NULL}, ld_api_cache_list, "/api/cache"},
    {M_GET, {"api", "cache", "*", NULL}, ld_api_cache_get, "/api/cache/{key}"},
    {M_PUT, {"api", "cache", "*", NULL}, ld_api_cache_put, "/api/cache/{key}"},
    {M_DELETE, {"api", "cache", "*", NULL}, ld_api_cache_delete, "/api/cache/{key}"},
    {M_POST, {"api", "replication", "push", NULL}, ld_api_repl_push, "/api/replication/push"},
    {M_POST, {"api", "replication", "pull", NULL}, ld_api_repl_pull, "/api/replication/pull"},
    {M_POST,
     {"api", "replication", "snapshot", NULL},
     ld_api_repl_snapshot,
     "/api/replication/snapshot"},
    {M_POST,
     {"api", "replication", "operation-log", "prune", NULL},
     ld_api_repl_prune,
     "/api/replication/operation-log/prune"},
    {M_GET, {"api", "replication", "status", NULL}, ld_api_repl_status, "/api/replication/status"},
    {M_GET,
     {"api", "replication", "conflicts", NULL},
     ld_api_repl_conflicts,
     "/api/replication/conflicts"},
    {M_GET,
     {"api", "replication", "databases", NULL},
     ld_api_repl_databases,
     "/api/replication/databases"},
    {M_POST,
     {"api", "replication", "announce", NULL},
     ld_api_repl_announce,
     "/api/replication/announce"},
    {M_GET, {"ws", "replication", NULL}, ld_api_repl_ws, "/ws/replication"},
    {M_GET, {"api", "cluster", "peers", NULL}, ld_api_peers_list, "/api/cluster/peers"},
    {M_POST, {"api", "cluster", "peers", NULL}, ld_api_peers_upsert, "/api/cluster/peers"},
    {M_DELETE,
     {"api", "cluster", "peers", "*", NULL},
     ld_api_peers_delete,
     "/api/cluster/peers/{nodeId}"},
    {M_POST, {"api", "cluster", "leave", NULL}, ld_api_cluster_leave, "/api/cluster/leave"},
    {M_GET,
     {"dashboard", "api", "overview", NULL},
     ld_api_dashboard_overview,
     "/dashboard/api/overview"},
    {M_GET,
     {"webhook-ingestion", "*", "*", NULL},
     ld_api_webhook_ready,
     "/webhook-ingestion/{database}/{key}"},
    {M_POST,
     {"webhook-ingestion", "*", "*", NULL},
     ld_api_webhook,
     "/webhook-ingestion/{database}/{key}"},
};

#define N_ROUTES (sizeof routes / sizeof routes[0])
_Static_assert(N_ROUTES <= LD_ROUTES_MAX, "LD_ROUTES_MAX (node.h) must cover the route table");

size_t ld_router_count(void)
{
    return N_ROUTES;
}

const char *ld_router_template(size_t i, const char **method)
{
    if (i >= N_ROUTES) {
        *method = "";
        return "unmatched";
    }
    *method = ld_method_name((enum evhttp_cmd_type)routes[i].methods);
    return routes[i].tmpl;
}

/* A client's X-Request-Id is kept when it is sane: 1-64 characters of letters, digits and
 * "-_.:" (it ends up in logs and headers); otherwise one is made. */
static void take_request_id(ld_req *r)
{
    const char *given = evhttp_find_header(evhttp_request_get_input_headers(r->ev), "X-Request-Id");
    size_t n = given ? strlen(given) : 0;
    bool sane = n > 0 && n <= LD_REQUEST_ID_MAX;
    for (size_t i = 0; sane && i < n; i++)
        sane = isalnum((unsigned char)given[i]) || strchr("-_.:", given[i]);
    if (sane) {
        memcpy(r->request_id, given, n + 1);
        return;
    }
    unsigned char rnd[12];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(r->request_id, sizeof r->request_id, rnd, sizeof rnd);
}

static bool pattern_matches(const route *rt, ld_req *r)
{
    size_t i = 0;
    for (; rt->pattern[i]; i++) {
        if (strcmp(rt->pattern[i], "**") == 0) return true;
        if (i >= r->nsegs) return false;
        if (strcmp(rt->pattern[i], "*") != 0 &&
            (strlen(rt->pattern[i]) != r->seg_lens[i] || strcmp(rt->pattern[i], r->segs[i]) != 0))
            return false;
    }
    return i == r->nsegs;
}

/* Splits and decodes the path. Returns false (having replied) on a malformed path. */
static bool split_path(ld_req *r, const char *path)
{
    const char *p = path;
    while (*p == '/')
        p++;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (r->nsegs == LD_MAX_SEGS) {
            ld_reply_error(r, 404, "No route for %s %s.", ld_method_name(r->method), path);
            return false;
        }
        char *raw = strndup(p, n);
        size_t dlen = 0;
        char *dec = raw ? evhttp_uridecode(raw, 0, &dlen) : NULL;
        free(raw);
        if (!dec) {
            ld_reply_error(r, 500, "Out of memory.");
            return false;
        }
        r->segs[r->nsegs] = dec;
        r->seg_lens[r->nsegs++] = dlen;
        p += n;
        while (*p == '/')
            p++;
    }
    return true;
}

/* The header block as the client sent it: request line and "Name: value" lines. evhttp's own
 * guard sits above Node.MaxHeaderBytes (node.c), so the limit is enforced here with a JSON
 * answer; only abuse beyond the guard meets libevent's page. */
static size_t header_block_bytes(struct evhttp_request *ev, const char *raw_uri)
{
    size_t n = (raw_uri ? strlen(raw_uri) : 0) + sizeof "OPTIONS  HTTP/1.1\r\n\r\n";
    struct evkeyval *h;
    TAILQ_FOREACH(h, evhttp_request_get_input_headers(ev), next)
    n += strlen(h->key) + strlen(h->value) + 4;
    return n;
}

/* evhttp decodes "%00" into the parsed names and values, where it would cut them short as C
 * strings (?take=2%00x read as 2): any NUL in the query is refused. The raw query holds none
 * (the request line is text), so each name and value is checked in its encoded form. */
static bool query_free_of_nul(ld_req *r, const char *query)
{
    for (const char *p = query; *p;) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        for (const char *q = p; q + 2 < p + len; q++) {
            if (q[0] != '%' || q[1] != '0' || q[2] != '0') continue;
            if (q < p + klen) {
                ld_reply_error(r, 400, "A query parameter name contains a NUL byte (%%00).");
            } else {
                char *raw = strndup(p, klen);
                char *name = raw ? evhttp_uridecode(raw, 1, NULL) : NULL;
                if (name)
                    ld_reply_error(r, 400, "Query parameter '%.64s' contains a NUL byte (%%00).",
                                   name);
                else
                    ld_reply_error(r, 500, "Out of memory.");
                free(name);
                free(raw);
            }
            return false;
        }
        p += len;
        if (*p == '&') p++;
    }
    return true;
}

void ld_router_handle(struct evhttp_request *ev, void *arg)
{
    ld_node *node = arg;
    node->last_request_ms = ld_mono_ms();
    ld_conns_request_read(node->conns, ev); /* read in full: its deadline is met */
    if (ld_tls_serves(node->tls) && !ld_tls_request_is_tls(ev)) {
        /* evhttp fell back to a plain socket (http/tls.h): a TLS listener never serves plain. */
        evhttp_add_header(evhttp_request_get_output_headers(ev), "Connection", "close");
        evhttp_send_error(ev, 503, "TLS is unavailable for this connection");
        return;
    }
    if (ld_tls_serves(node->tls)) ld_tls_track_close(ev);
    ld_req *r = calloc(1, sizeof *r);
    if (!r) {
        evhttp_send_error(ev, 500, NULL);
        return;
    }
    r->ev = ev;
    r->node = node;
    r->method = evhttp_request_get_command(ev);
    r->route = -1;
    r->start_us = ld_mono_us();
    take_request_id(r);
    TAILQ_INIT(&r->query);
    struct evhttp_connection *conn = evhttp_request_get_connection(ev);
    if (conn) {
        char *addr = NULL;
        ev_uint16_t port = 0;
        evhttp_connection_get_peer(conn, &addr, &port);
        snprintf(r->client_addr, sizeof r->client_addr, "%s", addr ? addr : "");
    }

    const char *raw_uri = evhttp_request_get_uri(ev);
    if (raw_uri && strlen(raw_uri) > node->cfg.max_url_bytes) {
        ld_reply_error(r, 414, "The URL is longer than Node.MaxUrlBytes (%zu bytes).",
                       node->cfg.max_url_bytes);
        return;
    }
    if (header_block_bytes(ev, raw_uri) > node->cfg.max_header_bytes) {
        evhttp_add_header(evhttp_request_get_output_headers(ev), "Connection", "close");
        ld_reply_error(r, 431,
                       "The request headers are larger than Node.MaxHeaderBytes (%zu bytes).",
                       node->cfg.max_header_bytes);
        return;
    }
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    if (!path || !*path) path = "/";
    if (query && evhttp_parse_query_str(query, &r->query) != 0) {
        ld_reply_error(r, 400, "The query string is malformed.");
        return;
    }
    if (query && !query_free_of_nul(r, query)) return;
    if (!split_path(r, path)) return;
    /* A browser's CORS preflight is answered for every path, before routing (http/cors.h). */
    if (r->method == EVHTTP_REQ_OPTIONS && ld_cors_preflight(r)) return;

    /* HEAD is served as GET; evhttp sends the headers only. */
    unsigned want = r->method == EVHTTP_REQ_HEAD ? EVHTTP_REQ_GET : (unsigned)r->method;
    unsigned allowed = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!pattern_matches(&routes[i], r)) continue;
        if (routes[i].methods & want) {
            r->route = (int)i;
            routes[i].handler(r);
            return;
        }
        allowed |= routes[i].methods;
    }
    if (!allowed) {
        ld_reply_error(r, 404, "No route for %s %s.", ld_method_name(r->method), path);
        return;
    }
    char allow[64] = "";
    const unsigned order[] = {M_GET, M_POST, M_PUT, M_DELETE};
    for (size_t i = 0; i < 4; i++)
        if (allowed & order[i]) {
            if (allow[0]) strcat(allow, ", ");
            strcat(allow, ld_method_name((enum evhttp_cmd_type)order[i]));
            if (order[i] == M_GET) strcat(allow, ", HEAD"); /* served as GET, above */
        }
    evhttp_add_header(evhttp_request_get_output_headers(ev), "Allow", allow);
    ld_reply_error(r, 405, "Method %s is not allowed on %s; allowed: %s.",
                   ld_method_name(r->method), path, allow);
}
