/* The replicated TTL cache of the contract: PUT, GET and DELETE /api/cache/{key}, and the key
 * list GET /api/cache. Entries are documents of the reserved `cache` collection written through
 * the writer with their op-log entry; expiry is derived from each record's expires_at, so an
 * expired read answers 404 and writes nothing (cache/entry.h). */
#include "api.h"

#include <stdlib.h>
#include <string.h>

#include <litedist/auth.h>

#include "../cache/entry.h"
#include "../cache/scan.h"
#include "../cache/ttl.h"
#include "../db/completions.h"
#include "../db/hlc.h"
#include "../db/names.h"
#include "../util/jsontext.h"
#include "../util/timeutil.h"
#include "context.h"
#include "docwrite.h"
#include "write_result.h"

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The trimmed key of the path (malloc'd), or NULL having replied 400 (or 500). */
static char *take_key(ld_req *r)
{
    const char *s = r->segs[2];
    size_t len = r->seg_lens[2];
    while (len && blank(*s)) {
        s++;
        len--;
    }
    while (len && blank(s[len - 1]))
        len--;
    const char *problem = ld_cache_key_problem(s, len);
    if (problem) {
        ld_reply_error(r, 400, "%s", problem);
        return NULL;
    }
    char *key = strndup(s, len);
    if (!key) ld_reply_error(r, 500, "Out of memory.");
    return key;
}

static void put_done(ld_wjob *job)
{
    ld_req *r = job->arg;
    ld_cache_put *p = job->ctx;
    if (job->result != LD_WR_OK) {
        ld_write_reply(r, job);
    } else {
        char version[2 * LD_OP_ID_LEN + 1], committed[LD_ISO_TIME_LEN], expires[LD_ISO_TIME_LEN];
        char ttl[24];
        ld_op_id_hex(job->op_id, version);
        ld_iso_time(ld_hlc_ms(job->hlc), committed);
        ld_iso_time(p->expires_ms, expires);
        ld_cache_ms_text(p->ttl_ms, ttl);
        json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "Key", job->id, "Version",
                                 version, "CommittedUtc", committed, "ExpiresAtUtc", expires, "Ttl",
                                 ttl, "Durability", ld_cache_durability(job));
        if (body)
            ld_reply_json(r, 200, body);
        else
            ld_reply_error(r, 500, "Out of memory.");
    }
    free(p->value);
    free(p->old_value);
    free(p);
    ld_wjob_free(job);
}

void ld_api_cache_put(ld_req *r)
{
    if (!ld_api_begin(r,
                      LD_NEED("cache.write", 0, LD_ROLE_WRITE_DOCUMENT | LD_ROLE_UPDATE_DOCUMENT)))
        return;
    char *key = take_key(r);
    if (!key) return;
    uint64_t ttl_ms = LD_TTL_DEFAULT_MS;
    const char *ttl = ld_req_param(r, "ttl");
    ld_ttl_status ts = ttl ? ld_ttl_parse(ttl, &ttl_ms) : LD_TTL_OK;
    if (ts != LD_TTL_OK) {
        free(key);
        ld_reply_error(r, 400, "%s", ld_ttl_error(ts));
        return;
    }
    /* WRITE_DOCUMENT creates a key, UPDATE_DOCUMENT overwrites a live one: which one this PUT
     * needs is known only in the writer's transaction. */
    bool may_create = ld_api_has_role(r, LD_ROLE_WRITE_DOCUMENT);
    bool may_update = ld_api_has_role(r, LD_ROLE_UPDATE_DOCUMENT);
    if (!may_create && !may_update) {
        free(key);
        ld_api_deny_role(r, LD_ROLE_WRITE_DOCUMENT);
        return;
    }
    size_t len;
    char *text = ld_req_body(r, &len);
    if (!text) {
        free(key);
        return;
    }
    json_error_t err;
    json_t *value = memchr(text, '\0', len) ? NULL : ld_json_parse(text, len, &err);
    if (!value) {
        if (memchr(text, '\0', len))
            ld_reply_error(r, 400, "Request body is not valid JSON: a NUL byte is not allowed.");
        else
            ld_reply_error(r, 400, "Request body is not valid JSON: %s (line %d, column %d).",
                           err.text, err.line, err.column);
        free(text);
        free(key);
        return;
    }
    json_decref(value);
    /* Stored as sent, without the blanks around it. */
    size_t start = 0;
    while (start < len && blank(text[start]))
        start++;
    while (len > start && blank(text[len - 1]))
        len--;
    memmove(text, text + start, len - start);
    len -= start;
    text[len] = '\0';

    ld_cache_put *p = calloc(1, sizeof *p);
    if (!p || !ld_api_ensure_db(r)) {
        if (!p) ld_reply_error(r, 500, "Out of memory.");
        free(p);
        free(text);
        free(key);
        return;
    }
    ld_wjob *job = ld_doc_job(r, LD_W_CUSTOM, LD_CACHE_COLLECTION, key, put_done);
    free(key);
    if (!job) {
        free(p);
        free(text);
        return;
    }
    p->value = text;
    p->value_len = len;
    p->ttl_ms = ttl_ms;
    job->apply = ld_cache_put_apply;
    job->ctx = p;
    job->may_create = may_create;
    job->may_update = may_update;
    /* Later, as RESP's writes: the PUTs of the connections read in this loop pass go to the
     * writer as one batch (completions.h). r holds the db reference until the reply. */
    ld_node_submit_later(r->node, r->db, job);
}

