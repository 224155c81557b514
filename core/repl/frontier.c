/* The purge frontier's arithmetic (see frontier.h); the proof is in docs/replication.md. */
#include "frontier.h"

uint64_t ld_frontier_origin_bound(const ld_frontier_origin *o)
{
    /* Ops of an origin arrive in sequence order with increasing stamps: the next one is above
     * the stamp of the last held; and once every op through promise_seq is held, the next was
     * stamped after the promise. */
    uint64_t b = o->last_stamp;
    if (o->has_promise && o->vv >= o->promise_seq && o->promise_hlc > b) b = o->promise_hlc;
    return b;
}

uint64_t ld_frontier(uint64_t hlc_now, uint64_t cap_stamp, const ld_frontier_origin *origins,
                     size_t n)
{
    uint64_t r = hlc_now;
    for (size_t i = 0; i < n; i++) {
        uint64_t b = ld_frontier_origin_bound(&origins[i]);
        if (b < cap_stamp) b = cap_stamp;
        if (b < r) r = b;
    }
    return r;
}

uint64_t ld_purge_floor_next(uint64_t current, uint64_t frontier, uint64_t retention_stamp)
{
    uint64_t f = frontier < retention_stamp ? frontier : retention_stamp;
    return f > current ? f : current;
}
