/* The push step of a link's cycle: our op log after the push checkpoint, read on the worker pool,
 * sent in batches the peer acknowledges. */
#include "link.h"

#include <ctype.h>

/* ---------------------------------------------------------------------------------------------
 * Push
 * ------------------------------------------------------------------------------------------- */

static void ckpt_saved(ld_wjob *job)
{
    ld_link *l = job->arg;
    free(job->ctx);
    ld_wjob_free(job);
    l->ckpt_saving = false;
    if (l->ckpt_dirty) ld_repl_save_ckpts(l); /* also while shutting down: the loop waits for it */
}

/* Stores the link's checkpoints through the writer without waiting for the commit: a stored
 * checkpoint that lags only means re-reading entries the peer filters out by VV (or re-sending
 * duplicates it skips), never losing any. One save per link in flight; what moves meanwhile is
 * saved when it completes, so a burst of cycles costs one commit, not one each. */
void ld_repl_save_ckpts(ld_link *l)
{
    if (l->ckpt_saving) {
        l->ckpt_dirty = true;
        return;
    }
    l->ckpt_dirty = false;
    ld_db *db = ld_registry_get(&l->repl->node->reg, l->db);
    if (!db) return;
    ld_wjob *job = ld_wjob_custom(ld_ckpt_save_apply, ckpt_saved, l);
    ld_ckpt_pair *v = malloc(sizeof *v);
    char *peer = strdup(l->peer);
    char *coll = strdup("");
    if (!job || !v || !peer || !coll) {
        free(job);
        free(v);
        free(peer);
        free(coll);
        ld_registry_release(&l->repl->node->reg, db);
        return;
    }
    *v = (ld_ckpt_pair){.push = l->push_ckpt, .pull = l->pull_ckpt};
    job->lazy = true; /* a checkpoint that lags is re-derived, so it need not cost a flush */
    job->ctx = v;
    job->id = peer;
    job->collection = coll;
    l->ckpt_saving = true;
    ld_node_submit(l->repl->node, db, job);
    ld_registry_release(&l->repl->node->reg, db);
}

static void push_reply(ld_link *l, int code, json_t *body, const char *err)
{
    if (code == 413 && l->push_limit > 1) {
        /* The peer's body limit is below our batch: split and go again. */
        l->push_limit /= 2;
        ld_repl_step_push(l);
        return;
    }
    if (code < 200 || code > 299) {
        ld_repl_peer_error(l, code, body, err, "push");
        return;
    }
    char perr[256];
    if (!ld_wire_protocol_ok(body, perr, sizeof perr)) {
        l->fail_reason = FAIL_PROTOCOL;
        ld_repl_cycle_fail(l, "push: %s", perr);
        return;
    }
    uint64_t ack = 0;
    bool known = false;
    if (ld_json_as_u64(ld_json_get_ci(body, "LastProcessedLogSequence"), &ack))
        for (size_t i = 0; i < l->n_sent && !known; i++)
            known = l->sent[i] == ack;
    size_t sent = l->n_sent;
    bool full = sent >= l->push_limit || l->sent_more;
    l->n_sent = 0;
    if (!known || ack <= l->push_ckpt) {
        /* Nothing acknowledged (the peer stopped at a gap, or the answer is not about this
         * batch): the pull below brings what the peer lacks; the next cycle retries. */
        ld_repl_step_pull(l);
        return;
    }
    l->push_ckpt = ack;
    l->ops_pushed += sent;
    ld_repl_promises_merge(l->repl, l->db, ld_json_get_ci(body, "PurgePromises"));
    json_t *vv = ld_json_get_ci(body, "VersionVector");
    if (json_is_object(vv)) {
        json_decref(l->peer_vv);
        l->peer_vv = json_incref(vv);
    }
    uint64_t accepted = 0, processed = 0;
    bool have_accepted = ld_json_as_u64(ld_json_get_ci(body, "AcceptedCount"), &accepted);
    if (have_accepted && ld_json_as_u64(ld_json_get_ci(body, "ProcessedCount"), &processed) &&
        processed > accepted)
        l->push_dups += processed - accepted;
    if (have_accepted && accepted > 0) ld_repl_hint_send(l);
    ld_repl_save_ckpts(l);
    if (full && ack == l->sent_last)
        ld_repl_step_push(l);
    else
        ld_repl_step_pull(l);
}

