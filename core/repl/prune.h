/* Op-log pruning (the contract's OperationLogPruning* settings): every
 * Node.OperationLogPruningIntervalMinutes, and on POST /api/replication/operation-log/prune, each
 * database's oldest op-log entries are deleted in writer transactions of at most
 * Node.OperationLogPruningBatchSize entries, when all of these hold for an entry:
 *   - it is not among the last OperationLogRetainRecentOperations entries;
 *   - it is stamped before now - OperationLogRetentionDays;
 *   - every active peer of the database has it (our push checkpoint for the peer, which the
 *     peer's acknowledgements and its own pulls move, is past it), unless it is stamped before
 *     now - OperationLogMaxRetentionDays: past that hard cap a peer that has not caught up stops
 *     holding pruning back, and comes back by a snapshot.
 * Each pruned op raises the database's log floor (oplog.h), so a peer that lacks it is sent to a
 * snapshot (410) instead of being answered as if nothing were missing. Loop thread only. */
#ifndef LD_PRUNE_H
#define LD_PRUNE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct ld_node;
typedef struct ld_pruner ld_pruner;

/* Starts the periodic runs when pruning is enabled. NULL when out of memory. */
ld_pruner *ld_pruner_new(struct ld_node *node);

/* Runs one pass over every database now; done(ctx, results) is called on the loop with the
 * contract's array [{DatabaseName, Status, Reason, PruneThroughLogSequence, PrunedCount,
 * MaxPrunedLogSequence, PrunedReceiptCount}] (a new reference, NULL when memory failed; [] when
 * pruning is disabled). False when the pass could not start (out of memory). */
bool ld_pruner_run(ld_pruner *p, void (*done)(void *ctx, json_t *results), void *ctx);

/* No more periodic runs (shutdown); a pass in progress finishes its current job. */
void ld_pruner_stop(ld_pruner *p);

/* The hard cap (Node.OperationLogMaxRetentionDays) as a wall time: an op stamped before it stops
 * being held for a peer that lacks it, and a writer silent since stops holding the purge
 * frontier back (purge.h). One rule for both. */
uint64_t ld_prune_cap_ms(const struct ld_node *n, uint64_t now_ms);

/* Frees the pruner after the loop stopped (no job in flight). */
void ld_pruner_free(ld_pruner *p);

#endif
