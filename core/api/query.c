/* POST /api/query: LiteQL (docs/query.md). The statement is parsed on the loop (nothing runs for
 * a rejected query); a SELECT then runs on the worker pool in its own read transaction; INSERT,
 * UPDATE and DELETE run as one custom job in the database's writer, so a statement is one
 * storage transaction and every document it changes gets its op-log entry. */
#include "api.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <litedist/auth.h>

#include "../db/apply.h"
#include "../db/names.h"
#include "../db/writer.h"
#include "../query/exec.h"
#include "../query/parser.h"
#include "../query/qbuf.h"
#include "../util/jsontext.h"
#include "../util/workers.h"
#include "context.h"
#include "docwrite.h"
#include "indexes.h"
#include "write_result.h"

#define TAKE_MISSING     200   /* Take absent */
#define TAKE_NONPOSITIVE 100   /* Take <= 0 */
#define TAKE_MAX         10000 /* Take (and TOP n) clamped to this */

/* One row of a write's answer. */
typedef struct wrow {
    char *id;
    uint8_t op_type;
    uint8_t version[LD_OP_ID_LEN];
} wrow;

/* A query in flight: owned by the request until it is answered. */
typedef struct qctx {
    ld_req *r;
    ld_ql_stmt *stmt;
    json_t *query; /* the query text as sent (a string), echoed in the answer */
    long long take;

    /* SELECT (on a worker) */
    ld_ql_select_opts opts;
    ld_status st;
    ld_ql_error err;
    ld_ql_result res;

    /* Writes (in the writer's transaction) */
    char *doc; /* INSERT: the document to store, Id rule applied */
    size_t doc_len;
    char *doc_id;
    bool may_update;   /* INSERT may replace a live document */
    char *set_members; /* UPDATE: the SET object's members without braces and id fields */
    size_t set_len;
    uint64_t matched;
    wrow *rows;
    size_t nrows, cap_rows;
    bool failed; /* err says why; nothing was written */
} qctx;

static void qctx_clear_rows(qctx *c)
{
    for (size_t i = 0; i < c->nrows; i++)
        free(c->rows[i].id);
    c->nrows = 0;
}

static void qctx_free(qctx *c)
{
    if (!c) return;
    ld_ql_stmt_free(c->stmt);
    json_decref(c->query);
    ld_ql_result_free(&c->res);
    free(c->doc);
    free(c->doc_id);
    free(c->set_members);
    qctx_clear_rows(c);
    free(c->rows);
    free(c);
}

/* ---------------------------------------------------------------------------------------------
 * Answers
 * ------------------------------------------------------------------------------------------- */

/* {Query, RequestedTake, MatchedCount, AppliedCount, ReturnedRows, Rows}; rows is array text. */
static void free_rows(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    free(arg);
}

/* The answer; `rows` (malloc'd, NULL: out of memory) goes to the answer's buffer, which frees
 * it once it is sent: a large SELECT's rows are not copied again on the loop. */
static void reply_result(qctx *c, uint64_t matched, uint64_t applied, uint64_t returned, char *rows,
                         size_t rows_len)
{
    ld_req *r = c->r;
    ld_qbuf head;
    ld_qbuf_init(&head);
    ld_qbuf_adds(&head, "{\"Query\":");
    ld_qbuf_json_string(&head, json_string_value(c->query), json_string_length(c->query));
    ld_qbuf_addf(&head,
                 ",\"RequestedTake\":%lld,\"MatchedCount\":%llu,\"AppliedCount\":%llu,"
                 "\"ReturnedRows\":%llu,\"Rows\":",
                 c->take, (unsigned long long)matched, (unsigned long long)applied,
                 (unsigned long long)returned);
    struct evbuffer *out = evbuffer_new();
    bool ok = out && rows && !head.oom && evbuffer_add(out, head.data, head.len) == 0;
    /* On success the buffer owns rows; on failure they are still ours to free. */
    bool given = ok && evbuffer_add_reference(out, rows, rows_len, free_rows, rows) == 0;
    ok = given && evbuffer_add(out, "}", 1) == 0;
    ld_qbuf_free(&head);
    if (!given) free(rows);
    if (!ok) {
        if (out) evbuffer_free(out);
        ld_reply_error(r, 500, "Out of memory.");
        return;
    }
    ld_reply_buffer(r, 200, out);
    evbuffer_free(out);
}

