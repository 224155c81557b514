/* Indexes over HTTP: CREATE INDEX and DROP INDEX statements of POST /api/query (written as
 * definition records of _sys_indexes in one writer job, so they replicate), and GET /api/indexes
 * listing a database's indexes with their state and size (docs/api.md). */
#include "api.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <litedist/auth.h>

#include "../db/apply.h"
#include "../db/writer.h"
#include "../index/index.h"
#include "../query/parser.h"
#include "../query/qbuf.h"
#include "../util/timeutil.h"
#include "context.h"
#include "docwrite.h"
#include "indexes.h"
#include "write_result.h"

/* A DDL statement in flight: owned by the request until it is answered. */
typedef struct ddl_ctx {
    ld_req *r;
    ld_ql_stmt *stmt;
    json_t *query;
    long long take;
    char *def_id; /* "<collection>.<name>" */
    char *body;   /* CREATE: the definition record */
    size_t body_len;
    bool applied; /* the statement changed something (not an IF [NOT] EXISTS no-op) */
    int fail_status;
    char fail_msg[200];
} ddl_ctx;

static void ddl_free(ddl_ctx *c)
{
    if (!c) return;
    ld_ql_stmt_free(c->stmt);
    json_decref(c->query);
    free(c->def_id);
    free(c->body);
    free(c);
}

/* The answer has the shape of every query answer (docs/query.md): one row naming the index. */
static void ddl_reply(ddl_ctx *c)
{
    const ld_ql_stmt *s = c->stmt;
    ld_qbuf b;
    ld_qbuf_init(&b);
    ld_qbuf_adds(&b, "{\"Query\":");
    ld_qbuf_json_string(&b, json_string_value(c->query), json_string_length(c->query));
    ld_qbuf_addf(&b,
                 ",\"RequestedTake\":%lld,\"MatchedCount\":%d,\"AppliedCount\":%d,"
                 "\"ReturnedRows\":%d,\"Rows\":[",
                 c->take, c->applied, c->applied, c->applied);
    if (c->applied) {
        ld_qbuf_addf(&b, "{\"operation\":\"%s\",\"collection\":",
                     s->kind == LD_QS_CREATE_INDEX ? "createIndex" : "dropIndex");
        ld_qbuf_json_string(&b, s->collection, s->collection_len);
        ld_qbuf_adds(&b, ",\"index\":");
        ld_qbuf_json_string(&b, s->index_name, s->index_name_len);
        ld_qbuf_addc(&b, '}');
    }
    ld_qbuf_adds(&b, "]}");
    if (b.oom) {
        ld_reply_error(c->r, 500, "Out of memory.");
    } else {
        json_error_t e;
        json_t *v = json_loadb(b.data, b.len, 0, &e);
        if (v)
            ld_reply_json(c->r, 200, v);
        else
            ld_reply_error(c->r, 500, "Out of memory.");
    }
    ld_qbuf_free(&b);
}

/* In the writer's transaction: the definition record decides (exists or not), then the record
 * is written or deleted through ld_apply_job, whose index hook defines or drops the index. */
