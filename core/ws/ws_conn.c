/* The part of a WebSocket connection both sides share: wslay over a bufferevent, keep-alive, the
 * closing handshake and the one place a connection is reported and freed (see ws.h). */
#include "ws_internal.h"

#include "../http/tls.h"
#include "../util/sockopt.h"

#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <openssl/sha.h>
#include <sodium.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------------------------- */

int64_t ws_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Replication hints are small frames that must leave at once: Nagle plus delayed ACKs would add
 * tens of milliseconds. Failure only costs latency, so it is ignored. */
void ws_set_nodelay(evutil_socket_t fd)
{
    if (fd >= 0) (void)ld_sock_nodelay(fd);
}

void ws_options_resolve(ld_ws_options *dst, const ld_ws_options *src)
{
    ld_ws_options o = {0};
    if (src) o = *src;
    if (!o.max_message) o.max_message = LD_WS_DEFAULT_MAX_MESSAGE;
    if (!o.ping_interval_ms) o.ping_interval_ms = LD_WS_DEFAULT_PING_MS;
    if (!o.connect_timeout_ms) o.connect_timeout_ms = LD_WS_DEFAULT_CONNECT_MS;
    if (!o.handshake_timeout_ms) o.handshake_timeout_ms = LD_WS_DEFAULT_HANDSHAKE_MS;
    if (!o.close_timeout_ms) o.close_timeout_ms = LD_WS_DEFAULT_CLOSE_MS;
    *dst = o;
}