static void reply_query_error(ld_req *r, const ld_ql_error *err)
{
    if (err->code == LD_QE_NOMEM)
        ld_reply_error(r, 500, "Out of memory.");
    else
        ld_reply_error(r, 400, "%s", err->msg);
}

static void reply_storage_error(ld_req *r, ld_status st)
{
    ld_reply_error(r, st == LD_NOMEM ? 500 : 503, "Running the query failed: %s.",
                   ld_status_str(st));
}

/* ---------------------------------------------------------------------------------------------
 * SELECT
 * ------------------------------------------------------------------------------------------- */

static void select_work(void *arg)
{
    qctx *c = arg;
    ld_txn t;
    c->st = ld_txn_begin(&c->r->node->store, c->r->db->st, false, &t);
    if (c->st != LD_OK) return;
    struct ld_index_shared *ix = c->r->db->ix_shared;
    c->st = c->stmt->explain ? ld_ql_explain(&t, ix, c->stmt, &c->res, &c->err)
                             : ld_ql_select(&t, ix, c->stmt, &c->opts, &c->res, &c->err);
    ld_txn_abort(&t);
}

static void select_reply(qctx *c)
{
    if (c->st == LD_INVALID)
        reply_query_error(c->r, &c->err);
    else if (c->st == LD_NOMEM)
        ld_reply_error(c->r, 500, "Out of memory.");
    else if (c->st != LD_OK)
        reply_storage_error(c->r, c->st);
    else {
        char *rows = c->res.rows;
        c->res.rows = NULL; /* handed to the answer */
        reply_result(c, c->res.matched, 0, c->res.returned, rows, c->res.rows_len);
    }
}

static void select_done(void *arg)
{
    qctx *c = arg;
    c->r->node->inflight--;
    select_reply(c);
    qctx_free(c);
}

