/* Growable text buffer and JSON string encoding (see qbuf.h). */
#include "qbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ld_qbuf_init(ld_qbuf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}

void ld_qbuf_free(ld_qbuf *b)
{
    free(b->data);
    ld_qbuf_init(b);
}

static bool reserve(ld_qbuf *b, size_t n)
{
    if (b->oom) return false;
    if (b->len + n + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n + 1) {
        if (cap > ((size_t)-1) / 2) {
            b->oom = true;
            return false;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

bool ld_qbuf_add(ld_qbuf *b, const void *p, size_t n)
{
    if (!reserve(b, n)) return false;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

bool ld_qbuf_addc(ld_qbuf *b, char c)
{
    return ld_qbuf_add(b, &c, 1);
}

bool ld_qbuf_adds(ld_qbuf *b, const char *s)
{
    return ld_qbuf_add(b, s, strlen(s));
}

bool ld_qbuf_addf(ld_qbuf *b, const char *fmt, ...)
{
    char small[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return false;
    }
    if ((size_t)n < sizeof small) return ld_qbuf_add(b, small, (size_t)n);
    if (!reserve(b, (size_t)n)) return false;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return true;
}

bool ld_qbuf_json_string(ld_qbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (!ld_qbuf_addc(b, '"')) return false;
    size_t run = 0; /* bytes copied as they are, flushed in one append */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        if (run && !ld_qbuf_add(b, s + i - run, run)) return false;
        run = 0;
        char esc[7] = {'\\', 0};
        size_t elen = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        if (!ld_qbuf_add(b, esc, elen)) return false;
    }
    if (run && !ld_qbuf_add(b, s + n - run, run)) return false;
    return ld_qbuf_addc(b, '"');
}

char *ld_qbuf_take(ld_qbuf *b, size_t *len)
{
    if (b->oom || !reserve(b, 0)) {
        ld_qbuf_free(b);
        return NULL;
    }
    char *p = b->data;
    p[b->len] = '\0';
    if (len) *len = b->len;
    ld_qbuf_init(b);
    return p;
}
