/* Applying local writes in the writer's transaction (see apply.h). Everything a write changes is
 * in the same transaction as its op-log entry, so a crash never splits them. */
#include "apply.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "logvv.h"
#include "../index/index.h"

static void xor_digest(uint8_t *d, const uint8_t *t)
{
    for (int i = 0; i < LD_DIGEST_LEN; i++)
        d[i] ^= t[i];
}

static ld_status ensure_collection(ld_txn *t, const char *coll, size_t len)
{
    const void *v;
    size_t vl;
    ld_status st = ld_txn_get(t, LD_SPACE_COLLS, coll, len, &v, &vl);
    if (st == LD_NOT_FOUND) st = ld_txn_put(t, LD_SPACE_COLLS, coll, len, "", 0);
    return st;
}

/* Writes the new record of op's document (and its index entries), the op-log entry `op` at
 * LogSequence `log_seq`, and the collection entry; moves the digest from old's term to rec's. */
static ld_status write_op(ld_db *db, ld_txn *t, ld_db_state *pending, const uint8_t *key,
                          size_t klen, const ld_doc_rec *old, const ld_doc_rec *rec,
                          const ld_op_rec *op, uint64_t log_seq)
{
    uint8_t term[LD_DIGEST_LEN];
    if (old) {
        ld_digest_term(op->collection, op->collection_len, op->doc_id, op->doc_id_len, old, term);
        xor_digest(pending->digest, term);
    }
    if (rec) {
        ld_digest_term(op->collection, op->collection_len, op->doc_id, op->doc_id_len, rec, term);
        xor_digest(pending->digest, term);
        size_t rlen;
        uint8_t *rbuf = ld_doc_rec_encode(rec, &rlen);
        if (!rbuf) return LD_NOMEM;
        ld_status st = ld_txn_put(t, LD_SPACE_DOCS, key, klen, rbuf, rlen);
        free(rbuf);
        if (st == LD_OK)
            st = ld_index_on_write(db, t, op->collection, op->collection_len, op->doc_id,
                                   op->doc_id_len, old, rec);
        if (st != LD_OK) return st;
    }
    size_t olen;
    uint8_t *obuf = ld_op_rec_encode(op, &olen);
    if (!obuf) return LD_NOMEM;
    uint8_t lkey[8];
    ld_be64_put(lkey, log_seq);
    ld_status st = ld_txn_put(t, LD_SPACE_LOG, lkey, 8, obuf, olen);
    free(obuf);
    if (st != LD_OK) return st;
    pending->last_seq = log_seq;
    pending->log_bytes += 8 + olen;
    return ensure_collection(t, op->collection, op->collection_len);
}

/* The current record under key, copied into *buf (the storage's pointer dies at the next call).
 * LD_NOT_FOUND when there is none. */
static ld_status read_record(ld_txn *t, const uint8_t *key, size_t klen, uint8_t **buf,
                             ld_doc_rec *rec)
{
    const void *v;
    size_t vl;
    *buf = NULL;
    ld_status st = ld_txn_get(t, LD_SPACE_DOCS, key, klen, &v, &vl);
    if (st != LD_OK) return st;
    *buf = malloc(vl ? vl : 1);
    if (!*buf) return LD_NOMEM;
    memcpy(*buf, v, vl);
    if (!ld_doc_rec_decode(*buf, vl, rec)) {
        free(*buf);
        *buf = NULL;
        return LD_CORRUPT;
    }
    return LD_OK;
}

/* The record a write replaces: *have false when the key holds none. The prologue every apply
 * path shares; *buf (free it) owns what rec points into. */
static ld_status load_old(ld_txn *t, const uint8_t *key, size_t klen, uint8_t **buf,
                          ld_doc_rec *rec, bool *have)
{
    ld_status st = read_record(t, key, klen, buf, rec);
    *have = st == LD_OK;
    return st == LD_NOT_FOUND ? LD_OK : st;
}

/* A fresh op id. Ids only need to be unique, so they come from a per-thread pool refilled 256
 * at a time: libsodium reads the kernel's generator with one getrandom() per call, which was a
 * system call per write on the writer's hot path. Thread-local: each database's writer is its
 * own thread. */
