/* Version vectors at fixed op-log positions ("logvv" marks), written with the log, so that a
 * reader serving a peer steps over stretches of the log the peer already holds without reading
 * them: a walk of a covered log costs one mark per LD_LOGVV_EVERY entries, not every entry. */
#ifndef LD_LOGVV_H
#define LD_LOGVV_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "database.h"

#define LD_SPACE_LOGVV "logvv" /* be64 LogSequence -> the VV after that entry (logvv.c's form) */

/* A mark is written at every LogSequence that is a multiple of this. */
#define LD_LOGVV_EVERY 256u

/* Called by the writer after the entry at LogSequence seq is in t and the state it changes
 * (the VV space, pending->self_seq) is updated: at a multiple of LD_LOGVV_EVERY, records the
 * database's version vector as of that entry. `self` is this node's origin. */
ld_status ld_logvv_mark(ld_txn *t, const ld_db_state *pending, uint64_t seq, const char *self);

/* From a mark at LogSequence `at`, steps over the stretches between consecutive marks that hold
 * no entry a reader skipping origin `skip_origin` (may be NULL) and every origin seq up to
 * skip_vv[origin] would send: *to is the last mark stepped to (`at` when none, or when `at`
 * has no mark). Found by galloping and bisecting over the marks (O(log n) reads); at most
 * `budget` reads after `at` (*used says how many), and short of that *to is a mark reachable,
 * not always the last. */
ld_status ld_logvv_skip(ld_txn *t, uint64_t at, const char *skip_origin, json_t *skip_vv,
                        size_t budget, uint64_t *to, size_t *used);

/* Removes the marks at LogSequences up to `through` (the log was pruned through it). */
ld_status ld_logvv_prune(ld_txn *t, uint64_t through);

#endif
