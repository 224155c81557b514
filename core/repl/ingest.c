/* The ingest writer job (see ingest.h): docs/architecture.md §5's bookkeeping, all in one
 * transaction. */
#include "ingest.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../db/apply.h"
#include "../db/database.h"
#include "../db/hlc.h"

void ld_ingest_free(ld_ingest *in)
{
    if (!in) return;
    for (size_t i = 0; i < in->n; i++)
        ld_wire_op_clear(&in->ops[i]);
    free(in->ops);
    free(in);
}

size_t ld_ckpt_key(const char *peer, bool push, uint8_t *out)
{
    size_t n = strlen(peer);
    memcpy(out, peer, n);
    out[n] = 0;
    memcpy(out + n + 1, push ? "push" : "pull", 4);
    return n + 5;
}

ld_status ld_ckpt_put(ld_txn *t, const char *peer, bool push, uint64_t v)
{
    uint8_t key[LD_NODE_ID_MAX + 6], b[8];
    size_t kl = ld_ckpt_key(peer, push, key);
    const void *old;
    size_t ol;
    ld_status st = ld_txn_get(t, LD_SPACE_CKPT, key, kl, &old, &ol);
    if (st == LD_OK && ol == 8 && ld_be64_get(old) >= v) return LD_OK;
    if (st != LD_OK && st != LD_NOT_FOUND) return st;
    ld_be64_put(b, v);
    return ld_txn_put(t, LD_SPACE_CKPT, key, kl, b, 8);
}

ld_status ld_ingest_apply(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job)
{
    ld_ingest *in = job->ctx;
    in->processed = in->accepted = 0;
    in->last_processed = 0;
    in->stopped = false;
    in->stop_reason[0] = '\0';
    job->result = LD_WR_OK;
    /* This node's clock as its HLC reads it, so a skewed test clock skews the horizon too. */
    uint64_t wall = ld_hlc_wall(db->env->clock);
    uint64_t horizon = wall + in->max_skew_ms;
    for (size_t i = 0; i < in->n; i++) {
        const ld_op_rec *op = &in->ops[i].rec;
        if (ld_hlc_ms(op->hlc) > horizon) {
            /* A stamp far ahead of our clock would drag every later write with it: pause. */
            snprintf(in->stop_reason, sizeof in->stop_reason,
                     "op %" PRIu64 " of origin %.*s is stamped %" PRIu64
                     " s ahead of this node's clock (Node.MaxClockSkewSeconds)",
                     op->origin_seq, (int)op->origin_len, op->origin,
                     (ld_hlc_ms(op->hlc) - wall) / 1000);
            in->stopped = true;
            break;
        }
        ld_ingest_outcome oc;
        ld_status st = ld_apply_remote(db, t, pending, op, in->policy, &oc);
        if (st != LD_OK) return st;
        if (oc == LD_INGEST_GAP) {
            snprintf(in->stop_reason, sizeof in->stop_reason,
                     "gap: op %" PRIu64 " of origin %.*s arrived before its predecessors",
                     op->origin_seq, (int)op->origin_len, op->origin);
            in->stopped = true;
            break;
        }
        in->processed++;
        if (oc != LD_INGEST_DUP) in->accepted++;
        in->last_processed = in->ops[i].log_seq;
    }
    if (in->set_pull_ckpt) {
        /* Everything scanned is ours unless we stopped: then only up to the last op taken. */
        in->pull_ckpt = in->stopped ? in->last_processed : in->pull_scanned;
        if (in->pull_ckpt) {
            ld_status st = ld_ckpt_put(t, in->peer, false, in->pull_ckpt);
            if (st != LD_OK) return st;
        }
    }
    return LD_OK;
}

ld_status ld_ckpt_save_apply(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job)
{
    (void)db;
    (void)pending;
    const ld_ckpt_pair *c = job->ctx;
    job->result = LD_WR_OK;
    ld_status st = c->push ? ld_ckpt_put(t, job->id, true, c->push) : LD_OK;
    if (st == LD_OK && c->pull) st = ld_ckpt_put(t, job->id, false, c->pull);
    return st;
}
