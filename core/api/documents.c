/* The document API of the contract: list collections, list/get/upsert/replace/delete documents,
 * register a collection. Reads run on the loop in short read transactions and never create a
 * database (a missing one reads as empty: GETs with made-up names must not make files); writes
 * go to the database's writer and are answered after their commit. */
#include "api.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <litedist/auth.h>

#include "../db/names.h"
#include "../db/completions.h"
#include "../db/writer.h"
#include "../util/jsontext.h"
#include "context.h"
#include "docwrite.h"
#include "write_result.h"

#define TAKE_DEFAULT 100
#define TAKE_MAX     10000
/* skip walks its documents on the loop before the page starts: deep pages use after=<id>. */
#define SKIP_MAX 10000
/* Entries a page may read beyond its skip, tombstones included: a collection of mostly
 * deleted documents is paged through, never read whole in one loop iteration. */
#define READ_PER_TAKE 4
#define READ_MIN      1000

/* ---------------------------------------------------------------------------------------------
 * Names and reserved fields
 * ------------------------------------------------------------------------------------------- */

/* Validates the collection segment; replies and returns false when refused. */
static bool check_collection(ld_req *r, const char *c, size_t len)
{
    if (!ld_collection_name_valid(c, len)) {
        ld_reply_error(r, 400, "Invalid collection name.");
        return false;
    }
    if (ld_collection_is_cache(c)) {
        ld_reply_error(r, 403, "Collection 'cache' is reserved. Use '/api/cache' endpoints.");
        return false;
    }
    if (ld_collection_is_internal(c)) {
        ld_reply_error(r, 403, "Collection '%s' is reserved for internal use.", c);
        return false;
    }
    return true;
}

static bool check_id(ld_req *r, const char *id, size_t len)
{
    if (!ld_doc_id_valid(id, len)) {
        ld_reply_error(r, 400, "Invalid document id.");
        return false;
    }
    return true;
}

static bool is_reserved_field(const char *key, void *ctx)
{
    (void)ctx;
    return !strcmp(key, "_id") || !strncmp(key, "_sys_", 5);
}

static bool is_id_or_reserved_field(const char *key, void *ctx)
{
    return !strcmp(key, "Id") || !strcmp(key, "id") || is_reserved_field(key, ctx);
}

/* Appends a stored document to out, without its reserved fields unless include_reserved. */
static bool append_doc(struct evbuffer *out, const ld_doc_rec *rec, bool include_reserved)
{
    if (include_reserved || !(rec->flags & LD_REC_RESERVED))
        return evbuffer_add(out, rec->json, rec->json_len) == 0;
    size_t n;
    char *clean =
        ld_json_rewrite_object(rec->json, rec->json_len, NULL, is_reserved_field, NULL, &n);
    if (!clean) return false;
    int rc = evbuffer_add(out, clean, n);
    free(clean);
    return rc == 0;
}

/* ---------------------------------------------------------------------------------------------
 * Reads
 * ------------------------------------------------------------------------------------------- */

typedef struct names_ctx {
    char **names;
    size_t n, cap;
    bool include_system;
    bool oom;
} names_ctx;

static int collect_name(void *ctx, const char *name, size_t len)
{
    names_ctx *nc = ctx;
    char *s = strndup(name, len);
    if (!s) {
        nc->oom = true;
        return 1;
    }
    if (!nc->include_system && (ld_collection_is_cache(s) || ld_collection_is_internal(s))) {
        free(s);
        return 0;
    }
    if (nc->n == nc->cap) {
        size_t cap = nc->cap ? nc->cap * 2 : 16;
        char **p = realloc(nc->names, cap * sizeof *p);
        if (!p) {
            free(s);
            nc->oom = true;
            return 1;
        }
        nc->names = p;
        nc->cap = cap;
    }
    nc->names[nc->n++] = s;
    return 0;
}

static int cmp_ci(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    int c = strcasecmp(x, y);
    return c ? c : strcmp(x, y);
}

