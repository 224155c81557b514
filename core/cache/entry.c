/* Cache entries in the writer's transaction (see entry.h). */
#include "entry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../db/apply.h"
#include "../db/hlc.h"
#include "../util/jsontext.h"
#include "../util/timeutil.h"

uint64_t ld_cache_now_ms(const ld_db *db)
{
    /* The node's wall clock as its HLC reads it (Node.TestClockOffsetMilliseconds included), the
     * same clock expiries are stamped from. */
    return ld_hlc_wall(db->env->clock);
}

bool ld_cache_rec_live(const ld_doc_rec *rec, uint64_t now_ms)
{
    if (rec->flags & (LD_REC_TOMBSTONE | LD_REC_SWEPT)) return false;
    return rec->expires_ms == 0 || rec->expires_ms > now_ms;
}

const char *ld_cache_durability(const ld_wjob *job)
{
    return job->committed_lazy ? "everysec" : "full";
}

void ld_cache_ms_text(uint64_t ms, char *buf)
{
    snprintf(buf, 24, "%llums", (unsigned long long)ms);
}

char *ld_cache_get_json(const ld_doc_rec *rec, uint64_t now_ms, size_t *len, bool *corrupt)
{
    static const char *const names[] = {"Key", "Value", "CreatedUtc", "UpdatedUtc", "ExpiresAtUtc"};
    size_t start[5], n[5], total = 0;
    *corrupt = false;
    for (int i = 0; i < 5; i++) {
        if (!ld_json_member_span(rec->json, rec->json_len, names[i], &start[i], &n[i])) {
            *corrupt = true;
            return NULL;
        }
        total += strlen(names[i]) + n[i] + 4; /* "name": and , */
    }
    char remaining[24];
    ld_cache_ms_text(rec->expires_ms > now_ms ? rec->expires_ms - now_ms : 0, remaining);
    total += sizeof "{\"RemainingTtl\":\"\"}" + strlen(remaining);
    char *out = malloc(total + 1);
    if (!out) return NULL;
    size_t w = 0;
    out[w++] = '{';
    for (int i = 0; i < 5; i++) {
        w += (size_t)sprintf(out + w, "\"%s\":", names[i]);
        memcpy(out + w, rec->json + start[i], n[i]);
        w += n[i];
        out[w++] = ',';
    }
    w += (size_t)sprintf(out + w, "\"RemainingTtl\":\"%s\"}", remaining);
    *len = w;
    return out;
}

/* Appends s as a JSON string literal. A cache key has no control characters (ld_cache_key_problem
 * refuses them), so only '"' and '\\' need escaping: the text jansson would write, without its
 * allocations on the writer's hot path. */
static size_t put_key(char *out, const char *s, size_t n)
{
    size_t w = 0;
    out[w++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') out[w++] = '\\';
        out[w++] = s[i];
    }
    out[w++] = '"';
    return w;
}

static size_t put_lit(char *out, const char *s, size_t n)
{
    memcpy(out, s, n);
    return n;
}

#define LIT(out, s) put_lit(out, s, sizeof s - 1)

/* {"Id":K,"Key":K,"Value":V,"CreatedUtc":C,"UpdatedUtc":U,"ExpiresAtUtc":E}, built as text so
 * the value keeps the exact form the client sent. `created` is a JSON string literal. Written
 * in one allocation (this runs for every cache write, in the writer's transaction). */