static void run_select(qctx *c)
{
    ld_req *r = c->r;
    uint64_t limit = (uint64_t)c->take;
    /* The contract: TOP n is LIMIT n, and the row limit is max(Take, n). */
    if (c->stmt->has_top && c->stmt->top > limit)
        limit = c->stmt->top > TAKE_MAX ? TAKE_MAX : c->stmt->top;
    c->opts.row_limit = limit;
    if (!r->db) { /* reads never create a database: it has no documents yet */
        c->st = c->stmt->explain ? ld_ql_explain(NULL, NULL, c->stmt, &c->res, &c->err)
                                 : ld_ql_select(NULL, NULL, c->stmt, &c->opts, &c->res, &c->err);
        select_reply(c);
        qctx_free(c);
        return;
    }
    r->node->inflight++;
    if (!ld_workers_submit(r->node->workers, select_work, select_done, c)) {
        r->node->inflight--;
        ld_reply_error(r, 500, "Out of memory.");
        qctx_free(c);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Writes: one custom writer job per statement
 * ------------------------------------------------------------------------------------------- */

static bool is_id_field(const char *key)
{
    return !strcmp(key, "Id") || !strcmp(key, "id") || !strcmp(key, "_id");
}

static bool is_id_or_reserved(const char *key, void *ctx)
{
    (void)ctx;
    return is_id_field(key) || !strncmp(key, "_sys_", 5);
}

/* Members of the stored document that the SET object replaces (its id fields excepted: an
 * UPDATE never changes a document's id). */
static bool replaced_by_set(const char *key, void *ctx)
{
    return !is_id_or_reserved(key, NULL) && json_object_get(ctx, key) != NULL;
}

static bool add_row(qctx *c, const char *id, const ld_wjob *w)
{
    if (c->nrows == c->cap_rows) {
        size_t cap = c->cap_rows ? c->cap_rows * 2 : 16;
        wrow *rows = realloc(c->rows, cap * sizeof *rows);
        if (!rows) return false;
        c->rows = rows;
        c->cap_rows = cap;
    }
    wrow *row = &c->rows[c->nrows];
    row->id = strdup(id);
    if (!row->id) return false;
    row->op_type = w->op_type;
    memcpy(row->version, w->op_id, LD_OP_ID_LEN);
    c->nrows++;
    return true;
}

/* The stored document with the SET members merged in (shallow: each SET member replaces the
 * document's member of that name), the Id rule applied. NULL when memory runs out or the stored
 * text is not an object (*corrupt). */
static char *merge_set(qctx *c, const char *id, const char *old, size_t old_len, size_t *out_len,
                       bool *corrupt)
{
    *corrupt = false;
    size_t n;
    char *kept =
        ld_json_rewrite_object(old, old_len, NULL, replaced_by_set, c->stmt->object->value, &n);
    if (!kept) { /* out of memory, unless the stored text is not an object at all */
        size_t i = 0;
        while (i < old_len && old[i] && strchr(" \t\r\n", old[i]))
            i++;
        *corrupt = i == old_len || old[i] != '{';
        return NULL;
    }
    char *merged = kept;
    size_t mlen = n;
    if (c->set_len) {
        merged = malloc(n + c->set_len + 2);
        if (!merged) {
            free(kept);
            return NULL;
        }
        memcpy(merged, kept, n - 1); /* without the closing brace */
        mlen = n - 1;
        if (n > 2) merged[mlen++] = ',';
        memcpy(merged + mlen, c->set_members, c->set_len);
        mlen += c->set_len;
        merged[mlen++] = '}';
        merged[mlen] = '\0';
        free(kept);
    }
    json_error_t jerr;
    json_t *obj = ld_json_parse(merged, mlen, &jerr);
    char *doc = NULL;
    if (json_is_object(obj))
        doc = ld_doc_normalize_text(obj, merged, mlen, id, out_len);
    else
        *corrupt = obj != NULL;
    json_decref(obj);
    free(merged);
    return doc;
}

/* Writes one document (PUT of `json`, or a DELETE when json is NULL) through ld_apply_job. */
static ld_status write_one(qctx *c, ld_db *db, ld_txn *t, ld_db_state *pending, const char *id,
                           char *json, size_t json_len, ld_wjob *w)
{
    *w = (ld_wjob){
        .kind = json ? LD_W_PUT : LD_W_DELETE,
        .collection = c->stmt->collection,
        .id = (char *)id,
        .json = json,
        .json_len = json_len,
        .may_create = true,
        .may_update = c->stmt->kind == LD_QS_INSERT ? c->may_update : true,
    };
    ld_status st = ld_apply_job(db, t, pending, w);
    free(w->payload);
    w->payload = NULL;
    return st;
}

static ld_status query_apply(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job)
{
    qctx *c = job->ctx;
    /* A failed group is retried job by job: start from nothing. */
    qctx_clear_rows(c);
    c->matched = 0;
    c->failed = false;
    job->result = LD_WR_OK;
    ld_wjob w;
    if (c->stmt->kind == LD_QS_INSERT) {
        ld_status st = write_one(c, db, t, pending, c->doc_id, c->doc, c->doc_len, &w);
        if (st != LD_OK) return st;
        if (w.result != LD_WR_OK) { /* a live id and no UPDATE_DOCUMENT: nothing written */
            job->result = w.result;
            return LD_OK;
        }
        c->matched = 1;
        return add_row(c, c->doc_id, &w) ? LD_OK : LD_NOMEM;
    }
    /* UPDATE, DELETE: select the ids first (an error here has written nothing), then write. */
    ld_ql_ids ids;
    ld_status st =
        ld_ql_match(t, db->ix_shared, c->stmt, (uint64_t)c->take, &ids, &c->matched, &c->err);
    if (st == LD_INVALID) {
        c->failed = true;
        return LD_OK;
    }
    if (st != LD_OK) return st;
    for (size_t i = 0; i < ids.n && st == LD_OK; i++) {
        if (c->stmt->kind == LD_QS_DELETE) {
            st = write_one(c, db, t, pending, ids.ids[i], NULL, 0, &w);
        } else {
            size_t klen;
            uint8_t *key = ld_doc_key(c->stmt->collection, c->stmt->collection_len, ids.ids[i],
                                      ids.lens[i], &klen);
            if (!key) {
                st = LD_NOMEM;
                break;
            }
            const void *v;
            size_t vl;
            st = ld_txn_get(t, LD_SPACE_DOCS, key, klen, &v, &vl);
            free(key);
            if (st == LD_NOT_FOUND) st = LD_CORRUPT; /* matched a moment ago, same transaction */
            if (st != LD_OK) break;
            ld_doc_rec rec;
            if (!ld_doc_rec_decode(v, vl, &rec)) {
                st = LD_CORRUPT;
                break;
            }
            size_t len;
            bool corrupt;
            char *doc = merge_set(c, ids.ids[i], rec.json, rec.json_len, &len, &corrupt);
            if (!doc) {
                st = corrupt ? LD_CORRUPT : LD_NOMEM;
                break;
            }
            st = write_one(c, db, t, pending, ids.ids[i], doc, len, &w);
            free(doc);
        }
        if (st == LD_OK && !add_row(c, ids.ids[i], &w)) st = LD_NOMEM;
    }
    ld_ql_ids_free(&ids);
    return st;
}

static const char *op_name(uint8_t op_type)
{
    return op_type == LD_OP_INSERT ? "insert" : op_type == LD_OP_UPDATE ? "update" : "delete";
}

static void reply_writes(qctx *c)
{
    ld_qbuf rows;
    ld_qbuf_init(&rows);
    ld_qbuf_addc(&rows, '[');
    for (size_t i = 0; i < c->nrows; i++) {
        char version[2 * LD_OP_ID_LEN + 1];
        ld_op_id_hex(c->rows[i].version, version);
        if (i) ld_qbuf_addc(&rows, ',');
        ld_qbuf_addf(&rows, "{\"operation\":\"%s\",\"collection\":", op_name(c->rows[i].op_type));
        ld_qbuf_json_string(&rows, c->stmt->collection, c->stmt->collection_len);
        ld_qbuf_adds(&rows, ",\"id\":");
        ld_qbuf_json_string(&rows, c->rows[i].id, strlen(c->rows[i].id));
        ld_qbuf_addf(&rows, ",\"version\":\"%s\",\"isDeleted\":%s}", version,
                     c->rows[i].op_type == LD_OP_DELETE ? "true" : "false");
    }
    ld_qbuf_addc(&rows, ']');
    size_t len;
    char *text = ld_qbuf_take(&rows, &len); /* NULL after a failed addition */
    reply_result(c, c->matched, c->nrows, c->nrows, text, len);
}

static void write_done(ld_wjob *job)
{
    qctx *c = job->ctx;
    if (job->result == LD_WR_NEED_UPDATE)
        ld_api_deny_role(c->r, LD_ROLE_UPDATE_DOCUMENT);
    else if (job->result != LD_WR_OK)
        ld_write_reply(c->r, job); /* the storage failed: 503, nothing written */
    else if (c->failed)
        reply_query_error(c->r, &c->err);
    else
        reply_writes(c);
    qctx_free(c);
    ld_wjob_free(job);
}

/* The INSERT's id: its Id, else _id, else a member named id or _id in any case; a string, or
 * an integer written as its digits. NULL (having replied) when there is none. */
static char *insert_id(qctx *c)
{
    json_t *obj = c->stmt->object->value;
    json_t *v = json_object_get(obj, "Id");
    if (!v) v = json_object_get(obj, "_id");
    if (!v) {
        const char *k;
        json_t *m;
        json_object_foreach(obj, k, m) if (!v && (!strcasecmp(k, "id") || !strcasecmp(k, "_id")))
            v = m;
    }
    char buf[32];
    const char *id = NULL;
    size_t len = 0;
    if (json_is_string(v)) {
        id = json_string_value(v);
        len = json_string_length(v);
    } else if (json_is_integer(v)) {
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        id = buf;
        len = strlen(buf);
    } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
               fabs(json_real_value(v)) < 9007199254740992.0) {
        snprintf(buf, sizeof buf, "%.0f", json_real_value(v));
        id = buf;
        len = strlen(buf);
    }
    if (!id) {
        ld_ql_error err;
        ld_ql_error_set(&err, LD_QE_SYNTAX, c->stmt->object->cpos,
                        "INSERT needs an 'Id' or '_id' member holding a string or an integer");
        reply_query_error(c->r, &err);
        return NULL;
    }
    if (!ld_doc_id_valid(id, len)) {
        ld_reply_error(c->r, 400, "Invalid document id.");
        return NULL;
    }
    char *out = strndup(id, len);
    if (!out) ld_reply_error(c->r, 500, "Out of memory.");
    return out;
}

static void run_write(qctx *c)
{
    ld_req *r = c->r;
    const ld_ql_stmt *s = c->stmt;
    if (s->kind == LD_QS_INSERT) {
        if (!(c->doc_id = insert_id(c))) goto fail;
        c->doc = ld_doc_normalize_text(s->object->value, s->object->text, s->object->text_len,
                                       c->doc_id, &c->doc_len);
        if (!c->doc) {
            ld_reply_error(r, 500, "Out of memory.");
            goto fail;
        }
        c->may_update = ld_api_has_role(r, LD_ROLE_UPDATE_DOCUMENT);
        if (!ld_api_ensure_db(r)) goto fail;
    } else {
        if (s->kind == LD_QS_UPDATE) {
            size_t n;
            char *members = ld_json_rewrite_object(s->object->text, s->object->text_len, NULL,
                                                   is_id_or_reserved, NULL, &n);
            if (!members) {
                ld_reply_error(r, 500, "Out of memory.");
                goto fail;
            }
            /* "{...}" -> "..." */
            memmove(members, members + 1, n - 2);
            members[n - 2] = '\0';
            c->set_members = members;
            c->set_len = n - 2;
        }
        if (!r->db) { /* nothing to change, and no database is created for nothing */
            reply_result(c, 0, 0, 0, strdup("[]"), 2);
            qctx_free(c);
            return;
        }
    }
    ld_wjob *job = ld_doc_job(r, LD_W_CUSTOM, s->collection, NULL, write_done);
    if (!job) goto fail;
    job->apply = query_apply;
    job->ctx = c;
    ld_doc_submit(r, job);
    return;
fail:
    qctx_free(c);
}

/* ---------------------------------------------------------------------------------------------
 * The route
 * ------------------------------------------------------------------------------------------- */

/* A body member matched case-insensitively (the exact spelling first). */
static json_t *member_ci(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    if (v) return v;
    const char *k;
    json_t *m;
    json_object_foreach(obj, k, m) if (!strcasecmp(k, name)) return m;
    return NULL;
}

/* Take: a number, or a string holding one; absent 200, <= 0 100, at most 10000. */
static bool read_take(ld_req *r, json_t *v, long long *take)
{
    double d;
    if (!v || json_is_null(v)) {
        *take = TAKE_MISSING;
        return true;
    }
    if (json_is_number(v)) {
        d = json_number_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        d = strtod(s, &end);
        while (*end == ' ')
            end++;
        if (end == s || *end || (size_t)(end - s) != json_string_length(v)) d = NAN;
    } else {
        d = NAN;
    }
    if (!isfinite(d) || d != floor(d)) {
        ld_reply_error(r, 400, "Take must be an integer.");
        return false;
    }
    *take = d <= 0 ? TAKE_NONPOSITIVE : d > TAKE_MAX ? TAKE_MAX : (long long)d;
    return true;
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\n\f\v", s[i]) || !s[i]) return false;
    return true;
}

static uint32_t role_of(ld_ql_kind k)
{
    switch (k) {
    case LD_QS_SELECT:
        return LD_ROLE_READ_DOCUMENT;
    case LD_QS_INSERT:
        return LD_ROLE_WRITE_DOCUMENT;
    case LD_QS_UPDATE:
        return LD_ROLE_UPDATE_DOCUMENT;
    case LD_QS_CREATE_INDEX:
    case LD_QS_DROP_INDEX:
        return LD_ROLE_ADD_DB; /* schema-level, as creating a database (docs/api.md) */
    default:
        return LD_ROLE_DELETE_DOCUMENT;
    }
}

void ld_api_query(ld_req *r)
{
    /* The statement, parsed after the question, picks the role (and INSERT may update). */
    if (!ld_api_begin(r, LD_NEED("query", 0,
                                 LD_ROLE_READ_DOCUMENT | LD_ROLE_WRITE_DOCUMENT |
                                     LD_ROLE_UPDATE_DOCUMENT | LD_ROLE_DELETE_DOCUMENT |
                                     LD_ROLE_ADD_DB)))
        return;
    bool include_reserved;
    if (!ld_req_param_bool(r, "includeReservedFields", false, &include_reserved)) return;
    size_t len;
    char *text = ld_req_body(r, &len);
    if (!text) return;
    json_error_t jerr;
    json_t *body = ld_json_parse(text, len, &jerr);
    free(text);
    qctx *c = NULL;
    if (!body) {
        ld_reply_error(r, 400, "Request body is not valid JSON: %s (line %d, column %d).",
                       jerr.text, jerr.line, jerr.column);
        goto out;
    }
    if (!json_is_object(body)) {
        ld_reply_error(r, 400,
                       "The body must be a JSON object: {\"Query\": \"...\", \"Take\": 200}.");
        goto out;
    }
    json_t *q = member_ci(body, "Query");
    if (q && !json_is_string(q) && !json_is_null(q)) {
        ld_reply_error(r, 400, "Query must be a string.");
        goto out;
    }
    if (!q || json_is_null(q) || blank(json_string_value(q), json_string_length(q))) {
        ld_reply_error(r, 400, "Query is required.");
        goto out;
    }
    long long take;
    if (!read_take(r, member_ci(body, "Take"), &take)) goto out;

    c = calloc(1, sizeof *c);
    if (!c) {
        ld_reply_error(r, 500, "Out of memory.");
        goto out;
    }
    c->r = r;
    c->query = json_incref(q);
    c->take = take;
    c->opts.include_reserved = include_reserved;
    c->opts.max_bytes = r->node->cfg.max_list_bytes; /* Rows stop there (docs/query.md) */
    ld_ql_limits lim = {.max_length = r->node->cfg.max_query_length,
                        .max_depth = r->node->cfg.max_query_depth};
    c->stmt = ld_ql_parse(json_string_value(q), json_string_length(q), &lim, &c->err);
    if (!c->stmt) {
        reply_query_error(r, &c->err);
        goto out;
    }
    uint32_t role = role_of(c->stmt->kind);
    if (!ld_api_has_role(r, role)) {
        ld_api_deny_role(r, role);
        goto out;
    }
    const char *coll = c->stmt->collection;
    if (!ld_collection_name_valid(coll, c->stmt->collection_len)) {
        ld_reply_error(r, 400, "Invalid collection name.");
        goto out;
    }
    if (ld_collection_is_cache(coll)) {
        ld_reply_error(r, 403, "Collection 'cache' is reserved. Use '/api/cache' endpoints.");
        goto out;
    }
    if (ld_collection_is_internal(coll)) {
        ld_reply_error(r, 403, "Collection '%s' is reserved for internal use.", coll);
        goto out;
    }
    json_decref(body);
    if (c->stmt->kind == LD_QS_CREATE_INDEX || c->stmt->kind == LD_QS_DROP_INDEX) {
        ld_api_query_ddl(r, c->stmt, c->query, c->take);
        c->stmt = NULL;
        qctx_free(c);
        return;
    }
    /* EXPLAIN runs nothing: it reads the index definitions in a read transaction, as a SELECT */
    if (c->stmt->kind == LD_QS_SELECT || c->stmt->explain)
        run_select(c);
    else
        run_write(c);
    return;
out:
    qctx_free(c);
    json_decref(body);
}
