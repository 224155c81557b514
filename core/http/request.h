/* The request context every handler receives, and the reply helpers. A handler answers exactly
 * once, through one ld_reply_* call, which sends the response and frees the context; a handler
 * that waits for a writer keeps the context until its completion replies. */
#ifndef LD_REQUEST_H
#define LD_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "../node.h"

#define LD_MAX_SEGS       8
#define LD_REQUEST_ID_MAX 64

typedef struct ld_req {
    struct evhttp_request *ev;
    ld_node *node;
    enum evhttp_cmd_type method;
    char *segs[LD_MAX_SEGS]; /* percent-decoded path segments, malloc'd */
    size_t seg_lens[LD_MAX_SEGS];
    size_t nsegs;
    struct evkeyvalq query; /* decoded query parameters */
    char client_addr[64];
    bool cors_refused; /* a refused CORS preflight: its answer carries no CORS grant */
    int route;         /* index in the router's table; -1: none matched (yet) */
    uint64_t start_us; /* monotonic: when the router got the request (read in full) */
    char request_id[LD_REQUEST_ID_MAX + 1]; /* the client's X-Request-Id, or one we made */
    char key_name[64]; /* the API key's configured name for the access log, never the key */

    /* Set by ld_api_open (api/context.h) */
    char db_name[LD_DB_NAME_MAX + 1];
    ld_db *db;           /* referenced; released when the context is freed */
    const char *api_key; /* trimmed header value, borrowed from ev's headers */
    size_t api_key_len;
    uint32_t auth_asked;   /* LD_ROLE_* bits the request's one auth question was about */
    uint32_t auth_granted; /* those of them the key holds on db_name */
} ld_req;

/* "GET", "POST", ... */
const char *ld_method_name(enum evhttp_cmd_type m);

/* True when path segment i holds no NUL byte, so it may be used as a C string. */
bool ld_req_seg_is_text(const ld_req *r, size_t i);

/* A query parameter's value, or NULL. */
const char *ld_req_param(ld_req *r, const char *name);

/* Parses a query parameter as a boolean (true/false, any case; absent: def). Returns false and
 * replies 400 on a bad value. */
bool ld_req_param_bool(ld_req *r, const char *name, bool def, bool *out);

/* Parses a query parameter as an integer (absent: def). Replies 400 on a bad value. */
bool ld_req_param_int(ld_req *r, const char *name, long long def, long long *out);

/* The request body as a NUL-terminated string (malloc'd, *len without the NUL), or NULL when
 * the body exceeds Node.MaxBodyBytes or memory fails (having replied 413/500). */
char *ld_req_body(ld_req *r, size_t *len);

/* Parses the body as JSON. On failure replies 400 ("Request body is not valid JSON: ...") or
 * 413 and returns NULL. An empty body is invalid JSON. */
json_t *ld_req_json(ld_req *r);

/* Replies and frees r. */
void ld_reply_json(ld_req *r, int status, json_t *body); /* steals body */
/* content_type NULL sends none (a 304 or a redirect). A Cache-Control header the handler set
 * stays; otherwise the reply says no-store. */
void ld_reply_text(ld_req *r, int status, const char *content_type, const char *body, size_t len);
void ld_reply_buffer(ld_req *r, int status, struct evbuffer *body); /* JSON; drains body */
/* Any content type (a binary snapshot page); drains body. */
void ld_reply_bytes(ld_req *r, int status, const char *content_type, struct evbuffer *body);
void ld_reply_error(ld_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ld_reply_error, sent delay_ms later (0: now) from a timer, never blocking the loop: for
 * refused credentials (http/failures.h). The reply counts as in flight until sent, so a
 * shutdown waits for it. */
void ld_reply_error_after(ld_req *r, uint32_t delay_ms, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Frees a context without replying: for the router's own failure paths. */
void ld_req_free(ld_req *r);

/* A WebSocket upgrade took the connection over: the request is counted and access-logged as
 * 101 (the handshake answer the WebSocket layer sent), then freed. */
void ld_req_taken_over(ld_req *r);

#endif
