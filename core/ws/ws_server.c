/* Server side of WebSocket: takes an upgrade request's connection over from evhttp (which has no
 * WebSocket support in 2.1.12) after answering 101; keeps the accepted connections for shutdown. */
#include "ws_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http_struct.h> /* the request's HTTP version */
#include <event2/keyvalq_struct.h>
#include <sodium.h>

/* ---------------------------------------------------------------------------------------------
 * Why taking the connection from evhttp this way is safe (libevent 2.1.12, http.c)
 *
 * evhttp offers no way to detach a socket (libevent#932: the fd is cached in the connection, and
 * evhttp_connection_free always shuts it down and closes it). So the evhttp_connection is kept,
 * unused, for the life of the WebSocket, and only its bufferevent is borrowed:
 *   1. ld_ws_accept runs inside the request callback. evhttp_handle_request has disabled EV_READ
 *      before calling it, the request was read in full (a GET has no body), and the connection
 *      sits in EVCON_WRITING waiting for a reply that never comes through evhttp.
 *   2. Replacing the bufferevent's callbacks (bufferevent_setcb) means evhttp's read, write and
 *      error callbacks never run again, so evhttp never fails, resets or frees this connection
 *      on its own (the double frees of libevent#997 come from evhttp freeing it on EOF behind
 *      the owner's back). Its one deferred callback (read_more_deferred_cb, which would call the
 *      bufferevent's read callback with the evcon as argument) is scheduled only when evhttp
 *      starts reading a next request or on an outgoing connection's error, never after we own
 *      the callbacks; evhttp_read_cb cancelled it before dispatching this request.
 *   3. The 101 is written straight into the bufferevent: evhttp_send_reply* would add
 *      chunked encoding or Content-Length and then start reading the next request.
 *   4. The timeouts evhttp_set_timeout put on the bufferevent are cleared: keep-alive pings
 *      decide liveness now.
 *   5. When the WebSocket ends, evhttp_connection_free(evcon) frees the pending request, the
 *      bufferevent and the socket once. Our close callback is removed first so that free does
 *      not call back into a connection being destroyed.
 *   6. evhttp_free frees every connection it still lists, ours included: the close callback
 *      set here tells us first, and the connection is then reported and freed without touching
 *      the evcon or bufferevent again. ld_ws_server_free before evhttp_free is the clean order.
 *   7. Nothing here frees the evcon inside the request callback: the caller's evhttp stack
 *      (evhttp_connection_done and up) still runs after it returns.
 * ------------------------------------------------------------------------------------------- */

ld_ws_server *ld_ws_server_new(const ld_ws_options *opt)
{
    ld_ws_server *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    ws_options_resolve(&s->opt, opt);
    TAILQ_INIT(&s->conns);
    return s;
}

size_t ld_ws_server_count(const ld_ws_server *srv)
{
    return srv ? srv->count : 0;
}

void ws_server_detach(ld_ws_conn *c)
{
    if (!c->srv) return;
    TAILQ_REMOVE(&c->srv->conns, c, link);
    c->srv->count--;
    c->srv = NULL;
}

void ws_server_release(ld_ws_conn *c)
{
    struct evhttp_connection *evcon = c->evcon;
    c->evcon = NULL;
    c->bev = NULL; /* evhttp's, freed with evcon */
    if (!evcon) return;
    evhttp_connection_set_closecb(evcon, NULL, NULL);
    evhttp_connection_free(evcon);
}

/* evhttp_free is freeing the evcon (and its bufferevent) under us: report and let go. */
static void on_evhttp_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    ld_ws_conn *c = arg;
    c->evcon = NULL;
    c->bev = NULL;
    ws_enter(c);
    ws_fail(c, LD_WS_ERR_SHUTDOWN, "the HTTP server closed the connection");
    ws_leave(c);
}

void ld_ws_server_close_all(ld_ws_server *srv, int code, const char *reason)
{
    if (!srv) return;
    ld_ws_conn *c;
    TAILQ_FOREACH(c, &srv->conns, link)
    {
        ld_ws_close(c, code, reason); /* reports later, from the loop: the list stays intact */
    }
}

void ld_ws_server_free(ld_ws_server *srv)
{
    if (!srv) return;
    ld_ws_conn *c;
    while ((c = TAILQ_FIRST(&srv->conns)) != NULL) {
        ws_enter(c);
        ws_fail(c, LD_WS_ERR_SHUTDOWN, "the WebSocket server shut down");
        ws_server_detach(c); /* ws_fail detached it unless it was already done */
        ws_leave(c);
    }
    free(srv);
}