static ld_status ddl_apply(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job)
{
    ddl_ctx *c = job->ctx;
    const ld_ql_stmt *s = c->stmt;
    c->applied = false;
    c->fail_status = 0;
    job->result = LD_WR_OK;
    size_t klen;
    uint8_t *key =
        ld_doc_key(LD_INDEX_DEFS_COLL, LD_INDEX_DEFS_COLL_LEN, c->def_id, strlen(c->def_id), &klen);
    if (!key) return LD_NOMEM;
    const void *v;
    size_t vl;
    ld_status st = ld_txn_get(t, LD_SPACE_DOCS, key, klen, &v, &vl);
    free(key);
    bool live = false;
    if (st == LD_OK) {
        ld_doc_rec rec;
        if (!ld_doc_rec_decode(v, vl, &rec)) return LD_CORRUPT;
        live = !ld_rec_dead(&rec);
    } else if (st != LD_NOT_FOUND) {
        return st;
    }
    bool create = s->kind == LD_QS_CREATE_INDEX;
    if (live == create) { /* CREATE of one that exists, DROP of one that does not */
        if (!s->if_exists) {
            c->fail_status = create ? 409 : 404;
            snprintf(c->fail_msg, sizeof c->fail_msg,
                     create ? "Index '%s' already exists on collection '%s'."
                            : "Index '%s' does not exist on collection '%s'.",
                     s->index_name, s->collection);
        }
        return LD_OK;
    }
    ld_wjob w = {
        .kind = create ? LD_W_PUT : LD_W_DELETE,
        .collection = LD_INDEX_DEFS_COLL,
        .id = c->def_id,
        .json = c->body,
        .json_len = c->body_len,
        .may_create = true,
        .may_update = true,
    };
    st = ld_apply_job(db, t, pending, &w);
    free(w.payload);
    if (st == LD_OK) c->applied = w.result == LD_WR_OK;
    return st;
}

static void ddl_done(ld_wjob *job)
{
    ddl_ctx *c = job->ctx;
    if (job->result != LD_WR_OK)
        ld_write_reply(c->r, job); /* the storage failed: 503, nothing written */
    else if (c->fail_status)
        ld_reply_error(c->r, c->fail_status, "%s", c->fail_msg);
    else
        ddl_reply(c);
    ddl_free(c);
    ld_wjob_free(job);
}

/* The definition record's body: {"Collection", "Name", "Paths"}. */
static char *definition_body(const ld_ql_stmt *s, size_t *len)
{
    json_t *paths = json_array();
    for (size_t i = 0; paths && i < s->nindex_paths; i++)
        if (json_array_append_new(paths, json_string(s->index_paths[i]))) {
            json_decref(paths);
            paths = NULL;
        }
    json_t *v = paths ? json_pack("{sssssO}", "Collection", s->collection, "Name", s->index_name,
                                  "Paths", paths)
                      : NULL;
    json_decref(paths);
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (text) *len = strlen(text);
    return text;
}

void ld_api_query_ddl(ld_req *r, ld_ql_stmt *stmt, json_t *query, long long take)
{
    ddl_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        ld_ql_stmt_free(stmt);
        ld_reply_error(r, 500, "Out of memory.");
        return;
    }
    c->r = r;
    c->stmt = stmt;
    c->query = json_incref(query);
    c->take = take;
    size_t cl = stmt->collection_len, nl = stmt->index_name_len;
    if (!(c->def_id = malloc(cl + 1 + nl + 1))) goto nomem;
    memcpy(c->def_id, stmt->collection, cl);
    c->def_id[cl] = '.';
    memcpy(c->def_id + cl + 1, stmt->index_name, nl + 1);
    if (stmt->kind == LD_QS_CREATE_INDEX) {
        /* The paths were checked by the parser; the index module parses them the same way. */
        for (size_t i = 0; i < stmt->nindex_paths; i++) {
            ld_index_path p;
            char err[200];
            ld_status st = ld_index_parse_path(stmt->index_paths[i], strlen(stmt->index_paths[i]),
                                               &p, err, sizeof err);
            if (st == LD_NOMEM) goto nomem;
            if (st != LD_OK) {
                ld_reply_error(r, 400, "%s", err);
                ddl_free(c);
                return;
            }
            ld_index_path_clear(&p);
        }
        if (!(c->body = definition_body(stmt, &c->body_len))) goto nomem;
        if (!ld_api_ensure_db(r)) {
            ddl_free(c);
            return;
        }
    } else if (!r->db) { /* no database: no index, and none is created for nothing */
        if (stmt->if_exists)
            ddl_reply(c);
        else
            ld_reply_error(r, 404, "Index '%s' does not exist on collection '%s'.",
                           stmt->index_name, stmt->collection);
        ddl_free(c);
        return;
    }
    ld_wjob *job = ld_doc_job(r, LD_W_CUSTOM, stmt->collection, NULL, ddl_done);
    if (!job) {
        ddl_free(c);
        return;
    }
    job->apply = ddl_apply;
    job->ctx = c;
    ld_doc_submit(r, job);
    return;
