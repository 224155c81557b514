/* Counters, histograms and the text exposition writer (see metrics.h). */
#include "metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const seconds_text[] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",   "0.1",     "0.25",   "0.5",   "1",      "2.5",   "5",    "10"};
static const double seconds_le[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
/* Per database (a hundred databases make a hundred of each): fewer, wider buckets. */
static const char *const commit_text[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
                                          "0.05",   "0.1",   "0.25",   "0.5",   "1",    "5"};
static const double commit_le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                   0.05,   0.1,   0.25,   0.5,   1,    5};
static const double ops_le[] = {1, 4, 16, 64, 256, 1024};
static const char *const ops_text[] = {"1", "4", "16", "64", "256", "1024"};

const ld_buckets ld_buckets_seconds = {seconds_le, seconds_text,
                                       sizeof seconds_le / sizeof seconds_le[0]};
const ld_buckets ld_buckets_commit_seconds = {commit_le, commit_text,
                                              sizeof commit_le / sizeof commit_le[0]};
const ld_buckets ld_buckets_ops = {ops_le, ops_text, sizeof ops_le / sizeof ops_le[0]};

void ld_hist_observe(ld_hist *h, const ld_buckets *b, double v)
{
    size_t i = 0;
    while (i < b->n && v > b->le[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    if (v > 0)
        atomic_fetch_add_explicit(&h->sum_micro, (uint64_t)(v * 1e6 + 0.5), memory_order_relaxed);
}

/* Lines are built with memcpy into the writer's buffer (snprintf per line was most of a
 * scrape's time with 100 databases). Label values are database names, node ids and route
 * templates: far below LABELS_MAX even escaped. */
#define LABELS_MAX 1024

bool ld_mx_finish(ld_mx *w)
{
    return !w->failed;
}

static void put(ld_mx *w, const char *s, size_t len)
{
    if (w->failed) return;
    if (len > w->cap - w->len) {
        size_t cap = w->cap ? w->cap : 65536;
        while (len > cap - w->len)
            cap *= 2;
        char *grown = realloc(w->buf, cap);
        if (!grown) {
            w->failed = true;
            return;
        }
        w->buf = grown;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, s, len);
    w->len += len;
}

static void puts_(ld_mx *w, const char *s)
{
    put(w, s, strlen(s));
}

/* Decimal digits of v into buf (at least 21 bytes); the length. */
static size_t u64_text(uint64_t v, char *buf)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return n;
}

static size_t value_text(double v, char *buf, size_t cap)
{
    if (isnan(v)) return (size_t)snprintf(buf, cap, "NaN");
    if (isinf(v)) return (size_t)snprintf(buf, cap, "%sInf", v > 0 ? "+" : "-");
    if (v >= 0 && v < 9e15 && v == (double)(uint64_t)v) return u64_text((uint64_t)v, buf);
    return (size_t)snprintf(buf, cap, "%.17g", v);
}

void ld_mx_family(ld_mx *w, const char *name, const char *type, const char *help)
{
    puts_(w, "# HELP ");
    puts_(w, name);
    put(w, " ", 1);
    puts_(w, help);
    puts_(w, "\n# TYPE ");
    puts_(w, name);
    put(w, " ", 1);
    puts_(w, type);
    put(w, "\n", 1);
}

/* k1="v1",k2="v2" with backslash, double quote and line feed escaped (format 0.0.4), into buf;
 * its length, or 0 with w->failed set when it does not fit. */
static size_t format_labels(ld_mx *w, const char *const *labels, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; labels && labels[i] && labels[i + 1]; i += 2) {
        size_t kl = strlen(labels[i]);
        if (o + kl + 4 > cap) goto full;
        if (i) buf[o++] = ',';
        memcpy(buf + o, labels[i], kl);
        o += kl;
        buf[o++] = '=';
        buf[o++] = '"';
        for (const char *p = labels[i + 1]; *p; p++) {
            if (o + 4 > cap) goto full;
            if (*p == '\\' || *p == '"') {
                buf[o++] = '\\';
                buf[o++] = *p;
            } else if (*p == '\n') {
                buf[o++] = '\\';
                buf[o++] = 'n';
            } else {
                buf[o++] = *p;
            }
        }
        buf[o++] = '"';
    }
    buf[o] = '\0';
    return o;
full:
    w->failed = true;
    buf[0] = '\0';
    return 0;
}

/* name<suffix>{labels[,extra]} value\n */
static void line_out(ld_mx *w, const char *name, const char *suffix, const char *labels,
                     size_t llen, const char *extra, const char *value, size_t vlen)
{
    puts_(w, name);
    puts_(w, suffix);
    bool braces = llen || extra[0];
    if (braces) put(w, "{", 1);
    put(w, labels, llen);
    if (llen && extra[0]) put(w, ",", 1);
    puts_(w, extra);
    if (braces) put(w, "}", 1);
    put(w, " ", 1);
    put(w, value, vlen);
    put(w, "\n", 1);
}

void ld_mx_sample(ld_mx *w, const char *name, const char *const *labels, double v)
{
    char lab[LABELS_MAX], num[40];
    size_t ll = format_labels(w, labels, lab, sizeof lab);
    size_t nl = value_text(v, num, sizeof num);
    line_out(w, name, "", lab, ll, "", num, nl);
}

void ld_mx_sample_u64(ld_mx *w, const char *name, const char *const *labels, uint64_t v)
{
    char lab[LABELS_MAX], num[24];
    size_t ll = format_labels(w, labels, lab, sizeof lab);
    size_t nl = u64_text(v, num);
    line_out(w, name, "", lab, ll, "", num, nl);
}

void ld_mx_hist(ld_mx *w, const char *name, const char *const *labels, const ld_buckets *b,
                const ld_hist *h)
{
    char lab[LABELS_MAX], le[48], num[40];
    size_t ll = format_labels(w, labels, lab, sizeof lab);
    uint64_t cum = 0;
    for (size_t i = 0; i <= b->n; i++) {
        cum += atomic_load_explicit(&((ld_hist *)h)->counts[i], memory_order_relaxed);
        const char *bound = i < b->n ? b->text[i] : "+Inf";
        size_t bl = strlen(bound);
        memcpy(le, "le=\"", 4);
        memcpy(le + 4, bound, bl);
        le[4 + bl] = '"';
        le[5 + bl] = '\0';
        line_out(w, name, "_bucket", lab, ll, le, num, u64_text(cum, num));
    }
    uint64_t sum = atomic_load_explicit(&((ld_hist *)h)->sum_micro, memory_order_relaxed);
    size_t nl = value_text((double)sum / 1e6, num, sizeof num);
    line_out(w, name, "_sum", lab, ll, "", num, nl);
    line_out(w, name, "_count", lab, ll, "", num, u64_text(cum, num));
}