/* Whether version vector vv names no origin but `node`. */
static bool vv_only_of(json_t *vv, const char *node)
{
    const char *origin;
    json_t *v;
    json_object_foreach(vv, origin, v)
    {
        if (strcmp(origin, node) != 0) return false;
    }
    return true;
}

/* Whether origin o is one a restore of node `peer` writes under: "<peer>.<8 hex>"
 * (docs/backup.md). */
static bool restored_origin_of(const char *o, const char *peer)
{
    size_t n = strlen(peer);
    if (strlen(o) != n + 9 || strncmp(o, peer, n) != 0 || o[n] != '.') return false;
    for (size_t i = n + 1; i < n + 9; i++)
        if (!isxdigit((unsigned char)o[i])) return false;
    return true;
}

/* 1 + the peer's sequence of its own id's origin, when its version vector (as it last reported
 * it) holds fewer ops of that origin than ours does and the peer was restored from a backup (it
 * writes under "<peer>.<8 hex>" now, so none of the old origin's ops can still be on their way
 * from it: it lacks them); 0 otherwise, and once a walk restarted for that sequence. A peer
 * still writing under its id cannot be judged so: a report older than its last ops to us looks
 * the same. */
static uint64_t peer_lost_own(ld_link *l, json_t *ours)
{
    uint64_t theirs = 0, have = 0;
    if (!l->peer_vv || !ours) return 0;
    ld_json_as_u64(json_object_get(l->peer_vv, l->peer), &theirs);
    if (!ld_json_as_u64(json_object_get(ours, l->peer), &have) || have <= theirs) return 0;
    if (theirs + 1 == l->rewound_for) return 0;
    const char *o;
    json_t *v;
    json_object_foreach(l->peer_vv, o, v)
    {
        if (restored_origin_of(o, l->peer)) return theirs + 1;
    }
    return 0;
}

static void push_batch_read(ld_link *l, ld_status st, ld_oplog_batch b, bool compact);

static void push_read_work(void *arg)
{
    push_read *pr = arg;
    pr->st =
        ld_oplog_read(pr->db, pr->after, pr->limit, pr->max_bytes, pr->peer_vv ? NULL : pr->peer,
                      pr->peer_vv, pr->peer_vv != NULL, pr->compact, &pr->b);
}

static void push_read_done(void *arg)
{
    push_read *pr = arg;
    ld_link *l = pr->l;
    ld_node *node = pr->node;
    ld_status st = pr->st;
    ld_oplog_batch b = pr->b; /* ld_oplog_read freed it when it failed */
    bool compact = pr->compact;
    node->inflight--;
    ld_registry_release(&node->reg, pr->db);
    json_decref(pr->peer_vv);
    free(pr);
    if (l) l->reading = NULL;
    if (!l || node->shutting_down) {
        if (st == LD_OK) ld_oplog_batch_free(&b);
        if (l) ld_repl_cycle_end(l);
        return;
    }
    push_batch_read(l, st, b, compact);
}

