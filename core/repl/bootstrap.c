/* Merging snapshot pages and keeping the bootstrap's progress (see bootstrap.h). */
#include "bootstrap.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "../db/apply.h"
#include "../index/index.h"
#include "../util/log.h"
#include "../util/jsonget.h"
#include "../util/timeutil.h"
#include "ingest.h"

#define PROGRESS_KEY     "snapshot"
#define PROGRESS_KEY_LEN 8

void ld_boot_progress_clear(ld_boot_progress *p)
{
    json_decref(p->vv);
    memset(p, 0, sizeof *p);
}

void ld_boot_page_free(ld_boot_page *p)
{
    if (!p) return;
    ld_snap_hdr_clear(&p->hdr);
    free(p->buf);
    free(p);
}

/* The progress as JSON text: small, read once per page, and readable in a storage dump. */
static char *progress_encode(const ld_boot_progress *p)
{
    char xor_hex[2 * LD_DIGEST_LEN + 1], src_hex[2 * LD_DIGEST_LEN + 1],
        own_hex[2 * LD_DIGEST_LEN + 1];
    sodium_bin2hex(src_hex, sizeof src_hex, p->src_purged, LD_DIGEST_LEN);
    sodium_bin2hex(own_hex, sizeof own_hex, p->own_purged, LD_DIGEST_LEN);
    char key_b64[sodium_base64_ENCODED_LEN(LD_SNAP_MAX_KEY, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2hex(xor_hex, sizeof xor_hex, p->xor_terms, LD_DIGEST_LEN);
    sodium_bin2base64(key_b64, sizeof key_b64, p->next_key, p->next_key_len,
                      sodium_base64_VARIANT_ORIGINAL);
    json_t *j = json_pack("{s:s, s:I, s:O, s:s, s:I, s:I, s:s, s:b, s:s, s:I}", "Peer", p->peer,
                          "LogSequence", (json_int_t)p->log_seq, "VersionVector", p->vv, "Digest",
                          p->digest, "Total", (json_int_t)p->total, "Done", (json_int_t)p->done,
                          "Xor", xor_hex, "Quiescent", p->quiescent, "NextKey", key_b64,
                          "StartedMs", (json_int_t)p->started_ms);
    char floor_text[24];
    snprintf(floor_text, sizeof floor_text, "%" PRIu64, p->own_floor);
    if (j && (json_object_set_new(j, "SourcePurged", json_string(src_hex)) ||
              json_object_set_new(j, "OwnPurged", json_string(own_hex)) ||
              json_object_set_new(j, "OwnFloor", json_string(floor_text)))) {
        json_decref(j);
        j = NULL;
    }
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return text;
}

static bool progress_decode(const void *v, size_t vl, ld_boot_progress *p)
{
    memset(p, 0, sizeof *p);
    json_error_t je;
    json_t *j = json_loadb(v, vl, 0, &je);
    const char *peer = json_string_value(json_object_get(j, "Peer"));
    const char *dg = json_string_value(json_object_get(j, "Digest"));
    const char *xh = json_string_value(json_object_get(j, "Xor"));
    const char *kb = json_string_value(json_object_get(j, "NextKey"));
    json_t *vv = json_object_get(j, "VersionVector");
    size_t xl = 0;
    bool ok = peer && ld_node_id_valid(peer) && dg && strlen(dg) == 2 * LD_DIGEST_LEN && xh && kb &&
              json_is_object(vv) &&
              ld_json_as_u64(json_object_get(j, "LogSequence"), &p->log_seq) &&
              ld_json_as_u64(json_object_get(j, "Total"), &p->total) &&
              ld_json_as_u64(json_object_get(j, "Done"), &p->done) &&
              ld_json_as_u64(json_object_get(j, "StartedMs"), &p->started_ms) &&
              sodium_hex2bin(p->xor_terms, LD_DIGEST_LEN, xh, strlen(xh), NULL, &xl, NULL) == 0 &&
              xl == LD_DIGEST_LEN &&
              sodium_base642bin(p->next_key, sizeof p->next_key, kb, strlen(kb), NULL,
                                &p->next_key_len, NULL, sodium_base64_VARIANT_ORIGINAL) == 0;
    /* Absent in a progress stored before purging existed: zero, as it was then. */
    const char *sp = json_string_value(json_object_get(j, "SourcePurged"));
    const char *op = json_string_value(json_object_get(j, "OwnPurged"));
    size_t sl = LD_DIGEST_LEN, ol = LD_DIGEST_LEN;
    if (ok && sp) sodium_hex2bin(p->src_purged, LD_DIGEST_LEN, sp, strlen(sp), NULL, &sl, NULL);
    if (ok && op) sodium_hex2bin(p->own_purged, LD_DIGEST_LEN, op, strlen(op), NULL, &ol, NULL);
    json_t *of = json_object_get(j, "OwnFloor");
    ok = ok && sl == LD_DIGEST_LEN && ol == LD_DIGEST_LEN &&
         (!of || ld_json_as_u64(of, &p->own_floor));
    if (ok) {
        snprintf(p->peer, sizeof p->peer, "%s", peer);
        snprintf(p->digest, sizeof p->digest, "%s", dg);
        p->quiescent = json_is_true(json_object_get(j, "Quiescent"));
        p->vv = json_incref(vv);
    }
    json_decref(j);
    return ok;
}

static ld_status progress_get(ld_txn *t, ld_boot_progress *p, bool *found)
{
    const void *v;
    size_t vl;
    *found = false;
    memset(p, 0, sizeof *p);
    ld_status st = ld_txn_get(t, LD_SPACE_META, PROGRESS_KEY, PROGRESS_KEY_LEN, &v, &vl);
    if (st == LD_NOT_FOUND) return LD_OK;
    if (st != LD_OK) return st;
    /* Undecodable progress is no progress: the next snapshot's first page replaces it. */
    *found = progress_decode(v, vl, p);
    if (!*found) ld_boot_progress_clear(p);
    return LD_OK;
}

ld_status ld_boot_progress_load(ld_db *db, ld_boot_progress *p, bool *found)
{
    ld_txn t;
    memset(p, 0, sizeof *p);
    ld_status st = ld_txn_begin(db->env->store, db->st, false, &t);
    if (st != LD_OK) return st;
    st = progress_get(&t, p, found);
    ld_txn_abort(&t);
    return st;
}

static ld_status vv_get(ld_txn *t, const char *space, const char *origin, uint64_t *out)
{
    const void *v;
    size_t vl;
    *out = 0;
    ld_status st = ld_txn_get(t, space, origin, strlen(origin), &v, &vl);
    if (st == LD_NOT_FOUND) return LD_OK;
    if (st != LD_OK) return st;
    if (vl != 8) return LD_CORRUPT;
    *out = ld_be64_get(v);
    return LD_OK;
}

static ld_status vv_put(ld_txn *t, const char *space, const char *origin, uint64_t seq)
{
    uint8_t b[8];
    ld_be64_put(b, seq);
    return ld_txn_put(t, space, origin, strlen(origin), b, 8);
}

static void xor16(uint8_t *d, const uint8_t *a)
{
    for (int i = 0; i < LD_DIGEST_LEN; i++)
        d[i] ^= a[i];
}

/* The digest keeps the terms of purged records (purge.h), and the source's records lack the
 * ones it purged: this database takes them in. One that never purged adds the source's
 * accumulator to what the merges made; one that had purged cannot tell its own purged terms
 * from the source's, so its digest is recomputed from the records it now holds (one walk, in
 * this last page's transaction) plus the source's accumulator and the records this load took
 * as purged (below the floor, dead). */
static ld_status purged_terms(ld_db *db, ld_txn *t, ld_db_state *pending, const ld_boot_progress *p)
{
    static const uint8_t zero[LD_DIGEST_LEN];
    uint8_t taken[LD_DIGEST_LEN]; /* what this load took as purged (ld_apply_snapshot_record) */
    memcpy(taken, pending->purged_digest, LD_DIGEST_LEN);
    xor16(taken, p->own_purged);
    if (sodium_memcmp(p->own_purged, zero, LD_DIGEST_LEN) == 0) {
        xor16(pending->digest, p->src_purged);
        xor16(pending->purged_digest, p->src_purged);
        return LD_OK;
    }
    uint8_t d[LD_DIGEST_LEN];
    memcpy(d, p->src_purged, LD_DIGEST_LEN);
    xor16(d, taken);
    ld_cursor c;
    ld_status st = ld_cursor_open(t, LD_SPACE_DOCS, &c);
    if (st != LD_OK) return st;
    const void *k, *v;
    size_t kl, vl;
    while ((st = ld_cursor_next(&c, &k, &kl, &v, &vl)) == LD_OK) {
        ld_doc_rec rec;
        const char *coll, *id;
        size_t cl, il;
        if (!ld_doc_rec_decode(v, vl, &rec) || !ld_doc_key_split(k, kl, &coll, &cl, &id, &il)) {
            st = LD_CORRUPT;
            break;
        }
        uint8_t term[LD_DIGEST_LEN];
        ld_digest_term(coll, cl, id, il, &rec, term);
        xor16(d, term);
    }
    ld_cursor_close(&c);
    if (st != LD_NOT_FOUND) return st;
    memcpy(pending->digest, d, LD_DIGEST_LEN);
    memcpy(pending->purged_digest, p->src_purged, LD_DIGEST_LEN);
    xor16(pending->purged_digest, taken);
    (void)db;
    return LD_OK;
}

/* The snapshot is complete: this database now holds every op of the source's version vector,
 * and those beyond what it held before are not in its log, so its floor rises to them. */
static ld_status finish(ld_db *db, ld_txn *t, ld_db_state *pending, const ld_boot_progress *p)
{
    const char *self = ld_env_origin(db->env);
    const char *origin;
    json_t *v;
    json_object_foreach(p->vv, origin, v)
    {
        uint64_t seq = 0, have = 0, floor = 0;
        ld_json_as_u64(v, &seq);
        bool own = !strcmp(origin, self);
        ld_status st = own ? LD_OK : vv_get(t, LD_SPACE_VV, origin, &have);
        if (own) have = pending->self_seq;
        if (st != LD_OK) return st;
        if (seq <= have) continue;
        /* Our own ops that the source holds and we do not (a restored data directory): our next
         * write must not reuse their sequence numbers. */
        if (own)
            pending->self_seq = seq;
        else if ((st = vv_put(t, LD_SPACE_VV, origin, seq)) != LD_OK)
            return st;
        if ((st = vv_get(t, LD_SPACE_FLOOR, origin, &floor)) != LD_OK) return st;
        if (seq > floor && (st = vv_put(t, LD_SPACE_FLOOR, origin, seq)) != LD_OK) return st;
    }
    ld_status st = purged_terms(db, t, pending, p);
    if (st != LD_OK) return st;
    st = ld_ckpt_put(t, p->peer, false, p->log_seq);
    if (st != LD_OK) return st;
    st = ld_txn_del(t, LD_SPACE_META, PROGRESS_KEY, PROGRESS_KEY_LEN);
    return st == LD_NOT_FOUND ? LD_OK : st;
}

/* Storage key order: bytes, a prefix first (both backends order keys so). */
static int key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c) return c;
    return al == bl ? 0 : (al < bl ? -1 : 1);
}

