/* Applying local writes in the writer's transaction (see apply.h). Everything a write changes is
 * in the same transaction as its op-log entry, so a crash never splits them. */
#include "apply.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void xor_digest(uint8_t *d, const uint8_t *t)
{
    for (int i = 0; i < LD_DIGEST_LEN; i++)
        d[i] ^= t[i];
}

static ld_status ensure_collection(ld_txn *t, const char *coll)
{
    const void *v;
    size_t vl;
    ld_status st = ld_txn_get(t, LD_SPACE_COLLS, coll, strlen(coll), &v, &vl);
    if (st == LD_NOT_FOUND) st = ld_txn_put(t, LD_SPACE_COLLS, coll, strlen(coll), "", 0);
    return st;
}

/* Writes the new record of coll/id and its op-log entry; updates the digest. */
static ld_status write_op(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job,
                          const uint8_t *key, size_t klen, const ld_doc_rec *old, ld_doc_rec *rec,
                          const char *payload, size_t payload_len)
{
    ld_db_env *env = db->env;
    size_t coll_len = strlen(job->collection), id_len = strlen(job->id);
    uint8_t term[LD_DIGEST_LEN];
    if (old) {
        ld_digest_term(job->collection, coll_len, job->id, id_len, old, term);
        xor_digest(pending->digest, term);
    }
    ld_digest_term(job->collection, coll_len, job->id, id_len, rec, term);
    xor_digest(pending->digest, term);

    size_t rlen;
    uint8_t *rbuf = ld_doc_rec_encode(rec, &rlen);
    if (!rbuf) return LD_NOMEM;
    ld_status st = ld_txn_put(t, LD_SPACE_DOCS, key, klen, rbuf, rlen);
    free(rbuf);
    if (st != LD_OK) return st;

    ld_op_rec op = {
        .op_type = job->op_type,
        .synced = 0,
        .hlc = job->hlc,
        .origin_seq = job->seq,
        .expires_ms = rec->expires_ms,
        .origin = env->node_id,
        .origin_len = strlen(env->node_id),
        .collection = job->collection,
        .collection_len = coll_len,
        .doc_id = job->id,
        .doc_id_len = id_len,
        .has_parent = job->had_version,
        .payload = payload,
        .payload_len = payload_len,
    };
    memcpy(op.id, job->op_id, LD_OP_ID_LEN);
    memcpy(op.parent, job->prev_version, LD_OP_ID_LEN);
    size_t olen;
    uint8_t *obuf = ld_op_rec_encode(&op, &olen);
    if (!obuf) return LD_NOMEM;
    uint8_t lkey[8];
    ld_be64_put(lkey, job->seq);
    st = ld_txn_put(t, LD_SPACE_LOG, lkey, 8, obuf, olen);
    free(obuf);
    if (st != LD_OK) return st;
    return ensure_collection(t, job->collection);
}

ld_status ld_apply_job(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job)
{
    ld_db_env *env = db->env;
    job->result = LD_WR_OK;
    if (job->kind == LD_W_REGISTER) return ensure_collection(t, job->collection);

    size_t klen;
    uint8_t *key =
        ld_doc_key(job->collection, strlen(job->collection), job->id, strlen(job->id), &klen);
    if (!key) return LD_NOMEM;

    /* The current record, copied: the storage's pointer dies at our next call. */
    const void *v;
    size_t vl;
    uint8_t *oldbuf = NULL;
    ld_doc_rec old;
    bool have_old = false;
    ld_status st = ld_txn_get(t, LD_SPACE_DOCS, key, klen, &v, &vl);
    if (st == LD_OK) {
        oldbuf = malloc(vl ? vl : 1);
        if (!oldbuf) {
            st = LD_NOMEM;
            goto out;
        }
        memcpy(oldbuf, v, vl);
        if (!ld_doc_rec_decode(oldbuf, vl, &old)) {
            st = LD_CORRUPT;
            goto out;
        }
        have_old = true;
    } else if (st != LD_NOT_FOUND) {
        goto out;
    }
    st = LD_OK;
    bool live = have_old && !(old.flags & LD_REC_TOMBSTONE);
    job->had_version = have_old;
    if (have_old) memcpy(job->prev_version, old.version, LD_OP_ID_LEN);

    if (job->has_pv) {
        char cur[2 * LD_OP_ID_LEN + 1];
        if (have_old) ld_op_id_hex(old.version, cur);
        if (!have_old || strcasecmp(cur, job->pv) != 0) {
            job->result = LD_WR_CONFLICT;
            goto out;
        }
    }
    if (job->kind == LD_W_PUT) {
        if (live && !job->may_update) {
            job->result = LD_WR_NEED_UPDATE;
            goto out;
        }
        if (!live && !job->may_create) {
            job->result = LD_WR_NEED_CREATE;
            goto out;
        }
    }

    job->seq = pending->last_seq + 1;
    job->hlc = ld_hlc_now(env->clock);
    randombytes_buf(job->op_id, LD_OP_ID_LEN);
    ld_doc_rec rec = {
        .hlc = job->hlc,
        .origin = env->node_id,
        .origin_len = strlen(env->node_id),
    };
    memcpy(rec.version, job->op_id, LD_OP_ID_LEN);
    const char *payload;
    size_t payload_len;
    if (job->kind == LD_W_PUT) {
        job->op_type = live ? LD_OP_UPDATE : LD_OP_INSERT;
        rec.flags = job->rec_flags;
        rec.json = job->json;
        rec.json_len = job->json_len;
        payload = job->json;
        payload_len = job->json_len;
    } else {
        job->op_type = LD_OP_DELETE;
        rec.flags = LD_REC_TOMBSTONE;
        /* The delete's payload is the document as it was ("{}" when there was none). */
        const char *before = live ? old.json : "{}";
        size_t before_len = live ? old.json_len : 2;
        job->payload = malloc(before_len + 1);
        if (!job->payload) {
            st = LD_NOMEM;
            goto out;
        }
        memcpy(job->payload, before, before_len);
        job->payload[before_len] = '\0';
        job->payload_len = before_len;
        payload = job->payload;
        payload_len = before_len;
    }
    st = write_op(db, t, pending, job, key, klen, have_old ? &old : NULL, &rec, payload,
                  payload_len);
    if (st == LD_OK) {
        pending->last_seq = job->seq;
        pending->hlc_hw = job->hlc;
    }
out:
    free(oldbuf);
    free(key);
    return st;
}

ld_status ld_apply_finish(ld_db *db, ld_txn *t, const ld_db_state *pending)
{
    uint8_t b[8];
    ld_be64_put(b, pending->last_seq);
    ld_status st = ld_txn_put(t, LD_SPACE_META, "last_seq", 8, b, 8);
    if (st != LD_OK) return st;
    /* VV[self]: every local op up to last_seq is in this database's log. */
    const char *self = db->env->node_id;
    st = ld_txn_put(t, LD_SPACE_VV, self, strlen(self), b, 8);
    if (st != LD_OK) return st;
    ld_be64_put(b, pending->hlc_hw);
    st = ld_txn_put(t, LD_SPACE_META, "hlc", 3, b, 8);
    if (st != LD_OK) return st;
    return ld_txn_put(t, LD_SPACE_META, "digest", 6, pending->digest, LD_DIGEST_LEN);
}
