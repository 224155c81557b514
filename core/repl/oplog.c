/* Op-log batches and replication state read from storage (see oplog.h). */
#include "oplog.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "../db/logvv.h"
#include "../util/jsonget.h"
#include "wire.h"
#include "wire_ops.h"

void ld_oplog_batch_free(ld_oplog_batch *b)
{
    if (b->ops) evbuffer_free(b->ops);
    json_decref(b->vv);
    json_decref(b->floor);
    free(b->seqs);
    memset(b, 0, sizeof *b);
}

/* Decodes the row the cursor returned (st) into it. */
static ld_status iter_row(ld_oplog_iter *it, ld_status st, const void *k, size_t kl, const void *v,
                          size_t vl)
{
    if (st != LD_OK) return st;
    if (kl != 8 || !ld_op_rec_decode(v, vl, &it->op)) return LD_CORRUPT;
    it->seq = ld_be64_get(k);
    it->bytes = kl + vl;
    return LD_OK;
}

ld_status ld_oplog_iter_seek(ld_txn *t, uint64_t from, ld_oplog_iter *it)
{
    memset(it, 0, sizeof *it);
    ld_status st = ld_cursor_open(t, LD_SPACE_LOG, &it->c);
    if (st != LD_OK) return st;
    it->open = true;
    uint8_t key[8];
    ld_be64_put(key, from);
    const void *k, *v;
    size_t kl, vl;
    st = ld_cursor_seek(&it->c, key, 8, &k, &kl, &v, &vl);
    return iter_row(it, st, k, kl, v, vl);
}

ld_status ld_oplog_iter_next(ld_oplog_iter *it)
{
    const void *k, *v;
    size_t kl, vl;
    ld_status st = ld_cursor_next(&it->c, &k, &kl, &v, &vl);
    return iter_row(it, st, k, kl, v, vl);
}

void ld_oplog_iter_close(ld_oplog_iter *it)
{
    if (it->open) ld_cursor_close(&it->c);
    it->open = false;
}

/* Reads a space of {origin: be64 sequence} (the version vector, the log floor) into obj. */
static ld_status read_vv_space(ld_txn *t, const char *space, json_t *obj)
{
    ld_cursor c;
    ld_status st = ld_cursor_open(t, space, &c);
    if (st != LD_OK) return st;
    const void *k, *v;
    size_t kl, vl;
    while ((st = ld_cursor_next(&c, &k, &kl, &v, &vl)) == LD_OK) {
        if (vl != 8) {
            st = LD_CORRUPT;
            break;
        }
        char origin[LD_NODE_ID_MAX + 1];
        if (kl == 0 || kl > LD_NODE_ID_MAX) continue;
        memcpy(origin, k, kl);
        origin[kl] = '\0';
        if (json_object_set_new(obj, origin, json_integer((json_int_t)ld_be64_get(v)))) {
            st = LD_NOMEM;
            break;
        }
    }
    ld_cursor_close(&c);
    return st == LD_NOT_FOUND ? LD_OK : st;
}

ld_status ld_oplog_floor(ld_txn *t, json_t **floor)
{
    *floor = json_object();
    if (!*floor) return LD_NOMEM;
    ld_status st = read_vv_space(t, LD_SPACE_FLOOR, *floor);
    if (st != LD_OK) {
        json_decref(*floor);
        *floor = NULL;
    }
    return st;
}

bool ld_vv_covers(json_t *vv, json_t *floor)
{
    const char *origin;
    json_t *seq;
    json_object_foreach(floor, origin, seq)
    {
        uint64_t need = 0, have = 0;
        ld_json_as_u64(seq, &need);
        if (need > 0 && (!vv || !ld_json_as_u64(json_object_get(vv, origin), &have) || have < need))
            return false;
    }
    return true;
}

