/* Client side of WebSocket: dials ws://host:port/path on a bufferevent without blocking the loop
 * (numeric hosts directly, names through evdns), sends the upgrade and checks the 101. */
#include "ws_internal.h"

#include "../http/tls.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <sodium.h>

#define MAX_ANSWER_HEADER 16384 /* bytes of the server's 101 and its headers */

/* ---------------------------------------------------------------------------------------------
 * Building the request
 * ------------------------------------------------------------------------------------------- */

static bool header_name_ok(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s)) return false;
    return true;
}

static bool header_value_ok(const char *s)
{
    for (; *s; s++)
        if (*s == '\r' || *s == '\n') return false;
    return true;
}

/* The upgrade request for host:port and target, with the caller's extra headers. NULL on a bad
 * header (*st = LD_INVALID) or memory (*st = LD_NOMEM). */
static char *build_request(const char *host_hdr, const char *target, const char *key,
                           const char *const *headers, ld_status *st)
{
    struct evbuffer *b = evbuffer_new();
    char *out = NULL;
    *st = LD_NOMEM;
    if (!b) return NULL;
    int r = evbuffer_add_printf(b,
                                "GET %s HTTP/1.1\r\n"
                                "Host: %s\r\n"
                                "Upgrade: websocket\r\n"
                                "Connection: Upgrade\r\n"
                                "Sec-WebSocket-Key: %s\r\n"
                                "Sec-WebSocket-Version: 13\r\n",
                                target, host_hdr, key);
    for (size_t i = 0; r >= 0 && headers && headers[i]; i += 2) {
        if (!headers[i + 1] || !header_name_ok(headers[i]) || !header_value_ok(headers[i + 1])) {
            *st = LD_INVALID;
            evbuffer_free(b);
            return NULL;
        }
        r = evbuffer_add_printf(b, "%s: %s\r\n", headers[i], headers[i + 1]);
    }
    if (r >= 0 && evbuffer_add(b, "\r\n", 3) == 0) { /* with the NUL, so it is a C string */
        size_t n = evbuffer_get_length(b);
        out = malloc(n);
        if (out) evbuffer_remove(b, out, n);
    }
    evbuffer_free(b);
    if (out) *st = LD_OK;
    return out;
}

/* Splits url into host (brackets of an IPv6 literal removed), port and request target; *tls
 * says whether the scheme is wss or https (refused unless tls_ok). */
