/* The pull step of a link's cycle: the peer's op log after the pull checkpoint, ingested in the
 * writer, and the (VV, digest) comparison that finds a divergence. */
#include "link.h"

/* ---------------------------------------------------------------------------------------------
 * Pull
 * ------------------------------------------------------------------------------------------- */

typedef struct pull_ctx {
    ld_link *link;
    bool more;
    json_t *peer_vv;
    char peer_digest[2 * LD_DIGEST_LEN + 1];
} pull_ctx;

static void check_divergence(ld_link *l, pull_ctx *pc)
{
    ld_db *db = ld_registry_get(&l->repl->node->reg, l->db);
    if (!db || !pc->peer_vv || !pc->peer_digest[0]) {
        if (db) ld_registry_release(&l->repl->node->reg, db);
        return;
    }
    json_t *vv = NULL;
    char digest[2 * LD_DIGEST_LEN + 1];
    if (ld_oplog_state(db, &vv, digest) == LD_OK) {
        bool same_vv = json_equal(vv, pc->peer_vv);
        bool diverged = same_vv && strcmp(digest, pc->peer_digest) != 0;
        if (diverged && !l->diverged) {
            l->repl->divergences++;
            ld_log(LD_LOG_ERROR, l->db,
                   "divergence with %s: equal version vectors but digests %s (here) and %s "
                   "(there)",
                   l->peer, digest, pc->peer_digest);
        }
        l->diverged = diverged;
    }
    json_decref(vv);
    ld_registry_release(&l->repl->node->reg, db);
}

static void ingest_done(ld_wjob *job)
{
    ld_ingest *in = job->ctx;
    pull_ctx *pc = job->arg;
    ld_link *l = pc->link;
    ld_wresult res = job->result;
    if (res == LD_WR_OK) {
        if (in->pull_ckpt > l->pull_ckpt) l->pull_ckpt = in->pull_ckpt;
        l->ops_pulled += in->processed;
        l->pull_dups += in->processed - in->accepted;
    }
    bool stopped = in->stopped;
    char reason[sizeof in->stop_reason];
    snprintf(reason, sizeof reason, "%s", in->stop_reason);
    ld_ingest_free(in);
    ld_wjob_free(job);
    if (res != LD_WR_OK) {
        json_decref(pc->peer_vv);
        free(pc);
        ld_repl_cycle_fail(l, "pull: the ingest could not be committed");
        return;
    }
    if (stopped) {
        json_decref(pc->peer_vv);
        free(pc);
        ld_repl_cycle_fail(l, "pull: %s", reason);
        return;
    }
    if (pc->more) {
        json_decref(pc->peer_vv);
        free(pc);
        ld_repl_pull_next(l);
        return;
    }
    check_divergence(l, pc);
    json_decref(pc->peer_vv);
    free(pc);
    ld_repl_cycle_ok(l);
}

/* Whether another link of db is loading a snapshot: this one leaves its pulls out meanwhile,
 * so the database is not loaded twice (once by the snapshot, once by replaying a log). */
static bool db_boot_elsewhere(ld_repl *r, const char *db, const ld_link *self)
{
    for (size_t i = 0; i < r->n_links; i++) {
        const ld_link *o = r->links[i];
        if (o != self && o->boot && !o->removed && o->active && !strcmp(o->db, db)) return true;
    }
    return false;
}

/* Whether db holds no op of any node but this one (a new database, or one written only here):
 * catching it up from a peer's whole log is what a snapshot does faster. */
static bool db_has_only_own_ops(ld_repl *r, const char *name)
{
    ld_db *db = ld_registry_get(&r->node->reg, name);
    if (!db) return true;
    json_t *vv = NULL;
    char digest[2 * LD_DIGEST_LEN + 1];
    bool only = ld_oplog_state(db, &vv, digest) == LD_OK;
    ld_registry_release(&r->node->reg, db);
    const char *origin;
    json_t *v;
    json_object_foreach(only ? vv : NULL, origin, v)
    {
        if (strcmp(origin, ld_env_origin(&r->node->env)) != 0) only = false;
    }
    json_decref(vv);
    return only;
}

/* The pull step turns into a snapshot load (a fresh one), unless another link loads one. */
static void pull_to_snapshot(ld_link *l, const char *why)
{
    if (db_boot_elsewhere(l->repl, l->db, l)) {
        ld_repl_cycle_ok(l);
        return;
    }
    ld_log(LD_LOG_INFO, l->db, "loading a snapshot from %s: %s", l->peer, why);
    ld_repl_boot_begin(l, true);
    ld_repl_step_snapshot(l);
}

/* A pull's answer: body is the JSON answer, or with f the compact frame's header and f its ops
 * (taken over by the ingest). */
