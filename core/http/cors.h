/* CORS, for a Studio served from another origin: which browser origins may call the API
 * (Studio.CorsOrigins), the headers their answers carry, and the answers to preflights. */
#ifndef LD_CORS_H
#define LD_CORS_H

#include <stdbool.h>
#include <stddef.h>

struct ld_req;

/* Longest origin kept: scheme, "://", a 253-byte host name and a port. */
#define LD_ORIGIN_MAX 280

/* Parses a serialized origin, "scheme://host[:port]" with scheme http or https, host a name, an
 * IPv4 address or a bracketed IPv6 address, and nothing else (no user, path, query; one trailing
 * "/" is tolerated, as configs often carry one). Writes the normalized form to out: scheme and
 * host in lower case, the scheme's default port dropped. Returns false when s is no such origin
 * or out is too small. */
bool ld_cors_origin_normalize(const char *s, char *out, size_t outlen);

/* Whether a browser page at `origin` (the request's Origin header) may call the API: equal,
 * once normalized, to one of `allowed`; or, when `allowed` is empty, an http(s) origin whose host
 * is localhost or 127.0.0.1, on any port (the contract's default). "null" and anything that is
 * not a single origin never is. */
bool ld_cors_origin_allowed(char *const *allowed, size_t n_allowed, const char *origin);

/* Checks every Studio.CorsOrigins entry at start-up; on a bad one writes a message naming it and
 * returns false. */
bool ld_cors_check_config(char *const *allowed, size_t n_allowed, char *err, size_t errlen);

/* Adds the CORS headers to r's answer: Vary: Origin always (an answer depends on the Origin
 * sent), Access-Control-Allow-Origin echoing the Origin only when it is allowed. Called by the
 * reply path for every answer; does nothing more on a refused preflight. */
void ld_cors_headers(struct ld_req *r);

/* When r is a CORS preflight (OPTIONS carrying Origin and Access-Control-Request-Method), answers
 * it and returns true: 204 with the methods, headers and max-age the API accepts when the origin
 * is allowed and asks only for those; otherwise 403 {"Error": ...} without any
 * Access-Control-Allow-* header, so the browser does not send the real request. Returns false
 * without replying for any other request. */
bool ld_cors_preflight(struct ld_req *r);

#endif