static ld_status read_state(ld_txn *t, json_t **vv, char *digest_hex)
{
    json_t *obj = json_object();
    if (!obj) return LD_NOMEM;
    ld_status st = read_vv_space(t, LD_SPACE_VV, obj);
    uint8_t digest[LD_DIGEST_LEN] = {0};
    if (st == LD_OK) {
        const void *v;
        size_t vl;
        ld_status g = ld_txn_get(t, LD_SPACE_META, "digest", 6, &v, &vl);
        if (g == LD_OK && vl == LD_DIGEST_LEN)
            memcpy(digest, v, LD_DIGEST_LEN);
        else if (g != LD_NOT_FOUND)
            st = g == LD_OK ? LD_CORRUPT : g;
    }
    if (st != LD_OK) {
        json_decref(obj);
        return st;
    }
    sodium_bin2hex(digest_hex, 2 * LD_DIGEST_LEN + 1, digest, LD_DIGEST_LEN);
    *vv = obj;
    return LD_OK;
}

ld_status ld_oplog_read_state(ld_txn *t, json_t **vv, char digest_hex[2 * LD_DIGEST_LEN + 1],
                              uint64_t *last_seq)
{
    *vv = NULL;
    ld_status st = read_state(t, vv, digest_hex);
    const void *v;
    size_t vl;
    *last_seq = 0;
    ld_status g = st == LD_OK ? ld_txn_get(t, LD_SPACE_META, "last_seq", 8, &v, &vl) : st;
    if (g == LD_OK && vl == 8)
        *last_seq = ld_be64_get(v);
    else if (g != LD_NOT_FOUND)
        st = g == LD_OK ? LD_CORRUPT : g;
    if (st != LD_OK && *vv) {
        json_decref(*vv);
        *vv = NULL;
    }
    return st;
}

ld_status ld_oplog_state(ld_db *db, json_t **vv, char digest_hex[2 * LD_DIGEST_LEN + 1])
{
    ld_txn t;
    ld_status st = ld_txn_begin(db->env->store, db->st, false, &t);
    if (st != LD_OK) return st;
    st = read_state(&t, vv, digest_hex);
    ld_txn_abort(&t);
    return st;
}

ld_status ld_oplog_status(ld_db *db, json_t **vv, char digest_hex[2 * LD_DIGEST_LEN + 1],
                          json_t **floor)
{
    ld_txn t;
    *vv = *floor = NULL;
    ld_status st = ld_txn_begin(db->env->store, db->st, false, &t);
    if (st != LD_OK) return st;
    st = read_state(&t, vv, digest_hex);
    if (st == LD_OK) st = ld_oplog_floor(&t, floor);
    ld_txn_abort(&t);
    if (st != LD_OK) {
        json_decref(*vv);
        *vv = NULL;
    }
    return st;
}

static bool skipped(const ld_op_rec *op, const char *skip_origin, json_t *skip_vv)
{
    if (skip_origin && strlen(skip_origin) == op->origin_len &&
        memcmp(skip_origin, op->origin, op->origin_len) == 0)
        return true;
    if (!skip_vv) return false;
    char origin[LD_NODE_ID_MAX + 1];
    if (op->origin_len > LD_NODE_ID_MAX) return false;
    memcpy(origin, op->origin, op->origin_len);
    origin[op->origin_len] = '\0';
    uint64_t have;
    /* Node ids are keys, not member names: exact (nodes "a" and "A" are two origins). */
    return ld_json_as_u64(json_object_get(skip_vv, origin), &have) && op->origin_seq <= have;
}

/* From the mark at LogSequence `at` (logvv.h), steps over the stretches the reader would skip
 * whole: *from becomes the first LogSequence still to read. Each mark read counts as one entry
 * looked at against max_scan. */
static ld_status skip_held(ld_txn *t, uint64_t at, const char *skip_origin, json_t *skip_vv,
                           size_t max_scan, size_t *looked, uint64_t *from)
{
    if (!skip_origin && !skip_vv) return LD_OK;
    uint64_t to;
    size_t used;
    ld_status st = ld_logvv_skip(t, at, skip_origin, skip_vv, max_scan - *looked, &to, &used);
    if (st != LD_OK) return st;
    *looked += used;
    if (to > at) *from = to + 1;
    return LD_OK;
}

