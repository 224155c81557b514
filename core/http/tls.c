/* TLS contexts and OpenSSL bufferevents for the HTTPS/WSS listener and for dialling https://
 * peers (see tls.h). */
#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "../util/log.h"
#include "../util/strutil.h"

/* TLS 1.2 suites with forward secrecy and AEAD only; TLS 1.3 keeps OpenSSL's defaults, which
 * are all of that kind. */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* Resumed sessions must carry the client-certificate decision; OpenSSL refuses to resume
 * without an id context when peers are verified. */
static const unsigned char SESSION_ID_CONTEXT[] = "litedistd";

struct ld_tls_http {
    ld_tls *tls;
    struct evhttp_connection *evcon; /* owned */
    ld_tls_http *next;               /* in tls->released */
    bool nodelay_done;
};

struct ld_tls {
    SSL_CTX *server; /* NULL: the listener is plain HTTP */
    SSL_CTX *client; /* always: https:// peers may be configured at run time */
    bool client_certs_required;
    ld_tls_http *released; /* client connections given back, freed by reap_ev */
    struct event *reap_ev; /* made with the first client connection, on its base */
};

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
    if (cfg->certificate_file && !(t->server = server_ctx(cfg, err, errlen))) goto fail;
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
static struct bufferevent *server_bev(struct event_base *base, void *arg)
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

void ld_tls_serve(ld_tls *t, struct evhttp *http, struct evhttp_bound_socket *listener)
{
    evhttp_set_bevcb(http, server_bev, t);
    /* Accepted sockets inherit TCP_NODELAY from the listener (Linux); the bufferevent callback
     * runs before evhttp has the socket, so this is the one place to set it. */
    int one = 1;
    evutil_socket_t fd = evhttp_bound_socket_get_fd(listener);
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        ld_log_warn("TLS: cannot turn Nagle off on the listener (%s): small responses may wait "
                    "for delayed ACKs",
                    strerror(errno));
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

struct bufferevent *ld_tls_client_bev(ld_tls *t, struct event_base *base, const char *host)
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
    if (!ssl) return NULL;
    bool ok;
    if (is_ip_literal(host)) {
        /* An address is matched against the certificate's IP SANs; no SNI (RFC 6066 3). */
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1;
    } else {
        ok = SSL_set_tlsext_host_name(ssl, host) == 1 && SSL_set1_host(ssl, host) == 1;
    }
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
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        ld_log_warn("TLS: cannot turn Nagle off on a connection to a peer (%s): requests may "
                    "wait for delayed ACKs",
                    strerror(errno));
}

ld_tls_http *ld_tls_http_open(ld_tls *t, struct event_base *base, struct evdns_base *dns,
                              const char *host, int port)
{
    if (!t->reap_ev && !(t->reap_ev = event_new(base, -1, 0, reap_cb, t))) return NULL;
    ld_tls_http *h = calloc(1, sizeof *h);
    struct bufferevent *bev = h ? ld_tls_client_bev(t, base, host) : NULL;
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
    return h;
}

struct evhttp_connection *ld_tls_http_evcon(ld_tls_http *h)
{
    return h->evcon;
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

bool ld_tls_describe_failure(struct bufferevent *bev, char *buf, size_t len)
{
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    if (!ssl) return false;
    char reason[200] = "";
    unsigned long e;
    while ((e = bufferevent_get_openssl_error(bev)) != 0) {
        /* libevent also queues bare SSL_get_error() codes (5: SSL_ERROR_SYSCALL, a refused or
         * reset connection), which are no OpenSSL reason: the caller's own message fits. */
        if (!reason[0] && !ERR_SYSTEM_ERROR(e) && ERR_GET_LIB(e) != 0)
            ERR_error_string_n(e, reason, sizeof reason);
    }
    long vr = SSL_get_verify_result(ssl);
    if (vr != X509_V_OK) {
        snprintf(buf, len, "TLS certificate verification failed: %s",
                 X509_verify_cert_error_string(vr));
        return true;
    }
    if (!reason[0]) return false;
    snprintf(buf, len, "TLS handshake failed: %s", reason);
    return true;
}

bool ld_tls_url_is_tls(const char *url)
{
    return url && (!strncasecmp(url, "https://", 8) || !strncasecmp(url, "wss://", 6));
}