static void pull_reply(ld_link *l, int code, json_t *body, ld_wireops_frame *f, const char *err)
{
    ld_repl *r = l->repl;
    if (code == 410 && json_is_true(ld_json_get_ci(body, "SnapshotRequired"))) {
        ld_json_as_u64(ld_json_get_ci(body, "OldestAvailableLogSequence"), &l->peer_oldest);
        pull_to_snapshot(l, "its log does not hold every operation this node lacks");
        return;
    }
    if (code < 200 || code > 299) {
        ld_repl_peer_error(l, code, body, err, "pull");
        return;
    }
    char perr[256];
    if (!ld_wire_protocol_ok(body, perr, sizeof perr)) {
        l->fail_reason = FAIL_PROTOCOL;
        ld_repl_cycle_fail(l, "pull: %s", perr);
        return;
    }
    const char *answered = json_string_value(ld_json_get_ci(body, "NodeId"));
    if (answered && strcmp(answered, l->peer) != 0) { /* a node without TargetNodeId checks */
        ld_repl_link_identity(l, answered);
        l->fail_reason = FAIL_PROTOCOL;
        ld_repl_cycle_fail(l, "pull: the node at this address is '%.128s', not '%s'", answered,
                           l->peer);
        return;
    }
    json_t *ops = f ? NULL : ld_json_get_ci(body, "Operations");
    uint64_t scanned = 0;
    if (!f && !json_is_array(ops)) {
        l->fail_reason = FAIL_PROTOCOL;
        ld_repl_cycle_fail(l, "pull: the answer has no Operations array");
        return;
    }
    size_t n = f ? f->n : json_array_size(ops);
    if (!ld_json_as_u64(ld_json_get_ci(body, "LastLogSequence"), &scanned)) {
        /* The original sends no LastLogSequence: the last op's LogSequence stands for it. */
        json_t *last = n ? ld_json_get_ci(json_array_get(ops, n - 1), "LogSequence") : NULL;
        if (f && n)
            scanned = f->ops[n - 1].log_seq;
        else if (!ld_json_as_u64(last, &scanned))
            scanned = l->pull_ckpt;
    }
    ld_json_as_u64(ld_json_get_ci(body, "LocalMaxLogSequence"), &l->peer_max);
    json_t *more = ld_json_get_ci(body, "HasMore");
    pull_ctx *pc = calloc(1, sizeof *pc);
    ld_ingest *in = calloc(1, sizeof *in);
    ld_wjob *job = ld_wjob_custom(ld_ingest_apply, ingest_done, pc);
    if (!pc || !in || !job || (!f && n && !(in->ops = calloc(n, sizeof *in->ops)))) {
        free(pc);
        ld_ingest_free(in);
        free(job);
        ld_repl_cycle_fail(l, "pull: out of memory");
        return;
    }
    pc->link = l;
    pc->more = json_is_true(more) || (!more && n >= (size_t)r->node->cfg.repl_batch_size);
    if (l->pull_ckpt == 0 && pc->more && l->peer_max > (uint64_t)r->node->cfg.repl_batch_size &&
        db_has_only_own_ops(r, l->db)) {
        /* More than a batch of ops to replay into a database that holds nothing from other
         * nodes (a few large ops that fill a batch by bytes replay as fast as a snapshot). */
        free(pc);
        ld_ingest_free(in);
        free(job);
        pull_to_snapshot(l, "this database holds nothing from other nodes yet");
        return;
    }
    json_t *pvv = ld_json_get_ci(body, "VersionVector");
    pc->peer_vv = json_is_object(pvv) ? json_incref(pvv) : NULL;
    if (pc->peer_vv) { /* what the peer holds, for our next pushes */
        json_decref(l->peer_vv);
        l->peer_vv = json_incref(pvv);
    }
    ld_repl_promises_merge(r, l->db, ld_json_get_ci(body, "PurgePromises"));
    const char *pd = json_string_value(ld_json_get_ci(body, "Digest"));
    snprintf(pc->peer_digest, sizeof pc->peer_digest, "%s", pd ? pd : "");
    if (f) { /* decoded and validated with the frame: the ingest takes them over */
        in->ops = f->ops;
        in->n = f->n;
        f->ops = NULL;
        f->n = 0;
    }
    for (size_t i = 0; !f && i < n; i++) {
        char derr[256];
        if (!ld_wire_op_decode(json_array_get(ops, i), &in->ops[i], derr, sizeof derr)) {
            ld_ingest_free(in);
            free(job);
            json_decref(pc->peer_vv);
            free(pc);
            l->fail_reason = FAIL_PROTOCOL;
            ld_repl_cycle_fail(l, "pull: operation %zu: %s", i, derr);
            return;
        }
        in->n++;
    }
    in->policy = r->node->cfg.conflict_policy;
    in->max_skew_ms = (uint64_t)r->node->cfg.max_clock_skew_s * 1000u;
    snprintf(in->peer, sizeof in->peer, "%s", l->peer);
    in->set_pull_ckpt = scanned > l->pull_ckpt;
    in->pull_scanned = scanned;
    if (n == 0) {
        /* Nothing to ingest: at most the checkpoint moves past entries we already have, saved
         * without holding up the cycle (the next push may be waiting for it to end). */
        ld_ingest_free(in);
        free(job);
        bool advanced = scanned > l->pull_ckpt;
        if (advanced) {
            l->pull_ckpt = scanned;
            ld_repl_save_ckpts(l);
        }
        bool again = pc->more && advanced; /* a peer saying "more" without moving: stop */
        if (!again) check_divergence(l, pc);
        json_decref(pc->peer_vv);
        free(pc);
        if (again)
            ld_repl_pull_next(l);
        else
            ld_repl_cycle_ok(l);
        return;
    }
    ld_db *db = NULL;
    if (ld_registry_get_or_create(&r->node->reg, l->db, &db) != LD_OK) {
        ld_ingest_free(in);
        free(job);
        json_decref(pc->peer_vv);
        free(pc);
        ld_repl_cycle_fail(l, "pull: cannot open the database");
        return;
    }
    job->ctx = in;
    l->ph = PH_INGEST;
    ld_node_submit(r->node, db, job);
    ld_registry_release(&r->node->reg, db);
}