void ld_api_collections_list(ld_req *r)
{
    if (!ld_api_begin(r, LD_NEED("documents.read", LD_ROLE_READ_DOCUMENT, 0))) return;
    names_ctx nc = {0};
    if (!ld_req_param_bool(r, "includeSystemCollections", false, &nc.include_system)) return;
    if (!r->db) { /* reads never create a database: it has no collections yet */
        ld_reply_json(r, 200, json_array());
        return;
    }
    ld_status st = ld_db_scan_collections(r->db, collect_name, &nc);
    json_t *arr = json_array();
    if (st == LD_OK && !nc.oom && arr) {
        if (nc.n) qsort(nc.names, nc.n, sizeof *nc.names, cmp_ci); /* names is NULL when empty */
        for (size_t i = 0; i < nc.n; i++)
            json_array_append_new(arr, json_string(nc.names[i]));
    }
    for (size_t i = 0; i < nc.n; i++)
        free(nc.names[i]);
    free(nc.names);
    if (st != LD_OK || nc.oom || !arr) {
        json_decref(arr);
        ld_reply_error(r, 500, "Reading the collections failed: %s.",
                       st != LD_OK ? ld_status_str(st) : "out of memory");
        return;
    }
    ld_reply_json(r, 200, arr);
}

typedef struct list_ctx {
    struct evbuffer *out;
    size_t max_bytes;
    bool first;
    bool include_reserved;
    bool oom;
} list_ctx;

static int list_one(void *ctx, const char *id, size_t id_len, const ld_doc_rec *rec)
{
    (void)id;
    (void)id_len;
    list_ctx *lc = ctx;
    if ((!lc->first && evbuffer_add(lc->out, ",", 1) != 0) ||
        !append_doc(lc->out, rec, lc->include_reserved)) {
        lc->oom = true;
        return 1;
    }
    lc->first = false;
    /* Node.MaxListBytes: the page ends here (at least one document, so paging progresses). */
    return evbuffer_get_length(lc->out) >= lc->max_bytes;
}

void ld_api_docs_list(ld_req *r)
{
    if (!ld_api_begin(r, LD_NEED("documents.read", LD_ROLE_READ_DOCUMENT, 0))) return;
    if (!check_collection(r, r->segs[2], r->seg_lens[2])) return;
    long long skip, take;
    list_ctx lc = {.first = true, .max_bytes = r->node->cfg.max_list_bytes};
    if (!ld_req_param_int(r, "skip", 0, &skip) ||
        !ld_req_param_int(r, "take", TAKE_DEFAULT, &take) ||
        !ld_req_param_bool(r, "includeReservedFields", false, &lc.include_reserved))
        return;
    if (skip < 0) skip = 0;
    if (skip > SKIP_MAX) {
        ld_reply_error(r, 400,
                       "Query parameter 'skip' is at most %d; page with after=<the last id "
                       "of the previous page> instead.",
                       SKIP_MAX);
        return;
    }
    if (take < 1) take = 1;
    if (take > TAKE_MAX) take = TAKE_MAX;
    const char *after = ld_req_param(r, "after");
    if (after && !ld_doc_id_valid(after, strlen(after))) {
        ld_reply_error(r, 400, "Query parameter 'after' is not a valid document id.");
        return;
    }
    if (!r->db) {
        ld_reply_json(r, 200, json_array());
        return;
    }
    lc.out = evbuffer_new();
    if (!lc.out || evbuffer_add(lc.out, "[", 1) != 0) {
        if (lc.out) evbuffer_free(lc.out);
        ld_reply_error(r, 500, "Out of memory.");
        return;
    }
    uint64_t read = (uint64_t)take * READ_PER_TAKE;
    ld_doc_page page = {
        .after = after,
        .after_len = after ? strlen(after) : 0,
        .skip = (uint64_t)skip,
        .take = (uint64_t)take,
        .max_read = (uint64_t)skip + (read < READ_MIN ? READ_MIN : read),
    };
    ld_status st = ld_db_scan_docs(r->db, r->segs[2], r->seg_lens[2], &page, list_one, &lc);
    char *next = NULL;
    if (st == LD_OK && page.more && page.next_after &&
        !(next = evhttp_uriencode(page.next_after, (ev_ssize_t)page.next_after_len, 0)))
        lc.oom = true;
    free(page.next_after);
    if (st != LD_OK || lc.oom || evbuffer_add(lc.out, "]", 1) != 0) {
        free(next);
        evbuffer_free(lc.out);
        ld_reply_error(r, 500, "Reading the documents failed: %s.",
                       st != LD_OK ? ld_status_str(st) : "out of memory");
        return;
    }
    /* The page stopped before the collection's end: where the next one starts. */
    if (next) evhttp_add_header(evhttp_request_get_output_headers(r->ev), "X-Next-After", next);
    free(next);
    ld_reply_buffer(r, 200, lc.out);
    evbuffer_free(lc.out);
}