typedef struct page_key {
    const uint8_t *k;
    size_t len;
} page_key;

/* Whether key is among the page's keys (sorted). */
static bool page_has(const page_key *keys, size_t n, const uint8_t *k, size_t kl)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = key_cmp(keys[mid].k, keys[mid].len, k, kl);
        if (c == 0) return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* This node's records in the page's key range that the source does not hold and that are
 * stamped below the purge floor: the source purged their key's tombstone, or refused them as
 * conflicts. Kept, they would diverge for good; so a live one becomes a conflict record and a
 * dead one goes, both leaving the digest (the source's PurgedDigest brings back the terms of
 * what it purged). Runs before the page is merged. */
static ld_status drop_absent_below_floor(ld_db *db, ld_txn *t, ld_db_state *pending,
                                         const ld_boot_page *pg)
{
    uint64_t floor = pending->purge_floor;
    if (!floor) return LD_OK;
    size_t n = 0, total = 0;
    const uint8_t *q = pg->recs, *end = pg->recs + pg->recs_len, *key, *val;
    size_t kl, vl;
    while (ld_snap_next(&q, end, &key, &kl, &val, &vl)) /* the records, not the header's word */
        total++;
    page_key *keys = total ? calloc(total, sizeof *keys) : NULL;
    if (total && !keys) return LD_NOMEM;
    q = pg->recs;
    while (n < total && ld_snap_next(&q, end, &key, &kl, &val, &vl)) {
        if (n && key_cmp(keys[n - 1].k, keys[n - 1].len, key, kl) >= 0) {
            /* Not in key order: which keys the source lacks cannot be told; keep everything. */
            ld_log(LD_LOG_WARN, db->name,
                   "snapshot page from %s is not in key order: records below the purge floor "
                   "that it lacks are kept",
                   pg->peer);
            free(keys);
            return LD_OK;
        }
        keys[n].k = key;
        keys[n++].len = kl;
    }
    /* The page covers (after, its last key], the last page everything after. */
    const uint8_t *hi = n && !pg->hdr.done ? keys[n - 1].k : NULL;
    size_t hil = n && !pg->hdr.done ? keys[n - 1].len : 0;
    if (!pg->hdr.done && n == 0) {
        free(keys);
        return LD_OK;
    }
    uint8_t **drop = NULL;
    size_t *dlen = NULL, nd = 0, cap = 0;
    ld_cursor c;
    ld_status st = ld_cursor_open(t, LD_SPACE_DOCS, &c);
    if (st == LD_OK) {
        const void *k, *v;
        st = ld_cursor_seek(&c, pg->after, pg->after_len, &k, &kl, &v, &vl);
        if (st == LD_OK && pg->after_len && kl == pg->after_len && !memcmp(k, pg->after, kl))
            st = ld_cursor_next(&c, &k, &kl, &v, &vl);
        while (st == LD_OK) {
            if (hi && key_cmp(k, kl, hi, hil) > 0) break;
            ld_doc_rec rec;
            if (!ld_doc_rec_decode(v, vl, &rec)) {
                st = LD_CORRUPT;
                break;
            }
            if (rec.hlc < floor && !page_has(keys, n, k, kl)) {
                if (nd == cap) {
                    size_t nc = cap ? 2 * cap : 16;
                    uint8_t **g = realloc(drop, nc * sizeof *g);
                    size_t *h = g ? realloc(dlen, nc * sizeof *h) : NULL;
                    if (g) drop = g;
                    if (h) dlen = h;
                    if (!g || !h) {
                        st = LD_NOMEM;
                        break;
                    }
                    cap = nc;
                }
                if (!(drop[nd] = malloc(kl))) {
                    st = LD_NOMEM;
                    break;
                }
                memcpy(drop[nd], k, kl);
                dlen[nd++] = kl;
            }
            st = ld_cursor_next(&c, &k, &kl, &v, &vl);
        }
        ld_cursor_close(&c);
        if (st == LD_NOT_FOUND) st = LD_OK;
    }
    /* Changed after the walk: no write to a space an open cursor reads. */
    for (size_t i = 0; i < nd && st == LD_OK; i++) {
        const void *v;
        ld_doc_rec rec;
        const char *coll, *id;
        size_t cl, il;
        st = ld_txn_get(t, LD_SPACE_DOCS, drop[i], dlen[i], &v, &vl);
        if (st != LD_OK) break;
        uint8_t *copy = malloc(vl ? vl : 1);
        if (!copy) {
            st = LD_NOMEM;
            break;
        }
        memcpy(copy, v, vl);
        if (!ld_doc_rec_decode(copy, vl, &rec) ||
            !ld_doc_key_split(drop[i], dlen[i], &coll, &cl, &id, &il)) {
            free(copy);
            st = LD_CORRUPT;
            break;
        }
        uint8_t term[LD_DIGEST_LEN];
        ld_digest_term(coll, cl, id, il, &rec, term);
        xor16(pending->digest, term);
        if (!ld_rec_dead(&rec)) {
            st = ld_conflict_put_record(t, coll, cl, id, il, &rec);
            if (st == LD_OK) pending->conflicts++;
        }
        /* A live record leaving takes its index entries (a definition, its index). */
        if (st == LD_OK) st = ld_index_on_write(db, t, coll, cl, id, il, &rec, NULL);
        free(copy);
        if (st == LD_OK) st = ld_txn_del(t, LD_SPACE_DOCS, drop[i], dlen[i]);
    }
    if (st == LD_OK && nd)
        ld_log(LD_LOG_WARN, db->name,
               "%zu records stamped below the purge floor are absent from %s's snapshot: the "
               "live ones are kept as conflict records (GET /api/replication/conflicts)",
               nd, pg->peer);
    for (size_t i = 0; i < nd; i++)
        free(drop[i]);
    free(drop);
    free(dlen);
    free(keys);
    return st;
}

