/* Metrics primitives (counters and fixed-bucket histograms updated with relaxed atomics, so the
 * loop thread and the writer threads update them without locks) and a writer of the Prometheus
 * text exposition format 0.0.4 that GET /metrics renders them with (api/metrics.c). */
#ifndef LD_METRICS_H
#define LD_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A monotonically increasing count. Zeroed memory (calloc) is a valid counter at 0. */
typedef struct ld_counter {
    _Atomic uint64_t v;
} ld_counter;

static inline void ld_counter_add(ld_counter *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}

static inline uint64_t ld_counter_get(const ld_counter *c)
{
    return atomic_load_explicit(&((ld_counter *)c)->v, memory_order_relaxed);
}

#define LD_HIST_MAX_BUCKETS 16

/* Fixed upper bounds, ascending, shared by every histogram of one family. */
typedef struct ld_buckets {
    const double *le;
    const char *const *text; /* each bound as the le label spells it */
    size_t n;                /* at most LD_HIST_MAX_BUCKETS; +Inf is implicit */
} ld_buckets;

extern const ld_buckets ld_buckets_seconds;        /* 100 us .. 10 s (16), request times */
extern const ld_buckets ld_buckets_commit_seconds; /* 500 us .. 5 s (12), commit times */
extern const ld_buckets ld_buckets_ops;            /* 1 .. 1024 by 4 (6), writes per commit */

/* A histogram: per-bucket counts (not cumulative: one atomic add per observation) and the sum
 * in millionths, so durations sum to the microsecond. Zeroed memory is an empty histogram. */
typedef struct ld_hist {
    _Atomic uint64_t counts[LD_HIST_MAX_BUCKETS + 1]; /* the last one: above every bound */
    _Atomic uint64_t sum_micro;
} ld_hist;

void ld_hist_observe(ld_hist *h, const ld_buckets *b, double v);

/* The exposition writer: families in order, each family's samples together. Label values are
 * escaped here; names are the callers' constants. The text gathers in one growing buffer (buf,
 * malloc'd, owned by whoever set up the writer; it may start as a buffer kept from an earlier
 * scrape, so a scrape touches no fresh memory and the answer is sent from it by reference). */
typedef struct ld_mx {
    char *buf;
    size_t len, cap;
    bool failed; /* memory ran out: the text is incomplete, the caller answers 500 */
} ld_mx;

/* False when anything failed on the way (the text in buf is then incomplete). */
bool ld_mx_finish(ld_mx *w);

/* "# HELP" and "# TYPE" lines; type is "counter", "gauge" or "histogram". */
void ld_mx_family(ld_mx *w, const char *name, const char *type, const char *help);

/* One sample: name{k1="v1",...} value. labels holds key, value pairs and ends with NULL (it may
 * be NULL: no labels). NaN and infinities are written as Prometheus spells them. */
void ld_mx_sample(ld_mx *w, const char *name, const char *const *labels, double v);
void ld_mx_sample_u64(ld_mx *w, const char *name, const char *const *labels, uint64_t v);

/* A histogram's _bucket (cumulative, with le), _sum and _count samples under `name`. */
void ld_mx_hist(ld_mx *w, const char *name, const char *const *labels, const ld_buckets *b,
                const ld_hist *h);

#endif