static ld_status parse_url(const char *url, bool tls_ok, char **host, int *port, char **target,
                           bool *tls)
{
    struct evhttp_uri *u = evhttp_uri_parse(url);
    if (!u) return LD_INVALID;
    ld_status st = LD_INVALID;
    const char *scheme = evhttp_uri_get_scheme(u);
    const char *h = evhttp_uri_get_host(u);
    const char *path = evhttp_uri_get_path(u);
    const char *query = evhttp_uri_get_query(u);
    if (!scheme || !h || !*h) goto out;
    *tls = !strcasecmp(scheme, "wss") || !strcasecmp(scheme, "https");
    if (*tls && !tls_ok) {
        st = LD_UNSUPPORTED;
        goto out;
    }
    if (!*tls && strcasecmp(scheme, "ws") != 0 && strcasecmp(scheme, "http") != 0) goto out;
    *port = evhttp_uri_get_port(u);
    if (*port < 0) *port = *tls ? 443 : 80;
    if (*port == 0 || *port > 65535) goto out;
    size_t hl = strlen(h);
    if (h[0] == '[' && hl > 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (!path || !*path) path = "/";
    *host = strndup(h, hl);
    if (query && *query) {
        if (asprintf(target, "%s?%s", path, query) < 0) *target = NULL;
    } else {
        *target = strdup(path);
    }
    st = (*host && *target) ? LD_OK : LD_NOMEM;
    if (st != LD_OK) {
        free(*host);
        free(*target);
        *host = *target = NULL;
    }
out:
    evhttp_uri_free(u);
    return st;
}

ld_status ld_ws_connect(struct event_base *base, struct evdns_base *dns, const char *url,
                        const char *const *headers, const ld_ws_options *opt,
                        const ld_ws_callbacks *cb, void *arg, ld_ws_conn **out)
{
    if (out) *out = NULL;
    if (!base || !url || !out) return LD_INVALID;
    if (sodium_init() < 0) return LD_INTERNAL;
    char *host = NULL, *target = NULL;
    int port = 0;
    bool tls = false;
    ld_status st = parse_url(url, opt && opt->tls, &host, &port, &target, &tls);
    if (st != LD_OK) return st;

    unsigned char nonce[16];
    char key[sodium_base64_ENCODED_LEN(sizeof nonce, sodium_base64_VARIANT_ORIGINAL)];
    randombytes_buf(nonce, sizeof nonce);
    sodium_bin2base64(key, sizeof key, nonce, sizeof nonce, sodium_base64_VARIANT_ORIGINAL);
    char host_hdr[300];
    snprintf(host_hdr, sizeof host_hdr, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    char *request = build_request(host_hdr, target, key, headers, &st);
    free(target);
    if (!request) {
        free(host);
        return st;
    }
    ld_ws_conn *c = ws_conn_new(base, false, opt, cb, arg);
    if (!c) {
        free(host);
        free(request);
        return LD_NOMEM;
    }
    c->dns = dns;
    c->tls = tls;
    c->host = host;
    c->port = port;
    c->request = request;
    ld_ws_accept_key(key, strlen(key), c->accept_expected);
    c->state = WS_START;
    ws_kick(c); /* everything the caller hears comes from the loop */
    *out = c;
    return LD_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Resolving and connecting
 * ------------------------------------------------------------------------------------------- */

/* Tries the addresses left in order; each failure comes back through ws_client_on_event. */
static void try_next(ld_ws_conn *c)
{
    while (c->addr_next) {
        struct evutil_addrinfo *ai = c->addr_next;
        c->addr_next = ai->ai_next;
        if (c->bev) bufferevent_free(c->bev);
        c->bev = c->tls ? ld_tls_client_bev(c->opt.tls, c->base, c->host, c->port)
                        : bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (!c->bev) {
            ws_fail(c, LD_WS_ERR_NOMEM, "out of memory");
            return;
        }
        bufferevent_setcb(c->bev, ws_bev_read, ws_bev_write, ws_bev_event, c);
        c->state = WS_CONNECTING;
        if (bufferevent_socket_connect(c->bev, ai->ai_addr, (int)ai->ai_addrlen) == 0) {
            ws_set_nodelay(bufferevent_getfd(c->bev));
            bufferevent_enable(c->bev, EV_READ | EV_WRITE);
            return;
        }
        snprintf(c->last_connect_error, sizeof c->last_connect_error, "%s",
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    }
    ws_fail(c, LD_WS_ERR_CONNECT, "cannot connect to %s:%d: %s", c->host, c->port,
            c->last_connect_error[0] ? c->last_connect_error : "no address");
}

static void dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
    ws_dns_token *t = arg;
    ld_ws_conn *c = t->c;
    free(t);
    if (!c) { /* the connection went while this was pending (its cancel lands here) */
        if (res) evutil_freeaddrinfo(res);
        return;
    }
    c->dns_token = NULL;
    ws_enter(c);
    if (c->state != WS_RESOLVING) {
        if (res) evutil_freeaddrinfo(res);
    } else if (result != 0 || !res) {
        if (res) evutil_freeaddrinfo(res);
        ws_fail(c, LD_WS_ERR_DNS, "cannot resolve '%s': %s", c->host, evutil_gai_strerror(result));
    } else {
        c->addrs = c->addr_next = res;
        try_next(c);
    }
    ws_leave(c);
}

void ws_client_start(ld_ws_conn *c)
{
    char port_s[8];
    snprintf(port_s, sizeof port_s, "%d", c->port);
    struct evutil_addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    ws_arm_timer(c, c->opt.connect_timeout_ms);
    /* A numeric host never touches a resolver, so this cannot block. */
    hints.ai_flags = EVUTIL_AI_NUMERICHOST | EVUTIL_AI_NUMERICSERV;
    if (evutil_getaddrinfo(c->host, port_s, &hints, &c->addrs) == 0) {
        c->addr_next = c->addrs;
        try_next(c);
        return;
    }
    c->addrs = NULL;
    if (!c->dns) {
        ws_fail(c, LD_WS_ERR_DNS, "cannot resolve '%s': no resolver given (use a numeric address)",
                c->host);
        return;
    }
    ws_dns_token *t = calloc(1, sizeof *t);
    if (!t) {
        ws_fail(c, LD_WS_ERR_NOMEM, "out of memory");
        return;
    }
    t->c = c;
    c->dns_token = t;
    c->state = WS_RESOLVING;
    hints.ai_flags = EVUTIL_AI_NUMERICSERV;
    /* Answers from the hosts file (and failures) call dns_cb before this returns, with NULL. */
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(c->dns, c->host, port_s, &hints, dns_cb, t);
    if (c->dns_token != t) return; /* answered already */
    if (!req) {
        c->dns_token = NULL;
        free(t);
        ws_fail(c, LD_WS_ERR_DNS, "cannot resolve '%s': the resolver refused the request", c->host);
        return;
    }
    t->req = req;
}

void ws_client_on_event(ld_ws_conn *c, short what)
{
    int err = EVUTIL_SOCKET_ERROR();
    if (c->state == WS_CONNECTING) {
        if (what & BEV_EVENT_CONNECTED) {
            c->state = WS_HANDSHAKE;
            ws_arm_timer(c, c->opt.handshake_timeout_ms);
            if (bufferevent_write(c->bev, c->request, strlen(c->request)) != 0)
                ws_fail(c, LD_WS_ERR_NOMEM, "out of memory");
        } else if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
            /* Over TLS, CONNECTED means the handshake is done too: its failure lands here. */
            if (!ld_tls_describe_failure(c->bev, c->last_connect_error,
                                         sizeof c->last_connect_error))
                snprintf(c->last_connect_error, sizeof c->last_connect_error, "%s",
                         err ? evutil_socket_error_to_string(err) : "connection closed");
            try_next(c);
        }
    } else if (c->state == WS_HANDSHAKE && (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))) {
        ws_fail(c, LD_WS_ERR_HANDSHAKE, "%s:%d closed the connection during the handshake%s%s",
                c->host, c->port, (what & BEV_EVENT_ERROR) ? ": " : "",
                (what & BEV_EVENT_ERROR) ? evutil_socket_error_to_string(err) : "");
    }
}

/* ---------------------------------------------------------------------------------------------
 * The answer
 * ------------------------------------------------------------------------------------------- */

/* Copies s (up to its end of line) into buf for an error message, unprintable bytes as '?'. */
static const char *printable(const char *s, char *buf, size_t size)
{
    size_t i = 0;
    for (; s[i] && s[i] != '\r' && s[i] != '\n' && i + 1 < size; i++)
        buf[i] = isprint((unsigned char)s[i]) ? s[i] : '?';
    buf[i] = '\0';
    return buf;
}

static bool list_has(const char *value, const char *token)
{
    size_t tlen = strlen(token);
    const char *p = value;
    while (*p) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t'))
            m--;
        if (m == tlen && strncasecmp(p, token, tlen) == 0) return true;
        p += n;
    }
    return false;
}

