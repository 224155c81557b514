/* TLS contexts and OpenSSL bufferevents for the HTTPS/WSS listener and for dialling https://
 * peers (see tls.h). */
#include "tls.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "../util/log.h"
#include "../util/sockopt.h"
#include "../util/strutil.h"

/* TLS 1.2 suites with forward secrecy and AEAD only; TLS 1.3 keeps OpenSSL's defaults, which
 * are all of that kind. */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* Resumed sessions must carry the client-certificate decision; OpenSSL refuses to resume
 * without an id context when peers are verified. */
static const unsigned char SESSION_ID_CONTEXT[] = "litedistd";

/* How many peers' sessions are kept for resumption (one per host:port). */
#define SESSIONS_MAX 64
/* The refusing side's log: one line per cause per this many ms, the next says how many more. */
#define REFUSAL_LOG_MS 10000

struct ld_tls_http {
    ld_tls *tls;
    struct evhttp_connection *evcon; /* owned */
    ld_tls_http *next;               /* in tls->released */
    bool nodelay_done;
    bool closed;       /* evhttp dropped the socket: never send on it again (libevent#975) */
    unsigned requests; /* sent on this connection so far */
    char failure[256]; /* why the socket went, when OpenSSL said (set by client_closed) */
};

/* What a client SSL carries for us (ex_data; freed with the SSL): where it goes, for the
 * session cache, and whether its handshake was counted. */
typedef struct client_meta {
    ld_tls *tls;
    char key[300]; /* host:port */
    bool counted;
} client_meta;

typedef struct cached_session {
    char key[300];
    SSL_SESSION *sess; /* one reference, ours */
} cached_session;

/* Why the listener refused a TLS client; each is logged at most once per REFUSAL_LOG_MS. */
typedef enum {
    REFUSE_PLAIN_HTTP,
    REFUSE_NO_CERT,
    REFUSE_BAD_CERT,
    REFUSE_CLIENT_ALERT,
    REFUSE_OTHER,
    REFUSE_N
} refusal;

struct ld_tls {
    SSL_CTX *server; /* NULL: the listener is plain HTTP */
    SSL_CTX *client; /* always: https:// peers may be configured at run time */
    bool client_certs_required;
    ld_tls_http *released; /* client connections given back, freed by reap_ev */
    struct event *reap_ev; /* made with the first client connection, on its base */
    cached_session sessions[SESSIONS_MAX];
    size_t n_sessions;
    uint64_t full_handshakes, resumed_handshakes; /* as a client */
    struct {
        uint64_t last_ms;
        unsigned suppressed;
    } refusals[REFUSE_N];
};

static int meta_index = -1; /* SSL ex_data slot of client_meta */

/* ---------------------------------------------------------------------------------------------
 * Building the contexts
 * ------------------------------------------------------------------------------------------- */

/* The oldest queued OpenSSL error as text (the queue is then cleared), or fallback. */
static const char *openssl_reason(char *buf, size_t len, const char *fallback)
{
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, buf, len);
    else
        snprintf(buf, len, "%s", fallback);
    ERR_clear_error();
    return buf;
}

/* Fails early with the system's reason (a missing file reads better than OpenSSL's "system
 * library" error). */
static bool readable(const char *key, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        ld_set_err(err, errlen, "Node.Tls.%s %s: %s", key, path, strerror(errno));
        return false;
    }
    fclose(f);
    return true;
}

static bool base_settings(SSL_CTX *ctx, char *err, size_t errlen)
{
    char why[200];
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
        ld_set_err(err, errlen, "TLS: cannot set the protocol versions and ciphers: %s",
                   openssl_reason(why, sizeof why, "unknown error"));
        return false;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* A peer that closes without a close_notify (curl, older nodes, a peer killed after its
     * answer) ends the stream: HTTP's Content-Length or chunked framing, not close_notify, says
     * whether the answer was whole. OpenSSL 3 otherwise reports it as a protocol error, which
     * libevent 2.1's dirty-shutdown allowance does not recognise (it expects OpenSSL 1.1's
     * SSL_ERROR_SYSCALL), so a complete answer failed as "unexpected eof while reading". */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    return true;
}