static void new_op_id(uint8_t id[LD_OP_ID_LEN])
{
    static _Thread_local uint8_t pool[256 * LD_OP_ID_LEN];
    static _Thread_local size_t used = sizeof pool;
    if (used == sizeof pool) {
        randombytes_buf(pool, sizeof pool);
        used = 0;
    }
    memcpy(id, pool + used, LD_OP_ID_LEN);
    used += LD_OP_ID_LEN;
}

/* Keeps origin's last stamp (the stamp of op (origin, VV[origin])) beside its VV entry. */
static ld_status put_last_stamp(ld_txn *t, const char *origin, size_t len, uint64_t hlc)
{
    uint8_t b[8];
    ld_be64_put(b, hlc);
    return ld_txn_put(t, LD_SPACE_LSTAMP, origin, len, b, 8);
}

ld_status ld_apply_job(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job)
{
    job->result = LD_WR_OK;
    if (job->kind == LD_W_REGISTER)
        return ensure_collection(t, job->collection, strlen(job->collection));

    size_t klen;
    uint8_t *key =
        ld_doc_key(job->collection, strlen(job->collection), job->id, strlen(job->id), &klen);
    if (!key) return LD_NOMEM;
    uint8_t *oldbuf = NULL;
    ld_doc_rec old;
    bool have_old;
    ld_status st = load_old(t, key, klen, &oldbuf, &old, &have_old);
    if (st == LD_OK)
        st = ld_apply_job_loaded(db, t, pending, job, key, klen, have_old ? &old : NULL);
    free(oldbuf);
    free(key);
    return st;
}

