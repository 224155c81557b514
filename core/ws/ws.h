/* WebSocket connections (RFC 6455) on the node's libevent loop: the server side taken over from an
 * evhttp request after the upgrade, the client side dialled on a bufferevent; wslay frames both.
 *
 * Text messages only; no replication logic lives here.
 *
 * Threads: every function runs on the loop thread of the event_base the connection lives on.
 * The process must ignore SIGPIPE (litedistd does): libevent writes to sockets with writev.
 *
 * Ownership of a connection (ld_ws_conn):
 *   - The module owns and frees every connection. The pointer returned by ld_ws_accept or
 *     ld_ws_connect is borrowed by the caller until on_close returns, or until the caller calls
 *     ld_ws_conn_free, whichever comes first. After that the pointer is invalid.
 *   - on_close runs exactly once per connection, unless the caller released the connection with
 *     ld_ws_conn_free first, in which case no callback of any kind runs afterwards.
 *   - on_error, when something failed (connect, handshake, timeout, keep-alive, I/O, shutdown),
 *     runs once just before that on_close; an orderly close from either side has no on_error.
 *   - No callback runs inside an ld_ws_* call, except ld_ws_server_free, which reports the
 *     connections it drops (as evhttp_free does for those it frees): all others come from the loop.
 *   - Inside any callback the caller may call ld_ws_send_text, ld_ws_close and ld_ws_conn_free on
 *     that connection (ld_ws_conn_free inside on_close is a harmless no-op); the memory is
 *     released when the callback has returned.
 *
 * Typical server use, in an evhttp handler that has already checked its own headers:
 *     st = ld_ws_accept(srv, req, &cbs, peer, &conn, &why);
 *     LD_OK: the connection now belongs to the WebSocket layer: do not reply to req (in the
 *            router: ld_req_free(r), never ld_reply_*).
 *     else:  nothing happened; the caller replies (400 for LD_INVALID/LD_UNSUPPORTED, 500 else).
 * At shutdown: ld_ws_server_close_all, wait until ld_ws_server_count is 0 (bounded by
 * close_timeout_ms), then ld_ws_server_free, BEFORE evhttp_free. */
#ifndef LD_WS_H
#define LD_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>

#include <litedist/plugin.h> /* ld_status */

typedef struct ld_ws_conn ld_ws_conn;
typedef struct ld_ws_server ld_ws_server;

/* Close codes used here (RFC 6455 7.4.1). */
#define LD_WS_CLOSE_NORMAL      1000
#define LD_WS_CLOSE_GOING_AWAY  1001
#define LD_WS_CLOSE_PROTOCOL    1002
#define LD_WS_CLOSE_UNSUPPORTED 1003
#define LD_WS_CLOSE_NO_STATUS   1005 /* reported only: the peer's close frame had no code */
#define LD_WS_CLOSE_ABNORMAL    1006 /* reported only: the connection ended without a close */
#define LD_WS_CLOSE_BAD_DATA    1007
#define LD_WS_CLOSE_POLICY      1008
#define LD_WS_CLOSE_TOO_BIG     1009
#define LD_WS_CLOSE_INTERNAL    1011

#define LD_WS_DEFAULT_MAX_MESSAGE  16384u /* replication frames: a bigger one closes with 1009 */
#define LD_WS_DEFAULT_PING_MS      30000u
#define LD_WS_DEFAULT_CONNECT_MS   10000u
#define LD_WS_DEFAULT_HANDSHAKE_MS 10000u
#define LD_WS_DEFAULT_CLOSE_MS     5000u
#define LD_WS_MAX_REASON           123 /* bytes of a close reason (control frames hold 125) */

/* Per-connection settings; a zero field (or a NULL options pointer) takes the default. */
typedef struct ld_ws_options {
    /* Largest message received, in bytes; one over it closes with 1009. */
    size_t max_message;
    /* A ping is sent every ping_interval_ms; when the previous ping has had no pong by the next
     * one, the peer is considered gone and the connection is dropped (LD_WS_ERR_KEEPALIVE). */
    uint32_t ping_interval_ms;
    /* Client: name resolution plus TCP connect, all addresses tried in order. */
    uint32_t connect_timeout_ms;
    /* Client: from TCP connected until the server's 101 has been read and checked. */
    uint32_t handshake_timeout_ms;
    /* How long a close frame we sent waits for the peer's close (or its end of the stream). */
    uint32_t close_timeout_ms;
    /* Client: the TLS contexts that dial wss:// (and https://) URLs, verifying the server's
     * certificate and host; NULL refuses such URLs. Borrowed: must outlive the connection. */
    struct ld_tls *tls;
} ld_ws_options;

