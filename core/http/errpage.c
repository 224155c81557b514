/* libevent's HTML error answers rewritten as JSON ones (see errpage.h). */
#include "errpage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* What evhttp refused, by the status it chose (http.c of libevent 2.1.12). */
static void message(int status, const ld_errpage_limits *lim, char *buf, size_t len)
{
    switch (status) {
    case 400:
        snprintf(buf, len,
                 "The request is malformed: its request line or headers could not be "
                 "parsed.");
        break;
    case 413:
        snprintf(buf, len,
                 "The request is far larger than Node.MaxHeaderBytes (%zu bytes) of headers "
                 "or Node.MaxBodyBytes (%zu bytes) of body allow.",
                 lim->max_header_bytes, lim->max_body_bytes);
        break;
    case 417:
        snprintf(buf, len, "Only 'Expect: 100-continue' is supported.");
        break;
    case 501:
        snprintf(buf, len, "The request method is not implemented.");
        break;
    default:
        snprintf(buf, len, "The request could not be served (HTTP %d).", status);
        break;
    }
}

static bool replace(struct evbuffer *out, const ld_errpage_limits *lim)
{
    /* "HTTP/1.1 413 Payload Too Large\r\n": kept as evhttp wrote it. */
    size_t eol_len = 0;
    struct evbuffer_ptr eol = evbuffer_search_eol(out, NULL, &eol_len, EVBUFFER_EOL_CRLF_STRICT);
    if (eol.pos < 12 || eol.pos > 200) return false;
    char line[201];
    if (evbuffer_copyout(out, line, (size_t)eol.pos) != (ev_ssize_t)eol.pos) return false;
    line[eol.pos] = '\0';
    int status = 0;
    if (strncmp(line, "HTTP/1.", 7) != 0 || sscanf(line + 9, "%3d", &status) != 1) return false;

    char msg[256];
    message(status, lim, msg, sizeof msg);
    json_t *body = json_pack("{s:s}", "Error", msg);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    struct evbuffer *fresh = text ? evbuffer_new() : NULL;
    bool ok = fresh && evbuffer_add_printf(fresh,
                                           "%s\r\nContent-Type: application/json\r\n"
                                           "Content-Length: %zu\r\nCache-Control: no-store\r\n"
                                           "Connection: close\r\n\r\n%s",
                                           line, strlen(text), text) > 0;
    free(text);
    if (ok)
        ok = evbuffer_drain(out, evbuffer_get_length(out)) == 0 &&
             evbuffer_add_buffer(out, fresh) == 0;
    if (fresh) evbuffer_free(fresh);
    return ok;
}

bool ld_errpage_to_json(struct evbuffer *out, const ld_errpage_limits *lim)
{
    /* A socket bufferevent keeps the start of its output frozen between its writes (only it
     * drains there); the answer is replaced before it is written, and the freeze put back as
     * the bufferevent's next write expects it. */
    evbuffer_unfreeze(out, 1);
    bool ok = replace(out, lim);
    evbuffer_freeze(out, 1);
    return ok;
}
