/* The loop-lag monitor (see looplag.h): a one-shot timer re-armed at every firing, so each
 * sample is measured against the due time it was armed for. */
#include "looplag.h"

#include <stdbool.h>
#include <stdlib.h>

#include <event2/event.h>

#include "log.h"
#include "timeutil.h"

const uint64_t LD_LOOPLAG_BOUNDS_US[LD_LOOPLAG_BUCKETS - 1] = {
    250, 500, 1000, 2000, 5000, 10000, 25000, 50000, 100000, 250000, 1000000};

struct ld_looplag {
    struct event *ev;
    uint64_t due_us; /* monotonic: when the armed timer should fire */
    bool running;    /* the loop has run the timer once: samples count from then on */
    ld_looplag_stats s;
    ld_looplag_stall recent[LD_LOOPLAG_RECENT]; /* a ring: the next goes at stalls % RECENT */
    uint64_t stalls;                            /* stalls seen since start */
};

static bool arm(ld_looplag *m)
{
    struct timeval tv = {0, LD_LOOPLAG_PERIOD_US};
    m->due_us = ld_mono_us() + LD_LOOPLAG_PERIOD_US;
    return event_add(m->ev, &tv) == 0;
}

static void record(ld_looplag *m, uint64_t lag)
{
    size_t i = 0;
    while (i < LD_LOOPLAG_BUCKETS - 1 && lag > LD_LOOPLAG_BOUNDS_US[i])
        i++;
    m->s.buckets[i]++;
    m->s.samples++;
    m->s.sum_us += lag;
    if (lag > m->s.max_us) m->s.max_us = lag;
    if (lag > LD_LOOPLAG_STALL_US)
        m->recent[m->stalls++ % LD_LOOPLAG_RECENT] =
            (ld_looplag_stall){.at_us = ld_wall_us(), .lag_us = lag};
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ld_looplag *m = arg;
    uint64_t now = ld_mono_us();
    /* The first firing waited for the loop to start (a node opens its databases meanwhile):
     * it is no lag of the loop's. */
    if (m->running) record(m, now > m->due_us ? now - m->due_us : 0);
    m->running = true;
    if (!arm(m)) ld_log_error("loop-lag monitor: cannot re-arm its timer; lag figures stop here");
}

ld_looplag *ld_looplag_new(struct event_base *base)
{
    ld_looplag *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->ev = evtimer_new(base, tick, m);
    if (!m->ev || !arm(m)) {
        if (m->ev) event_free(m->ev);
        free(m);
        return NULL;
    }
    return m;
}

void ld_looplag_get(const ld_looplag *m, ld_looplag_stats *out)
{
    *out = m->s;
    out->p99_us = 0;
    if (!m->s.samples) return;
    /* The first bucket whose cumulative count reaches 99% of the samples. */
    uint64_t need = m->s.samples - m->s.samples / 100, seen = 0;
    for (size_t i = 0; i < LD_LOOPLAG_BUCKETS; i++) {
        seen += m->s.buckets[i];
        if (seen >= need) {
            out->p99_us = i < LD_LOOPLAG_BUCKETS - 1 ? LD_LOOPLAG_BOUNDS_US[i] : m->s.max_us;
            break;
        }
    }
    if (out->p99_us > out->max_us) out->p99_us = out->max_us;
}

size_t ld_looplag_recent(const ld_looplag *m, ld_looplag_stall *out, size_t max)
{
    uint64_t have = m->stalls < LD_LOOPLAG_RECENT ? m->stalls : LD_LOOPLAG_RECENT;
    size_t n = have < max ? (size_t)have : max;
    /* The newest n, oldest first. */
    for (size_t i = 0; i < n; i++)
        out[i] = m->recent[(m->stalls - n + i) % LD_LOOPLAG_RECENT];
    return n;
}

void ld_looplag_free(ld_looplag *m)
{
    if (!m) return;
    event_free(m->ev);
    free(m);
}