/* This node's certificate chain and key: served by the listener, presented when dialling. */
static bool load_identity(SSL_CTX *ctx, const ld_tls_config *cfg, char *err, size_t errlen)
{
    char why[200];
    if (!readable("CertificateFile", cfg->certificate_file, err, errlen) ||
        !readable("KeyFile", cfg->key_file, err, errlen))
        return false;
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->certificate_file) != 1) {
        ld_set_err(err, errlen, "Node.Tls.CertificateFile %s: not a PEM certificate chain (%s)",
                   cfg->certificate_file, openssl_reason(why, sizeof why, "unknown error"));
        return false;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1) {
        ld_set_err(
            err, errlen, "Node.Tls.KeyFile %s: not a PEM private key, or not the key of %s (%s)",
            cfg->key_file, cfg->certificate_file, openssl_reason(why, sizeof why, "unknown error"));
        return false;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ld_set_err(err, errlen, "Node.Tls.KeyFile %s does not match the certificate in %s (%s)",
                   cfg->key_file, cfg->certificate_file,
                   openssl_reason(why, sizeof why, "unknown error"));
        return false;
    }
    return true;
}

static bool load_cas(SSL_CTX *ctx, const char *key, const char *path, char *err, size_t errlen)
{
    char why[200];
    if (!readable(key, path, err, errlen)) return false;
    if (SSL_CTX_load_verify_locations(ctx, path, NULL) != 1) {
        ld_set_err(err, errlen, "Node.Tls.%s %s: no PEM CA certificate could be read (%s)", key,
                   path, openssl_reason(why, sizeof why, "unknown error"));
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * The refusing side's log: why the listener turned a client away
 * ------------------------------------------------------------------------------------------- */

static void peer_address(const SSL *ssl, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = SSL_get_fd(ssl);
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
            port = ntohs(a->sin6_port);
        } else if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
            port = ntohs(a->sin_port);
        }
    }
    snprintf(buf, len, "%s:%d", host, port);
}

/* One WARN line per cause per REFUSAL_LOG_MS: a misconfigured peer retries every few seconds
 * and a scanner may knock at any rate, neither of which may flood the log. */
static void log_refusal(ld_tls *t, const SSL *ssl, refusal why, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void log_refusal(ld_tls *t, const SSL *ssl, refusal why, const char *fmt, ...)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    if (t->refusals[why].last_ms && now - t->refusals[why].last_ms < REFUSAL_LOG_MS) {
        t->refusals[why].suppressed++;
        return;
    }
    char text[300], addr[80], more[64] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    peer_address(ssl, addr, sizeof addr);
    if (t->refusals[why].suppressed)
        snprintf(more, sizeof more, " (%u more like it in the last %d s)",
                 t->refusals[why].suppressed, REFUSAL_LOG_MS / 1000);
    ld_log_warn("TLS: refused a connection from %s: %s%s", addr, text, more);
    t->refusals[why].last_ms = now;
    t->refusals[why].suppressed = 0;
}

/* OpenSSL's state callback on the listener's connections: a failed handshake leaves its reason
 * on the error queue when the accept step returns (peeked only: libevent reads it next and
 * closes the connection), and an alert the client sends says why it gave up. */