/* Checks the status line and headers in hdr (NUL-terminated, CRLF lines). On failure writes
 * the reason into why. */
static bool check_answer(ld_ws_conn *c, char *hdr, char *why, size_t why_size)
{
    char line[100];
    int major = 0, minor = 0, status = 0;
    if (sscanf(hdr, "HTTP/%d.%d %d", &major, &minor, &status) != 3 || status < 100 ||
        status > 999) {
        snprintf(why, why_size, "not an HTTP answer: '%s'", printable(hdr, line, sizeof line));
        return false;
    }
    c->http_status = status;
    if (status != 101) {
        snprintf(why, why_size, "the server answered '%s'", printable(hdr, line, sizeof line));
        return false;
    }
    bool upgrade = false, connection = false, accept = false;
    char *save = NULL;
    strtok_r(hdr, "\r\n", &save); /* the status line */
    for (char *l = strtok_r(NULL, "\r\n", &save); l; l = strtok_r(NULL, "\r\n", &save)) {
        char *colon = strchr(l, ':');
        if (!colon) continue;
        *colon = '\0';
        char *v = colon + 1;
        v += strspn(v, " \t");
        size_t vl = strlen(v);
        while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            v[--vl] = '\0';
        if (!strcasecmp(l, "Upgrade"))
            upgrade = list_has(v, "websocket");
        else if (!strcasecmp(l, "Connection"))
            connection = list_has(v, "upgrade");
        else if (!strcasecmp(l, "Sec-WebSocket-Accept"))
            accept = strcmp(v, c->accept_expected) == 0;
        else if ((!strcasecmp(l, "Sec-WebSocket-Extensions") ||
                  !strcasecmp(l, "Sec-WebSocket-Protocol")) &&
                 vl > 0) {
            /* RFC 6455 4.1: the server may not choose what the client did not offer. */
            snprintf(why, why_size, "the server chose %s '%s' that was not offered", l,
                     printable(v, line, sizeof line));
            return false;
        }
    }
    if (!upgrade || !connection || !accept) {
        snprintf(why, why_size, "the 101 lacks %s",
                 !upgrade      ? "'Upgrade: websocket'"
                 : !connection ? "'Connection: Upgrade'"
                               : "the right Sec-WebSocket-Accept");
        return false;
    }
    return true;
}

