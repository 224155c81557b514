/* RESP <-> JSON value mapping (see value.h). */
#include "value.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "proto.h"

bool ld_resp_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len) return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += len;
    }
    return true;
}

char *ld_resp_value_to_json(const char *b, size_t n, size_t *out_len, bool *not_utf8)
{
    *not_utf8 = false;
    if (!ld_resp_utf8_valid(b, n)) {
        *not_utf8 = true;
        return NULL;
    }
    size_t need = 2;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)b[i];
        need += c == '"' || c == '\\' ? 2 : c < 0x20 ? 6 : 1;
    }
    char *out = malloc(need + 1);
    if (!out) return NULL;
    static const char hex[] = "0123456789abcdef";
    size_t w = 0;
    out[w++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)b[i];
        if (c == '"' || c == '\\') {
            out[w++] = '\\';
            out[w++] = (char)c;
        } else if (c < 0x20) {
            memcpy(out + w, "\\u00", 4);
            out[w + 4] = hex[c >> 4];
            out[w + 5] = hex[c & 15];
            w += 6;
        } else {
            out[w++] = (char)c;
        }
    }
    out[w++] = '"';
    out[w] = '\0';
    *out_len = w;
    return out;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static bool hex4(const char *s, size_t left, uint32_t *out)
{
    if (left < 4) return false;
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        int d = hex_digit(s[k]);
        if (d < 0) return false;
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return true;
}

/* Decodes the inside of a JSON string literal, in[0..n) without its quotes, as jansson does
 * (\uXXXX to UTF-8, surrogate pairs joined, \u0000 kept as a NUL byte): into out when not NULL,
 * the decoded length in *len either way. False when the text is not a valid literal's inside
 * (a lone surrogate, a bad escape). Done in place because parsing a tree per GET, to read one
 * string, was a fifth of a RESP GET's time. */
static bool unescape(const char *in, size_t n, char *out, size_t *len)
{
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        char c = in[i];
        if (c != '\\') {
            const char *bs = memchr(in + i + 1, '\\', n - i - 1);
            size_t run = bs ? (size_t)(bs - in) : n;
            if (out) memcpy(out + w, in + i, run - i);
            w += run - i;
            i = run;
            continue;
        }
        if (i + 1 >= n) return false;
        char e = in[i + 1];
        i += 2;
        char one = e == '"'    ? '"'
                   : e == '\\' ? '\\'
                   : e == '/'  ? '/'
                   : e == 'b'  ? '\b'
                   : e == 'f'  ? '\f'
                   : e == 'n'  ? '\n'
                   : e == 'r'  ? '\r'
                   : e == 't'  ? '\t'
                               : 0;
        if (one) {
            if (out) out[w] = one;
            w++;
            continue;
        }
        uint32_t cp;
        if (e != 'u' || !hex4(in + i, n - i, &cp)) return false;
        i += 4;
        if (cp >= 0xdc00 && cp <= 0xdfff) return false; /* a low surrogate first */
        if (cp >= 0xd800 && cp <= 0xdbff) {
            uint32_t lo;
            if (n - i < 6 || in[i] != '\\' || in[i + 1] != 'u' ||
                !hex4(in + i + 2, n - i - 2, &lo) || lo < 0xdc00 || lo > 0xdfff)
                return false;
            i += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        unsigned char u[4];
        size_t k;
        if (cp < 0x80) {
            u[0] = (unsigned char)cp, k = 1;
        } else if (cp < 0x800) {
            u[0] = (unsigned char)(0xc0 | cp >> 6), u[1] = (unsigned char)(0x80 | (cp & 0x3f)),
            k = 2;
        } else if (cp < 0x10000) {
            u[0] = (unsigned char)(0xe0 | cp >> 12),
            u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
            u[2] = (unsigned char)(0x80 | (cp & 0x3f)), k = 3;
        } else {
            u[0] = (unsigned char)(0xf0 | cp >> 18),
            u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
            u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f)),
            u[3] = (unsigned char)(0x80 | (cp & 0x3f));
            k = 4;
        }
        if (out) memcpy(out + w, u, k);
        w += k;
    }
    *len = w;
    return true;
}

/* A string literal: its inside, when it ends with an unescaped quote. */
static bool string_inside(const char *json, size_t n, const char **in, size_t *in_len)
{
    if (n < 2 || json[0] != '"' || json[n - 1] != '"') return false;
    *in = json + 1;
    *in_len = n - 2;
    return true;
}

const char *ld_resp_value_from_json(const char *json, size_t n, size_t *out_len, char **owned)
{
    *owned = NULL;
    if (n < 1 || json[0] != '"') { /* not a string: its JSON text */
        *out_len = n;
        return json;
    }
    const char *in;
    size_t in_len, len;
    if (!string_inside(json, n, &in, &in_len)) return NULL;
    if (!memchr(in, '\\', in_len)) { /* no escape: the bytes between the quotes */
        *out_len = in_len;
        return in;
    }
    if (!unescape(in, in_len, NULL, &len)) return NULL;
    char *out = malloc(len + 1);
    if (!out) return NULL;
    unescape(in, in_len, out, &len);
    out[len] = '\0';
    *out_len = len;
    *owned = out;
    return out;
}

int ld_resp_bulk_value(struct evbuffer *o, const char *json, size_t n)
{
    const char *in;
    size_t in_len, len;
    if (n < 1 || json[0] != '"') return ld_resp_bulk(o, json, n) ? 0 : -1;
    if (!string_inside(json, n, &in, &in_len)) return 1;
    if (!memchr(in, '\\', in_len)) return ld_resp_bulk(o, in, in_len) ? 0 : -1;
    if (!unescape(in, in_len, NULL, &len)) return 1;
    /* Decoded straight into the reply: no copy of the value on the way. */
    char head[32];
    size_t hl = ld_resp_bulk_head(head, len);
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(o, (ev_ssize_t)(hl + len + 2), &v, 1) != 1) return -1;
    char *p = v.iov_base;
    memcpy(p, head, hl);
    unescape(in, in_len, p + hl, &len);
    memcpy(p + hl + len, "\r\n", 2);
    v.iov_len = hl + len + 2;
    return evbuffer_commit_space(o, &v, 1) == 0 ? 0 : -1;
}