static void server_info_cb(const SSL *ssl, int where, int ret)
{
    ld_tls *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    if (!t) return;
    if ((where & SSL_CB_ALERT) && (where & SSL_CB_READ) && (ret >> 8) == SSL3_AL_FATAL) {
        log_refusal(t, ssl, REFUSE_CLIENT_ALERT,
                    "the client gave up the handshake with alert '%s' (does it trust this "
                    "node's certificate? see its PeerCaFile)",
                    SSL_alert_desc_string_long(ret));
        return;
    }
    if (!(where & SSL_CB_EXIT) || ret > 0) return;
    unsigned long e = ERR_peek_error();
    if (!e || ERR_GET_LIB(e) != ERR_LIB_SSL) return; /* only waiting for more bytes */
    int reason = ERR_GET_REASON(e);
    if (reason >= SSL_AD_REASON_OFFSET) return; /* an alert from the client: logged above */
    if (reason == SSL_R_HTTP_REQUEST || reason == SSL_R_HTTPS_PROXY_REQUEST)
        log_refusal(t, ssl, REFUSE_PLAIN_HTTP,
                    "plain HTTP on the TLS port (the client must use https://)");
    else if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
        log_refusal(t, ssl, REFUSE_NO_CERT,
                    "no client certificate (Node.Tls.ClientCaFile requires one signed by its CAs)");
    else if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED)
        log_refusal(t, ssl, REFUSE_BAD_CERT, "its client certificate did not verify: %s",
                    X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
    else
        log_refusal(t, ssl, REFUSE_OTHER, "TLS handshake failed: %s",
                    ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "unknown error");
}

static SSL_CTX *server_ctx(const ld_tls_config *cfg, char *err, size_t errlen)
{
    char why[200];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ld_set_err(err, errlen, "TLS: cannot create the server context: %s",
                   openssl_reason(why, sizeof why, "out of memory"));
        return NULL;
    }
    if (!base_settings(ctx, err, errlen) || !load_identity(ctx, cfg, err, errlen)) goto fail;
    if (cfg->client_ca_file) {
        if (!load_cas(ctx, "ClientCaFile", cfg->client_ca_file, err, errlen)) goto fail;
        /* The CA names the server sends, so a client picks the right certificate. */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->client_ca_file);
        if (!names) {
            ld_set_err(err, errlen, "Node.Tls.ClientCaFile %s: no CA name could be read (%s)",
                       cfg->client_ca_file, openssl_reason(why, sizeof why, "empty file"));
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names); /* the context owns names now */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    SSL_CTX_set_info_callback(ctx, server_info_cb);
    if (SSL_CTX_set_session_id_context(ctx, SESSION_ID_CONTEXT, sizeof SESSION_ID_CONTEXT - 1) !=
        1) {
        ld_set_err(err, errlen, "TLS: cannot set the session id context: %s",
                   openssl_reason(why, sizeof why, "unknown error"));
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Client sessions: resumed per peer, handshakes counted
 * ------------------------------------------------------------------------------------------- */

static void meta_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    free(ptr);
}

static cached_session *session_find(ld_tls *t, const char *key)
{
    for (size_t i = 0; i < t->n_sessions; i++)
        if (!strcmp(t->sessions[i].key, key)) return &t->sessions[i];
    return NULL;
}

/* OpenSSL hands over each new session (TLS 1.3: each ticket, after the handshake): the latest
 * per peer is kept, so the next connection to it resumes (no certificate exchange, no
 * signature) instead of a full handshake. */
static int client_new_session(SSL *ssl, SSL_SESSION *sess)
{
    client_meta *m = SSL_get_ex_data(ssl, meta_index);
    if (!m) return 0;
    ld_tls *t = m->tls;
    cached_session *c = session_find(t, m->key);
    if (!c) {
        if (t->n_sessions == SESSIONS_MAX) { /* the oldest peer makes room */
            SSL_SESSION_free(t->sessions[0].sess);
            memmove(t->sessions, t->sessions + 1, (SESSIONS_MAX - 1) * sizeof *t->sessions);
            t->n_sessions--;
        }
        c = &t->sessions[t->n_sessions++];
        snprintf(c->key, sizeof c->key, "%s", m->key);
        c->sess = NULL;
    }
    SSL_SESSION_free(c->sess);
    c->sess = sess;
    return 1; /* the reference is ours */
}

