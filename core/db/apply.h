/* Applying one write job inside the writer's transaction: the document record, its op-log
 * entry, the collection entry and the digest change; and writing the batch's bookkeeping
 * (last sequence, stamp high-water mark, digest, version vector) once per commit. */
#ifndef LD_APPLY_H
#define LD_APPLY_H

#include "../config/config.h"
#include "database.h"
#include "writer.h"

/* Applies job (a PUT, DELETE or REGISTER; a custom job calls it once per document it changes,
 * with a job of its own on the stack, freeing the job's payload after) in t, advancing *pending.
 * Returns LD_OK with job->result set (a refused job writes nothing), or a storage status when the
 * transaction must be aborted. */
ld_status ld_apply_job(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job);

/* ld_apply_job of a PUT or DELETE whose caller has read the current record already (to decide
 * whether to write at all, as a cache write does): key is the job's storage key (ld_doc_key),
 * old the record it holds or NULL when none, decoded from memory the caller owns (not the
 * storage's, which the write invalidates). Saves the second key build and lookup. */
ld_status ld_apply_job_loaded(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job,
                              const uint8_t *key, size_t klen, const ld_doc_rec *old);

/* What ingesting one received op did. */
typedef enum ld_ingest_outcome {
    LD_INGEST_DUP,     /* origin seq <= VV[origin]: already here, nothing written */
    LD_INGEST_GAP,     /* origin seq > VV[origin] + 1: an earlier op is missing, nothing written */
    LD_INGEST_APPLIED, /* logged, and its document state won the merge */
    LD_INGEST_LOGGED,  /* logged (so it is relayed), but the local state won */
    LD_INGEST_REFUSED, /* logged, but stamped below the purge floor for an absent key: kept as a
                        * conflict record (a delete: only logged), the document untouched */
} ld_ingest_outcome;

/* Ingests one op received from a peer (docs/architecture.md §5): skipped when a duplicate or past a
 * gap; refused (LD_INGEST_REFUSED) when its key is absent and it is stamped below the purge floor;
 * otherwise merged into the document by `policy`, appended to the local log whether it won or
 * not, VV[origin] advanced and the node clock moved past its stamp. The caller checks the
 * op's fields (lengths, clock skew) before. */
ld_status ld_apply_remote(ld_db *db, ld_txn *t, ld_db_state *pending, const ld_op_rec *op,
                          ld_conflict_policy policy, ld_ingest_outcome *outcome);

/* The conflicts-space key of a refused op: origin \0 be64 stamp (an origin's stamps are unique),
 * in out (LD_NODE_ID_MAX + 9 bytes). LD_INVALID for an origin too long. */
ld_status ld_conflict_key(const char *origin, size_t origin_len, uint64_t hlc, uint8_t *out,
                          size_t *len);

/* Stores op, whole, as a conflict record (readable over HTTP, never applied). The caller counts
 * it (pending->conflicts). */
ld_status ld_conflict_put(ld_txn *t, const ld_op_rec *op);

/* The same for a stored record of collection/id taken instead of merged (a snapshot's or this
 * node's own): kept as an update op with the record's stamp, origin, version and body. */
ld_status ld_conflict_put_record(ld_txn *t, const char *coll, size_t cl, const char *id, size_t il,
                                 const ld_doc_rec *rec);

/* Merges one record of a snapshot page (key and stored record bytes, checked by the caller) into
 * t by `policy`, as an op with the same stamp would be merged, without an op-log entry: the
 * record replaces the current one when it wins, moving the digest and the stamp high-water mark.
 * `new_collection`: the key's collection differs from the previous record's, so its collection
 * entry is made. Below the purge floor, for a key absent here: a dead record is taken as purged
 * (its term kept in the digest and the purged accumulator), and a live one stamped below
 * `refuse_below` (the floor this node had before the snapshot) becomes a conflict record. *term
 * receives the incoming record's digest term (for the page's check). */
ld_status ld_apply_snapshot_record(ld_db *db, ld_txn *t, ld_db_state *pending, const uint8_t *key,
                                   size_t klen, const uint8_t *val, size_t vlen,
                                   ld_conflict_policy policy, bool new_collection,
                                   uint64_t refuse_below, uint8_t term[LD_DIGEST_LEN]);

/* Makes collection coll known (an entry in the colls space) unless it is. */
ld_status ld_apply_collection(ld_txn *t, const char *coll, size_t len);

/* Writes the bookkeeping of *pending into t. */
ld_status ld_apply_finish(ld_db *db, ld_txn *t, const ld_db_state *pending);

#endif
