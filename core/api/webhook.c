/* POST /webhook-ingestion/{database}/{apiKey}: change events from services that cannot set
 * headers, applied as document upserts and deletes through the writer. GET answers readiness. */
#include "api.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <litedist/auth.h>

#include "../db/names.h"
#include "../util/jsontext.h"
#include "../util/jsonget.h"
#include "../util/timeutil.h"
#include "context.h"
#include "docwrite.h"
#include "write_result.h"

void ld_api_webhook_ready(ld_req *r)
{
    static const char msg[] = "Ingestion endpoint is Ready!";
    ld_reply_text(r, 200, "text/plain; charset=utf-8", msg, sizeof msg - 1);
}

static void webhook_done(ld_wjob *job)
{
    ld_req *r = job->arg;
    if (job->result != LD_WR_OK) {
        /* A new id without WRITE_DOCUMENT, an existing one without UPDATE_DOCUMENT: 403 naming
         * the role, as for PUT. */
        ld_write_reply(r, job);
        ld_wjob_free(job);
        return;
    }
    char version[2 * LD_OP_ID_LEN + 1], when[LD_ISO_TIME_LEN];
    ld_op_id_hex(job->op_id, version);
    ld_iso_time(ld_hlc_ms(job->hlc), when);
    bool deleted = job->kind == LD_W_DELETE;
    ld_reply_json(r, 200,
                  json_pack("{s:b, s:s, s:s, s:s, s:s, s:s, s:b, s:s}", "Accepted", 1, "Database",
                            r->db_name, "Collection", job->collection, "EntityId", job->id,
                            "Action", deleted ? "Delete" : "Upsert", "Version", version,
                            "IsDeleted", deleted, "CommittedUtc", when));
    ld_wjob_free(job);
}

/* Bodies are parsed with integers as reals (any size validates), so an integer id is a real
 * with no fraction; beyond 2^53 it would not be exact, and is refused. */
static bool is_integral(json_t *v)
{
    double d = json_number_value(v);
    return json_is_number(v) && d == floor(d) && fabs(d) < 9007199254740992.0;
}

/* The entity id: data.Id, else data.id, else the first property, else primaryKey. Strings are
 * taken as they are, integers as their digits. Returns a malloc'd string or NULL. */
static char *entity_id(json_t *data, json_t *body)
{
    json_t *v = NULL;
    if (json_is_object(data)) {
        v = json_object_get(data, "Id");
        if (!v) v = json_object_get(data, "id");
        if (!v) {
            void *it = json_object_iter(data);
            if (it) v = json_object_iter_value(it);
        }
    }
    if (!v || !(json_is_string(v) || is_integral(v))) v = ld_json_get_ci(body, "primaryKey");
    if (json_is_string(v)) /* an id with a NUL byte becomes "", which fails validation */
        return strdup(strlen(json_string_value(v)) == json_string_length(v) ? json_string_value(v)
                                                                            : "");
    if (is_integral(v)) {
        char buf[32];
        snprintf(buf, sizeof buf, "%.0f", json_number_value(v));
        return strdup(buf);
    }
    return NULL;
}

