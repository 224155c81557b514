/* Accounting of the HTTP server's client connections: a cap on how many are open at once
 * (Node.MaxConnections) and a deadline by which each request's headers and body must have
 * arrived (Node.RequestReadTimeoutSeconds), so slow clients cannot hold descriptors.
 *
 * How (libevent 2.1.12 gives no hook when evhttp frees a connection): evhttp makes every
 * accepted connection's bufferevent through our factory (evhttp_set_bevcb); we take an extra
 * reference (bufferevent_incref) and keep the bufferevent in a table. When evhttp frees the
 * connection, bufferevent_free clears its callbacks but cannot destroy it while our reference is
 * held; a sweep (a short timer, and each new connection at the cap) finds those (callbacks NULL),
 * drops them and counts the live ones. At the cap the listener is disabled
 * (evconnlistener_disable): new connections wait in the kernel's backlog until a slot frees.
 * Our bufferevents close their socket only when destroyed (BEV_OPT_CLOSE_ON_FREE), so a
 * descriptor is never reused while a freed bufferevent still refers to it.
 *
 * Owning the bufferevents also lets it spot evhttp answering a request by itself (HTML) and
 * have the answer made JSON (http/errpage.h).
 *
 * Ownership: ld_conns_new's result is the caller's (ld_conns_free); it holds one reference on
 * each tracked bufferevent and drops them in ld_conns_free, which runs after evhttp_free.
 * Threads: loop thread only. */
#ifndef LD_CONNS_H
#define LD_CONNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "errpage.h"

typedef struct ld_conns ld_conns;

/* Makes each connection http accepts through this module (evhttp_set_bevcb on http), capped at
 * max_conns open at once, each request's headers and body due within read_timeout_s of the
 * connection being accepted or of the request's first byte; evhttp's own error answers name
 * the limits in lim. NULL when memory fails. */
ld_conns *ld_conns_new(struct event_base *base, struct evhttp *http, int max_conns,
                       int read_timeout_s, const ld_errpage_limits *lim);

/* Accepted connections get their bufferevent from make(base, arg) (an accepting TLS one:
 * ld_tls_server_bev) instead of a plain socket one; it must close its socket when freed. Call
 * before the loop runs. */
void ld_conns_set_maker(ld_conns *c, struct bufferevent *(*make)(struct event_base *, void *),
                        void *arg);

/* The listener to pause at the cap and after accept() runs out of descriptors (replaces its
 * error callback). NULL: stop using the listener (call before evhttp_del_accept_socket). */
void ld_conns_set_listener(ld_conns *c, struct evhttp_bound_socket *listener);

/* The router received req in full: its connection's deadline stops until the next request's
 * first byte. NULL c (an in-process node without accounting) is ignored. */
void ld_conns_request_read(ld_conns *c, struct evhttp_request *req);

/* Live connections (counted at the last sweep, plus those accepted since), and the cap. */
size_t ld_conns_open(ld_conns *c);
int ld_conns_max(const ld_conns *c);

/* Drops the references held. Call after evhttp_free (every connection is freed by then) and
 * before the event base is freed. NULL is ignored. */
void ld_conns_free(ld_conns *c);

#endif
