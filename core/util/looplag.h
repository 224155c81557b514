/* How late the event loop runs its callbacks: a short timer on the base measures how long after
 * its due time it fires, which is how long the loop was busy elsewhere (libevent 2.1 has no
 * prepare/check watchers to time each iteration). Kept as a fixed-bucket histogram plus the
 * maximum since start, and the latest stalls with their times, for the node status route and
 * metrics. Loop thread only. */
#ifndef LD_LOOPLAG_H
#define LD_LOOPLAG_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

typedef struct ld_looplag ld_looplag;

/* The histogram's buckets: bucket i counts lags of at most LD_LOOPLAG_BOUNDS_US[i] microseconds
 * (and above the previous bound); the last bucket counts every lag above the last bound. */
#define LD_LOOPLAG_BUCKETS 12
extern const uint64_t LD_LOOPLAG_BOUNDS_US[LD_LOOPLAG_BUCKETS - 1];

/* The sampling period: a stall longer than this is always seen (as at least its length minus
 * the period). */
#define LD_LOOPLAG_PERIOD_US 5000

/* A lag over LD_LOOPLAG_STALL_US is a stall; the monitor keeps the last LD_LOOPLAG_RECENT with
 * the wall-clock time the timer fired, so that an operator (or a benchmark's probe) can line
 * them up with what else happened on the machine then. */
#define LD_LOOPLAG_STALL_US 5000
#define LD_LOOPLAG_RECENT   64

typedef struct ld_looplag_stall {
    uint64_t at_us;  /* CLOCK_REALTIME microseconds when the late timer fired */
    uint64_t lag_us; /* how late it fired */
} ld_looplag_stall;

typedef struct ld_looplag_stats {
    uint64_t samples;                     /* timer firings measured */
    uint64_t max_us;                      /* the greatest lag seen */
    uint64_t sum_us;                      /* of every lag measured */
    uint64_t p99_us;                      /* the bound of the bucket holding the 99th percentile
                                             (max_us when that is the last bucket); 0: no sample */
    uint64_t buckets[LD_LOOPLAG_BUCKETS]; /* counts, see LD_LOOPLAG_BOUNDS_US */
} ld_looplag_stats;

/* Starts measuring on base, from the loop's first pass (what runs before the loop starts is no
 * lag). NULL when the timer cannot be made. */
ld_looplag *ld_looplag_new(struct event_base *base);

/* The figures so far. */
void ld_looplag_get(const ld_looplag *m, ld_looplag_stats *out);

/* Copies the latest stalls, oldest first, into out (room for max) and returns how many. */
size_t ld_looplag_recent(const ld_looplag *m, ld_looplag_stall *out, size_t max);

/* Stops the timer and frees the monitor. NULL is ignored. */
void ld_looplag_free(ld_looplag *m);

#endif