void ld_api_cache_get(ld_req *r)
{
    if (!ld_api_begin(r, LD_NEED("cache.read", LD_ROLE_READ_DOCUMENT, 0))) return;
    char *key = take_key(r);
    if (!key) return;
    uint8_t *buf = NULL;
    ld_doc_rec rec;
    uint64_t now = r->db ? ld_cache_now_ms(r->db) : 0;
    ld_status st = !r->db
                       ? LD_NOT_FOUND
                       : ld_db_get_doc(r->db, r->node->snaps, LD_CACHE_COLLECTION,
                                       strlen(LD_CACHE_COLLECTION), key, strlen(key), &buf, &rec);
    /* Expired reads as missing, and nothing is written: expiry is derived state. */
    if (st == LD_NOT_FOUND || (st == LD_OK && !ld_cache_rec_live(&rec, now))) {
        ld_reply_error(r, 404, "Cache key '%s' was not found.", key);
    } else if (st != LD_OK) {
        ld_reply_error(r, 500, "Reading the cache entry failed: %s.", ld_status_str(st));
    } else {
        size_t len;
        bool corrupt;
        char *out = ld_cache_get_json(&rec, now, &len, &corrupt);
        if (out)
            ld_reply_text(r, 200, "application/json; charset=utf-8", out, len);
        else if (corrupt)
            ld_reply_error(r, 500, "Cache entry '%s' is not a cache entry document.", key);
        else
            ld_reply_error(r, 500, "Out of memory.");
        free(out);
    }
    free(buf);
    free(key);
}

/* The WriteResult of a document delete, with the Durability a cache write reports. */
static void delete_done(ld_wjob *job)
{
    ld_req *r = job->arg;
    json_t *body = NULL;
    if (job->result == LD_WR_OK) {
        body = ld_write_result_json(job, r->node->node_id);
        if (!body ||
            json_object_set_new(body, "Durability", json_string(ld_cache_durability(job))) != 0) {
            json_decref(body);
            ld_reply_error(r, 500, "Out of memory.");
            ld_wjob_free(job);
            return;
        }
    }
    if (body)
        ld_reply_json(r, 200, body);
    else
        ld_write_reply(r, job);
    ld_wjob_free(job);
}

void ld_api_cache_delete(ld_req *r)
{
    if (!ld_api_begin(r, LD_NEED("cache.delete", LD_ROLE_DELETE_DOCUMENT, 0))) return;
    char *key = take_key(r);
    if (!key) return;
    if (ld_api_ensure_db(r)) {
        ld_wjob *job = ld_doc_job(r, LD_W_DELETE, LD_CACHE_COLLECTION, key, delete_done);
        if (job) ld_node_submit_later(r->node, r->db, job);
    }
    free(key);
}

