/* The RESP parser and reply writers (see proto.h). The parser is stateless between calls: it
 * parses a command from its first byte each time, and p->want spares the re-parse while a large
 * argument is still arriving. Error texts are Redis 7's. */
#include "proto.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

/* Redis's string2ll: an optional '-', then digits without a leading zero (or "0" alone). */
static bool parse_ll(const char *s, size_t n, long long *out)
{
    size_t i = 0;
    bool neg = n > 0 && s[0] == '-';
    if (neg) i++;
    if (i == n || (s[i] == '0' && n - i > 1)) return false;
    unsigned long long v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (9223372036854775807ULL - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = neg ? -(long long)v : (long long)v;
    return true;
}

static ld_resp_status fail(ld_resp_parser *p, const char *msg)
{
    p->error = msg;
    return LD_RESP_ERROR;
}

static bool grow_args(ld_resp_parser *p, size_t n)
{
    if (n <= p->cap) return true;
    size_t cap = p->cap ? p->cap : 8;
    while (cap < n)
        cap *= 2;
    const char **argv = realloc(p->argv, cap * sizeof *argv);
    if (!argv) return false;
    p->argv = argv;
    size_t *lens = realloc(p->lens, cap * sizeof *lens);
    if (!lens) return false;
    p->lens = lens;
    p->cap = cap;
    return true;
}

static ld_resp_status parse_multibulk(ld_resp_parser *p, const ld_resp_limits *lim, const char *buf,
                                      size_t len, size_t *used)
{
    const char *cr = memchr(buf, '\r', len);
    if (!cr) {
        if (len > lim->max_inline) return fail(p, "ERR Protocol error: too big mbulk count string");
        return LD_RESP_MORE;
    }
    size_t pos = (size_t)(cr - buf) + 2; /* Redis takes the byte after '\r' as the '\n' */
    if (pos > len) return LD_RESP_MORE;
    long long count;
    if (!parse_ll(buf + 1, (size_t)(cr - buf) - 1, &count) || count > (long long)lim->max_args)
        return fail(p, "ERR Protocol error: invalid multibulk length");
    if (count <= 0) { /* "*0", "*-1": nothing to run */
        *used = pos;
        return LD_RESP_OK;
    }
    for (size_t i = 0; i < (size_t)count; i++) {
        if (pos >= len) return LD_RESP_MORE;
        if (buf[pos] != '$') {
            snprintf(p->errbuf, sizeof p->errbuf, "ERR Protocol error: expected '$', got '%c'",
                     isprint((unsigned char)buf[pos]) ? buf[pos] : '?');
            return fail(p, p->errbuf);
        }
        cr = memchr(buf + pos, '\r', len - pos);
        if (!cr) {
            if (len - pos > lim->max_inline)
                return fail(p, "ERR Protocol error: too big bulk count string");
            return LD_RESP_MORE;
        }
        long long n;
        size_t hdr = (size_t)(cr - buf);
        if (!parse_ll(buf + pos + 1, hdr - pos - 1, &n) || n < 0 ||
            (unsigned long long)n > lim->max_bulk)
            return fail(p, "ERR Protocol error: invalid bulk length");
        size_t data = hdr + 2;
        if (data > len) return LD_RESP_MORE;
        if (len - data < (size_t)n + 2) {
            p->want = data + (size_t)n + 2;
            return LD_RESP_MORE;
        }
        if (!grow_args(p, i + 1)) return fail(p, "ERR out of memory");
        p->argv[i] = buf + data;
        p->lens[i] = (size_t)n;
        pos = data + (size_t)n + 2;
    }
    p->argc = (size_t)count;
    *used = pos;
    return LD_RESP_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Splits an inline line as Redis's sdssplitargs does: blanks separate arguments; "..." with
 * \n \r \t \b \a \xHH and \<c> escapes, '...' with \' only; a closing quote must be followed by
 * a blank or the end. The arguments are copied into the scratch buffer. */
static ld_resp_status split_inline(ld_resp_parser *p, const ld_resp_limits *lim, const char *s,
                                   size_t n)
{
    if (n + 1 > p->scratch_cap) {
        char *b = realloc(p->scratch, n + 1);
        if (!b) return fail(p, "ERR out of memory");
        p->scratch = b;
        p->scratch_cap = n + 1;
    }
    static const char *unbalanced = "ERR Protocol error: unbalanced quotes in request";
    size_t i = 0, w = 0, argc = 0;
    for (;;) {
        while (i < n && (isspace((unsigned char)s[i]) || s[i] == '\0'))
            i++;
        if (i == n) break;
        size_t start = w;
        bool inq = false, insq = false, done = false;
        while (!done) {
            char c = i < n ? s[i] : '\0';
            bool end = i >= n;
            if (inq) {
                if (end) return fail(p, unbalanced);
                if (c == '\\' && i + 3 < n && s[i + 1] == 'x' && hexval(s[i + 2]) >= 0 &&
                    hexval(s[i + 3]) >= 0) {
                    p->scratch[w++] = (char)(hexval(s[i + 2]) * 16 + hexval(s[i + 3]));
                    i += 3;
                } else if (c == '\\' && i + 1 < n) {
                    char e = s[++i];
                    p->scratch[w++] = e == 'n'   ? '\n'
                                      : e == 'r' ? '\r'
                                      : e == 't' ? '\t'
                                      : e == 'b' ? '\b'
                                      : e == 'a' ? '\a'
                                                 : e;
                } else if (c == '"') {
                    if (i + 1 < n && !isspace((unsigned char)s[i + 1])) return fail(p, unbalanced);
                    done = true;
                } else {
                    p->scratch[w++] = c;
                }
            } else if (insq) {
                if (end) return fail(p, unbalanced);
                if (c == '\\' && i + 1 < n && s[i + 1] == '\'') {
                    p->scratch[w++] = '\'';
                    i++;
                } else if (c == '\'') {
                    if (i + 1 < n && !isspace((unsigned char)s[i + 1])) return fail(p, unbalanced);
                    done = true;
                } else {
                    p->scratch[w++] = c;
                }
            } else if (end || c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\0') {
                done = true;
            } else if (c == '"') {
                inq = true;
            } else if (c == '\'') {
                insq = true;
            } else {
                p->scratch[w++] = c;
            }
            if (!end) i++;
        }
        if (argc == lim->max_args) return fail(p, "ERR Protocol error: invalid multibulk length");
        if (!grow_args(p, argc + 1)) return fail(p, "ERR out of memory");
        p->argv[argc] = p->scratch + start;
        p->lens[argc] = w - start;
        argc++;
    }
    p->argc = argc;
    return LD_RESP_OK;
}

static ld_resp_status parse_inline(ld_resp_parser *p, const ld_resp_limits *lim, const char *buf,
                                   size_t len, size_t *used)
{
    const char *nl = memchr(buf, '\n', len);
    if (!nl) {
        if (len > lim->max_inline) return fail(p, "ERR Protocol error: too big inline request");
        return LD_RESP_MORE;
    }
    size_t n = (size_t)(nl - buf);
    if (n > lim->max_inline) return fail(p, "ERR Protocol error: too big inline request");
    if (n && buf[n - 1] == '\r') n--;
    ld_resp_status st = split_inline(p, lim, buf, n);
    if (st == LD_RESP_OK) *used = (size_t)(nl - buf) + 1;
    return st;
}

ld_resp_status ld_resp_parse(ld_resp_parser *p, const ld_resp_limits *lim, const char *buf,
                             size_t len, size_t *used)
{
    p->argc = 0;
    p->want = 0;
    p->error = NULL;
    if (len == 0) return LD_RESP_MORE;
    ld_resp_status st = buf[0] == '*' ? parse_multibulk(p, lim, buf, len, used)
                                      : parse_inline(p, lim, buf, len, used);
    if (st != LD_RESP_OK) p->argc = 0;
    return st;
}

void ld_resp_parser_free(ld_resp_parser *p)
{
    free(p->argv);
    free(p->lens);
    free(p->scratch);
    p->argv = NULL;
    p->lens = NULL;
    p->scratch = NULL;
    p->cap = p->scratch_cap = 0;
}

bool ld_resp_simple(struct evbuffer *out, const char *s)
{
    return evbuffer_add_printf(out, "+%s\r\n", s) >= 0;
}

bool ld_resp_error(struct evbuffer *out, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *c = msg; *c; c++) /* one line: a key or name in the text may hold CR or LF */
        if (*c == '\r' || *c == '\n') *c = ' ';
    return evbuffer_add_printf(out, "-%s\r\n", msg) >= 0;
}

bool ld_resp_int(struct evbuffer *out, long long v)
{
    return evbuffer_add_printf(out, ":%lld\r\n", v) >= 0;
}

/* lead, n in decimal, CRLF: a reply's header, formatted without printf (a pipelined GET's
 * reply header cost as much as its value through evbuffer_add_printf). */
static size_t header(char *buf, char lead, size_t n)
{
    char digits[24];
    size_t d = 0;
    do {
        digits[d++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    size_t w = 0;
    buf[w++] = lead;
    while (d)
        buf[w++] = digits[--d];
    buf[w++] = '\r';
    buf[w++] = '\n';
    return w;
}

size_t ld_resp_bulk_head(char *buf, size_t n)
{
    return header(buf, '$', n);
}

bool ld_resp_bulk(struct evbuffer *out, const char *s, size_t n)
{
    char head[24];
    size_t hl = header(head, '$', n);
    if (n > 4096) /* a large value: evbuffer_add copies it once anyway, in as many chains */
        return evbuffer_add(out, head, hl) == 0 && evbuffer_add(out, s, n) == 0 &&
               evbuffer_add(out, "\r\n", 2) == 0;
    /* The usual small value: one contiguous reservation, header, value and CRLF copied in. */
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(out, (ev_ssize_t)(hl + n + 2), &v, 1) != 1) return false;
    char *p = v.iov_base;
    memcpy(p, head, hl);
    memcpy(p + hl, s, n);
    memcpy(p + hl + n, "\r\n", 2);
    v.iov_len = hl + n + 2;
    return evbuffer_commit_space(out, &v, 1) == 0;
}

bool ld_resp_null(struct evbuffer *out, int proto)
{
    return proto >= 3 ? evbuffer_add(out, "_\r\n", 3) == 0 : evbuffer_add(out, "$-1\r\n", 5) == 0;
}

bool ld_resp_null_array(struct evbuffer *out, int proto)
{
    return proto >= 3 ? evbuffer_add(out, "_\r\n", 3) == 0 : evbuffer_add(out, "*-1\r\n", 5) == 0;
}

bool ld_resp_array(struct evbuffer *out, size_t n)
{
    char head[24];
    return evbuffer_add(out, head, header(head, '*', n)) == 0;
}

bool ld_resp_map(struct evbuffer *out, int proto, size_t pairs)
{
    return proto >= 3 ? evbuffer_add_printf(out, "%%%zu\r\n", pairs) >= 0
                      : evbuffer_add_printf(out, "*%zu\r\n", 2 * pairs) >= 0;
}