void ld_repl_step_push(ld_link *l)
{
    ld_repl *r = l->repl;
    l->ph = PH_PUSH;
    if (l->peer_pulling_until > ld_mono_ms()) {
        /* The peer is pulling our log batch after batch: pushing the same entries beside it
         * would send each twice. Its pulls move push_ckpt (ld_repl_peer_pulled). */
        ld_repl_step_pull(l);
        return;
    }
    ld_db *db = ld_registry_get(&r->node->reg, l->db);
    if (!db) {
        l->removed = true;
        ld_repl_cycle_end(l);
        return;
    }
    ld_db_state now;
    ld_db_state_get(db, &now);
    bool gate = l->push_ckpt == 0 && now.last_seq > (uint64_t)r->node->cfg.repl_batch_size &&
                (!l->peer_vv || vv_only_of(l->peer_vv, l->peer));
    uint64_t mono = ld_mono_ms();
    if (!gate)
        l->gated_since = 0;
    else if (!l->gated_since)
        l->gated_since = mono;
    /* A peer that does not take the snapshot (it has no link to us: a one-way setup) gets the
     * log after a while; one that is loading it from us keeps the wait going. */
    if (gate && mono - l->gated_since >= PUSH_GATE_MS(r) &&
        mono - l->peer_snapshot_at >= PUSH_GATE_MS(r)) {
        if (l->push_gated)
            ld_log(LD_LOG_INFO, l->db, "%s takes no snapshot from this node: pushing the log",
                   l->peer);
        gate = false;
    }
    if (gate) {
        /* A peer that holds nothing of this database but its own writes loads a snapshot from
         * us (its pull sees more than a batch to replay), which is far faster than our whole
         * log op by op. Until its version vector is known (our pull below reports it), or
         * while it says so, we do not push; a hint makes it pull now. */
        ld_registry_release(&r->node->reg, db);
        l->push_gated = true;
        if (l->peer_vv) ld_repl_hint_send(l);
        ld_repl_step_pull(l);
        return;
    }
    l->push_gated = false;
    if (r->node->shutting_down) {
        /* No new read: the loop's exit is decided when nothing is in flight, and a read begun
         * in its grace could outlive it. The cycle ends here. */
        ld_registry_release(&r->node->reg, db);
        ld_repl_cycle_end(l);
        return;
    }
    push_read *pr = calloc(1, sizeof *pr);
    json_t *vv = l->peer_vv ? json_deep_copy(l->peer_vv) : NULL;
    if (!pr || (l->peer_vv && !vv)) {
        free(pr);
        json_decref(vv);
        ld_registry_release(&r->node->reg, db);
        ld_repl_cycle_fail(l, "push: out of memory");
        return;
    }
    /* What the peer's version vector covers is skipped, for every origin: its own included, as
     * a peer restored from a backup lacks its own later writes (docs/backup.md). Until the
     * vector is known, the peer's own ops are skipped, as a peer holds what it wrote; should it
     * turn out to be restored, push_batch_read walks the log again (a copy: the loop may
     * replace the link's while the worker reads). */
    *pr = (push_read){.l = l,
                      .node = r->node,
                      .db = db,
                      .peer_vv = vv,
                      .after = l->push_ckpt,
                      .limit = l->push_limit,
                      .max_bytes = r->node->cfg.repl_batch_bytes,
                      .compact = l->peer_compact};
    snprintf(pr->peer, sizeof pr->peer, "%s", l->peer);
    l->reading = pr;
    r->node->inflight++;
    if (!ld_workers_submit(r->node->repl_workers, push_read_work, push_read_done, pr)) {
        r->node->inflight--;
        l->reading = NULL;
        json_decref(vv);
        ld_registry_release(&r->node->reg, db);
        free(pr);
        ld_repl_cycle_fail(l, "push: out of memory");
    }
}

/* The push body in the compact encoding: the JSON body's other fields in the frame's header. */
static bool push_body_compact(ld_link *l, ld_oplog_batch *b, json_t *promises,
                              struct evbuffer *body)
{
    json_t *h = promises
                    ? json_pack("{s:i, s:s, s:O}", "ProtocolVersion", LD_REPL_PROTOCOL,
                                "SourceNodeId", l->repl->node->node_id, "PurgePromises", promises)
                    : NULL;
    bool ok = h && ld_wireops_frame_write(h, b->n, b->ops, body);
    json_decref(h);
    return ok;
}