static struct timeval ms_to_tv(uint32_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

void ws_arm_timer(ld_ws_conn *c, uint32_t ms)
{
    struct timeval tv = ms_to_tv(ms);
    event_add(c->timer, &tv);
}

void ws_kick(ld_ws_conn *c)
{
    if (c->state != WS_DONE) event_active(c->kick, EV_TIMEOUT, 0);
}

bool ld_ws_accept_key(const char *key, size_t key_len, char *out)
{
    char buf[64 + sizeof WS_GUID];
    unsigned char digest[SHA_DIGEST_LENGTH];
    if (key_len > 64) return false;
    memcpy(buf, key, key_len);
    memcpy(buf + key_len, WS_GUID, sizeof WS_GUID - 1);
    SHA1((const unsigned char *)buf, key_len + sizeof WS_GUID - 1, digest);
    sodium_bin2base64(out, LD_WS_ACCEPT_LEN + 1, digest, sizeof digest,
                      sodium_base64_VARIANT_ORIGINAL);
    return true;
}

const char *ld_ws_close_code_str(int code)
{
    switch (code) {
    case 1000:
        return "normal closure";
    case 1001:
        return "going away";
    case 1002:
        return "protocol error";
    case 1003:
        return "unsupported data";
    case 1005:
        return "no status code";
    case 1006:
        return "abnormal closure";
    case 1007:
        return "invalid payload data";
    case 1008:
        return "policy violation";
    case 1009:
        return "message too big";
    case 1010:
        return "mandatory extension";
    case 1011:
        return "internal error";
    default:
        return code >= 3000 && code <= 4999 ? "application code" : "unknown code";
    }
}

const char *ld_ws_error_str(ld_ws_error err)
{
    switch (err) {
    case LD_WS_ERR_DNS:
        return "name resolution failed";
    case LD_WS_ERR_CONNECT:
        return "connect failed";
    case LD_WS_ERR_TIMEOUT:
        return "timed out";
    case LD_WS_ERR_HANDSHAKE:
        return "handshake rejected";
    case LD_WS_ERR_KEEPALIVE:
        return "keep-alive missed";
    case LD_WS_ERR_IO:
        return "connection lost";
    case LD_WS_ERR_PROTOCOL:
        return "framing failed";
    case LD_WS_ERR_NOMEM:
        return "out of memory";
    case LD_WS_ERR_SHUTDOWN:
        return "shut down";
    }
    return "unknown error";
}

static void copy_reason(char *dst, const void *src, size_t len)
{
    if (len > LD_WS_MAX_REASON) len = LD_WS_MAX_REASON;
    if (len) memcpy(dst, src, len);
    dst[len] = '\0';
}

/* ---------------------------------------------------------------------------------------------
 * wslay callbacks: bytes move between wslay and the bufferevent's buffers, never a socket
 * ------------------------------------------------------------------------------------------- */

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                          void *ud)
{
    (void)flags;
    ld_ws_conn *c = ud;
    int n = evbuffer_remove(bufferevent_get_input(c->bev), buf, len);
    if (n <= 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return n;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                          void *ud)
{
    (void)flags;
    ld_ws_conn *c = ud;
    if (bufferevent_write(c->bev, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static int ws_genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *ud)
{
    (void)ctx;
    (void)ud;
    randombytes_buf(buf, len);
    return 0;
}

static void ws_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
                      void *ud)
{
    ld_ws_conn *c = ud;
    if (c->state == WS_DONE) {
        wslay_event_shutdown_read(ctx);
        return;
    }
    switch (a->opcode) {
    case WSLAY_TEXT_FRAME:
        c->stats.messages_received++;
        if (c->state == WS_OPEN && c->cb.on_text)
            c->cb.on_text(c, a->msg ? (const char *)a->msg : "", a->msg_length, c->arg);
        /* Released or finished from inside on_text: stop wslay's loop over buffered frames. */
        if (c->state == WS_DONE) wslay_event_shutdown_read(ctx);
        break;
    case WSLAY_BINARY_FRAME: {
        static const char why[] = "binary frames are not supported";
        copy_reason(c->reason_sent, why, sizeof why - 1);
        if (wslay_event_queue_close(ctx, LD_WS_CLOSE_UNSUPPORTED, (const uint8_t *)why,
                                    sizeof why - 1) == 0)
            c->code_sent = LD_WS_CLOSE_UNSUPPORTED;
        wslay_event_shutdown_read(ctx);
        break;
    }
    case WSLAY_PONG:
        c->stats.pongs_received++;
        if (c->ping_outstanding) {
            c->stats.last_rtt_us = ws_now_us() - c->ping_sent_us;
            c->ping_outstanding = false;
        }
        break;
    case WSLAY_CONNECTION_CLOSE:
        if (a->msg_length > 2) copy_reason(c->reason_recv, a->msg + 2, a->msg_length - 2);
        break;
    default:
        break; /* pings are answered by wslay itself */
    }
}

static const struct wslay_event_callbacks ws_callbacks = {
    .recv_callback = ws_recv_cb,
    .send_callback = ws_send_cb,
    .genmask_callback = ws_genmask_cb,
    .on_msg_recv_callback = ws_msg_cb,
};

/* ---------------------------------------------------------------------------------------------
 * Lifetime: one report, one free
 * ------------------------------------------------------------------------------------------- */

void ws_enter(ld_ws_conn *c)
{
    c->depth++;
}

void ws_leave(ld_ws_conn *c)
{
    if (--c->depth == 0 && c->state == WS_DONE) ws_conn_destroy(c);
}

/* Stops everything that could call us again; the socket itself goes in ws_conn_destroy. */
static void mark_done(ld_ws_conn *c)
{
    c->state = WS_DONE;
    if (c->timer) event_del(c->timer);
    if (c->ping) event_del(c->ping);
    if (c->kick) event_del(c->kick);
    if (c->bev) {
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
        bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
    }
    if (c->is_server) ws_server_detach(c);
}

void ws_finish(ld_ws_conn *c, int code, const char *reason)
{
    if (c->state == WS_DONE) return;
    mark_done(c);
    if (!c->released && c->cb.on_close) c->cb.on_close(c, code, reason ? reason : "", c->arg);
}

void ws_fail(ld_ws_conn *c, ld_ws_error err, const char *fmt, ...)
{
    char detail[256];
    va_list ap;
    if (c->state == WS_DONE) return;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    mark_done(c);
    if (!c->released && c->cb.on_error) c->cb.on_error(c, err, detail, c->arg);
    if (!c->released && c->cb.on_close) c->cb.on_close(c, LD_WS_CLOSE_ABNORMAL, detail, c->arg);
}

/* The close ended without error: report the peer's close frame if one came, else ours. */
static void finish_orderly(ld_ws_conn *c)
{
    if (wslay_event_get_close_received(c->ws))
        ws_finish(c, wslay_event_get_status_code_received(c->ws), c->reason_recv);
    else if (wslay_event_get_close_sent(c->ws))
        ws_finish(c, c->code_sent ? c->code_sent : wslay_event_get_status_code_sent(c->ws),
                  c->reason_sent);
    else if (c->code_sent)
        ws_finish(c, c->code_sent, c->reason_sent);
    else
        ws_fail(c, LD_WS_ERR_IO, "the connection ended without a close frame");
}

void ws_conn_destroy(ld_ws_conn *c)
{
    if (c->is_server)
        ws_server_release(c);
    else
        ws_client_release(c);
    if (c->ws) wslay_event_context_free(c->ws);
    if (c->kick) event_free(c->kick);
    if (c->timer) event_free(c->timer);
    if (c->ping) event_free(c->ping);
    free(c);
}

/* ---------------------------------------------------------------------------------------------
 * Pumping frames and the closing handshake
 * ------------------------------------------------------------------------------------------- */

/* Close frame sent, none received, wslay reads no more: shut our write side so the peer sees
 * the end (RFC 6455 7.1.1: the server closes first) and discard what it still sends until its
 * EOF. Closing at once could turn its unread bytes into a reset that destroys our close frame
 * before the peer reads it. */
static void start_draining(ld_ws_conn *c)
{
    c->state = WS_DRAINING;
    ld_tls_close_notify(c->bev); /* over TLS, its end of stream comes before TCP's */
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    if (fd >= 0) shutdown(fd, SHUT_WR);
    struct evbuffer *in = bufferevent_get_input(c->bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    ws_arm_timer(c, c->opt.close_timeout_ms);
}

void ws_pump(ld_ws_conn *c)
{
    if (c->state != WS_OPEN && c->state != WS_CLOSING && c->state != WS_FLUSHING) return;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    if (c->state != WS_FLUSHING) {
        if (wslay_event_want_read(c->ws) && evbuffer_get_length(in) > 0) {
            int r = wslay_event_recv(c->ws);
            if (c->state == WS_DONE) return;
            if (r == WSLAY_ERR_CALLBACK_FAILURE && wslay_event_want_write(c->ws)) {
                /* A frame wslay cannot parse (a control frame in pieces, a bad length): it
                 * queues a close and reports a callback failure, though our recv callback
                 * never fails. That is the peer's violation: let the close (and a 101 still
                 * queued) leave like any other (RFC 6455 7.1.7), and report it as 1002,
                 * instead of dropping the connection unannounced. */
                c->code_sent = LD_WS_CLOSE_PROTOCOL;
                snprintf(c->reason_sent, sizeof c->reason_sent, "invalid frame");
            } else if (r != 0) {
                ws_fail(c, r == WSLAY_ERR_NOMEM ? LD_WS_ERR_NOMEM : LD_WS_ERR_PROTOCOL,
                        "receiving failed (wslay %d)", r);
                return;
            }
        }
        if (!wslay_event_want_read(c->ws)) evbuffer_drain(in, evbuffer_get_length(in));
        if (wslay_event_want_write(c->ws)) {
            int r = wslay_event_send(c->ws);
            if (r != 0) {
                ws_fail(c, r == WSLAY_ERR_NOMEM ? LD_WS_ERR_NOMEM : LD_WS_ERR_PROTOCOL,
                        "sending failed (wslay %d)", r);
                return;
            }
        }
        if (wslay_event_want_read(c->ws) || wslay_event_want_write(c->ws)) return;
        /* wslay is finished: it has sent a close frame (its own or the reply to the peer's). */
        if (!wslay_event_get_close_sent(c->ws)) {
            ws_fail(c, LD_WS_ERR_PROTOCOL, "the framing stopped without a close frame");
            return;
        }
        if (c->state != WS_CLOSING) ws_arm_timer(c, c->opt.close_timeout_ms);
        event_del(c->ping);
        c->state = WS_FLUSHING;
    }
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0) return; /* ws_bev_write resumes */
    if (wslay_event_get_close_received(c->ws))
        finish_orderly(c);
    else
        start_draining(c);
}

/* ---------------------------------------------------------------------------------------------
 * Event callbacks
 * ------------------------------------------------------------------------------------------- */

void ws_bev_read(struct bufferevent *bev, void *arg)
{
    ld_ws_conn *c = arg;
    ws_enter(c);
    switch (c->state) {
    case WS_HANDSHAKE:
        ws_client_on_read(c);
        break;
    case WS_OPEN:
    case WS_CLOSING:
        ws_pump(c);
        break;
    default: {
        /* Flushing or draining: what the peer still sends changes nothing. */
        struct evbuffer *in = bufferevent_get_input(bev);
        evbuffer_drain(in, evbuffer_get_length(in));
        break;
    }
    }
    ws_leave(c);
}

void ws_bev_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    ld_ws_conn *c = arg;
    ws_enter(c);
    if (c->state == WS_FLUSHING) ws_pump(c);
    ws_leave(c);
}

void ws_bev_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    ld_ws_conn *c = arg;
    int err = EVUTIL_SOCKET_ERROR();
    ws_enter(c);
    if (c->state == WS_RESOLVING || c->state == WS_CONNECTING || c->state == WS_HANDSHAKE) {
        ws_client_on_event(c, what);
    } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (c->state == WS_OPEN || c->state == WS_CLOSING) ws_pump(c); /* a close frame + FIN */
        if (c->state == WS_DONE) {
            /* reported above */
        } else if (c->state != WS_OPEN || wslay_event_get_close_received(c->ws) ||
                   wslay_event_get_close_sent(c->ws)) {
            finish_orderly(c);
        } else if (what & BEV_EVENT_EOF) {
            ws_fail(c, LD_WS_ERR_IO, "the peer closed the connection without a close frame");
        } else {
            ws_fail(c, LD_WS_ERR_IO, "connection error: %s", evutil_socket_error_to_string(err));
        }
    }
    ws_leave(c);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ld_ws_conn *c = arg;
    ws_enter(c);
    switch (c->state) {
    case WS_RESOLVING:
    case WS_CONNECTING:
        ws_fail(c, LD_WS_ERR_TIMEOUT, "connecting to %s:%d took over %u ms", c->host, c->port,
                c->opt.connect_timeout_ms);
        break;
    case WS_HANDSHAKE:
        ws_fail(c, LD_WS_ERR_TIMEOUT, "%s:%d did not answer the upgrade within %u ms", c->host,
                c->port, c->opt.handshake_timeout_ms);
        break;
    case WS_CLOSING:
    case WS_FLUSHING:
    case WS_DRAINING:
        /* The peer did not finish the closing handshake in time: the close still stands. */
        finish_orderly(c);
        break;
    default:
        break;
    }
    ws_leave(c);
}