static void client_info_cb(const SSL *ssl, int where, int ret)
{
    (void)ret;
    if (!(where & SSL_CB_HANDSHAKE_DONE)) return;
    client_meta *m = SSL_get_ex_data(ssl, meta_index);
    if (!m || m->counted) return; /* TLS 1.3 signals it again for each session ticket */
    m->counted = true;
    bool resumed = SSL_session_reused((SSL *)ssl) == 1;
    if (resumed)
        m->tls->resumed_handshakes++;
    else
        m->tls->full_handshakes++;
    ld_log_debug("TLS: %s handshake with %s (%" PRIu64 " full, %" PRIu64 " resumed so far)",
                 resumed ? "resumed" : "full", m->key, m->tls->full_handshakes,
                 m->tls->resumed_handshakes);
}

static SSL_CTX *client_ctx(const ld_tls_config *cfg, char *err, size_t errlen)
{
    char why[200];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        ld_set_err(err, errlen, "TLS: cannot create the client context: %s",
                   openssl_reason(why, sizeof why, "out of memory"));
        return NULL;
    }
    if (!base_settings(ctx, err, errlen)) goto fail;
    if (cfg->peer_ca_file) {
        if (!load_cas(ctx, "PeerCaFile", cfg->peer_ca_file, err, errlen)) goto fail;
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        ld_set_err(err, errlen,
                   "TLS: cannot load the system's trusted CAs (%s); set "
                   "Node.Tls.PeerCaFile",
                   openssl_reason(why, sizeof why, "unknown error"));
        goto fail;
    }
    /* Peers must prove who they are; the host name or address is set per connection. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (cfg->certificate_file && !load_identity(ctx, cfg, err, errlen)) goto fail;
    /* Sessions are kept by client_new_session, keyed by peer, not in OpenSSL's cache. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, client_new_session);
    SSL_CTX_set_info_callback(ctx, client_info_cb);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

ld_tls *ld_tls_new(const ld_tls_config *cfg, char *err, size_t errlen)
{
    ld_tls *t = calloc(1, sizeof *t);
    if (!t) {
        ld_set_err(err, errlen, "TLS: out of memory");
        return NULL;
    }
    ERR_clear_error();
    if (meta_index < 0 && (meta_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, meta_free)) < 0) {
        ld_set_err(err, errlen, "TLS: cannot reserve an SSL ex_data slot");
        goto fail;
    }
    if (cfg->certificate_file && !(t->server = server_ctx(cfg, err, errlen))) goto fail;
    if (t->server) SSL_CTX_set_app_data(t->server, t);
    /* With no file to check, the client context (the system's trusted CAs: about 2 MB of a
     * 10 MB idle node) waits for the first https:// peer; a node without one never pays. */
    if ((cfg->peer_ca_file || cfg->certificate_file) && !(t->client = client_ctx(cfg, err, errlen)))
        goto fail;
    t->client_certs_required = cfg->client_ca_file != NULL;
    return t;
fail:
    ld_tls_free(t);
    return NULL;
}

bool ld_tls_reload(ld_tls *t, const ld_tls_config *cfg, char *err, size_t errlen)
{
    if (!t->server != !cfg->certificate_file) {
        ld_set_err(err, errlen,
                   "Node.Tls.CertificateFile cannot be %s by a reload: restart the "
                   "node to switch between HTTP and HTTPS",
                   t->server ? "removed" : "added");
        return false;
    }
    ERR_clear_error();
    SSL_CTX *server = NULL, *client = NULL;
    if (cfg->certificate_file && !(server = server_ctx(cfg, err, errlen))) return false;
    if ((t->client || cfg->peer_ca_file || cfg->certificate_file) &&
        !(client = client_ctx(cfg, err, errlen))) {
        SSL_CTX_free(server);
        return false;
    }
    /* Connections made before keep the context they hold a reference to; new handshakes use the
     * new one. Sessions of the old client context are not offered to the new one. */
    if (server) {
        SSL_CTX_set_app_data(server, t);
        SSL_CTX_free(t->server);
        t->server = server;
    }
    if (client) {
        for (size_t i = 0; i < t->n_sessions; i++)
            SSL_SESSION_free(t->sessions[i].sess);
        t->n_sessions = 0;
        SSL_CTX_free(t->client);
        t->client = client;
    }
    t->client_certs_required = cfg->client_ca_file != NULL;
    return true;
}

