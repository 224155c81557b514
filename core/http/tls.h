/* TLS for litedistd (Node.Tls): the server context behind the HTTPS/WSS listener and the client
 * context that dials https:// and wss:// peers, both built once at start-up with OpenSSL and
 * handed to libevent as OpenSSL bufferevents.
 *
 * Ownership: ld_tls_new returns the only owner of both SSL_CTXs; ld_tls_free releases them.
 * Every SSL made from them belongs to the bufferevent it was given to (BEV_OPT_CLOSE_ON_FREE),
 * which frees it, with its socket, when the bufferevent is freed.
 * Threads: loop thread only. */
#ifndef LD_TLS_H
#define LD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>

#include "../config/config.h"

typedef struct ld_tls ld_tls;

/* Builds the contexts from cfg (copied where kept). Opens every file it names: a missing or
 * unreadable file, a bad PEM or a key that does not match the certificate fails with a message
 * naming the key and the file (never a fallback to plain HTTP). Without CertificateFile only the
 * client context exists (peers verified against PeerCaFile, else the system trust store); with
 * neither file it is made at the first https:// dial, so a plain node does not carry the
 * system's CAs in memory.
 * Returns NULL with err set on failure. */
ld_tls *ld_tls_new(const ld_tls_config *cfg, char *err, size_t errlen);

/* SIGHUP: rebuilds the contexts from cfg (new certificate, key and CA files) and swaps them in
 * for new connections; open ones keep theirs. On failure (a bad file, or HTTPS switched on or
 * off, which needs a restart) returns false with err set and t is unchanged. */
bool ld_tls_reload(ld_tls *t, const ld_tls_config *cfg, char *err, size_t errlen);

/* Frees the contexts and the client connections given back and not yet freed. Call once no
 * connection uses t any more, and before the event_base those connections lived on is freed.
 * NULL is ignored. */
void ld_tls_free(ld_tls *t);

/* True when the listener must serve HTTPS (CertificateFile and KeyFile given). */
bool ld_tls_serves(const ld_tls *t);

/* True when client certificates are required (ClientCaFile given). */
bool ld_tls_requires_client_cert(const ld_tls *t);

/* An OpenSSL bufferevent in accepting state (TLS 1.2 minimum) for a connection evhttp accepts:
 * the bufferevent factory of a TLS listener (arg is the ld_tls; it must outlive the listener),
 * installed through the connection accounting (http/conns.h). NULL when memory fails. */
struct bufferevent *ld_tls_server_bev(struct event_base *base, void *arg);

/* True when req arrived over TLS. The router refuses anything else on a TLS listener: when
 * evhttp's bufferevent callback fails (out of memory) evhttp falls back to a plain socket
 * (libevent#336), and that must not turn into plain HTTP. */
bool ld_tls_request_is_tls(struct evhttp_request *req);

/* Makes the listener's connection of req send a close_notify when it closes (after an answer
 * with Connection: close, an idle timeout, or the server's shutdown), so clients see a clean end
 * of stream. Call for every request that arrived over TLS. */
void ld_tls_track_close(struct evhttp_request *req);

/* Sends a close_notify on bev when it is a TLS connection about to close, so the other side
 * sees a clean end of stream, and so that OpenSSL keeps its session resumable (it marks the
 * session of a connection freed without one as not resumable: the next connection to that peer
 * would need a full handshake). Does nothing for a plain bufferevent, before the handshake has
 * finished, or while output is still queued. */
void ld_tls_close_notify(struct bufferevent *bev);

/* A new client bufferevent (no socket yet: connect it, or give it to evhttp) that will verify
 * the peer's certificate chain and that it was issued for host (a DNS name or an IP literal),
 * sends SNI for names, presents this node's certificate when it has one, and resumes the last
 * session with host:port when there is one. NULL when memory fails or the system's trusted CAs
 * cannot be loaded (logged). The caller owns the result (bufferevent_free). */
struct bufferevent *ld_tls_client_bev(ld_tls *t, struct event_base *base, const char *host,
                                      int port);

/* Client handshakes since start: full ones, and resumed ones (an abbreviated handshake with a
 * session kept from an earlier connection). t may be NULL (both 0). */
void ld_tls_handshakes(const ld_tls *t, uint64_t *full, uint64_t *resumed);

/* One kept-alive evhttp client connection to host:port over TLS. libevent 2.1 cannot reconnect
 * an OpenSSL bufferevent (the old session's state stays: libevent#975), so once evhttp drops the
 * socket (a failure, or the peer closing an idle connection) the handle stops being usable and
 * the caller replaces it with a new one, which resumes the TLS session (ld_tls_client_bev).
 * Requests go through ld_tls_http_request; Nagle is off on its socket; a close_notify is sent
 * when it closes cleanly.
 *
 * Ownership: the caller owns the handle until it gives it back with ld_tls_http_release (from
 * anywhere, its own request callback included: the connection is freed on the loop's next turn,
 * never under libevent's feet) or ld_tls_http_close (at once, dropping a pending request without
 * its callback; never from that connection's own callbacks). Connections released and not yet
 * freed are freed by ld_tls_free. base must be the same for every call on t. */
typedef struct ld_tls_http ld_tls_http;

ld_tls_http *ld_tls_http_open(ld_tls *t, struct event_base *base, struct evdns_base *dns,
                              const char *host, int port); /* NULL when memory fails */
struct evhttp_connection *ld_tls_http_evcon(ld_tls_http *h);
/* False once the socket is gone: release h and open another. NULL gives false. */
bool ld_tls_http_usable(const ld_tls_http *h);
/* evhttp_make_request on h's connection (same return; req is evhttp's either way). */
int ld_tls_http_request(ld_tls_http *h, struct evhttp_request *req, enum evhttp_cmd_type type,
                        const char *uri);
/* True when the request in flight is not the connection's first: a peer may have closed the
 * idle connection while it left, so a failure without an answer is worth one retry on a
 * fresh connection. */
bool ld_tls_http_reused(const ld_tls_http *h);
/* Why the connection's request failed, as for ld_tls_describe_failure. */
bool ld_tls_http_failure(ld_tls_http *h, char *buf, size_t len);
void ld_tls_http_release(ld_tls_http *h); /* NULL is ignored */
void ld_tls_http_close(ld_tls_http *h);   /* NULL is ignored */

/* Why a TLS bufferevent failed, for a peer's last error, naming the phase ("TLS handshake
 * failed: ...", "TLS read failed: ...", "TLS write failed: ...") and, where OpenSSL tells, the
 * cause: "TLS certificate verification failed: <reason>" when the peer's certificate did not
 * verify, the peer refusing this node's certificate (or wanting one), a peer that does not speak
 * TLS. Drains the bufferevent's OpenSSL error queue. Returns false (buf untouched) when bev is
 * not a TLS bufferevent or OpenSSL recorded nothing (a refused or reset connection). */
bool ld_tls_describe_failure(struct bufferevent *bev, char *buf, size_t len);

/* True when url starts with https:// or wss:// (any case). */
bool ld_tls_url_is_tls(const char *url);

#endif