ld_status ld_oplog_read(ld_db *db, uint64_t after, size_t max_ops, size_t max_bytes,
                        const char *skip_origin, json_t *skip_vv, bool check_floor, bool compact,
                        ld_oplog_batch *out)
{
    memset(out, 0, sizeof *out);
    out->scanned = after;
    out->ops = evbuffer_new();
    out->seqs = malloc((max_ops ? max_ops : 1) * sizeof *out->seqs);
    if (!out->ops || !out->seqs) {
        ld_oplog_batch_free(out);
        return LD_NOMEM;
    }
    ld_txn t;
    ld_status st = ld_txn_begin(db->env->store, db->st, false, &t);
    if (st != LD_OK) {
        ld_oplog_batch_free(out);
        return st;
    }
    st = read_state(&t, &out->vv, out->digest);
    if (st == LD_OK) st = ld_oplog_floor(&t, &out->floor);
    if (st == LD_OK && check_floor && json_object_size(out->floor) > 0 &&
        !ld_vv_covers(skip_vv, out->floor)) {
        /* Ops the other side lacks are not in this log (it was loaded from a snapshot, or
         * pruned): no batch can bring them, only a snapshot. */
        out->needs_snapshot = true;
        ld_txn_abort(&t);
        return LD_OK;
    }
    const void *v;
    size_t vl;
    if (st == LD_OK) {
        ld_status g = ld_txn_get(&t, LD_SPACE_META, "last_seq", 8, &v, &vl);
        if (g == LD_OK && vl == 8)
            out->local_max = ld_be64_get(v);
        else if (g != LD_NOT_FOUND)
            st = g == LD_OK ? LD_CORRUPT : g;
    }
    if (st == LD_OK && out->local_max > after) {
        ld_oplog_iter it = {0};
        size_t bytes = 0, looked = 0;
        size_t max_scan = max_ops * LD_OPLOG_SCAN_PER_OP;
        if (max_scan < LD_OPLOG_MIN_SCAN) max_scan = LD_OPLOG_MIN_SCAN;
        uint64_t from = after + 1;
        if (after > 0 && after % LD_LOGVV_EVERY == 0)
            st = skip_held(&t, after, skip_origin, skip_vv, max_scan, &looked, &from);
        if (st == LD_OK) {
            out->scanned = from - 1;
            st = ld_oplog_iter_seek(&t, from, &it);
        }
        while (st == LD_OK) {
            /* Skipped entries count too: a log the other side mostly holds is walked in
             * bounded steps, not in one loop pass over the whole of it. */
            if (out->n >= max_ops || (out->n > 0 && bytes >= max_bytes) || looked >= max_scan) {
                out->more = true;
                break;
            }
            if (!skipped(&it.op, skip_origin, skip_vv)) {
                bool ok = compact ? ld_wireops_op_write(&it.op, it.seq, out->ops)
                                  : (out->n == 0 || evbuffer_add(out->ops, ",", 1) == 0) &&
                                        ld_wire_op_write(&it.op, it.seq, out->ops);
                if (!ok) {
                    st = LD_NOMEM;
                    break;
                }
                out->seqs[out->n++] = it.seq;
                bytes += it.op.payload_len + 256;
            }
            out->scanned = it.seq;
            looked++;
            if (it.seq % LD_LOGVV_EVERY == 0 && looked < max_scan) {
                uint64_t next = it.seq + 1;
                st = skip_held(&t, it.seq, skip_origin, skip_vv, max_scan, &looked, &next);
                if (st == LD_OK && next > it.seq + 1) {
                    out->scanned = next - 1;
                    ld_oplog_iter_close(&it);
                    st = ld_oplog_iter_seek(&t, next, &it);
                    continue;
                }
                if (st != LD_OK) break;
            }
            st = ld_oplog_iter_next(&it);
        }
        if (st == LD_NOT_FOUND) st = LD_OK;
        ld_oplog_iter_close(&it);
    }
    ld_txn_abort(&t);
    if (st != LD_OK) ld_oplog_batch_free(out);
    return st;
}