static void reap(ld_tls *t)
{
    while (t->released) {
        ld_tls_http *h = t->released;
        t->released = h->next;
        evhttp_connection_free(h->evcon);
        free(h);
    }
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    reap(arg);
}

void ld_tls_free(ld_tls *t)
{
    if (!t) return;
    reap(t);
    if (t->reap_ev) event_free(t->reap_ev);
    for (size_t i = 0; i < t->n_sessions; i++)
        SSL_SESSION_free(t->sessions[i].sess);
    SSL_CTX_free(t->server);
    SSL_CTX_free(t->client);
    free(t);
}

bool ld_tls_serves(const ld_tls *t)
{
    return t && t->server;
}

bool ld_tls_requires_client_cert(const ld_tls *t)
{
    return t && t->client_certs_required;
}

/* ---------------------------------------------------------------------------------------------
 * Server side
 * ------------------------------------------------------------------------------------------- */

/* evhttp's bufferevent factory: one accepting TLS bufferevent per connection; evhttp gives it
 * the socket and owns it from here. */
struct bufferevent *ld_tls_server_bev(struct event_base *base, void *arg)
{
    ld_tls *t = arg;
    char why[200];
    SSL *ssl = SSL_new(t->server);
    if (!ssl) {
        ld_log_error("TLS: cannot accept a connection: %s",
                     openssl_reason(why, sizeof why, "out of memory"));
        return NULL; /* evhttp falls back to plain; the router refuses those requests */
    }
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl); /* not taken over on failure */
        ld_log_error("TLS: cannot accept a connection: out of memory");
        return NULL;
    }
    /* Clients (and evhttp itself) often close the socket without a close_notify; with a
     * Content-Length that loses nothing, so it is an end of stream, not an error. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* Only after a finished handshake with nothing left to send: the answer has gone (evhttp frees
 * a connection once its output drained), and OpenSSL refuses a shutdown after a fatal error
 * anyway. The record goes straight to the socket (libevent's
 * socket BIO); a full socket buffer just means the peer gets a plain FIN. */
void ld_tls_close_notify(struct bufferevent *bev)
{
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    if (!ssl || !SSL_is_init_finished(ssl) || (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN) ||
        evbuffer_get_length(bufferevent_get_output(bev)) > 0 || SSL_get_fd(ssl) < 0)
        return;
    SSL_shutdown(ssl);
    ERR_clear_error();
}

static void server_closed(struct evhttp_connection *evcon, void *arg)
{
    (void)arg;
    ld_tls_close_notify(evhttp_connection_get_bufferevent(evcon));
}

void ld_tls_track_close(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (evcon) evhttp_connection_set_closecb(evcon, server_closed, NULL);
}

