/* Request context helpers: query parameters, bodies within the configured limit, and replies
 * whose errors are always JSON {"Error": "..."}. */
#include "request.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "../db/registry.h"
#include "../util/jsonbuf.h"
#include "../util/jsontext.h"
#include "../util/log.h"
#include "../util/timeutil.h"
#include "cors.h"
#include "router.h"

bool ld_req_seg_is_text(const ld_req *r, size_t i)
{
    return i < r->nsegs && strlen(r->segs[i]) == r->seg_lens[i];
}

const char *ld_req_param(ld_req *r, const char *name)
{
    return evhttp_find_header(&r->query, name);
}

bool ld_req_param_bool(ld_req *r, const char *name, bool def, bool *out)
{
    const char *v = ld_req_param(r, name);
    *out = def;
    if (!v || !*v) return true;
    if (!strcasecmp(v, "true") || !strcmp(v, "1"))
        *out = true;
    else if (!strcasecmp(v, "false") || !strcmp(v, "0"))
        *out = false;
    else {
        ld_reply_error(r, 400, "Query parameter '%s' must be true or false.", name);
        return false;
    }
    return true;
}

bool ld_req_param_int(ld_req *r, const char *name, long long def, long long *out)
{
    const char *v = ld_req_param(r, name);
    *out = def;
    if (!v || !*v) return true;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end) {
        ld_reply_error(r, 400, "Query parameter '%s' must be an integer.", name);
        return false;
    }
    *out = x;
    return true;
}

char *ld_req_body(ld_req *r, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->ev);
    size_t n = evbuffer_get_length(in);
    if (n > r->node->cfg.max_body_bytes) {
        ld_reply_error(r, 413, "Request body is larger than the limit of %zu bytes.",
                       r->node->cfg.max_body_bytes);
        return NULL;
    }
    char *buf = malloc(n + 1);
    if (!buf) {
        ld_reply_error(r, 500, "Out of memory.");
        return NULL;
    }
    evbuffer_copyout(in, buf, n);
    buf[n] = '\0';
    *len = n;
    return buf;
}

json_t *ld_req_json(ld_req *r)
{
    size_t len;
    char *body = ld_req_body(r, &len);
    if (!body) return NULL;
    json_error_t err;
    json_t *j = ld_json_nul_free(body, len, &err)
                    ? json_loadb(body, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err)
                    : NULL;
    free(body);
    if (!j) {
        ld_reply_error(r, 400, "Request body is not valid JSON: %s (line %d, column %d).", err.text,
                       err.line, err.column);
        return NULL;
    }
    return j;
}

void ld_req_free(ld_req *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->nsegs; i++)
        free(r->segs[i]);
    evhttp_clear_headers(&r->query);
    if (r->db) ld_registry_release(&r->node->reg, r->db);
    free(r);
}

const char *ld_method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    default:
        return "?";
    }
}

/* The access log: one line per request at info, and the HTTP metrics. The route is its
 * template (values such as document ids and webhook keys never reach a log), the key its
 * configured name. */
static void account(ld_req *r, int status, size_t bytes)
{
    ld_node_stats *st = &r->node->stats;
    size_t slot = r->route >= 0 ? (size_t)r->route : ld_router_count();
    uint64_t us = ld_mono_us() - r->start_us;
    int cls = status / 100 - 1;
    ld_counter_add(&st->http_requests[slot][cls < 0 ? 0 : cls > 4 ? 4 : cls], 1);
    ld_hist_observe(&st->http_seconds[slot], &ld_buckets_seconds, (double)us / 1e6);
    if (ld_log_get_level() < LD_LOG_INFO) return;
    const char *method = ld_method_name(r->method);
    const char *route = r->route >= 0 ? ld_router_template(slot, &method) : "unmatched";
    method = ld_method_name(r->method);
    char st_text[8], bytes_text[24], ms_text[32];
    snprintf(st_text, sizeof st_text, "%d", status);
    snprintf(bytes_text, sizeof bytes_text, "%zu", bytes);
    snprintf(ms_text, sizeof ms_text, "%.3f", (double)us / 1000.0);
    const char *fields[] = {"method",      method,     "route",        route,         "status",
                            st_text,       "bytes",    bytes_text,     "duration_ms", ms_text,
                            "database",    r->db_name, "key",          r->key_name,   "request_id",
                            r->request_id, "client",   r->client_addr, NULL};
    ld_log_fields(LD_LOG_INFO, "access", fields, (1u << 2) | (1u << 3) | (1u << 4),
                  "%s %s %d %zu B %s ms db=%s key=%s id=%s client=%s", method, route, status, bytes,
                  ms_text, r->db_name[0] ? r->db_name : "-", r->key_name[0] ? r->key_name : "-",
                  r->request_id, r->client_addr);
}