void ld_api_webhook(ld_req *r)
{
    /* Path segments may hold NUL bytes; as C strings they would be silently cut short. */
    if (!ld_req_seg_is_text(r, 1)) {
        ld_reply_error(r, 400,
                       "Database name contains invalid characters. Use lowercase "
                       "letters, numbers, '-' or '_' only.");
        return;
    }
    if (!ld_req_seg_is_text(r, 2)) {
        ld_reply_error(r, 401, "ApiKey is invalid.");
        return;
    }
    /* The event's action, read from the body after the question, picks the role. */
    if (!ld_api_begin_with(
            r, r->segs[1], r->segs[2],
            LD_NEED("webhook", 0,
                    LD_ROLE_WRITE_DOCUMENT | LD_ROLE_UPDATE_DOCUMENT | LD_ROLE_DELETE_DOCUMENT)))
        return;
    size_t len;
    char *text = ld_req_body(r, &len);
    if (!text) return;
    json_error_t err;
    json_t *body = ld_json_parse(text, len, &err);
    char *id = NULL;
    if (!body) {
        ld_reply_error(r, 400, "Request body is not valid JSON: %s (line %d, column %d).", err.text,
                       err.line, err.column);
        goto out;
    }
    if (!json_is_object(body)) {
        ld_reply_error(r, 400, "The webhook body must be a JSON object.");
        goto out;
    }
    json_t *entity = ld_json_get_ci(body, "entityName");
    json_t *action = ld_json_get_ci(body, "action");
    json_t *data = ld_json_get_ci(body, "data");
    if (!json_is_string(entity) || !json_string_length(entity)) {
        ld_reply_error(r, 400, "entityName is required.");
        goto out;
    }
    const char *coll = json_string_value(entity);
    if (ld_collection_is_cache(coll)) {
        ld_reply_error(r, 400, "Collection 'cache' is reserved.");
        goto out;
    }
    if (!ld_collection_name_valid(coll, json_string_length(entity)) ||
        ld_collection_is_internal(coll)) {
        ld_reply_error(r, 400, "Invalid collection name.");
        goto out;
    }
    const char *act =
        json_is_string(action) && strlen(json_string_value(action)) == json_string_length(action)
            ? json_string_value(action)
            : "";
    bool is_delete = !strcasecmp(act, "Delete");
    if (!is_delete && strcasecmp(act, "Add") != 0 && strcasecmp(act, "Update") != 0) {
        ld_reply_error(r, 400, "Unsupported action '%s'. Use Add, Update or Delete.", act);
        goto out;
    }
    if (data && !json_is_object(data) && !json_is_null(data)) {
        ld_reply_error(r, 400, "data must be a JSON object.");
        goto out;
    }
    id = entity_id(data, body);
    if (!id || !ld_doc_id_valid(id, strlen(id))) {
        ld_reply_error(r, 400, id ? "Invalid document id." : "The event carries no entity id.");
        goto out;
    }

    if (is_delete) {
        if (!ld_api_has_role(r, LD_ROLE_DELETE_DOCUMENT)) {
            ld_reply_error(r, 403, "ApiKey is not allowed to delete documents.");
            goto out;
        }
        if (!ld_api_ensure_db(r)) goto out;
        ld_wjob *job = ld_doc_job(r, LD_W_DELETE, coll, id, webhook_done);
        if (job) ld_doc_submit(r, job);
        goto out;
    }
    /* Whatever the event's action says, adding a new id needs WRITE_DOCUMENT and overwriting
     * an existing one UPDATE_DOCUMENT (the writer tells which it is): the roles hold here as on
     * every other route. */
    bool may_create = ld_api_has_role(r, LD_ROLE_WRITE_DOCUMENT);
    bool may_update = ld_api_has_role(r, LD_ROLE_UPDATE_DOCUMENT);
    if (!may_create && !may_update) {
        ld_reply_error(r, 403, "ApiKey is not allowed to write documents.");
        goto out;
    }
    if (!json_is_object(data)) {
        ld_reply_error(r, 400, "data must be a JSON object.");
        goto out;
    }
    size_t ds, dl;
    if (!ld_json_member_span(text, len, "data", &ds, &dl)) {
        ld_reply_error(r, 400, "data must be a JSON object.");
        goto out;
    }
    size_t doc_len;
    char *doc = ld_doc_normalize(r, data, text + ds, dl, id, &doc_len);
    if (!doc) goto out;
    if (!ld_api_ensure_db(r)) {
        free(doc);
        goto out;
    }
    ld_wjob *job = ld_doc_job(r, LD_W_PUT, coll, id, webhook_done);
    if (!job) {
        free(doc);
        goto out;
    }
    job->json = doc;
    job->json_len = doc_len;
    job->may_create = may_create;
    job->may_update = may_update;
    ld_doc_submit(r, job);
out:
    free(id);
    json_decref(body);
    free(text);
}