bool ld_tls_request_is_tls(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    return bev && bufferevent_openssl_get_ssl(bev) != NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Client side
 * ------------------------------------------------------------------------------------------- */

static bool is_ip_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

struct bufferevent *ld_tls_client_bev(ld_tls *t, struct event_base *base, const char *host,
                                      int port)
{
    if (!t->client) {
        char err[300];
        static const ld_tls_config system_cas; /* no file: the system trust store */
        if (!(t->client = client_ctx(&system_cas, err, sizeof err))) {
            ld_log_error("%s", err);
            return NULL;
        }
    }
    SSL *ssl = SSL_new(t->client);
    client_meta *m = ssl ? calloc(1, sizeof *m) : NULL;
    if (!m || SSL_set_ex_data(ssl, meta_index, m) != 1) {
        free(m);
        SSL_free(ssl);
        return NULL;
    }
    m->tls = t; /* the SSL owns m from here (meta_free) */
    snprintf(m->key, sizeof m->key, "%s:%d", host, port);
    bool ok;
    if (is_ip_literal(host)) {
        /* An address is matched against the certificate's IP SANs; no SNI (RFC 6066 3). */
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1;
    } else {
        ok = SSL_set_tlsext_host_name(ssl, host) == 1 && SSL_set1_host(ssl, host) == 1;
    }
    cached_session *c = session_find(t, m->key);
    if (ok && c) ok = SSL_set_session(ssl, c->sess) == 1;
    struct bufferevent *bev =
        ok ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                            BEV_OPT_CLOSE_ON_FREE)
           : NULL;
    if (!bev) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

void ld_tls_handshakes(const ld_tls *t, uint64_t *full, uint64_t *resumed)
{
    *full = t ? t->full_handshakes : 0;
    *resumed = t ? t->resumed_handshakes : 0;
}

/* The request's first bytes reach the bufferevent once the connection (and its handshake) is
 * up, so its socket exists: turn Nagle off there. OpenSSL writes the header and the body as
 * separate records, and the body's segment would otherwise wait for the peer's delayed ACK
 * (measured: 49 ms per replicated write instead of 2-3 ms). evhttp makes the socket itself,
 * after a name lookup for host names, so this is the first moment it can be set. */
static void nodelay_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    (void)buf;
    ld_tls_http *h = arg;
    if (h->nodelay_done || info->n_added == 0) return;
    evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(h->evcon));
    if (fd < 0) return;
    h->nodelay_done = true;
    if (!ld_sock_nodelay(fd))
        ld_log_warn("TLS: cannot turn Nagle off on a connection to a peer (%s): requests may "
                    "wait for delayed ACKs",
                    strerror(errno));
}

/* evhttp is dropping the connection's socket: after a failure, when the peer closed an idle
 * connection, or when we free it. Its next request would make evhttp reconnect the same
 * OpenSSL bufferevent, which libevent 2.1 cannot do (libevent#975), so the handle is marked
 * closed for the caller to replace. Why it failed is read now, while the bufferevent still
 * holds OpenSSL's errors and the unsent part of the request. */
static void client_closed(struct evhttp_connection *evcon, void *arg)
{
    ld_tls_http *h = arg;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    h->closed = true;
    if (!h->failure[0] && !ld_tls_describe_failure(bev, h->failure, sizeof h->failure))
        h->failure[0] = '\0';
    ld_tls_close_notify(bev);
}

ld_tls_http *ld_tls_http_open(ld_tls *t, struct event_base *base, struct evdns_base *dns,
                              const char *host, int port)
{
    if (!t->reap_ev && !(t->reap_ev = event_new(base, -1, 0, reap_cb, t))) return NULL;
    ld_tls_http *h = calloc(1, sizeof *h);
    struct bufferevent *bev = h ? ld_tls_client_bev(t, base, host, port) : NULL;
    if (!bev) {
        free(h);
        return NULL;
    }
    h->tls = t;
    /* The callback entry belongs to the output buffer, freed with bev. */
    if (!evbuffer_add_cb(bufferevent_get_output(bev), nodelay_cb, h) ||
        !(h->evcon =
              evhttp_connection_base_bufferevent_new(base, dns, bev, host, (ev_uint16_t)port))) {
        bufferevent_free(bev); /* evhttp owns bev only once it returned a connection */
        free(h);
        return NULL;
    }
    evhttp_connection_set_closecb(h->evcon, client_closed, h);
    return h;
}

struct evhttp_connection *ld_tls_http_evcon(ld_tls_http *h)
{
    return h->evcon;
}

bool ld_tls_http_usable(const ld_tls_http *h)
{
    return h && !h->closed;
}

int ld_tls_http_request(ld_tls_http *h, struct evhttp_request *req, enum evhttp_cmd_type type,
                        const char *uri)
{
    h->requests++;
    h->failure[0] = '\0';
    return evhttp_make_request(h->evcon, req, type, uri);
}

bool ld_tls_http_reused(const ld_tls_http *h)
{
    return h && h->requests > 1;
}

