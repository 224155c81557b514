/* Top-level member splicing over validated JSON object text (see jsontext.h). */
#include "jsontext.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

json_t *ld_json_parse(const char *text, size_t len, json_error_t *err)
{
    return json_loadb(text, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, err);
}

static size_t skip_ws(const char *s, size_t i, size_t len)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* s[i] is '"': returns the index just past the closing quote. */
static size_t skip_string(const char *s, size_t i, size_t len)
{
    for (i++; i < len; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return len;
}

/* Returns the index just past the value starting at s[i]. */
static size_t skip_value(const char *s, size_t i, size_t len)
{
    if (i >= len) return len;
    if (s[i] == '"') return skip_string(s, i, len);
    if (s[i] == '{' || s[i] == '[') {
        int depth = 0;
        while (i < len) {
            char c = s[i];
            if (c == '"') {
                i = skip_string(s, i, len);
                continue;
            }
            if (c == '{' || c == '[')
                depth++;
            else if (c == '}' || c == ']') {
                if (--depth == 0) return i + 1;
            }
            i++;
        }
        return len;
    }
    while (i < len && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\t' &&
           s[i] != '\n' && s[i] != '\r')
        i++;
    return i;
}

char *ld_json_rewrite_object(const char *text, size_t len, const char *prepend,
                             bool (*drop)(const char *key, void *ctx), void *ctx, size_t *out_len)
{
    size_t plen = prepend ? strlen(prepend) : 0;
    char *out = malloc(len + plen + 3);
    if (!out) return NULL;
    size_t o = 0;
    out[o++] = '{';
    if (plen) {
        memcpy(out + o, prepend, plen);
        o += plen;
    }
    bool first = plen == 0;
    size_t i = skip_ws(text, 0, len);
    if (i >= len || text[i] != '{') goto bad;
    i = skip_ws(text, i + 1, len);
    while (i < len && text[i] != '}') {
        if (text[i] != '"') goto bad;
        size_t kstart = i;
        size_t kend = skip_string(text, i, len);
        json_t *key =
            json_loadb(text + kstart, kend - kstart, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (!json_is_string(key)) {
            json_decref(key);
            goto bad;
        }
        i = skip_ws(text, kend, len);
        if (i >= len || text[i] != ':') {
            json_decref(key);
            goto bad;
        }
        i = skip_ws(text, i + 1, len);
        size_t vend = skip_value(text, i, len);
        /* A key with an embedded NUL ("Id\u0000x") is never one of the names callers drop. */
        bool text_key = strlen(json_string_value(key)) == json_string_length(key);
        bool dropped = drop && text_key && drop(json_string_value(key), ctx);
        json_decref(key);
        if (!dropped) {
            if (!first) out[o++] = ',';
            memcpy(out + o, text + kstart, vend - kstart);
            o += vend - kstart;
            first = false;
        }
        i = skip_ws(text, vend, len);
        if (i < len && text[i] == ',') i = skip_ws(text, i + 1, len);
    }
    out[o++] = '}';
    out[o] = '\0';
    *out_len = o;
    return out;
bad:
    free(out);
    return NULL;
}

bool ld_json_member_span(const char *text, size_t len, const char *name, size_t *vstart,
                         size_t *vlen)
{
    size_t i = skip_ws(text, 0, len);
    if (i >= len || text[i] != '{') return false;
    i = skip_ws(text, i + 1, len);
    bool found = false;
    while (i < len && text[i] == '"') {
        size_t kend = skip_string(text, i, len);
        json_t *key = json_loadb(text + i, kend - i, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        bool match = json_is_string(key) &&
                     strlen(json_string_value(key)) == json_string_length(key) &&
                     strcasecmp(json_string_value(key), name) == 0;
        json_decref(key);
        i = skip_ws(text, kend, len);
        if (i >= len || text[i] != ':') return false;
        i = skip_ws(text, i + 1, len);
        size_t vend = skip_value(text, i, len);
        if (match) { /* the last occurrence wins, as in the parsed tree */
            *vstart = i;
            *vlen = vend - i;
            found = true;
        }
        i = skip_ws(text, vend, len);
        if (i < len && text[i] == ',') i = skip_ws(text, i + 1, len);
    }
    return found;
}
