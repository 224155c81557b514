/* Purging dead records (tombstones, and expired cache entries whose body the sweeper freed)
 * without letting an older write bring a deleted document back (docs/replication.md, "Purging
 * tombstones"). Run by the op-log pruning pass after each database's log batches: the first
 * writer transaction raises the database's purge floor F = min(frontier, now -
 * Node.TombstoneRetentionSeconds) (never lower), then transactions of at most
 * OperationLogPruningBatchSize deletions remove the dead records stamped below F, walking the
 * records in key order. A purged record's digest term stays in the digest (and in the
 * purged-digest accumulator the snapshot header carries), so purging never changes a digest.
 * Loop thread only; the transactions run on the database's writer. */
#ifndef LD_PURGE_H
#define LD_PURGE_H

#include <stdbool.h>
#include <stdint.h>

struct ld_node;
struct ld_db;

/* What one database's purge did. */
typedef struct ld_purge_result {
    bool ok;         /* every transaction committed */
    uint64_t floor;  /* the purge floor after it */
    uint64_t purged; /* dead records deleted */
    uint64_t dead;   /* dead records kept (stamped at or above the floor) */
    bool complete;   /* the walk reached the last record (dead counts them all) */
} ld_purge_result;

/* Purges db; `log_pruned` (the op-log entries the pass just removed) is recorded with the
 * result as the database's last prune. done runs on the loop once, when the last transaction
 * finished (or the first failed). False when it could not start (out of memory): done does not
 * run then. */
bool ld_purge_db(struct ld_node *n, struct ld_db *db, uint64_t log_pruned,
                 void (*done)(void *arg, const ld_purge_result *res), void *arg);

#endif
