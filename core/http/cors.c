/* CORS (see cors.h). The API authenticates with headers (ApiKey, ReplicationApiKey), never with
 * cookies, so a page can only send them cross-origin after a successful preflight: the
 * preflight is the gate, and an answer without Access-Control-Allow-Origin keeps a page from
 * reading what a simple request returned. */
#include "cors.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>

#include "../util/strutil.h"
#include "request.h"

/* What the Studio (and any API client in a browser) sends: the contract's headers. */
#define ALLOWED_HEADERS "Database, ApiKey, ReplicationApiKey, Content-Type, Accept"
#define ALLOWED_METHODS "GET, HEAD, POST, PUT, DELETE"
/* How long a browser may reuse a preflight answer. Chromium caps it at 2 hours; 10 minutes
 * keeps a changed Studio.CorsOrigins (a restart) from being ignored for long. */
#define PREFLIGHT_MAX_AGE "600"

static const char *const allowed_header_names[] = {"database", "apikey", "replicationapikey",
                                                   "content-type", "accept"};
static const char *const allowed_method_names[] = {"GET", "HEAD", "POST", "PUT", "DELETE"};

/* ---------------------------------------------------------------------------------------------
 * Origins
 * ------------------------------------------------------------------------------------------- */

bool ld_cors_origin_normalize(const char *s, char *out, size_t outlen)
{
    const char *p = s;
    const char *scheme;
    unsigned default_port;
    if (!strncasecmp(p, "http://", 7)) {
        scheme = "http";
        default_port = 80;
        p += 7;
    } else if (!strncasecmp(p, "https://", 8)) {
        scheme = "https";
        default_port = 443;
        p += 8;
    } else {
        return false;
    }
    const char *host = p;
    if (*p == '[') { /* IPv6 literal */
        p++;
        while (isxdigit((unsigned char)*p) || *p == ':' || *p == '.')
            p++;
        if (*p != ']' || p == host + 1) return false;
        p++;
    } else {
        while (isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '_')
            p++;
        if (p == host) return false;
    }
    size_t host_len = (size_t)(p - host);
    if (host_len > 253 + 2) return false;
    unsigned port = default_port;
    if (*p == ':') {
        p++;
        const char *digits = p;
        unsigned long v = 0;
        while (isdigit((unsigned char)*p) && p - digits < 5)
            v = v * 10 + (unsigned long)(*p++ - '0');
        if (p == digits || isdigit((unsigned char)*p) || v < 1 || v > 65535) return false;
        port = (unsigned)v;
    }
    if (*p == '/') p++;
    if (*p) return false;

    char lower[256 + 2];
    for (size_t i = 0; i < host_len; i++)
        lower[i] = (char)tolower((unsigned char)host[i]);
    lower[host_len] = '\0';
    int n = port == default_port ? snprintf(out, outlen, "%s://%s", scheme, lower)
                                 : snprintf(out, outlen, "%s://%s:%u", scheme, lower, port);
    return n > 0 && (size_t)n < outlen;
}

bool ld_cors_origin_allowed(char *const *allowed, size_t n_allowed, const char *origin)
{
    char norm[LD_ORIGIN_MAX];
    if (!origin || !ld_cors_origin_normalize(origin, norm, sizeof norm)) return false;
    if (n_allowed == 0) {
        /* Any port of localhost or 127.0.0.1, over http or https: the host ends the origin or
         * is followed by its port, so "localhost.example" never matches. */
        const char *host = strstr(norm, "://") + 3;
        size_t len = strcspn(host, ":");
        return (len == 9 && !strncmp(host, "localhost", 9)) ||
               (len == 9 && !strncmp(host, "127.0.0.1", 9));
    }
    for (size_t i = 0; i < n_allowed; i++) {
        char want[LD_ORIGIN_MAX];
        if (ld_cors_origin_normalize(allowed[i], want, sizeof want) && !strcmp(want, norm))
            return true;
    }
    return false;
}