void ld_api_doc_get(ld_req *r)
{
    if (!ld_api_begin(r, LD_NEED("documents.read", LD_ROLE_READ_DOCUMENT, 0))) return;
    if (!check_collection(r, r->segs[2], r->seg_lens[2]) ||
        !check_id(r, r->segs[3], r->seg_lens[3]))
        return;
    bool include_reserved;
    if (!ld_req_param_bool(r, "includeReservedFields", false, &include_reserved)) return;
    uint8_t *buf = NULL;
    ld_doc_rec rec;
    ld_status st = !r->db ? LD_NOT_FOUND
                          : ld_db_get_doc(r->db, r->node->snaps, r->segs[2], r->seg_lens[2],
                                          r->segs[3], r->seg_lens[3], &buf, &rec);
    if (st == LD_NOT_FOUND || (st == LD_OK && (rec.flags & LD_REC_TOMBSTONE))) {
        free(buf);
        ld_reply_error(r, 404, "Document '%s/%s' was not found.", r->segs[2], r->segs[3]);
        return;
    }
    if (st != LD_OK) {
        ld_reply_error(r, 500, "Reading the document failed: %s.", ld_status_str(st));
        return;
    }
    struct evbuffer *out = evbuffer_new();
    bool ok = out && append_doc(out, &rec, include_reserved);
    free(buf);
    if (!ok) {
        if (out) evbuffer_free(out);
        ld_reply_error(r, 500, "Out of memory.");
        return;
    }
    ld_reply_buffer(r, 200, out);
    evbuffer_free(out);
}

/* ---------------------------------------------------------------------------------------------
 * Writes
 * ------------------------------------------------------------------------------------------- */

static void write_done(ld_wjob *job)
{
    ld_req *r = job->arg;
    ld_write_reply(r, job);
    ld_wjob_free(job);
}

static void register_done(ld_wjob *job)
{
    ld_req *r = job->arg;
    if (job->result == LD_WR_OK)
        ld_reply_text(r, 200, "application/json; charset=utf-8", "", 0);
    else
        ld_write_reply(r, job);
    ld_wjob_free(job);
}

ld_wjob *ld_doc_job(ld_req *r, ld_wkind kind, const char *coll, const char *id,
                    void (*done)(ld_wjob *job))
{
    ld_wjob *job = ld_wjob_new(kind, done, r);
    if (job) {
        job->collection = strdup(coll);
        job->id = id ? strdup(id) : NULL;
    }
    if (!job || !job->collection || (id && !job->id)) {
        ld_wjob_free(job);
        ld_reply_error(r, 500, "Out of memory.");
        return NULL;
    }
    return job;
}

/* Reads parentVersion (blank is ignored). */
static void take_parent_version(ld_req *r, ld_wjob *job)
{
    const char *pv = ld_req_param(r, "parentVersion");
    while (pv && *pv == ' ')
        pv++;
    if (pv && *pv) {
        job->has_pv = true;
        snprintf(job->pv, sizeof job->pv, "%s", pv);
    }
}

void ld_doc_submit(ld_req *r, ld_wjob *job)
{
    ld_node_submit(r->node, r->db, job);
}

char *ld_doc_normalize_text(json_t *obj, const char *text, size_t len, const char *id,
                            size_t *out_len)
{
    json_t *idv = json_object_get(obj, "Id");
    bool conforms = json_is_string(idv) && strcmp(json_string_value(idv), id) == 0 &&
                    !json_object_get(obj, "id") && !json_object_get(obj, "_id");
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) if (!strncmp(k, "_sys_", 5)) conforms = false;
    char *out;
    if (conforms) {
        out = malloc(len + 1);
        if (out) {
            memcpy(out, text, len);
            out[len] = '\0';
            *out_len = len;
        }
    } else {
        json_t *idj = json_string(id);
        char *idtext = idj ? json_dumps(idj, JSON_ENCODE_ANY) : NULL;
        json_decref(idj);
        char *prepend = idtext ? malloc(strlen(idtext) + 6) : NULL;
        if (prepend) sprintf(prepend, "\"Id\":%s", idtext);
        out = prepend ? ld_json_rewrite_object(text, len, prepend, is_id_or_reserved_field, NULL,
                                               out_len)
                      : NULL;
        free(idtext);
        free(prepend);
    }
    return out;
}

char *ld_doc_normalize(ld_req *r, json_t *obj, const char *text, size_t len, const char *id,
                       size_t *out_len)
{
    char *out = ld_doc_normalize_text(obj, text, len, id, out_len);
    if (!out) ld_reply_error(r, 500, "Out of memory.");
    return out;
}

/* An upsert needs WRITE_DOCUMENT for a new id, UPDATE_DOCUMENT for an existing one: which, the
 * writer finds out in its transaction, so the one question names both as may-need. */
