/* Socket options shared by every listener and connection, plain or TLS, HTTP, RESP or
 * WebSocket: turning Nagle off, for the listener's accepted sockets or one socket. */
#ifndef LD_SOCKOPT_H
#define LD_SOCKOPT_H

#include <stdbool.h>

#include <event2/http.h>
#include <event2/util.h>

/* Sets TCP_NODELAY on fd. False (errno set) when the kernel refused. */
bool ld_sock_nodelay(evutil_socket_t fd);

/* Turns Nagle off for the connections accepted on an evhttp listener, TLS or plain: OpenSSL
 * writes a response as several records, evhttp a large one as head and body, and the last write
 * would otherwise wait for the client's delayed ACK (~40 ms per request on a keep-alive
 * connection). A failure is logged (answers then may wait for delayed ACKs). Call before the
 * loop runs. */
void ld_listener_nodelay(struct evhttp_bound_socket *listener);

#endif
