/* Counters, histograms and the text exposition writer (see metrics.h). */
#include "metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

static const double seconds_le[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
static const double ops_le[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

const ld_buckets ld_buckets_seconds = {seconds_le, sizeof seconds_le / sizeof seconds_le[0]};
const ld_buckets ld_buckets_ops = {ops_le, sizeof ops_le / sizeof ops_le[0]};

void ld_hist_observe(ld_hist *h, const ld_buckets *b, double v)
{
    size_t i = 0;
    while (i < b->n && v > b->le[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    if (v > 0)
        atomic_fetch_add_explicit(&h->sum_micro, (uint64_t)(v * 1e6 + 0.5), memory_order_relaxed);
}

static void add(ld_mx *w, const char *s, size_t len)
{
    if (!w->failed && evbuffer_add(w->out, s, len) != 0) w->failed = true;
}

static void adds(ld_mx *w, const char *s)
{
    add(w, s, strlen(s));
}

void ld_mx_family(ld_mx *w, const char *name, const char *type, const char *help)
{
    if (!w->failed &&
        evbuffer_add_printf(w->out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type) < 0)
        w->failed = true;
}

/* A label value: backslash, double quote and line feed escaped (exposition format 0.0.4). */
static void add_escaped(ld_mx *w, const char *v)
{
    const char *run = v;
    for (const char *p = v; *p; p++) {
        const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
        if (!esc) continue;
        add(w, run, (size_t)(p - run));
        adds(w, esc);
        run = p + 1;
    }
    adds(w, run);
}

/* name{labels[,extra_k="extra_v"]} */
static void add_series(ld_mx *w, const char *name, const char *suffix, const char *const *labels,
                       const char *extra_k, const char *extra_v)
{
    adds(w, name);
    if (suffix) adds(w, suffix);
    if ((!labels || !labels[0]) && !extra_k) return;
    adds(w, "{");
    bool first = true;
    for (size_t i = 0; labels && labels[i] && labels[i + 1]; i += 2) {
        if (!first) adds(w, ",");
        first = false;
        adds(w, labels[i]);
        adds(w, "=\"");
        add_escaped(w, labels[i + 1]);
        adds(w, "\"");
    }
    if (extra_k) {
        if (!first) adds(w, ",");
        adds(w, extra_k);
        adds(w, "=\"");
        adds(w, extra_v);
        adds(w, "\"");
    }
    adds(w, "}");
}

static void add_value(ld_mx *w, double v)
{
    char num[40];
    if (isnan(v))
        snprintf(num, sizeof num, " NaN\n");
    else if (isinf(v))
        snprintf(num, sizeof num, " %sInf\n", v > 0 ? "+" : "-");
    else
        snprintf(num, sizeof num, " %.17g\n", v);
    adds(w, num);
}

static void add_u64(ld_mx *w, uint64_t v)
{
    char num[32];
    snprintf(num, sizeof num, " %" PRIu64 "\n", v);
    adds(w, num);
}

void ld_mx_sample(ld_mx *w, const char *name, const char *const *labels, double v)
{
    add_series(w, name, NULL, labels, NULL, NULL);
    add_value(w, v);
}

void ld_mx_sample_u64(ld_mx *w, const char *name, const char *const *labels, uint64_t v)
{
    add_series(w, name, NULL, labels, NULL, NULL);
    add_u64(w, v);
}

void ld_mx_hist(ld_mx *w, const char *name, const char *const *labels, const ld_buckets *b,
                const ld_hist *h)
{
    uint64_t cum = 0;
    char le[32];
    for (size_t i = 0; i <= b->n; i++) {
        cum += atomic_load_explicit(&((ld_hist *)h)->counts[i], memory_order_relaxed);
        if (i < b->n)
            snprintf(le, sizeof le, "%g", b->le[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        add_series(w, name, "_bucket", labels, "le", le);
        add_u64(w, cum);
    }
    uint64_t sum = atomic_load_explicit(&((ld_hist *)h)->sum_micro, memory_order_relaxed);
    add_series(w, name, "_sum", labels, NULL, NULL);
    add_value(w, (double)sum / 1e6);
    add_series(w, name, "_count", labels, NULL, NULL);
    add_u64(w, cum);
}