static void ping_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ld_ws_conn *c = arg;
    ws_enter(c);
    if (c->state == WS_OPEN) {
        if (c->ping_outstanding) {
            /* A peer that does not answer pings would not answer a close frame either. */
            ws_fail(c, LD_WS_ERR_KEEPALIVE, "no pong within %u ms", c->opt.ping_interval_ms);
        } else {
            struct wslay_event_msg m = {WSLAY_PING, NULL, 0};
            if (wslay_event_queue_msg(c->ws, &m) == 0) {
                c->ping_outstanding = true;
                c->ping_sent_us = ws_now_us();
                c->stats.pings_sent++;
                ws_pump(c);
            }
        }
    }
    ws_leave(c);
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ld_ws_conn *c = arg;
    ws_enter(c);
    if (c->abort_pending)
        ws_finish(c, c->abort_code, c->reason_sent);
    else if (c->state == WS_START)
        ws_client_start(c);
    else
        ws_pump(c);
    ws_leave(c);
}

/* ---------------------------------------------------------------------------------------------
 * Construction and the open state
 * ------------------------------------------------------------------------------------------- */

ld_ws_conn *ws_conn_new(struct event_base *base, bool is_server, const ld_ws_options *opt,
                        const ld_ws_callbacks *cb, void *arg)
{
    ld_ws_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->is_server = is_server;
    c->base = base;
    c->arg = arg;
    if (cb) c->cb = *cb;
    ws_options_resolve(&c->opt, opt);
    c->stats.last_rtt_us = -1;
    c->kick = event_new(base, -1, 0, kick_cb, c);
    c->timer = evtimer_new(base, timer_cb, c);
    c->ping = event_new(base, -1, EV_PERSIST, ping_cb, c);
    int r = is_server ? wslay_event_context_server_init(&c->ws, &ws_callbacks, c)
                      : wslay_event_context_client_init(&c->ws, &ws_callbacks, c);
    if (r != 0) c->ws = NULL;
    if (!c->kick || !c->timer || !c->ping || !c->ws) {
        c->state = WS_DONE;
        ws_conn_destroy(c);
        return NULL;
    }
    wslay_event_config_set_max_recv_msg_length(c->ws, c->opt.max_message);
    return c;
}