/* The push batch read by push_read_work (compact: in the compact encoding), back on the loop:
 * the request goes out from here. */
static void push_batch_read(ld_link *l, ld_status st, ld_oplog_batch b, bool compact)
{
    ld_repl *r = l->repl;
    /* What this node promises (and passes on) for the purge frontier rides with the batch. */
    json_t *promises = NULL;
    if (st == LD_OK && !b.needs_snapshot && b.n) {
        ld_db *db = ld_registry_get(&r->node->reg, l->db);
        if (db) {
            promises = ld_repl_promises_json(r, db);
            ld_registry_release(&r->node->reg, db);
        }
    }
    if (st != LD_OK) {
        ld_repl_cycle_fail(l, "push: reading the op log: %s", ld_status_str(st));
        return;
    }
    if (b.needs_snapshot) {
        /* The peer lacks ops that are not in our log: every push would stop at a gap. It takes
         * a snapshot when its pull from us is refused (410). */
        l->peer_too_old = true;
        ld_oplog_batch_free(&b);
        ld_repl_step_pull(l);
        return;
    }
    l->local_max = b.local_max;
    uint64_t lost = peer_lost_own(l, b.vv);
    if (lost && l->push_ckpt > 0) {
        /* The checkpoint says the peer holds our log up to it, but it lacks its own ops that
         * our log holds below it (the checkpoint skipped them as the peer's): walk the log
         * again from the start, skipping by its version vector, which sends only those. */
        ld_log(LD_LOG_INFO, l->db,
               "%s lacks its own ops after %llu that this node holds (restored from a backup?): "
               "pushing them again",
               l->peer, (unsigned long long)(lost - 1));
        l->rewound_for = lost;
        l->push_ckpt = 0;
        ld_repl_save_ckpts(l);
        ld_oplog_batch_free(&b);
        ld_repl_step_push(l);
        return;
    }
    if (b.n == 0) {
        /* Only skipped entries (or none) after the checkpoint: the peer has them all. */
        if (b.scanned > l->push_ckpt) {
            l->push_ckpt = b.scanned;
            ld_repl_save_ckpts(l);
        }
        bool more = b.more;
        ld_oplog_batch_free(&b);
        if (more)
            ld_repl_step_push(l);
        else
            ld_repl_step_pull(l);
        return;
    }
    free(l->sent);
    l->sent = b.seqs;
    b.seqs = NULL;
    l->n_sent = b.n;
    l->sent_last = l->sent[b.n - 1];
    l->sent_more = b.more;
    struct evbuffer *body = evbuffer_new();
    bool ok;
    if (compact) {
        ok = body && push_body_compact(l, &b, promises, body) &&
             ld_repl_call_post_wire(l, "push", body, push_reply, NULL, true, false);
        if (ok) l->compact_pushes++;
    } else {
        ok = body &&
             evbuffer_add_printf(
                 body, "{\"ProtocolVersion\":%d,\"SourceNodeId\":", LD_REPL_PROTOCOL) > 0 &&
             ld_json_string_evbuffer(r->node->node_id, strlen(r->node->node_id), body) &&
             evbuffer_add(body, ",\"Operations\":[", 15) == 0 &&
             evbuffer_add_buffer(body, b.ops) == 0 &&
             evbuffer_add(body, "],\"PurgePromises\":", 18) == 0 && promises &&
             ld_json_dump_evbuffer(promises, JSON_COMPACT, body) &&
             evbuffer_add(body, "}", 1) == 0 && ld_repl_call_post(l, "push", body, push_reply);
    }
    json_decref(promises);
    ld_oplog_batch_free(&b);
    if (body) evbuffer_free(body);
    if (!ok) l->fail_reason = FAIL_UNREACHABLE;
    if (!ok) ld_repl_cycle_fail(l, "push: cannot send the request");
}
