/* The purge frontier (docs/replication.md, "Purging tombstones"): the stamp below which this
 * node will never again receive an op of a database from a known writer, computed from what it
 * holds of each origin and the clock promises the origins sent. A pure function, so the unit
 * tests check it without a node. */
#ifndef LD_FRONTIER_H
#define LD_FRONTIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What this node knows of one origin (a node that writes, or may write, to the database). */
typedef struct ld_frontier_origin {
    uint64_t vv;         /* VV[origin]: its ops held here are 1..vv */
    uint64_t last_stamp; /* the stamp of op (origin, vv); 0 when unknown */
    /* The origin's last promise: each of its ops after promise_seq is stamped above
     * promise_hlc. has_promise false: none received yet. */
    bool has_promise;
    uint64_t promise_seq, promise_hlc;
} ld_frontier_origin;

/* The lowest stamp an op of this origin that is not held here yet can carry (exclusive): any
 * such op is stamped above it. */
uint64_t ld_frontier_origin_bound(const ld_frontier_origin *o);

/* R = min(hlc_now, min over origins of max(bound(o), cap_stamp)): every op of a known origin
 * that may still arrive is stamped above R. cap_stamp (now - Node.OperationLogMaxRetentionDays)
 * is the hard cap: an origin silent longer stops holding R back, as it stops holding op-log
 * pruning back. */
uint64_t ld_frontier(uint64_t hlc_now, uint64_t cap_stamp, const ld_frontier_origin *origins,
                     size_t n);

/* The purge floor to keep: min(R, retention_stamp) (retention_stamp = now -
 * Node.TombstoneRetentionSeconds), never below the stored floor `current`. */
uint64_t ld_purge_floor_next(uint64_t current, uint64_t frontier, uint64_t retention_stamp);

#endif