bool ld_tls_http_failure(ld_tls_http *h, char *buf, size_t len)
{
    if (h->failure[0]) {
        snprintf(buf, len, "%s", h->failure);
        return true;
    }
    struct bufferevent *bev = evhttp_connection_get_bufferevent(h->evcon);
    if (ld_tls_describe_failure(bev, buf, len)) return true;
    /* Under TLS 1.3 a server checks the client's certificate after the client's side of the
     * handshake is done; its refusal (an alert, then close) often reaches us as a reset,
     * because our request was still unread. Say so rather than "reset". */
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    client_meta *m = ssl ? SSL_get_ex_data(ssl, meta_index) : NULL;
    if (!m || !m->counted || h->requests > 1) return false;
    snprintf(buf, len,
             "TLS read failed: the peer closed the connection right after the handshake, before "
             "answering (did it refuse this node's client certificate? its log says why)");
    return true;
}

void ld_tls_http_release(ld_tls_http *h)
{
    if (!h) return;
    ld_tls *t = h->tls;
    h->next = t->released;
    t->released = h;
    event_active(t->reap_ev, EV_TIMEOUT, 0);
}

void ld_tls_http_close(ld_tls_http *h)
{
    if (!h) return;
    evhttp_connection_free(h->evcon);
    free(h);
}

/* OpenSSL's reason for a failure, in words an operator can act on: which side refused what. */
static void failure_text(const char *phase, unsigned long e, char *buf, size_t len)
{
    char reason[200];
    ERR_error_string_n(e, reason, sizeof reason);
    switch (ERR_GET_REASON(e)) {
#ifdef SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
        snprintf(buf, len,
                 "TLS %s failed: the peer requires a client certificate and this node sent none "
                 "(set Node.Tls.CertificateFile and KeyFile): %s",
                 phase, reason);
        return;
#endif
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
        snprintf(buf, len,
                 "TLS %s failed: the peer refused this node's certificate (is it signed by a CA "
                 "in the peer's ClientCaFile?): %s",
                 phase, reason);
        return;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_UNKNOWN_PROTOCOL:
        snprintf(buf, len,
                 "TLS %s failed: the peer does not speak TLS (plain HTTP? then its BaseUrl is "
                 "http://): %s",
                 phase, reason);
        return;
    default:
        snprintf(buf, len, "TLS %s failed: %s", phase, reason);
    }
}

bool ld_tls_describe_failure(struct bufferevent *bev, char *buf, size_t len)
{
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    if (!ssl) return false;
    unsigned long first = 0, e;
    while ((e = bufferevent_get_openssl_error(bev)) != 0) {
        /* libevent also queues bare SSL_get_error() codes (5: SSL_ERROR_SYSCALL, a refused or
         * reset connection), which are no OpenSSL reason: the caller's own message fits. */
        if (!first && !ERR_SYSTEM_ERROR(e) && ERR_GET_LIB(e) != 0) first = e;
    }
    long vr = SSL_get_verify_result(ssl);
    if (vr != X509_V_OK) {
        snprintf(buf, len, "TLS certificate verification failed: %s",
                 X509_verify_cert_error_string(vr));
        return true;
    }
    if (!first) return false;
    /* Before the handshake finished (client_info_cb saw it; OpenSSL's own state says "in init"
     * again after any fatal error) the failure is the handshake's; after it, the request's
     * unsent bytes tell writing from reading. */
    client_meta *m = meta_index >= 0 ? SSL_get_ex_data(ssl, meta_index) : NULL;
    const char *phase = !(m && m->counted)                                     ? "handshake"
                        : evbuffer_get_length(bufferevent_get_output(bev)) > 0 ? "write"
                                                                               : "read";
    failure_text(phase, first, buf, len);
    return true;
}

bool ld_tls_url_is_tls(const char *url)
{
    return url && (!strncasecmp(url, "https://", 8) || !strncasecmp(url, "wss://", 6));
}