/* What went wrong, passed to on_error. */
typedef enum ld_ws_error {
    LD_WS_ERR_DNS = 1,   /* the host name did not resolve (or no resolver was given) */
    LD_WS_ERR_CONNECT,   /* every address refused or failed the TCP connect */
    LD_WS_ERR_TIMEOUT,   /* connect or handshake took longer than its timeout */
    LD_WS_ERR_HANDSHAKE, /* the server did not answer a valid 101 (see ld_ws_http_status) */
    LD_WS_ERR_KEEPALIVE, /* the peer missed a pong */
    LD_WS_ERR_IO,        /* read/write error, or the stream ended without a close frame */
    LD_WS_ERR_PROTOCOL,  /* wslay failed on the stream (a peer's violation is a close, not this) */
    LD_WS_ERR_NOMEM,     /* allocation failed inside the connection */
    LD_WS_ERR_SHUTDOWN,  /* dropped by ld_ws_server_free or by evhttp_free of its server */
} ld_ws_error;

typedef struct ld_ws_callbacks {
    /* Client only: the handshake completed; messages sent before it now leave. May be NULL. */
    void (*on_open)(ld_ws_conn *c, void *arg);
    /* A complete text message: len bytes of valid UTF-8 (wslay checks), not NUL-terminated,
     * never NULL (even when len is 0), borrowed for the call. May be NULL. */
    void (*on_text)(ld_ws_conn *c, const char *msg, size_t len, void *arg);
    /* Why the connection is about to close abnormally; detail is a sentence for logs. May be
     * NULL. */
    void (*on_error)(ld_ws_conn *c, ld_ws_error err, const char *detail, void *arg);
    /* The connection has ended; c is freed when this returns. code and reason are:
     *   the peer's close frame, when it sent one (1005 when it carried no code);
     *   else this side's close (ld_ws_close, or 1002/1003/1007/1009 for a peer's violation);
     *   else 1006 with a description, after on_error.
     * reason is NUL-terminated, "" when none. May be NULL. */
    void (*on_close)(ld_ws_conn *c, int code, const char *reason, void *arg);
} ld_ws_callbacks;

typedef struct ld_ws_stats {
    uint64_t messages_sent;
    uint64_t messages_received;
    uint64_t pings_sent;
    uint64_t pongs_received;
    int64_t last_rtt_us; /* round trip of the last answered ping; -1 before the first pong */
} ld_ws_stats;

/* ---- Connections (both sides) ------------------------------------------------------------- */

/* Queues one text frame of len bytes (must be UTF-8). A client may send before on_open: the
 * message leaves after the handshake. Returns LD_OK, LD_IO when the connection is closing or
 * closed, LD_NOMEM. */
ld_status ld_ws_send_text(ld_ws_conn *c, const char *msg, size_t len);

/* Starts the closing handshake with code (1000-1003, 1007-1011 or 3000-4999) and reason (NULL,
 * or at most LD_WS_MAX_REASON bytes). on_close follows once the peer answers, the stream ends
 * or close_timeout_ms passes. A client not yet open is dropped instead (on_close reports this
 * code). Returns LD_OK (also when already closing), LD_INVALID for a bad code or reason,
 * LD_NOMEM. */
ld_status ld_ws_close(ld_ws_conn *c, int code, const char *reason);

/* Drops the connection at once, without a closing handshake, and releases it: no callback runs
 * afterwards. NULL is ignored. */
void ld_ws_conn_free(ld_ws_conn *c);

/* True from the handshake until a close starts. */
bool ld_ws_is_open(const ld_ws_conn *c);

/* Bytes queued for the peer and not yet written to the socket (wslay's queue and the
 * connection's output buffer): what a slow reader leaves behind. */