void ws_start_open(ld_ws_conn *c)
{
    c->state = WS_OPEN;
    c->http_status = 101;
    event_del(c->timer);
    bufferevent_setcb(c->bev, ws_bev_read, ws_bev_write, ws_bev_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    struct timeval tv = ms_to_tv(c->opt.ping_interval_ms);
    event_add(c->ping, &tv);
}

/* ---------------------------------------------------------------------------------------------
 * Public calls
 * ------------------------------------------------------------------------------------------- */

ld_status ld_ws_send_text(ld_ws_conn *c, const char *msg, size_t len)
{
    if (!c || (!msg && len)) return LD_INVALID;
    if (c->state > WS_OPEN || c->abort_pending) return LD_IO; /* closing or closed */
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)msg, len};
    int r = wslay_event_queue_msg(c->ws, &m); /* copies msg */
    if (r == WSLAY_ERR_NOMEM) return LD_NOMEM;
    if (r != 0) return LD_IO; /* a close is already queued */
    c->stats.messages_sent++;
    if (c->state == WS_OPEN) ws_kick(c);
    return LD_OK;
}

static bool close_code_sendable(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

ld_status ld_ws_close(ld_ws_conn *c, int code, const char *reason)
{
    size_t rlen = reason ? strlen(reason) : 0;
    if (!c || !close_code_sendable(code) || rlen > LD_WS_MAX_REASON) return LD_INVALID;
    if (c->state > WS_OPEN || c->abort_pending) return LD_OK; /* closing or closed already */
    if (c->state < WS_OPEN) {
        /* Not open yet: nothing to shake hands with; drop it from the loop. */
        copy_reason(c->reason_sent, reason, rlen);
        c->abort_pending = true;
        c->abort_code = code;
        ws_kick(c);
        return LD_OK;
    }
    int r = wslay_event_queue_close(c->ws, (uint16_t)code, (const uint8_t *)reason, rlen);
    if (r == WSLAY_ERR_NOMEM) return LD_NOMEM;
    if (r == 0) {
        copy_reason(c->reason_sent, reason, rlen);
        c->code_sent = code;
        c->state = WS_CLOSING;
        event_del(c->ping);
        ws_arm_timer(c, c->opt.close_timeout_ms);
    }
    ws_kick(c);
    return LD_OK;
}

void ld_ws_conn_free(ld_ws_conn *c)
{
    if (!c) return;
    c->released = true;
    if (c->state != WS_DONE) mark_done(c);
    if (c->depth == 0) ws_conn_destroy(c);
}

bool ld_ws_is_open(const ld_ws_conn *c)
{
    return c && c->state == WS_OPEN && !c->abort_pending;
}

size_t ld_ws_buffered(const ld_ws_conn *c)
{
    size_t n = c->ws ? wslay_event_get_queued_msg_length(c->ws) : 0;
    if (c->bev) n += evbuffer_get_length(bufferevent_get_output(c->bev));
    return n;
}

void ld_ws_get_stats(const ld_ws_conn *c, ld_ws_stats *out)
{
    *out = c->stats;
}

int ld_ws_http_status(const ld_ws_conn *c)
{
    return c->http_status;
}