/* ---------------------------------------------------------------------------------------------
 * The upgrade
 * ------------------------------------------------------------------------------------------- */

/* True when the comma-separated header value lists token (any case), e.g. "keep-alive, Upgrade". */
static bool has_token(const char *value, const char *token)
{
    size_t tlen = strlen(token);
    const char *p = value;
    while (p && *p) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t'))
            m--;
        if (m == tlen && strncasecmp(p, token, tlen) == 0) return true;
        p += n;
    }
    return false;
}

static bool key_valid(const char *key)
{
    unsigned char bin[18];
    size_t bin_len = 0;
    /* A 16-byte nonce is exactly 24 base64 characters with "==" padding. */
    if (strlen(key) != 24) return false;
    if (sodium_base642bin(bin, sizeof bin, key, 24, NULL, &bin_len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        return false;
    return bin_len == 16;
}

static ld_status refuse(const char **detail, ld_status st, const char *why)
{
    if (detail) *detail = why;
    return st;
}

ld_status ld_ws_accept(ld_ws_server *srv, struct evhttp_request *req, const ld_ws_callbacks *cb,
                       void *arg, ld_ws_conn **out, const char **detail)
{
    if (out) *out = NULL;
    if (!srv || !req || !out) return refuse(detail, LD_INVALID, "bad arguments");
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET)
        return refuse(detail, LD_INVALID, "a WebSocket upgrade must be a GET");
    if (req->major < 1 || (req->major == 1 && req->minor < 1))
        return refuse(detail, LD_INVALID, "a WebSocket upgrade needs HTTP/1.1");
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *upgrade = evhttp_find_header(h, "Upgrade");
    const char *connection = evhttp_find_header(h, "Connection");
    const char *version = evhttp_find_header(h, "Sec-WebSocket-Version");
    const char *key = evhttp_find_header(h, "Sec-WebSocket-Key");
    if (!upgrade || !has_token(upgrade, "websocket"))
        return refuse(detail, LD_INVALID, "no 'Upgrade: websocket' header");
    if (!connection || !has_token(connection, "upgrade"))
        return refuse(detail, LD_INVALID, "the Connection header does not list 'upgrade'");
    if (!version) return refuse(detail, LD_INVALID, "no Sec-WebSocket-Version header");
    if (strcmp(version, "13") != 0)
        return refuse(detail, LD_UNSUPPORTED, "Sec-WebSocket-Version is not 13");
    if (!key) return refuse(detail, LD_INVALID, "no Sec-WebSocket-Key header");
    if (!key_valid(key))
        return refuse(detail, LD_INVALID, "Sec-WebSocket-Key is not 16 bytes of base64");

    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    if (!bev) return refuse(detail, LD_INTERNAL, "the request has no connection");

    char accept[LD_WS_ACCEPT_LEN + 1];
    ld_ws_accept_key(key, strlen(key), accept);
    char resp[160];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    ld_ws_conn *c = ws_conn_new(bufferevent_get_base(bev), true, &srv->opt, cb, arg);
    if (!c) return refuse(detail, LD_NOMEM, "out of memory");
    /* evbuffer_add is all or nothing: on failure evhttp can still answer the request. */
    if (bufferevent_write(bev, resp, (size_t)n) != 0) {
        c->state = WS_DONE;
        ws_conn_destroy(c); /* c->evcon is still NULL: evhttp keeps its connection */
        return refuse(detail, LD_NOMEM, "out of memory");
    }

    /* From here the connection is ours (see the comment at the top of this file). */
    c->evcon = evcon;
    c->bev = bev;
    evhttp_connection_set_closecb(evcon, on_evhttp_close, c);
    bufferevent_set_timeouts(bev, NULL, NULL);
    ws_set_nodelay(bufferevent_getfd(bev));
    ws_start_open(c);
    c->srv = srv;
    TAILQ_INSERT_TAIL(&srv->conns, c, link);
    srv->count++;
    /* Frames the client sent right behind its request are already buffered: read them from
     * the loop, not inside evhttp's callback. */
    if (evbuffer_get_length(bufferevent_get_input(bev)) > 0) ws_kick(c);
    *out = c;
    if (detail) *detail = "upgraded";
    return LD_OK;
}