nomem:
    ld_reply_error(r, 500, "Out of memory.");
    ddl_free(c);
}

/* ---------------------------------------------------------------------------------------------
 * GET /api/indexes
 * ------------------------------------------------------------------------------------------- */

/* The background index work's last failed step, while its retry waits (ld_db.ix_error). */
typedef struct step_failure {
    char error[96]; /* "" when the last step succeeded */
    uint64_t retry_in_ms;
    uint32_t failures;
} step_failure;

static void step_failure_get(ld_db *db, step_failure *f)
{
    uint64_t now = ld_mono_us();
    pthread_mutex_lock(&db->mu);
    memcpy(f->error, db->ix_error, sizeof f->error);
    f->failures = db->ix_failures;
    f->retry_in_ms = db->ix_retry_us > now ? (db->ix_retry_us - now + 999) / 1000 : 0;
    pthread_mutex_unlock(&db->mu);
}

static json_t *index_json(ld_txn *t, const ld_index_def *d, const step_failure *f, ld_status *st)
{
    uint64_t entries, bytes;
    *st = ld_index_size(t, d->num, &entries, &bytes);
    if (*st != LD_OK) return NULL;
    json_t *paths = json_array();
    for (size_t i = 0; paths && i < d->npaths; i++)
        json_array_append_new(paths, json_string(d->paths[i]));
    json_t *v = json_pack("{sssssOsssIsI}", "Name", d->name, "Collection", d->collection, "Paths",
                          paths, "State", d->state == LD_INDEX_READY ? "Ready" : "Building",
                          "Entries", (json_int_t)entries, "Bytes", (json_int_t)bytes);
    json_decref(paths);
    /* A building index waits for the retry of a failed step: say why and when. */
    if (v && d->state != LD_INDEX_READY && f->error[0] &&
        (json_object_set_new(v, "BuildError", json_string(f->error)) ||
         json_object_set_new(v, "BuildFailures", json_integer((json_int_t)f->failures)) ||
         json_object_set_new(v, "BuildRetryInMs", json_integer((json_int_t)f->retry_in_ms)))) {
        json_decref(v);
        v = NULL;
    }
    if (!v) *st = LD_NOMEM;
    return v;
}

void ld_api_indexes_list(ld_req *r)
{
    if (!ld_api_begin(r, LD_NEED("indexes.read", LD_ROLE_READ_DOCUMENT, 0))) return;
    if (!r->db) { /* reads never create a database: it has no indexes yet */
        ld_reply_json(r, 200, json_array());
        return;
    }
    ld_txn t = {0};
    ld_status st = ld_txn_begin(r->db->env->store, r->db->st, false, &t);
    ld_index_set *set = NULL; /* the query threads' parsed copy, not a parse per request */
    if (st == LD_OK) st = ld_index_set_acquire(r->db->ix_shared, &t, &set);
    const ld_index_def *defs = set ? set->defs : NULL;
    size_t n = set ? set->n : 0;
    json_t *arr = st == LD_OK ? json_array() : NULL;
    if (st == LD_OK && !arr) st = LD_NOMEM;
    step_failure f;
    step_failure_get(r->db, &f);
    for (size_t i = 0; i < n && st == LD_OK; i++) {
        json_t *v = index_json(&t, &defs[i], &f, &st);
        if (v && json_array_append_new(arr, v)) st = LD_NOMEM;
    }
    if (t.t) ld_txn_abort(&t);
    ld_index_set_release(r->db->ix_shared, set);
    if (st != LD_OK) {
        json_decref(arr);
        ld_reply_error(r, st == LD_NOMEM ? 500 : 503, "Reading the indexes failed: %s.",
                       ld_status_str(st));
        return;
    }
    ld_reply_json(r, 200, arr);
}
