/* Private to core/ws: the connection struct shared by the common machinery (ws_conn.c), the
 * server takeover (ws_server.c) and the client dialler (ws_client.c). */
#ifndef LD_WS_INTERNAL_H
#define LD_WS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/util.h>
#include <wslay/wslay.h>

#include "ws.h"

typedef enum ws_state {
    WS_START,      /* client: created, the kick event starts resolution */
    WS_RESOLVING,  /* client: waiting for evdns */
    WS_CONNECTING, /* client: TCP connect to one address after another */
    WS_HANDSHAKE,  /* client: upgrade request sent, waiting for the 101 */
    WS_OPEN,       /* frames flow both ways */
    WS_CLOSING,    /* this side queued a close and waits for the peer's */
    WS_FLUSHING,   /* wslay is done; the last bytes are leaving before the socket closes */
    WS_DRAINING,   /* close sent, none received, write side shut: reading to the peer's EOF */
    WS_DONE,       /* reported (or released); freed once no callback of ours is on the stack */
} ws_state;

/* evdns may call back after a cancel, from the loop; this token outlives the connection until
 * then (c is NULL once the connection has gone). */
typedef struct ws_dns_token {
    struct ld_ws_conn *c;
    struct evdns_getaddrinfo_request *req; /* for the cancel */
} ws_dns_token;

struct ld_ws_conn {
    bool is_server;
    ws_state state;
    struct event_base *base;
    struct bufferevent *bev; /* server: evhttp's, freed with evcon; client: ours */
    wslay_event_context_ptr ws;
    ld_ws_callbacks cb;
    void *arg;
    ld_ws_options opt;

    struct event *kick;  /* deferred work: client start, pump, an abort before open */
    struct event *timer; /* the timeout of the current phase (connect, handshake, close, drain) */
    struct event *ping;  /* keep-alive, persistent while open */

    int depth;     /* our entry points currently on the stack; freed only at 0 */
    bool released; /* ld_ws_conn_free: no more callbacks */

    /* ld_ws_close before the handshake: the kick event reports it from the loop. */
    bool abort_pending;
    int abort_code;

    /* Close bookkeeping: what the peer sent and what this side sent. */
    char reason_recv[LD_WS_MAX_REASON + 1];
    char reason_sent[LD_WS_MAX_REASON + 1];
    int code_sent; /* set by ld_ws_close; wslay's own closes are read from wslay */

    /* Keep-alive. */
    bool ping_outstanding;
    int64_t ping_sent_us;
    ld_ws_stats stats;
    int http_status;

    /* Server side. */
    struct evhttp_connection *evcon; /* owned once taken over; NULL after evhttp freed it */
    ld_ws_server *srv;               /* NULL once detached */
    TAILQ_ENTRY(ld_ws_conn) link;

    /* Client side. */
    struct evdns_base *dns;
    ws_dns_token *dns_token;       /* non-NULL while a resolution is pending */
    struct evutil_addrinfo *addrs; /* owned (evutil_freeaddrinfo) */
    struct evutil_addrinfo *addr_next;
    char *host; /* for getaddrinfo, without IPv6 brackets */
    int port;
    char *request; /* the upgrade request text */
    char accept_expected[LD_WS_ACCEPT_LEN + 1];
    bool tls; /* wss:// or https://: dialled through opt.tls */
    char last_connect_error[256];
};

TAILQ_HEAD(ws_conn_list, ld_ws_conn);

struct ld_ws_server {
    ld_ws_options opt;
    struct ws_conn_list conns;
    size_t count;
};

/* ws_conn.c */
void ws_options_resolve(ld_ws_options *dst, const ld_ws_options *src);
ld_ws_conn *ws_conn_new(struct event_base *base, bool is_server, const ld_ws_options *opt,
                        const ld_ws_callbacks *cb, void *arg);
void ws_conn_destroy(ld_ws_conn *c);
void ws_enter(ld_ws_conn *c);
void ws_leave(ld_ws_conn *c); /* may free c: the caller's last use of it */
void ws_kick(ld_ws_conn *c);
void ws_arm_timer(ld_ws_conn *c, uint32_t ms);
void ws_set_nodelay(evutil_socket_t fd);
/* Enters OPEN: starts the keep-alive and installs the framing callbacks on c->bev. */
void ws_start_open(ld_ws_conn *c);
/* Runs wslay over what is buffered and what is queued, then advances the close states. */
void ws_pump(ld_ws_conn *c);
/* Ends the connection abnormally: on_error, then on_close 1006. */
void ws_fail(ld_ws_conn *c, ld_ws_error err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Ends the connection: on_close(code, reason). */
void ws_finish(ld_ws_conn *c, int code, const char *reason);
/* The bufferevent callbacks of an open (or closing) connection. */
void ws_bev_read(struct bufferevent *bev, void *arg);
void ws_bev_write(struct bufferevent *bev, void *arg);
void ws_bev_event(struct bufferevent *bev, short what, void *arg);
int64_t ws_now_us(void);

/* ws_server.c: unlinks c from its server's registry (on finish). */
void ws_server_detach(ld_ws_conn *c);
/* Frees the evhttp connection (and with it the socket and the bufferevent). */
void ws_server_release(ld_ws_conn *c);

/* ws_client.c */
void ws_client_start(ld_ws_conn *c);
void ws_client_release(ld_ws_conn *c);
void ws_client_on_event(ld_ws_conn *c, short what);
void ws_client_on_read(ld_ws_conn *c);

#endif