/* A pull's answer as received: a compact frame when the peer answered in one (we asked for it),
 * JSON otherwise. */
static void pull_raw(ld_link *l, int code, struct evbuffer *in, const char *err)
{
    size_t len = in ? evbuffer_get_length(in) : 0;
    const char *text = len ? (const char *)evbuffer_pullup(in, -1) : NULL;
    if (in && l->answer_compact && code >= 200 && code <= 299) {
        ld_wireops_frame f;
        char ferr[300];
        if (!ld_wireops_decode((const uint8_t *)text, len, &f, ferr, sizeof ferr)) {
            l->fail_reason = FAIL_PROTOCOL;
            ld_repl_cycle_fail(l, "pull: %s", ferr);
            return;
        }
        l->compact_pulls++;
        pull_reply(l, code, f.header, &f, NULL);
        ld_wireops_frame_clear(&f);
        return;
    }
    json_error_t je;
    json_t *body = len ? json_loadb(text, len, 0, &je) : NULL;
    pull_reply(l, code, body, NULL, err);
    json_decref(body);
}

/* The pull step of a cycle. */
void ld_repl_step_pull(ld_link *l)
{
    if (l->boot) { /* a snapshot in progress comes before any pull */
        ld_repl_step_snapshot(l);
        return;
    }
    if (db_boot_elsewhere(l->repl, l->db, l)) {
        l->ph = PH_PULL;
        ld_repl_cycle_ok(l);
        return;
    }
    /* (Unless ld_repl_step_push waits to learn what the peer holds: the pull's answer says.) */
    bool learn = !l->peer_vv && l->push_gated;
    if (!l->must_pull && !learn && l->peer_pushed_at &&
        ld_mono_ms() - l->peer_pushed_at < PEER_PUSHING_MS) {
        /* The peer is pushing its log to us: what a pull would fetch is on its way, and the
         * sweep (must_pull) still pulls and compares digests. Should its pushes stop, pulls
         * resume after PEER_PUSHING_MS. */
        l->ph = PH_PULL;
        ld_repl_cycle_ok(l);
        return;
    }
    l->must_pull = false;
    ld_repl_pull_next(l);
}

/* The next pull request of the pull step; a started pull step runs until caught up (the peer
 * pauses its pushes meanwhile: ld_repl_peer_pulled). */
void ld_repl_pull_next(ld_link *l)
{
    ld_repl *r = l->repl;
    l->ph = PH_PULL;
    json_t *vv = NULL, *promises = NULL;
    char digest[2 * LD_DIGEST_LEN + 1];
    ld_db *db = ld_registry_get(&r->node->reg, l->db);
    if (db) {
        ld_status st = ld_oplog_state(db, &vv, digest);
        if (st == LD_OK) promises = ld_repl_promises_json(r, db);
        ld_registry_release(&r->node->reg, db);
        if (st != LD_OK) {
            ld_repl_cycle_fail(l, "pull: reading the version vector: %s", ld_status_str(st));
            return;
        }
    }
    json_t *body = json_pack("{s:i, s:s, s:I, s:i, s:o, s:o?}", "ProtocolVersion", LD_REPL_PROTOCOL,
                             "RequestingNodeId", r->node->node_id, "AfterLogSequence",
                             (json_int_t)l->pull_ckpt, "BatchSize", r->node->cfg.repl_batch_size,
                             "VersionVector", vv ? vv : json_object(), "PurgePromises", promises);
    struct evbuffer *text = body ? evbuffer_new() : NULL;
    bool ok = text && ld_json_dump_evbuffer(body, JSON_COMPACT, text) &&
              ld_repl_call_post_wire(l, "pull", text, NULL, pull_raw, false, true);
    json_decref(body);
    if (text) evbuffer_free(text);
    if (!ok) l->fail_reason = FAIL_UNREACHABLE;
    if (!ok) ld_repl_cycle_fail(l, "pull: cannot send the request");
}
