/* Applying one write job inside the writer's transaction: the document record, its op-log
 * entry, the collection entry and the digest change; and writing the batch's bookkeeping
 * (last sequence, stamp high-water mark, digest, version vector) once per commit. */
#ifndef LD_APPLY_H
#define LD_APPLY_H

#include "database.h"
#include "writer.h"

/* Applies job (a PUT, DELETE or REGISTER; a custom job calls it once per document it changes,
 * with a job of its own on the stack, freeing the job's payload after) in t, advancing *pending. Returns LD_OK with job->result set (a refused job
 * writes nothing), or a storage status when the transaction must be aborted. */
ld_status ld_apply_job(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job);

/* Writes the bookkeeping of *pending into t. */
ld_status ld_apply_finish(ld_db *db, ld_txn *t, const ld_db_state *pending);

#endif