size_t ld_ws_buffered(const ld_ws_conn *c);

/* Counters and the last keep-alive round trip. */
void ld_ws_get_stats(const ld_ws_conn *c, ld_ws_stats *out);

/* Client: the HTTP status the server answered the upgrade with (101 on success), 0 before an
 * answer. Server connections: 101. */
int ld_ws_http_status(const ld_ws_conn *c);

/* "normal closure", "message too big", ... for logs; never NULL. */
const char *ld_ws_close_code_str(int code);
const char *ld_ws_error_str(ld_ws_error err);

/* ---- Server side -------------------------------------------------------------------------- */

/* A registry of the connections accepted from one evhttp server, for shutdown. opt (copied) is
 * applied to each of them. Returns NULL when memory fails. */
ld_ws_server *ld_ws_server_new(const ld_ws_options *opt);

/* Validates req as a WebSocket upgrade (GET, HTTP/1.1+, Upgrade: websocket, Connection
 * containing upgrade, Sec-WebSocket-Version 13, a Sec-WebSocket-Key of 16 base64 bytes), answers
 * 101 and takes the connection over from evhttp. Call it from the evhttp request callback.
 *   LD_OK:          *out is the open connection; req must not be replied to or touched again.
 *   LD_INVALID:     not a (valid) WebSocket upgrade: the caller replies, e.g. 400.
 *   LD_UNSUPPORTED: a WebSocket upgrade of another version than 13 (RFC 6455 suggests a 426
 *                   with "Sec-WebSocket-Version: 13"; the contract answers 400).
 *   LD_NOMEM, LD_INTERNAL: nothing was taken; the caller replies 500.
 * *detail (may be NULL) is set to a static sentence saying what was wrong, for logs. */
ld_status ld_ws_accept(ld_ws_server *srv, struct evhttp_request *req, const ld_ws_callbacks *cb,
                       void *arg, ld_ws_conn **out, const char **detail);

/* Connections accepted and not yet closed. */
size_t ld_ws_server_count(const ld_ws_server *srv);

/* Starts the closing handshake on every connection (see ld_ws_close); each ends within
 * close_timeout_ms. */
void ld_ws_server_close_all(ld_ws_server *srv, int code, const char *reason);

/* Drops the remaining connections (on_error LD_WS_ERR_SHUTDOWN, then on_close 1006) and frees
 * the registry. Call before evhttp_free; if evhttp_free comes first, the connections it frees
 * are reported the same way. NULL is ignored. */
void ld_ws_server_free(ld_ws_server *srv);

/* ---- Client side -------------------------------------------------------------------------- */

/* Dials url ("ws://host[:port][/path][?query]"; "http://" is accepted as a synonym; "wss://"
 * and "https://" over TLS when opt->tls is given, default port 443) on base.
 * headers is NULL or a NULL-terminated list of name, value pairs sent with the upgrade (e.g.
 * {"ReplicationApiKey", key, NULL}). A numeric host is connected directly; a host name is
 * resolved through dns (never blocking), and fails with LD_WS_ERR_DNS when dns is NULL.
 * Returns LD_OK with *out set (everything else is reported through the callbacks, never before
 * this returns), LD_INVALID for a bad URL or header, LD_UNSUPPORTED for wss/https without
 * opt->tls, LD_NOMEM. A server certificate that does not verify fails the connect
 * (LD_WS_ERR_CONNECT) with "TLS certificate verification failed: <reason>" in the detail. */
ld_status ld_ws_connect(struct event_base *base, struct evdns_base *dns, const char *url,
                        const char *const *headers, const ld_ws_options *opt,
                        const ld_ws_callbacks *cb, void *arg, ld_ws_conn **out);

/* ---- Handshake helper ---------------------------------------------------------------------- */

#define LD_WS_ACCEPT_LEN 28 /* base64 of a SHA-1 digest */

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA1(key + RFC 6455 GUID)). out holds
 * LD_WS_ACCEPT_LEN + 1 bytes. Returns false when key is longer than 64 bytes. */
bool ld_ws_accept_key(const char *key, size_t key_len, char *out);

#endif