static char *entry_json(const char *key, const char *value, size_t value_len, const char *created,
                        uint64_t updated_ms, uint64_t expires_ms, size_t *out_len)
{
    size_t kl = strlen(key), kq = 2 + kl;
    for (size_t i = 0; i < kl; i++)
        kq += key[i] == '"' || key[i] == '\\';
    char upd[LD_ISO_TIME_LEN], exp[LD_ISO_TIME_LEN];
    ld_iso_time(updated_ms, upd);
    ld_iso_time(expires_ms, exp);
    size_t cl = strlen(created), ul = strlen(upd), el = strlen(exp);
    static const char f0[] = "{\"Id\":", f1[] = ",\"Key\":", f2[] = ",\"Value\":",
                      f3[] = ",\"CreatedUtc\":", f4[] = ",\"UpdatedUtc\":\"",
                      f5[] = "\",\"ExpiresAtUtc\":\"", f6[] = "\"}";
    size_t n = sizeof f0 + sizeof f1 + sizeof f2 + sizeof f3 + sizeof f4 + sizeof f5 + sizeof f6 -
               7 + 2 * kq + value_len + cl + ul + el;
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t w = LIT(out, f0);
    w += put_key(out + w, key, kl);
    w += LIT(out + w, f1);
    w += put_key(out + w, key, kl);
    w += LIT(out + w, f2);
    w += put_lit(out + w, value, value_len);
    w += LIT(out + w, f3);
    w += put_lit(out + w, created, cl);
    w += LIT(out + w, f4);
    w += put_lit(out + w, upd, ul);
    w += LIT(out + w, f5);
    w += put_lit(out + w, exp, el);
    w += LIT(out + w, f6);
    out[w] = '\0';
    *out_len = w;
    return out;
}

/* The job's storage key (*key, free it) and its current record, decoded from a copy (*buf, free
 * it) so that it outlives the write that replaces it: *found false when there is none. */
static ld_status current_rec(ld_txn *t, const ld_wjob *job, uint8_t **key, size_t *klen,
                             uint8_t **buf, bool *found, ld_doc_rec *rec)
{
    *buf = NULL;
    *found = false;
    *key = ld_doc_key(job->collection, strlen(job->collection), job->id, strlen(job->id), klen);
    if (!*key) return LD_NOMEM;
    const void *v;
    size_t vl;
    ld_status st = ld_txn_get(t, LD_SPACE_DOCS, *key, *klen, &v, &vl);
    if (st == LD_NOT_FOUND) return LD_OK;
    if (st != LD_OK) return st;
    if (!(*buf = malloc(vl ? vl : 1))) return LD_NOMEM;
    memcpy(*buf, v, vl);
    if (!ld_doc_rec_decode(*buf, vl, rec)) return LD_CORRUPT;
    *found = true;
    return LD_OK;
}

/* Copies the results of the inner job w, applied by ld_apply_job, to the custom job. */
static void take_results(ld_wjob *job, const ld_wjob *w)
{
    job->result = w->result;
    job->seq = w->seq;
    job->origin_seq = w->origin_seq;
    job->hlc = w->hlc;
    memcpy(job->op_id, w->op_id, LD_OP_ID_LEN);
    job->op_type = w->op_type;
    job->had_version = w->had_version;
    memcpy(job->prev_version, w->prev_version, LD_OP_ID_LEN);
}

static char *span_dup(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (out) {
        memcpy(out, s, n);
        out[n] = '\0';
    }
    return out;
}

static ld_status put_entry(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job,
                           const uint8_t *key, size_t klen, const ld_doc_rec *was);

ld_status ld_cache_put_apply(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job)
{
    ld_cache_put *p = job->ctx;
    /* A failed group is retried job by job: start from nothing. */
    free(job->json);
    job->json = NULL;
    job->json_len = 0;
    job->result = LD_WR_OK;
    free(p->old_value);
    p->old_value = NULL;
    p->old_value_len = 0;
    p->skipped = p->had_live = false;

    bool found;
    ld_doc_rec old;
    uint8_t *key, *oldbuf;
    size_t klen;
    ld_status st = current_rec(t, job, &key, &klen, &oldbuf, &found, &old);
    if (st == LD_OK) st = put_entry(db, t, pending, job, key, klen, found ? &old : NULL);
    free(oldbuf);
    free(key);
    return st;
}

