/* One kept-alive client connection to a peer, plain or TLS: what the replication links, discovery
 * and the dashboard's probes each hold per peer, so they open, reuse and give back connections
 * the same way. */
#ifndef LD_PEERCONN_H
#define LD_PEERCONN_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>

#include "../http/tls.h"
#include "peers.h"

/* Zero-initialised it holds nothing. An https connection is replaced once its socket is gone
 * (http/tls.h: libevent 2.1 cannot reconnect one); a plain one reconnects by itself. Between
 * answers a connection waits without a timeout of ours: the peer's idle timeout ends it (a
 * cluster-authenticated connection is kept for ld_config_peer_idle_s), so a connection used once
 * per anti-entropy sweep is still open at the next and costs no new TLS handshake. */
typedef struct ld_peer_conn {
    struct evhttp_connection *conn; /* https: tconn's */
    ld_tls_http *tconn;
} ld_peer_conn;

/* Makes pc ready for a request to addr: opens a connection when it has none (or its https one is
 * gone) and arms timeout_s for the request about to leave. False when none could be opened. */
bool ld_peer_conn_prepare(ld_peer_conn *pc, ld_tls *tls, struct event_base *base,
                          struct evdns_base *dns, const ld_peer_addr *addr, int timeout_s);

/* Sends req on the prepared connection (evhttp_make_request's return and ownership: on failure
 * evhttp freed req, and an https connection is given back). */
int ld_peer_conn_request(ld_peer_conn *pc, struct evhttp_request *req, enum evhttp_cmd_type type,
                         const char *uri);

/* In the request's callback, with its answer code (0: none). Gives back an https connection that
 * failed or that the peer closed; lets a kept one wait without our timeout. Returns true when it
 * wrote in why (len bytes) the cause of a TLS failure. *reused (may be NULL) tells whether the
 * request was not the https connection's first: the peer may have closed it as the request
 * left, so a failure without an answer is worth one retry. */
bool ld_peer_conn_done(ld_peer_conn *pc, int code, char *why, size_t len, bool *reused);

/* Lets the connection go, leaving pc empty. Released: an https one is freed on the loop's next
 * turn (safe from its own callbacks), a plain one at once (only while no request is in flight).
 * Closed: at once, a request in flight going without its callback (never from that connection's
 * callbacks). */
void ld_peer_conn_release(ld_peer_conn *pc);
void ld_peer_conn_close(ld_peer_conn *pc);

#endif
