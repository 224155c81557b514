/* The optional Redis-protocol listener of the replicated cache (config section Resp, issue 20):
 * connections accepted on the node's libevent loop, over TLS when Node.Tls serves, each parsed
 * with proto.h and run by commands.h (docs/resp.md).
 * Ownership: the node owns the server (ld_node.resp); the server owns its connections.
 * Threads: loop thread only. */
#ifndef LD_RESP_SERVER_H
#define LD_RESP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

struct ld_node;
typedef struct ld_resp_server ld_resp_server;

/* Binds Resp.ListenAddress:Resp.Port and starts accepting. NULL with err set when it cannot
 * listen (or memory fails). */
ld_resp_server *ld_resp_start(struct ld_node *n, char *err, size_t errlen);

/* The port bound (Resp.Port 0 lets the kernel choose). */
int ld_resp_port(const ld_resp_server *s);

/* Connections open now. */
size_t ld_resp_open(const ld_resp_server *s);

/* Shutdown: stops accepting; open connections stay until ld_resp_free. NULL is ignored. */
void ld_resp_stop_listening(ld_resp_server *s);

/* Shutdown: stops accepting and reading commands; every connection closes once the replies of
 * the commands it started (writes in the writer) are out. ld_resp_open counts those left (the
 * node waits for them, bounded by Node.ShutdownTimeoutSeconds). NULL is ignored. */
void ld_resp_drain(ld_resp_server *s);

/* Closes every connection and frees the server. Call after the loop stopped with no write in
 * flight, before the registry and the TLS contexts go. NULL is ignored. */
void ld_resp_free(ld_resp_server *s);

#endif
