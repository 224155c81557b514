/* Ingesting a batch of ops received from a peer (push or pull) as one writer job: every op
 * merged through ld_apply_remote, the pull checkpoint moved in the same transaction, so a
 * checkpoint never runs ahead of the data it stands for. */
#ifndef LD_INGEST_H
#define LD_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../config/config.h"
#include "../db/names.h"
#include "../db/writer.h"
#include "wire.h"

typedef struct ld_ingest {
    /* Input, owned by the ingest (ld_ingest_free) */
    ld_wire_op *ops;
    size_t n;
    ld_conflict_policy policy;
    uint64_t max_skew_ms;
    char peer[LD_NODE_ID_MAX + 1]; /* the peer the ops came from */
    bool set_pull_ckpt;            /* a pull: store the peer's checkpoint with the ops */
    uint64_t pull_scanned;         /* the peer's LogSequence scanned through (pull) */

    /* Results, reset on every run */
    size_t processed, accepted;
    uint64_t last_processed; /* sender's LogSequence of the last op processed (0: none) */
    uint64_t pull_ckpt;      /* the checkpoint stored (pull) */
    bool stopped;            /* stopped at a gap or a stamp too far ahead */
    char stop_reason[200];
} ld_ingest;

/* The LD_W_CUSTOM apply function; job->ctx is the ld_ingest. */
ld_status ld_ingest_apply(struct ld_db *db, ld_txn *t, struct ld_db_state *pending, ld_wjob *job);

void ld_ingest_free(ld_ingest *in);

/* Checkpoint keys in the "ckpt" space: peer \0 "push" | "pull". */
size_t ld_ckpt_key(const char *peer, bool push, uint8_t *out /* LD_NODE_ID_MAX + 6 */);

/* Stores checkpoint v of peer in t unless the stored one is already at or past it. */
ld_status ld_ckpt_put(ld_txn *t, const char *peer, bool push, uint64_t v);

/* The checkpoints of one link, saved outside an ingest. */
typedef struct ld_ckpt_pair {
    uint64_t push, pull; /* 0: leave that one as it is */
} ld_ckpt_pair;

/* Stores a link's checkpoints (an LD_W_CUSTOM apply; job->ctx is a heap ld_ckpt_pair and
 * job->id the peer). A stored checkpoint only moves forward: a save that was queued before an
 * ingest moved it further changes nothing. */
ld_status ld_ckpt_save_apply(struct ld_db *db, ld_txn *t, struct ld_db_state *pending,
                             ld_wjob *job);

#endif
