/* The contract's WriteResult and OperationRecord JSON, built from a finished writer job. */
#ifndef LD_WRITE_RESULT_H
#define LD_WRITE_RESULT_H

#include <jansson.h>

#include "../db/writer.h"

/* {Collection, EntityId, Version, CommittedUtc, IsDeleted, Operation: {...}}. node_id is the
 * origin of a local write. Returns a new reference, or NULL when out of memory. */
json_t *ld_write_result_json(const ld_wjob *job, const char *node_id);

/* Replies to the job's request according to job->result: 200 WriteResult, 409, 403, 500.
 * For use as (part of) a job's done callback; frees nothing but the request context. */
struct ld_req;
void ld_write_reply(struct ld_req *r, const ld_wjob *job);

#endif
