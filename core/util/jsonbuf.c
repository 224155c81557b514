/* jansson's dump callback into an evbuffer, staged in a stack buffer (see jsonbuf.h). */
#include "jsonbuf.h"

#include <string.h>

/* jansson calls back once per token and escape run: stage those small pieces so the evbuffer
 * sees a few large appends instead of one per token. */
typedef struct stage {
    struct evbuffer *out;
    size_t n;
    char buf[16384];
} stage;

static int flush(stage *s)
{
    int rc = s->n ? evbuffer_add(s->out, s->buf, s->n) : 0;
    s->n = 0;
    return rc;
}

static int put(const char *p, size_t len, void *arg)
{
    stage *s = arg;
    if (len > sizeof s->buf - s->n && flush(s) != 0) return -1;
    if (len >= sizeof s->buf) return evbuffer_add(s->out, p, len);
    memcpy(s->buf + s->n, p, len);
    s->n += len;
    return 0;
}

bool ld_json_dump_evbuffer(const json_t *v, size_t flags, struct evbuffer *out)
{
    stage s;
    s.out = out;
    s.n = 0;
    return json_dump_callback(v, put, &s, flags) == 0 && flush(&s) == 0;
}

bool ld_json_string_evbuffer(const char *s, size_t len, struct evbuffer *out)
{
    json_t *j = json_stringn(s, len);
    bool ok = j && ld_json_dump_evbuffer(j, JSON_ENCODE_ANY, out);
    json_decref(j);
    return ok;
}