#define UPSERT_NEED LD_NEED("documents.write", 0, LD_ROLE_WRITE_DOCUMENT | LD_ROLE_UPDATE_DOCUMENT)

/* The shared upsert path of POST and PUT: body checks done, id known. */
static void upsert(ld_req *r, const char *coll, const char *id, json_t *obj, char *text, size_t len)
{
    bool may_create = ld_api_has_role(r, LD_ROLE_WRITE_DOCUMENT);
    bool may_update = ld_api_has_role(r, LD_ROLE_UPDATE_DOCUMENT);
    if (!may_create && !may_update) {
        ld_api_deny_role(r, LD_ROLE_WRITE_DOCUMENT);
        return;
    }
    size_t doc_len;
    char *doc = ld_doc_normalize(r, obj, text, len, id, &doc_len);
    if (!doc) return;
    if (!ld_api_ensure_db(r)) {
        free(doc);
        return;
    }
    ld_wjob *job = ld_doc_job(r, LD_W_PUT, coll, id, write_done);
    if (!job) {
        free(doc);
        return;
    }
    job->json = doc;
    job->json_len = doc_len;
    job->may_create = may_create;
    job->may_update = may_update;
    take_parent_version(r, job);
    ld_doc_submit(r, job);
}

/* Reads and validates a JSON object body. Returns false (replied) when it is not one;
 * not_object_msg is the contract's message for a valid non-object. */
static bool read_object(ld_req *r, const char *not_object_msg, json_t **obj, char **text,
                        size_t *len)
{
    *text = ld_req_body(r, len);
    if (!*text) return false;
    json_error_t err;
    *obj = ld_json_parse(*text, *len, &err);
    if (!*obj) {
        free(*text);
        ld_reply_error(r, 400, "Request body is not valid JSON: %s (line %d, column %d).", err.text,
                       err.line, err.column);
        return false;
    }
    if (!json_is_object(*obj)) {
        json_decref(*obj);
        free(*text);
        ld_reply_error(r, 400, "%s", not_object_msg);
        return false;
    }
    return true;
}

void ld_api_docs_post(ld_req *r)
{
    if (!ld_api_begin(r, UPSERT_NEED)) return;
    if (!check_collection(r, r->segs[2], r->seg_lens[2])) return;
    json_t *obj;
    char *text;
    size_t len;
    static const char *no_id = "POST body must include an 'Id' string field.";
    if (!read_object(r, no_id, &obj, &text, &len)) return;
    json_t *idv = json_object_get(obj, "Id");
    const char *id = json_is_string(idv) ? json_string_value(idv) : NULL;
    size_t id_len = id ? json_string_length(idv) : 0;
    bool blank = true;
    for (size_t i = 0; i < id_len; i++)
        if (id[i] != ' ' && id[i] != '\t') blank = false;
    if (!id || blank)
        ld_reply_error(r, 400, "%s", no_id);
    else if (check_id(r, id, id_len))
        upsert(r, r->segs[2], id, obj, text, len);
    json_decref(obj);
    free(text);
}

void ld_api_doc_put(ld_req *r)
{
    if (!ld_api_begin(r, UPSERT_NEED)) return;
    if (!check_collection(r, r->segs[2], r->seg_lens[2]) ||
        !check_id(r, r->segs[3], r->seg_lens[3]))
        return;
    json_t *obj;
    char *text;
    size_t len;
    if (!read_object(r, "PUT body must be a JSON object.", &obj, &text, &len)) return;
    upsert(r, r->segs[2], r->segs[3], obj, text, len);
    json_decref(obj);
    free(text);
}

void ld_api_doc_delete(ld_req *r)
{
    if (!ld_api_begin(r, LD_NEED("documents.delete", LD_ROLE_DELETE_DOCUMENT, 0))) return;
    if (!check_collection(r, r->segs[2], r->seg_lens[2]) ||
        !check_id(r, r->segs[3], r->seg_lens[3]) || !ld_api_ensure_db(r))
        return;
    ld_wjob *job = ld_doc_job(r, LD_W_DELETE, r->segs[2], r->segs[3], write_done);
    if (!job) return;
    take_parent_version(r, job);
    ld_doc_submit(r, job);
}

void ld_api_collection_register(ld_req *r)
{
    if (!ld_api_begin(r, LD_NEED("collections.register", LD_ROLE_WRITE_DOCUMENT, 0))) return;
    if (!check_collection(r, r->segs[2], r->seg_lens[2]) || !ld_api_ensure_db(r)) return;
    ld_wjob *job = ld_doc_job(r, LD_W_REGISTER, r->segs[2], NULL, register_done);
    if (job) ld_doc_submit(r, job);
}