#define LIST_TAKE_DEFAULT 100
#define LIST_TAKE_MAX     1000
#define LIST_MATCH_MAX    1024
/* Records a page may read on the loop thread, expired and unmatched ones included: as for
 * document lists, max(4 x take, 1000). */
#define LIST_READ_PER_TAKE 4
#define LIST_READ_MIN      1000

typedef struct list_ctx {
    json_t *keys;
    bool failed; /* out of memory, or a stored key that is not UTF-8 */
} list_ctx;

static int list_one(void *ctx, const char *key, size_t key_len, const ld_doc_rec *rec)
{
    list_ctx *lc = ctx;
    char expires[LD_ISO_TIME_LEN], updated[LD_ISO_TIME_LEN];
    ld_iso_time(ld_hlc_ms(rec->hlc), updated);
    ld_iso_time(rec->expires_ms, expires);
    /* json_pack steals the "o" values, also when it fails (a NULL one fails it). */
    json_t *item = json_pack("{s:o, s:s, s:s}", "Key", json_stringn(key, key_len), "ExpiresAtUtc",
                             expires, "UpdatedUtc", updated);
    if (!item || json_array_append_new(lc->keys, item) != 0) {
        lc->failed = true;
        return 1;
    }
    return 0;
}

void ld_api_cache_list(ld_req *r)
{
    if (!ld_api_begin(r, LD_NEED("cache.read", LD_ROLE_READ_DOCUMENT, 0))) return;
    long long take;
    if (!ld_req_param_int(r, "take", LIST_TAKE_DEFAULT, &take)) return;
    if (take < 1 || take > LIST_TAKE_MAX) {
        ld_reply_error(r, 400, "Query parameter 'take' must be between 1 and %d.", LIST_TAKE_MAX);
        return;
    }
    const char *match = ld_req_param(r, "match");
    if (match && (!*match || strlen(match) > LIST_MATCH_MAX)) {
        ld_reply_error(r, 400, "Query parameter 'match' must be a glob pattern of 1 to %d bytes.",
                       LIST_MATCH_MAX);
        return;
    }
    const char *after = ld_req_param(r, "after");
    if (after && !*after) after = NULL; /* after= is the first page */
    const char *problem = after ? ld_cache_key_problem(after, strlen(after)) : NULL;
    if (problem) {
        ld_reply_error(r, 400, "Query parameter 'after' is not a cache key: %s", problem);
        return;
    }
    list_ctx lc = {.keys = json_array()};
    if (!lc.keys) {
        ld_reply_error(r, 500, "Out of memory.");
        return;
    }
    ld_cache_scan scan = {
        .match = match,
        .match_len = match ? strlen(match) : 0,
        .after = after,
        .after_len = after ? strlen(after) : 0,
        .take = (size_t)take,
        .max_read = (size_t)take * LIST_READ_PER_TAKE < LIST_READ_MIN
                        ? LIST_READ_MIN
                        : (size_t)take * LIST_READ_PER_TAKE,
    };
    ld_status st = LD_OK;
    if (r->db) { /* no database yet: no keys */
        scan.now_ms = ld_cache_now_ms(r->db);
        st = ld_cache_scan_page(r->db, &scan, list_one, &lc);
    }
    if (st != LD_OK || lc.failed) {
        free(scan.next);
        json_decref(lc.keys);
        if (st != LD_OK)
            ld_reply_error(r, 500, "Reading the cache keys failed: %s.", ld_status_str(st));
        else
            ld_reply_error(r, 500, "Reading the cache keys failed: out of memory.");
        return;
    }
    json_t *next = scan.next ? json_stringn(scan.next, scan.next_len) : json_null();
    free(scan.next);
    json_t *body = json_pack("{s:o, s:o}", "Keys", lc.keys, "Next", next); /* steals both */
    if (!body) {
        ld_reply_error(r, 500, "Reading the cache keys failed: out of memory.");
        return;
    }
    ld_reply_json(r, 200, body);
}
