/* Top-level member splicing over validated JSON object text (see jsontext.h). */
#include "jsontext.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool ld_json_nul_free(const char *text, size_t len, json_error_t *err)
{
    const char *z = memchr(text, '\0', len);
    if (!z) return true;
    int line = 1, column = 1;
    for (const char *p = text; p < z; p++) {
        if (*p == '\n') {
            line++;
            column = 1;
        } else {
            column++;
        }
    }
    memset(err, 0, sizeof *err);
    snprintf(err->text, sizeof err->text, "a NUL byte is not allowed here");
    err->text[sizeof err->text - 1] = (char)json_error_invalid_syntax; /* json_error_code's */
    err->line = line;
    err->column = column;
    err->position = (int)(z - text);
    return false;
}

json_t *ld_json_parse(const char *text, size_t len, json_error_t *err)
{
    if (!ld_json_nul_free(text, len, err)) return NULL;
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

/* Copies text with ".0" after every integer token that does not fit in 64 bits, so jansson reads
 * those (and only those) as reals. Tokens inside strings are left alone. */
static char *widen_big_integers(const char *text, size_t len, size_t *out_len)
{
    size_t cap = len + len / 2 + 3, o = 0; /* each widened token has >= 19 digits: +2 per 19 */
    char *out = malloc(cap);
    if (!out) return NULL;
    for (size_t i = 0; i < len;) {
        char c = text[i];
        if (c == '"') {
            size_t j = skip_string(text, i, len);
            memcpy(out + o, text + i, j - i);
            o += j - i;
            i = j;
            continue;
        }
        if (c != '-' && (c < '0' || c > '9')) {
            out[o++] = c;
            i++;
            continue;
        }
        size_t j = i;
        bool integer = true;
        while (j < len && strchr("-+0123456789.eE", text[j]) && text[j] != '\0') {
            if (text[j] == '.' || text[j] == 'e' || text[j] == 'E') integer = false;
            j++;
        }
        memcpy(out + o, text + i, j - i);
        o += j - i;
        if (integer && j - i >= 19) {
            char buf[32];
            bool wide = j - i >= sizeof buf;
            if (!wide) {
                memcpy(buf, text + i, j - i);
                buf[j - i] = '\0';
                errno = 0;
                (void)strtoll(buf, NULL, 10);
                wide = errno == ERANGE;
            }
            if (wide) {
                out[o++] = '.';
                out[o++] = '0';
            }
        }
        i = j;
    }
    *out_len = o;
    return out;
}

json_t *ld_json_parse_exact(const char *text, size_t len, json_error_t *err)
{
    const size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;
    if (!ld_json_nul_free(text, len, err)) return NULL;
    json_t *v = json_loadb(text, len, flags, err);
    if (v || json_error_code(err) != json_error_numeric_overflow) return v;
    size_t wlen;
    char *wide = widen_big_integers(text, len, &wlen);
    if (!wide) return NULL;
    v = json_loadb(wide, wlen, flags, err);
    free(wide);
    return v;
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