ld_status ld_boot_apply(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job)
{
    ld_boot_page *pg = job->ctx;
    job->result = LD_WR_OK;
    pg->outcome = LD_BOOT_STALE;
    ld_boot_progress p;
    bool found;
    ld_status st = progress_get(t, &p, &found);
    if (st != LD_OK) return st;
    if (pg->hdr.first) {
        /* A new snapshot replaces whatever was in progress: what that one merged stays, as
         * merging a record twice changes nothing. */
        ld_boot_progress_clear(&p);
        snprintf(p.peer, sizeof p.peer, "%s", pg->peer);
        p.log_seq = pg->hdr.log_seq;
        p.vv = json_incref(pg->hdr.vv);
        snprintf(p.digest, sizeof p.digest, "%s", pg->hdr.digest);
        p.total = pg->hdr.total;
        p.quiescent = true;
        p.started_ms = ld_wall_ms();
        memcpy(p.src_purged, pg->hdr.purged, LD_DIGEST_LEN);
        memcpy(p.own_purged, pending->purged_digest, LD_DIGEST_LEN);
        p.own_floor = pending->purge_floor;
        /* The source purged below its floor: so does this node from now on (its dead records
         * below it are taken as purged as they arrive). */
        if (pg->hdr.purge_floor > pending->purge_floor) pending->purge_floor = pg->hdr.purge_floor;
        size_t i;
        json_t *c;
        json_array_foreach(pg->hdr.collections, i, c)
        {
            st = ld_apply_collection(t, json_string_value(c), json_string_length(c));
            if (st != LD_OK) goto out;
        }
    } else if (!found || strcmp(p.peer, pg->peer) != 0 || p.next_key_len != pg->after_len ||
               memcmp(p.next_key, pg->after, pg->after_len) != 0) {
        /* Not the page that follows what is stored (an earlier page failed, or another
         * snapshot replaced this one): the requester starts again from the stored progress. */
        goto out;
    } else {
        /* A purge on the source changes no digest but removes records: it breaks quiescence. */
        p.quiescent = p.quiescent && pg->hdr.log_seq == p.log_seq &&
                      !strcmp(pg->hdr.digest, p.digest) &&
                      !memcmp(pg->hdr.purged, p.src_purged, LD_DIGEST_LEN);
    }

    st = drop_absent_below_floor(db, t, pending, pg);
    if (st != LD_OK) goto out;
    const uint8_t *q = pg->recs, *end = pg->recs + pg->recs_len, *key = NULL, *val;
    size_t kl = 0, vl, prev_cl = 0;
    const uint8_t *prev_coll = NULL;
    while (ld_snap_next(&q, end, &key, &kl, &val, &vl)) {
        size_t cl = (size_t)((const uint8_t *)memchr(key, 0, kl) - key);
        bool new_coll = !prev_coll || cl != prev_cl || memcmp(prev_coll, key, cl) != 0;
        uint8_t term[LD_DIGEST_LEN];
        st = ld_apply_snapshot_record(db, t, pending, key, kl, val, vl, pg->policy, new_coll,
                                      p.own_floor, term);
        if (st != LD_OK) goto out;
        for (int i = 0; i < LD_DIGEST_LEN; i++)
            p.xor_terms[i] ^= term[i];
        prev_coll = key;
        prev_cl = cl;
        p.done++;
    }
    if (key && kl) {
        memcpy(p.next_key, key, kl);
        p.next_key_len = kl;
    }
    pg->done = p.done;
    pg->total = p.total;
    pg->log_seq = p.log_seq;
    if (pg->hdr.done) {
        uint8_t want[LD_DIGEST_LEN];
        size_t wl = 0;
        /* The source's digest holds the terms of the records it purged too. */
        xor16(p.xor_terms, p.src_purged);
        if (p.quiescent &&
            (sodium_hex2bin(want, sizeof want, p.digest, strlen(p.digest), NULL, &wl, NULL) != 0 ||
             wl != LD_DIGEST_LEN || sodium_memcmp(want, p.xor_terms, LD_DIGEST_LEN) != 0)) {
            st = ld_txn_del(t, LD_SPACE_META, PROGRESS_KEY, PROGRESS_KEY_LEN);
            if (st == LD_NOT_FOUND) st = LD_OK;
            pg->outcome = LD_BOOT_MISMATCH;
            goto out;
        }
        st = finish(db, t, pending, &p);
        if (st == LD_OK) pg->outcome = LD_BOOT_FINISHED;
        goto out;
    }
    char *text = progress_encode(&p);
    st = text ? ld_txn_put(t, LD_SPACE_META, PROGRESS_KEY, PROGRESS_KEY_LEN, text, strlen(text))
              : LD_NOMEM;
    free(text);
    if (st == LD_OK) pg->outcome = LD_BOOT_APPLIED;
out:
    ld_boot_progress_clear(&p);
    return st;
}