/* ld_cache_put_apply once the key's current record is read (was: NULL when none). */
static ld_status put_entry(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job,
                           const uint8_t *key, size_t klen, const ld_doc_rec *was)
{
    ld_cache_put *p = job->ctx;
    ld_status st;
    bool found = was != NULL;
    ld_doc_rec old = found ? *was : (ld_doc_rec){0};
    uint64_t now = ld_cache_now_ms(db);
    bool live = found && ld_cache_rec_live(&old, now);
    p->had_live = live;
    char created[LD_ISO_TIME_LEN + 2] = "";
    char *kept = NULL; /* the live entry's value, when the write keeps or returns it */
    size_t kept_len = 0;
    if (live) {
        size_t cs, cl;
        if (ld_json_member_span(old.json, old.json_len, "CreatedUtc", &cs, &cl) &&
            cl < sizeof created) {
            memcpy(created, old.json + cs, cl);
            created[cl] = '\0';
        }
        if (p->keep_value || p->want_old) {
            size_t vs, vl;
            if (!ld_json_member_span(old.json, old.json_len, "Value", &vs, &vl)) return LD_CORRUPT;
            if (!(kept = span_dup(old.json + vs, vl))) return LD_NOMEM;
            kept_len = vl;
        }
    }
    if (p->want_old && kept) {
        /* SET GET answers the old value even when NX/XX skip the write. */
        if (!(p->old_value = span_dup(kept, kept_len))) {
            free(kept);
            return LD_NOMEM;
        }
        p->old_value_len = kept_len;
    }
    if ((p->cond == LD_CACHE_IF_ABSENT && live) || (p->cond == LD_CACHE_IF_LIVE && !live)) {
        free(kept);
        p->skipped = true;
        return LD_OK;
    }
    if (live ? !job->may_update : !job->may_create) {
        free(kept);
        job->result = live ? LD_WR_NEED_UPDATE : LD_WR_NEED_CREATE;
        return LD_OK;
    }

    uint64_t stamp = ld_hlc_now(db->env->clock);
    uint64_t ms = ld_hlc_ms(stamp);
    if (live && p->keep_ttl)
        p->expires_ms = old.expires_ms;
    else
        p->expires_ms = p->at ? p->expires_at_ms : ms + p->ttl_ms;
    if (p->expire_cmp && live &&
        (p->expire_cmp > 0 ? p->expires_ms <= old.expires_ms : p->expires_ms >= old.expires_ms)) {
        free(kept);
        p->skipped = true;
        return LD_OK;
    }
    if (!created[0]) {
        created[0] = '"';
        ld_iso_time(ms, created + 1);
        strcat(created, "\"");
    }
    const char *value = p->keep_value ? kept : p->value;
    size_t value_len = p->keep_value ? kept_len : p->value_len;
    size_t json_len;
    char *json = entry_json(job->id, value, value_len, created, ms, p->expires_ms, &json_len);
    free(kept);
    if (!json) return LD_NOMEM;
    ld_wjob w = {
        .kind = LD_W_PUT,
        .collection = job->collection,
        .id = job->id,
        .json = json,
        .json_len = json_len,
        .may_create = true,
        .may_update = true,
        .stamp = stamp,
        .expires_ms = p->expires_ms,
    };
    st = ld_apply_job_loaded(db, t, pending, &w, key, klen, was);
    free(w.payload);
    if (st != LD_OK) {
        free(json);
        return st;
    }
    take_results(job, &w);
    job->json = json;
    job->json_len = json_len;
    return LD_OK;
}

ld_status ld_cache_delete_live_apply(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job)
{
    bool *deleted = job->ctx;
    *deleted = false;
    job->result = LD_WR_OK;
    bool found;
    ld_doc_rec old;
    uint8_t *key, *oldbuf;
    size_t klen;
    ld_status st = current_rec(t, job, &key, &klen, &oldbuf, &found, &old);
    if (st == LD_OK && found && ld_cache_rec_live(&old, ld_cache_now_ms(db))) {
        ld_wjob w = {.kind = LD_W_DELETE, .collection = job->collection, .id = job->id};
        st = ld_apply_job_loaded(db, t, pending, &w, key, klen, &old);
        if (st == LD_OK) {
            take_results(job, &w);
            *deleted = w.result == LD_WR_OK;
        }
        free(w.payload);
    }
    free(oldbuf);
    free(key);
    return st;
}

/* A record to rewrite once the cursor is closed (the ABI forbids writing under an open one). */
typedef struct swept {
    uint8_t *key, *val;
    size_t klen, vlen;
} swept;