bool ld_cors_check_config(char *const *allowed, size_t n_allowed, char *err, size_t errlen)
{
    for (size_t i = 0; i < n_allowed; i++) {
        char norm[LD_ORIGIN_MAX];
        if (!ld_cors_origin_normalize(allowed[i], norm, sizeof norm)) {
            ld_set_err(err, errlen,
                       "Studio.CorsOrigins[%zu] '%s' is not an origin: give scheme, host and "
                       "port only, like \"https://studio.example.com\" or "
                       "\"http://localhost:5173\"",
                       i, allowed[i]);
            return false;
        }
    }
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Answers
 * ------------------------------------------------------------------------------------------- */

static const char *request_origin(ld_req *r)
{
    return evhttp_find_header(evhttp_request_get_input_headers(r->ev), "Origin");
}

void ld_cors_headers(ld_req *r)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->ev);
    if (!evhttp_find_header(out, "Vary")) evhttp_add_header(out, "Vary", "Origin");
    if (r->cors_refused) return;
    const char *origin = request_origin(r);
    const ld_config *cfg = &r->node->cfg;
    if (origin && !evhttp_find_header(out, "Access-Control-Allow-Origin") &&
        ld_cors_origin_allowed(cfg->cors_origins, cfg->n_cors_origins, origin)) {
        evhttp_add_header(out, "Access-Control-Allow-Origin", origin);
        /* A page on another origin reads only the safelisted headers unless told: document
         * lists say where their next page starts in this one. */
        if (evhttp_find_header(out, "X-Next-After"))
            evhttp_add_header(out, "Access-Control-Expose-Headers", "X-Next-After");
    }
}

static bool in_list(const char *const *list, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(list[i]) == len && !strncasecmp(list[i], s, len)) return true;
    return false;
}

/* The first requested header the API does not accept, copied into bad; NULL when all are. */
static const char *unlisted_header(const char *requested, char *bad, size_t badlen)
{
    const char *p = requested;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        size_t len = (size_t)(end - start);
        if (len &&
            !in_list(allowed_header_names,
                     sizeof allowed_header_names / sizeof allowed_header_names[0], start, len)) {
            snprintf(bad, badlen, "%.*s", (int)(len < 100 ? len : 100), start);
            return bad;
        }
    }
    return NULL;
}

/* The answer carries no Access-Control-Allow-* header, so the browser stops there. */
static void refuse(ld_req *r, const char *kind, const char *value, const char *hint)
{
    r->cors_refused = true;
    ld_reply_error(r, 403, "CORS preflight refused: %s '%s' is not allowed%s.", kind, value, hint);
}

bool ld_cors_preflight(ld_req *r)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(r->ev);
    const char *origin = request_origin(r);
    const char *method = evhttp_find_header(in, "Access-Control-Request-Method");
    if (!origin || !method) return false;

    const ld_config *cfg = &r->node->cfg;
    if (!ld_cors_origin_allowed(cfg->cors_origins, cfg->n_cors_origins, origin)) {
        refuse(r, "origin", origin, "; see Studio.CorsOrigins");
        return true;
    }
    if (!in_list(allowed_method_names, sizeof allowed_method_names / sizeof allowed_method_names[0],
                 method, strlen(method))) {
        refuse(r, "method", method, "");
        return true;
    }
    const char *headers = evhttp_find_header(in, "Access-Control-Request-Headers");
    char bad[128];
    if (headers && unlisted_header(headers, bad, sizeof bad)) {
        refuse(r, "header", bad, "");
        return true;
    }

    struct evkeyvalq *out = evhttp_request_get_output_headers(r->ev);
    evhttp_add_header(out, "Access-Control-Allow-Methods", ALLOWED_METHODS);
    evhttp_add_header(out, "Access-Control-Allow-Headers", ALLOWED_HEADERS);
    evhttp_add_header(out, "Access-Control-Max-Age", PREFLIGHT_MAX_AGE);
    evhttp_add_header(out, "Vary",
                      "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
    /* Chromium's Private Network Access: a page on a public origin asks before it may reach a
     * node on loopback or a private address; an allowed origin may. */
    const char *pna = evhttp_find_header(in, "Access-Control-Request-Private-Network");
    if (pna && !strcasecmp(pna, "true"))
        evhttp_add_header(out, "Access-Control-Allow-Private-Network", "true");
    ld_reply_text(r, 204, NULL, NULL, 0);
    return true;
}