void ld_req_taken_over(ld_req *r)
{
    account(r, 101, 0);
    ld_req_free(r);
}

static void send_reply(ld_req *r, int status, const char *content_type, struct evbuffer *buf)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);
    if (content_type) evhttp_add_header(h, "Content-Type", content_type);
    /* API answers are never cached; the Studio's static files set their own policy. */
    if (!evhttp_find_header(h, "Cache-Control")) evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Request-Id", r->request_id);
    ld_cors_headers(r);
    if (r->node->shutting_down) evhttp_add_header(h, "Connection", "close");
    account(r, status, buf ? evbuffer_get_length(buf) : 0);
    evhttp_send_reply(r->ev, status, NULL, buf);
    ld_req_free(r);
}

void ld_reply_buffer(ld_req *r, int status, struct evbuffer *body)
{
    send_reply(r, status, "application/json; charset=utf-8", body);
}

void ld_reply_bytes(ld_req *r, int status, const char *content_type, struct evbuffer *body)
{
    send_reply(r, status, content_type, body);
}

void ld_reply_text(ld_req *r, int status, const char *content_type, const char *body, size_t len)
{
    struct evbuffer *buf = evbuffer_new();
    if (buf && len) evbuffer_add(buf, body, len);
    send_reply(r, status, content_type, buf);
    if (buf) evbuffer_free(buf);
}

void ld_reply_json(ld_req *r, int status, json_t *body)
{
    struct evbuffer *buf = body ? evbuffer_new() : NULL;
    bool ok = buf && ld_json_dump_evbuffer(body, JSON_COMPACT | JSON_ENCODE_ANY, buf);
    json_decref(body);
    if (!ok) {
        if (buf) evbuffer_free(buf);
        ld_reply_text(r, 500, "application/json; charset=utf-8", "{\"Error\":\"Out of memory.\"}",
                      26);
        return;
    }
    send_reply(r, status, "application/json; charset=utf-8", buf);
    evbuffer_free(buf);
}

static json_t *error_body(char *msg)
{
    json_t *text = json_string(msg);
    if (!text) { /* the message echoes user input that is not UTF-8: mask it */
        for (char *p = msg; *p; p++)
            if ((unsigned char)*p >= 0x80 || (unsigned char)*p < 0x20) *p = '?';
        text = json_string(msg);
    }
    json_t *body = json_object();
    if (body && text)
        json_object_set_new(body, "Error", text);
    else
        json_decref(text);
    return body;
}

void ld_reply_error(ld_req *r, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ld_reply_json(r, status, error_body(msg));
}

typedef struct delayed {
    ld_req *r;
    int status;
    json_t *body;
    struct event *ev;
} delayed;

static void delayed_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    delayed *d = arg;
    d->r->node->inflight--;
    ld_reply_json(d->r, d->status, d->body);
    event_free(d->ev);
    free(d);
}

void ld_reply_error_after(ld_req *r, uint32_t delay_ms, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *body = error_body(msg);
    delayed *d = delay_ms ? calloc(1, sizeof *d) : NULL;
    if (d) d->ev = evtimer_new(r->node->base, delayed_cb, d);
    if (!d || !d->ev) { /* no delay asked, or no memory for one: answer now */
        free(d);
        ld_reply_json(r, status, body);
        return;
    }
    *d = (delayed){.r = r, .status = status, .body = body, .ev = d->ev};
    struct timeval tv = {(time_t)(delay_ms / 1000), (suseconds_t)(delay_ms % 1000) * 1000};
    r->node->inflight++;
    evtimer_add(d->ev, &tv);
}
