/* Top-level member splicing over validated JSON object text (see jsontext.h). */
#include "jsontext.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
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

/* s[i] is '"': returns the index just past the closing quote. memchr finds each quote (a
 * byte loop here was a tenth of a pipelined RESP GET); one after an odd run of backslashes is
 * escaped, and the run never reaches back past the opening quote. */
static size_t skip_string(const char *s, size_t i, size_t len)
{
    size_t start = ++i;
    while (i < len) {
        const char *q = memchr(s + i, '"', len - i);
        if (!q) return len;
        size_t j = (size_t)(q - s), k = j;
        while (k > start && s[k - 1] == '\\')
            k--;
        if (((j - k) & 1u) == 0) return j + 1;
        i = j + 1;
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
    size_t name_len = strlen(name);
    while (i < len && text[i] == '"') {
        size_t kend = skip_string(text, i, len);
        bool match;
        size_t klen = kend - i >= 2 ? kend - i - 2 : 0;
        if (!memchr(text + i + 1, '\\', klen)) {
            /* No escape (the usual key): its bytes are the name, compared in place; parsing it
             * costs a tree per member and was a third of a RESP GET. */
            match = klen == name_len && strncasecmp(text + i + 1, name, klen) == 0;
        } else {
            json_t *key = json_loadb(text + i, kend - i, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
            match = json_is_string(key) &&
                    strlen(json_string_value(key)) == json_string_length(key) &&
                    strcasecmp(json_string_value(key), name) == 0;
            json_decref(key);
        }
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

/* ---------------------------------------------------------------------------------------------
 * Validation without a tree (ld_json_object_valid): jansson's lexer rules, checked in place
 * ------------------------------------------------------------------------------------------- */

#define JV_MAX_DEPTH 2048 /* jansson's JSON_PARSER_MAX_DEPTH: a value nested deeper is refused */

typedef struct jv {
    const unsigned char *s;
    size_t len, i;
} jv;

static void jv_ws(jv *v)
{
    while (v->i < v->len &&
           (v->s[v->i] == ' ' || v->s[v->i] == '\t' || v->s[v->i] == '\n' || v->s[v->i] == '\r'))
        v->i++;
}

static int jv_hex4(jv *v)
{
    if (v->len - v->i < 4) return -1;
    int n = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = v->s[v->i + (size_t)k];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        n = n * 16 + d;
    }
    v->i += 4;
    return n;
}

/* One UTF-8 sequence starting at v->i (its first byte >= 0x80), as jansson's utf8_check_full:
 * no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool jv_utf8(jv *v)
{
    unsigned char c = v->s[v->i];
    size_t n;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07u;
    } else {
        return false;
    }
    if (v->len - v->i < n) return false;
    for (size_t k = 1; k < n; k++) {
        unsigned char t = v->s[v->i + k];
        if ((t & 0xC0u) != 0x80u) return false;
        cp = (cp << 6) | (t & 0x3Fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return false;
    v->i += n;
    return true;
}

/* A string at v->i ('"'). An object key may not hold \u0000 (jansson refuses it even where
 * JSON_ALLOW_NUL lets values hold one). */
static bool jv_string(jv *v, bool key)
{
    v->i++;
    while (v->i < v->len) {
        unsigned char c = v->s[v->i];
        if (c == '"') {
            v->i++;
            return true;
        }
        if (c < 0x20) return false;
        if (c >= 0x80) {
            if (!jv_utf8(v)) return false;
            continue;
        }
        v->i++;
        if (c != '\\') continue;
        if (v->i >= v->len) return false;
        c = v->s[v->i++];
        if (c != 'u') {
            if (!strchr("\"\\/bfnrt", c) || c == '\0') return false;
            continue;
        }
        int u = jv_hex4(v);
        if (u < 0 || (u >= 0xDC00 && u <= 0xDFFF) || (key && u == 0)) return false;
        if (u >= 0xD800 && u <= 0xDBFF) { /* a high surrogate needs its low half next */
            if (v->len - v->i < 2 || v->s[v->i] != '\\' || v->s[v->i + 1] != 'u') return false;
            v->i += 2;
            int lo = jv_hex4(v);
            if (lo < 0xDC00 || lo > 0xDFFF) return false;
        }
    }
    return false;
}

/* A number at v->i, in JSON's grammar, whose value is finite as a double (jansson, reading
 * every number as a real, refuses one that overflows). */
static bool jv_number(jv *v)
{
    size_t start = v->i;
    const unsigned char *s = v->s;
    if (s[v->i] == '-') v->i++;
    if (v->i >= v->len || s[v->i] < '0' || s[v->i] > '9') return false;
    if (s[v->i] == '0') {
        v->i++;
        if (v->i < v->len && s[v->i] >= '0' && s[v->i] <= '9') return false;
    } else {
        while (v->i < v->len && s[v->i] >= '0' && s[v->i] <= '9')
            v->i++;
    }
    if (v->i < v->len && s[v->i] == '.') {
        v->i++;
        if (v->i >= v->len || s[v->i] < '0' || s[v->i] > '9') return false;
        while (v->i < v->len && s[v->i] >= '0' && s[v->i] <= '9')
            v->i++;
    }
    if (v->i < v->len && (s[v->i] == 'e' || s[v->i] == 'E')) {
        v->i++;
        if (v->i < v->len && (s[v->i] == '+' || s[v->i] == '-')) v->i++;
        if (v->i >= v->len || s[v->i] < '0' || s[v->i] > '9') return false;
        while (v->i < v->len && s[v->i] >= '0' && s[v->i] <= '9')
            v->i++;
    }
    size_t n = v->i - start;
    char small[64];
    char *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf) return false;
    memcpy(buf, s + start, n);
    buf[n] = '\0';
    errno = 0;
    double d = strtod(buf, NULL);
    bool finite = !((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE);
    if (buf != small) free(buf);
    return finite;
}

static bool jv_word(jv *v, const char *w)
{
    size_t n = strlen(w);
    if (v->len - v->i < n || memcmp(v->s + v->i, w, n) != 0) return false;
    v->i += n;
    return true;
}

static bool jv_value(jv *v, int depth)
{
    if (depth > JV_MAX_DEPTH) return false;
    jv_ws(v);
    if (v->i >= v->len) return false;
    unsigned char c = v->s[v->i];
    if (c == '"') return jv_string(v, false);
    if (c == '-' || (c >= '0' && c <= '9')) return jv_number(v);
    if (c == 't') return jv_word(v, "true");
    if (c == 'f') return jv_word(v, "false");
    if (c == 'n') return jv_word(v, "null");
    if (c != '{' && c != '[') return false;
    bool obj = c == '{';
    unsigned char close = obj ? '}' : ']';
    v->i++;
    jv_ws(v);
    if (v->i < v->len && v->s[v->i] == close) {
        v->i++;
        return true;
    }
    for (;;) {
        if (obj) {
            jv_ws(v);
            if (v->i >= v->len || v->s[v->i] != '"' || !jv_string(v, true)) return false;
            jv_ws(v);
            if (v->i >= v->len || v->s[v->i] != ':') return false;
            v->i++;
        }
        if (!jv_value(v, depth + 1)) return false;
        jv_ws(v);
        if (v->i >= v->len) return false;
        c = v->s[v->i++];
        if (c == close) return true;
        if (c != ',') return false;
    }
}

bool ld_json_object_valid(const char *text, size_t len)
{
    jv v = {(const unsigned char *)text, len, 0};
    if (memchr(text, '\0', len)) return false; /* ld_json_nul_free */
    jv_ws(&v);
    if (v.i >= len || text[v.i] != '{' || !jv_value(&v, 1)) return false;
    jv_ws(&v);
    return v.i == len;
}