static ld_status free_bodies(ld_txn *t, swept *s, size_t n)
{
    ld_status st = LD_OK;
    for (size_t i = 0; i < n && st == LD_OK; i++) {
        ld_doc_rec rec;
        if (!ld_doc_rec_decode(s[i].val, s[i].vlen, &rec)) return LD_CORRUPT;
        rec.flags |= LD_REC_SWEPT;
        rec.json = "";
        rec.json_len = 0;
        size_t len;
        uint8_t *buf = ld_doc_rec_encode(&rec, &len);
        if (!buf) return LD_NOMEM;
        st = ld_txn_put(t, LD_SPACE_DOCS, s[i].key, s[i].klen, buf, len);
        free(buf);
    }
    return st;
}

ld_status ld_cache_sweep_apply(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job)
{
    (void)pending; /* nothing of the replication state changes */
    ld_cache_sweep *sw = job->ctx;
    free(sw->next);
    sw->next = NULL;
    sw->next_len = 0;
    sw->scanned = sw->freed = 0;
    sw->live = sw->expired = 0;
    sw->at_end = false;
    uint64_t started = ld_mono_ms();
    job->result = LD_WR_OK;

    size_t plen;
    uint8_t *prefix = ld_doc_key(LD_CACHE_COLLECTION, strlen(LD_CACHE_COLLECTION), "", 0, &plen);
    swept *todo = calloc(sw->batch ? sw->batch : 1, sizeof *todo);
    if (!prefix || !todo) {
        free(prefix);
        free(todo);
        return LD_NOMEM;
    }
    size_t ntodo = 0;
    uint64_t now = ld_cache_now_ms(db);
    ld_cursor c;
    ld_status st = ld_cursor_open(t, LD_SPACE_DOCS, &c);
    if (st != LD_OK) goto out;
    const void *k, *v;
    size_t kl, vl;
    st = sw->start ? ld_cursor_seek(&c, sw->start, sw->start_len, &k, &kl, &v, &vl)
                   : ld_cursor_seek(&c, prefix, plen, &k, &kl, &v, &vl);
    if (st == LD_OK && sw->start && kl == sw->start_len && memcmp(k, sw->start, kl) == 0)
        st = ld_cursor_next(&c, &k, &kl, &v, &vl); /* the previous page ended on it */
    while (st == LD_OK) {
        if (kl < plen || memcmp(k, prefix, plen) != 0) {
            st = LD_NOT_FOUND; /* past the cache collection */
            break;
        }
        if (sw->scanned == sw->batch || ld_mono_ms() - started >= sw->budget_ms) break;
        ld_doc_rec rec;
        if (!ld_doc_rec_decode(v, vl, &rec)) {
            st = LD_CORRUPT;
            break;
        }
        sw->scanned++;
        if (!(rec.flags & LD_REC_TOMBSTONE)) {
            if ((rec.flags & LD_REC_SWEPT) || (rec.expires_ms && rec.expires_ms <= now))
                sw->expired++;
            else
                sw->live++;
        }
        uint8_t *last = malloc(kl);
        if (!last) {
            st = LD_NOMEM;
            break;
        }
        memcpy(last, k, kl);
        free(sw->next);
        sw->next = last;
        sw->next_len = kl;
        if (!(rec.flags & (LD_REC_TOMBSTONE | LD_REC_SWEPT)) && rec.expires_ms &&
            rec.expires_ms <= now) {
            swept *s = &todo[ntodo];
            s->key = malloc(kl);
            s->val = malloc(vl ? vl : 1);
            if (!s->key || !s->val) {
                free(s->key);
                free(s->val);
                st = LD_NOMEM;
                break;
            }
            memcpy(s->key, k, kl);
            memcpy(s->val, v, vl);
            s->klen = kl;
            s->vlen = vl;
            ntodo++;
        }
        st = ld_cursor_next(&c, &k, &kl, &v, &vl);
    }
    ld_cursor_close(&c);
    if (st == LD_NOT_FOUND) {
        sw->at_end = true;
        st = LD_OK;
    }
    if (st == LD_OK) st = free_bodies(t, todo, ntodo);
    if (st == LD_OK) sw->freed = ntodo;
    sw->elapsed_ms = ld_mono_ms() - started;
out:
    for (size_t i = 0; i < ntodo; i++) {
        free(todo[i].key);
        free(todo[i].val);
    }
    free(todo);
    free(prefix);
    return st;
}