ld_status ld_apply_job_loaded(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job,
                              const uint8_t *key, size_t klen, const ld_doc_rec *was)
{
    ld_db_env *env = db->env;
    job->result = LD_WR_OK;
    ld_status st = LD_OK;
    bool have_old = was != NULL;
    ld_doc_rec old = have_old ? *was : (ld_doc_rec){0};
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
    job->origin_seq = pending->self_seq + 1;
    job->hlc = job->stamp ? job->stamp : ld_hlc_now(env->clock);
    new_op_id(job->op_id);
    ld_doc_rec rec = {
        .hlc = job->hlc,
        .origin = ld_env_origin(env),
        .origin_len = strlen(ld_env_origin(env)),
    };
    memcpy(rec.version, job->op_id, LD_OP_ID_LEN);
    const char *payload;
    size_t payload_len;
    if (job->kind == LD_W_PUT) {
        job->op_type = live ? LD_OP_UPDATE : LD_OP_INSERT;
        rec.flags = job->rec_flags;
        rec.expires_ms = job->expires_ms;
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
    ld_op_rec op = {
        .op_type = job->op_type,
        .synced = 0,
        .hlc = job->hlc,
        .origin_seq = job->origin_seq,
        .expires_ms = rec.expires_ms,
        .origin = ld_env_origin(env),
        .origin_len = strlen(ld_env_origin(env)),
        .collection = job->collection,
        .collection_len = strlen(job->collection),
        .doc_id = job->id,
        .doc_id_len = strlen(job->id),
        .has_parent = job->had_version,
        .payload = payload,
        .payload_len = payload_len,
    };
    memcpy(op.id, job->op_id, LD_OP_ID_LEN);
    memcpy(op.parent, job->prev_version, LD_OP_ID_LEN);
    st = write_op(db, t, pending, key, klen, have_old ? &old : NULL, &rec, &op, job->seq);
    if (st == LD_OK) {
        pending->self_seq = job->origin_seq;
        pending->self_hlc = job->hlc;
        if (job->hlc > pending->hlc_hw) pending->hlc_hw = job->hlc;
        st = ld_logvv_mark(t, pending, job->seq, ld_env_origin(env));
    }
out:
    return st;
}

ld_status ld_apply_finish(ld_db *db, ld_txn *t, const ld_db_state *pending)
{
    uint8_t b[8];
    ld_be64_put(b, pending->last_seq);
    ld_status st = ld_txn_put(t, LD_SPACE_META, "last_seq", 8, b, 8);
    if (st != LD_OK) return st;
    if (db->unstamped) { /* a new database's first commit: whose data this is (database.c) */
        const char *inc = db->env->incarnation;
        st = ld_txn_put(t, LD_SPACE_META, "incarnation", 11, inc, strlen(inc));
        if (st != LD_OK) return st;
    }
    /* VV[self]: every local op up to self_seq is in this database's log. */
    const char *self = ld_env_origin(db->env);
    if (pending->self_seq > 0) { /* a node that never wrote here has no VV entry */
        ld_be64_put(b, pending->self_seq);
        st = ld_txn_put(t, LD_SPACE_VV, self, strlen(self), b, 8);
        if (st == LD_OK && pending->self_seq != db->committed.self_seq && pending->self_hlc)
            st = put_last_stamp(t, self, strlen(self), pending->self_hlc);
        if (st != LD_OK) return st;
    }
    ld_be64_put(b, pending->hlc_hw);
    st = ld_txn_put(t, LD_SPACE_META, "hlc", 3, b, 8);
    if (st != LD_OK) return st;
    /* Purge bookkeeping, written only by the commits that change it. */
    const ld_db_state *was = &db->committed;
    if (pending->log_bytes != was->log_bytes) {
        ld_be64_put(b, pending->log_bytes);
        if ((st = ld_txn_put(t, LD_SPACE_META, "log_bytes", 9, b, 8)) != LD_OK) return st;
    }
    if (pending->refused != was->refused) {
        ld_be64_put(b, pending->refused);
        if ((st = ld_txn_put(t, LD_SPACE_META, "refused", 7, b, 8)) != LD_OK) return st;
    }
    if (pending->conflicts != was->conflicts) {
        ld_be64_put(b, pending->conflicts);
        if ((st = ld_txn_put(t, LD_SPACE_META, "conflicts", 9, b, 8)) != LD_OK) return st;
    }
    if (pending->last_prune_ms != was->last_prune_ms) {
        uint8_t lp[32];
        ld_be64_put(lp, pending->last_prune_ms);
        ld_be64_put(lp + 8, pending->last_prune_entries);
        ld_be64_put(lp + 16, pending->last_prune_purged);
        ld_be64_put(lp + 24, pending->dead_records);
        if ((st = ld_txn_put(t, LD_SPACE_META, "last_prune", 10, lp, 32)) != LD_OK) return st;
    }
    if (pending->purge_floor != was->purge_floor) {
        ld_be64_put(b, pending->purge_floor);
        if ((st = ld_txn_put(t, LD_SPACE_META, "purge_floor", 11, b, 8)) != LD_OK) return st;
    }
    if (memcmp(pending->purged_digest, was->purged_digest, LD_DIGEST_LEN) != 0 &&
        (st = ld_txn_put(t, LD_SPACE_META, "purged_digest", 13, pending->purged_digest,
                         LD_DIGEST_LEN)) != LD_OK)
        return st;
    return ld_txn_put(t, LD_SPACE_META, "digest", 6, pending->digest, LD_DIGEST_LEN);
}

/* (hlc, origin bytes): the strict total order of docs/architecture.md §5. */
static int stamp_cmp(uint64_t ah, const char *ao, size_t aol, uint64_t bh, const char *bo,
                     size_t bol)
{
    if (ah != bh) return ah < bh ? -1 : 1;
    int c = memcmp(ao, bo, aol < bol ? aol : bol);
    if (c) return c < 0 ? -1 : 1;
    return aol == bol ? 0 : (aol < bol ? -1 : 1);
}

/* Whether an incoming state (stamp, origin, version) replaces the current record `old` (NULL:
 * none) under `policy`. */
static bool incoming_wins(ld_conflict_policy policy, const ld_doc_rec *old, uint64_t hlc,
                          const char *origin, size_t origin_len, const uint8_t *version)
{
    if (!old) return true;
    switch (policy) {
    case LD_POLICY_APPLY_INCOMING:
        return memcmp(old->version, version, LD_OP_ID_LEN) != 0;
    case LD_POLICY_KEEP_LOCAL:
        return false;
    case LD_POLICY_LWW:
    default:
        return stamp_cmp(hlc, origin, origin_len, old->hlc, old->origin, old->origin_len) > 0;
    }
}

static bool mentions_reserved(const char *json, size_t len)
{
    return memmem(json, len, "\"_id\"", 5) || memmem(json, len, "\"_sys_", 6);
}

ld_status ld_conflict_key(const char *origin, size_t origin_len, uint64_t hlc, uint8_t *out,
                          size_t *len)
{
    if (origin_len > LD_NODE_ID_MAX) return LD_INVALID;
    memcpy(out, origin, origin_len);
    out[origin_len] = 0;
    ld_be64_put(out + origin_len + 1, hlc);
    *len = origin_len + 9;
    return LD_OK;
}

ld_status ld_conflict_put(ld_txn *t, const ld_op_rec *op)
{
    uint8_t key[LD_NODE_ID_MAX + 9];
    size_t kl, vl;
    ld_status st = ld_conflict_key(op->origin, op->origin_len, op->hlc, key, &kl);
    if (st != LD_OK) return st;
    uint8_t *v = ld_op_rec_encode(op, &vl);
    if (!v) return LD_NOMEM;
    st = ld_txn_put(t, LD_SPACE_CONFLICTS, key, kl, v, vl);
    free(v);
    return st;
}

ld_status ld_conflict_put_record(ld_txn *t, const char *coll, size_t cl, const char *id, size_t il,
                                 const ld_doc_rec *rec)
{
    ld_op_rec op = {
        .op_type = LD_OP_UPDATE,
        .synced = 1,
        .hlc = rec->hlc,
        .expires_ms = rec->expires_ms,
        .origin = rec->origin,
        .origin_len = rec->origin_len,
        .collection = coll,
        .collection_len = cl,
        .doc_id = id,
        .doc_id_len = il,
        .payload = rec->json,
        .payload_len = rec->json_len,
    };
    memcpy(op.id, rec->version, LD_OP_ID_LEN);
    return ld_conflict_put(t, &op);
}

ld_status ld_apply_remote(ld_db *db, ld_txn *t, ld_db_state *pending, const ld_op_rec *op,
                          ld_conflict_policy policy, ld_ingest_outcome *outcome)
{
    const char *self = ld_env_origin(db->env);
    size_t self_len = strlen(self);
    bool own = op->origin_len == self_len && memcmp(op->origin, self, self_len) == 0;

    /* VV[origin]: the highest origin seq ingested contiguously. */
    uint64_t vv = 0;
    if (own) {
        vv = pending->self_seq;
    } else {
        const void *v;
        size_t vl;
        ld_status st = ld_txn_get(t, LD_SPACE_VV, op->origin, op->origin_len, &v, &vl);
        if (st == LD_OK) {
            if (vl != 8) return LD_CORRUPT;
            vv = ld_be64_get(v);
        } else if (st != LD_NOT_FOUND) {
            return st;
        }
    }
    if (op->origin_seq <= vv) {
        *outcome = LD_INGEST_DUP;
        return LD_OK;
    }
    if (op->origin_seq > vv + 1) {
        *outcome = LD_INGEST_GAP;
        return LD_OK;
    }

    size_t klen;
    uint8_t *key =
        ld_doc_key(op->collection, op->collection_len, op->doc_id, op->doc_id_len, &klen);
    if (!key) return LD_NOMEM;
    uint8_t *oldbuf = NULL;
    ld_doc_rec old;
    bool have_old;
    ld_status st = load_old(t, key, klen, &oldbuf, &old, &have_old);
    if (st != LD_OK) goto out;

    /* Below the purge floor, an absent key may be one whose tombstone was purged: the op may be
     * older than that delete, so applying it could bring the document back. It is kept as a
     * conflict record instead (a delete has nothing to bring back: it is only logged). */
    bool refused = !have_old && pending->purge_floor && op->hlc < pending->purge_floor;
    if (refused) pending->refused++;
    if (refused && op->op_type != LD_OP_DELETE) {
        st = ld_conflict_put(t, op);
        if (st != LD_OK) goto out;
        pending->conflicts++;
    }

    bool wins = !refused && incoming_wins(policy, have_old ? &old : NULL, op->hlc, op->origin,
                                          op->origin_len, op->id);
    bool deleted = op->op_type == LD_OP_DELETE;
    ld_doc_rec rec = {
        .flags = deleted ? LD_REC_TOMBSTONE
                         : (mentions_reserved(op->payload, op->payload_len) ? LD_REC_RESERVED : 0),
        .hlc = op->hlc,
        .expires_ms = op->expires_ms,
        .origin = op->origin,
        .origin_len = op->origin_len,
        .json = deleted ? "" : op->payload,
        .json_len = deleted ? 0 : op->payload_len,
    };
    memcpy(rec.version, op->id, LD_OP_ID_LEN);

    /* The op goes into the local log whether it won or not, so it is relayed (cr-sqlite#413). */
    ld_op_rec logged = *op;
    logged.synced = 1;
    st = write_op(db, t, pending, key, klen, wins && have_old ? &old : NULL, wins ? &rec : NULL,
                  &logged, pending->last_seq + 1);
    if (st != LD_OK) goto out;
    uint8_t b[8];
    ld_be64_put(b, op->origin_seq);
    if (own) {
        pending->self_seq = op->origin_seq;
        pending->self_hlc = op->hlc;
    } else if ((st = ld_txn_put(t, LD_SPACE_VV, op->origin, op->origin_len, b, 8)) != LD_OK ||
               (st = put_last_stamp(t, op->origin, op->origin_len, op->hlc)) != LD_OK) {
        goto out;
    }
    if (op->hlc > pending->hlc_hw) pending->hlc_hw = op->hlc;
    ld_hlc_observe(db->env->clock, op->hlc);
    if ((st = ld_logvv_mark(t, pending, pending->last_seq, self)) != LD_OK) goto out;
    *outcome = refused ? LD_INGEST_REFUSED : wins ? LD_INGEST_APPLIED : LD_INGEST_LOGGED;
out:
    free(oldbuf);
    free(key);
    return st;
}

ld_status ld_apply_snapshot_record(ld_db *db, ld_txn *t, ld_db_state *pending, const uint8_t *key,
                                   size_t klen, const uint8_t *val, size_t vlen,
                                   ld_conflict_policy policy, bool new_collection,
                                   uint64_t refuse_below, uint8_t term[LD_DIGEST_LEN])
{
    const char *coll, *id;
    size_t cl, il;
    ld_doc_rec rec;
    if (!ld_doc_key_split(key, klen, &coll, &cl, &id, &il) || !ld_doc_rec_decode(val, vlen, &rec))
        return LD_CORRUPT;
    ld_digest_term(coll, cl, id, il, &rec, term);
    uint8_t *oldbuf = NULL;
    ld_doc_rec old;
    bool have_old;
    ld_status st = load_old(t, key, klen, &oldbuf, &old, &have_old);
    if (st != LD_OK) return st;
    if (!have_old && pending->purge_floor && ld_rec_dead(&rec) && rec.hlc < pending->purge_floor) {
        /* A dead record this node would purge at once: taken as purged, its term kept in the
         * digest as a purge keeps it (purge.h). */
        xor_digest(pending->digest, term);
        xor_digest(pending->purged_digest, term);
    } else if (!have_old && !ld_rec_dead(&rec) && rec.hlc < refuse_below) {
        /* Below the floor this node had before: it held every op of a known writer stamped so
         * low, so an absent key lost to a delete it purged (or was refused): the source lags. */
        st = ld_conflict_put_record(t, coll, cl, id, il, &rec);
        if (st == LD_OK) pending->conflicts++;
    } else if (incoming_wins(policy, have_old ? &old : NULL, rec.hlc, rec.origin, rec.origin_len,
                             rec.version)) {
        uint8_t old_term[LD_DIGEST_LEN];
        if (have_old) {
            ld_digest_term(coll, cl, id, il, &old, old_term);
            xor_digest(pending->digest, old_term);
        }
        xor_digest(pending->digest, term);
        /* The stored bytes as the source stored them: the record format is versioned by its
         * first byte, and it decoded above. */
        st = ld_txn_put(t, LD_SPACE_DOCS, key, klen, val, vlen);
        if (st == LD_OK)
            st = ld_index_on_write(db, t, coll, cl, id, il, have_old ? &old : NULL, &rec);
        if (st == LD_OK && rec.hlc > pending->hlc_hw) pending->hlc_hw = rec.hlc;
        if (st == LD_OK) ld_hlc_observe(db->env->clock, rec.hlc);
    }
    free(oldbuf);
    if (st == LD_OK && new_collection) st = ensure_collection(t, coll, cl);
    return st;
}

ld_status ld_apply_collection(ld_txn *t, const char *coll, size_t len)
{
    return ensure_collection(t, coll, len);
}
