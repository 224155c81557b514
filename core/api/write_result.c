/* WriteResult / OperationRecord JSON and the standard reply to a finished write. */
#include "write_result.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../db/hlc.h"
#include "../http/request.h"
#include "../util/timeutil.h"
#include "context.h"

json_t *ld_write_result_json(const ld_wjob *job, const char *node_id)
{
    char version[2 * LD_OP_ID_LEN + 1], parent[2 * LD_OP_ID_LEN + 1];
    char when[LD_ISO_TIME_LEN], hlc[24];
    ld_op_id_hex(job->op_id, version);
    if (job->had_version) ld_op_id_hex(job->prev_version, parent);
    ld_iso_time(ld_hlc_ms(job->hlc), when);
    snprintf(hlc, sizeof hlc, "%" PRIu64, job->hlc);
    bool deleted = job->op_type == LD_OP_DELETE;
    const char *payload = deleted ? job->payload : job->json;
    size_t payload_len = deleted ? job->payload_len : job->json_len;

    json_t *op = json_object();
    json_t *res = json_object();
    if (!op || !res) goto fail;
    if (json_object_set_new(op, "Id", json_string(version)) ||
        json_object_set_new(op, "NodeId", json_string(node_id)) ||
        json_object_set_new(op, "TimestampUtc", json_string(when)) ||
        json_object_set_new(op, "Collection", json_string(job->collection)) ||
        json_object_set_new(op, "EntityId", json_string(job->id)) ||
        json_object_set_new(op, "OperationType", json_integer(job->op_type)) ||
        json_object_set_new(op, "Payload", json_stringn(payload, payload_len)) ||
        json_object_set_new(op, "Sequence", json_integer((json_int_t)job->origin_seq)) ||
        json_object_set_new(op, "LogSequence", json_integer((json_int_t)job->seq)) ||
        json_object_set_new(op, "GlobalSequence", json_null()) ||
        json_object_set_new(op, "ParentVersion",
                            job->had_version ? json_string(parent) : json_null()) ||
        json_object_set_new(op, "IsTombstone", json_boolean(deleted)) ||
        json_object_set_new(op, "IsSynced", json_false()) ||
        json_object_set_new(op, "Hlc", json_string(hlc)))
        goto fail;
    if (json_object_set_new(res, "Collection", json_string(job->collection)) ||
        json_object_set_new(res, "EntityId", json_string(job->id)) ||
        json_object_set_new(res, "Version", json_string(version)) ||
        json_object_set_new(res, "CommittedUtc", json_string(when)) ||
        json_object_set_new(res, "IsDeleted", json_boolean(deleted)))
        goto fail;
    if (json_object_set_new(res, "Operation", op)) {
        op = NULL;
        goto fail;
    }
    return res;
fail:
    json_decref(op);
    json_decref(res);
    return NULL;
}

void ld_write_reply(ld_req *r, const ld_wjob *job)
{
    char cur[2 * LD_OP_ID_LEN + 1];
    switch (job->result) {
    case LD_WR_OK: {
        json_t *body = ld_write_result_json(job, r->node->node_id);
        if (!body)
            ld_reply_error(r, 500, "Out of memory.");
        else
            ld_reply_json(r, 200, body);
        return;
    }
    case LD_WR_CONFLICT:
        if (job->had_version) ld_op_id_hex(job->prev_version, cur);
        ld_reply_error(r, 409, "Version mismatch for %s/%s. Expected '%s', current is '%s'.",
                       job->collection, job->id, job->pv, job->had_version ? cur : "<null>");
        return;
    case LD_WR_NEED_CREATE:
        ld_api_deny_role(r, LD_ROLE_WRITE_DOCUMENT);
        return;
    case LD_WR_NEED_UPDATE:
        ld_api_deny_role(r, LD_ROLE_UPDATE_DOCUMENT);
        return;
    case LD_WR_STORAGE:
    default:
        ld_reply_error(r, 503,
                       "The write could not be committed to storage; nothing was "
                       "written. Retry the request.");
        return;
    }
}
