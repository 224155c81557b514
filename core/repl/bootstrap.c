/* Merging snapshot pages and keeping the bootstrap's progress (see bootstrap.h). */
#include "bootstrap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "../db/apply.h"
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
    char xor_hex[2 * LD_DIGEST_LEN + 1];
    char key_b64[sodium_base64_ENCODED_LEN(LD_SNAP_MAX_KEY, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2hex(xor_hex, sizeof xor_hex, p->xor_terms, LD_DIGEST_LEN);
    sodium_bin2base64(key_b64, sizeof key_b64, p->next_key, p->next_key_len,
                      sodium_base64_VARIANT_ORIGINAL);
    json_t *j = json_pack("{s:s, s:I, s:O, s:s, s:I, s:I, s:s, s:b, s:s, s:I}", "Peer", p->peer,
                          "LogSequence", (json_int_t)p->log_seq, "VersionVector", p->vv, "Digest",
                          p->digest, "Total", (json_int_t)p->total, "Done", (json_int_t)p->done,
                          "Xor", xor_hex, "Quiescent", p->quiescent, "NextKey", key_b64,
                          "StartedMs", (json_int_t)p->started_ms);
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
    ld_status st = ld_ckpt_put(t, p->peer, false, p->log_seq);
    if (st != LD_OK) return st;
    st = ld_txn_del(t, LD_SPACE_META, PROGRESS_KEY, PROGRESS_KEY_LEN);
    return st == LD_NOT_FOUND ? LD_OK : st;
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
        p.quiescent =
            p.quiescent && pg->hdr.log_seq == p.log_seq && !strcmp(pg->hdr.digest, p.digest);
    }

    const uint8_t *q = pg->recs, *end = pg->recs + pg->recs_len, *key = NULL, *val;
    size_t kl = 0, vl, prev_cl = 0;
    const uint8_t *prev_coll = NULL;
    while (ld_snap_next(&q, end, &key, &kl, &val, &vl)) {
        size_t cl = (size_t)((const uint8_t *)memchr(key, 0, kl) - key);
        bool new_coll = !prev_coll || cl != prev_cl || memcmp(prev_coll, key, cl) != 0;
        uint8_t term[LD_DIGEST_LEN];
        st = ld_apply_snapshot_record(db, t, pending, key, kl, val, vl, pg->policy, new_coll, term);
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