void ws_client_on_read(ld_ws_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    if (end.pos < 0) {
        if (evbuffer_get_length(in) > MAX_ANSWER_HEADER)
            ws_fail(c, LD_WS_ERR_HANDSHAKE, "the answer's header exceeds %d bytes",
                    MAX_ANSWER_HEADER);
        return;
    }
    size_t n = (size_t)end.pos + 4;
    char *hdr = malloc(n + 1);
    if (!hdr) {
        ws_fail(c, LD_WS_ERR_NOMEM, "out of memory");
        return;
    }
    evbuffer_remove(in, hdr, n);
    hdr[n] = '\0';
    char why[200];
    bool ok = check_answer(c, hdr, why, sizeof why);
    free(hdr);
    if (!ok) {
        ws_fail(c, LD_WS_ERR_HANDSHAKE, "%s:%d: %s", c->host, c->port, why);
        return;
    }
    free(c->request);
    c->request = NULL;
    ws_start_open(c);
    if (c->cb.on_open) c->cb.on_open(c, c->arg);
    /* Messages queued before the handshake, and frames that came with the 101. */
    ws_pump(c);
}

void ws_client_release(ld_ws_conn *c)
{
    if (c->dns_token) {
        /* The cancel reports through dns_cb from the loop, which then frees the token. */
        ws_dns_token *t = c->dns_token;
        c->dns_token = NULL;
        t->c = NULL;
        if (t->req) evdns_getaddrinfo_cancel(t->req);
    }
    if (c->bev) {
        if (c->tls) ld_tls_close_notify(c->bev); /* keeps the TLS session resumable */
        bufferevent_free(c->bev);
    }
    c->bev = NULL;
    if (c->addrs) evutil_freeaddrinfo(c->addrs);
    free(c->host);
    free(c->request);
}
