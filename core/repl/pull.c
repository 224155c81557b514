/* The pull step of a link's cycle: the peer's op log after the pull checkpoint, ingested in the
 * writer, and the (VV, digest) comparison that finds a divergence. */
#include "link.h"

/* ---------------------------------------------------------------------------------------------
 * Pull
 * ------------------------------------------------------------------------------------------- */

/* One pull answer on its way to the writer. The pipeline (docs/replication.md, "The pull
 * pipeline") has depth 1: while batch N commits, the pull for N+1 is out (or its answer, decoded,
 * waits in ld_link.pull_held); N+1 goes to the writer only once N committed. A second batch
 * queued behind N in the writer would save only the loop's turn between two commits, and would
 * be applied on top of N even when N's transaction failed: its checkpoint would then pass the
 * ops N was to bring. */
typedef struct pull_ctx {
    ld_link *link;
    bool more;
    json_t *peer_vv;
    char peer_digest[2 * LD_DIGEST_LEN + 1];
    uint64_t scanned;     /* the answer's LastLogSequence: where the next pull starts */
    ld_wjob *job;         /* the ingest (ctx: in), NULL when the answer brought no ops */
    ld_ingest *in;        /* NULL once the writer completed the job */
    const char *snapshot; /* set: the answer calls for a snapshot load instead (why) */
} pull_ctx;

static void pull_ctx_free(pull_ctx *pc)
{
    if (!pc) return;
    if (pc->in) ld_ingest_free(pc->in);
    free(pc->job); /* never submitted (ld_wjob_custom allocates nothing else) */
    json_decref(pc->peer_vv);
    free(pc);
}

void ld_repl_pull_drop(ld_link *l)
{
    pull_ctx_free(l->pull_held);
    l->pull_held = NULL;
}

/* Ends the cycle with the failure the pipeline recorded, once neither its pull nor its batch is
 * out. True when it did (or one half is still out: the failure waits for it). */
static bool pull_abort_settle(ld_link *l)
{
    if (!l->pull_abort) return false;
    if (l->pull_busy || l->pull_waiting) return true;
    ld_repl_pull_drop(l);
    l->pull_abort = false;
    l->fail_reason = l->pull_abort_reason;
    ld_repl_cycle_fail(l, "%s", l->pull_abort_msg);
    return true;
}

/* Fails the pull step, reason a FAIL_ value. While the other half of the pipeline is out (a
 * batch in the writer, a pull on the network), the cycle ends when it is back: the link's
 * cycle never ends with a job or a request that would call into it later. The first failure
 * is the one reported; what was in flight is dropped, and the next cycle pulls again from the
 * committed checkpoint. */
static void pull_fail(ld_link *l, int reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void pull_fail(ld_link *l, int reason, const char *fmt, ...)
{
    if (!l->pull_abort) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(l->pull_abort_msg, sizeof l->pull_abort_msg, fmt, ap);
        va_end(ap);
        l->pull_abort = true;
        l->pull_abort_reason = reason;
    }
    pull_abort_settle(l);
}

static void pull_send(ld_link *l, uint64_t after);
static void pull_run(ld_link *l, pull_ctx *pc);

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
    l->pull_busy = false;
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
    pc->in = NULL;
    pc->job = NULL;
    bool more = pc->more;
    if (res != LD_WR_OK || stopped || l->pull_abort) {
        /* The pull sent after this batch asked past where the checkpoint now is: its answer is
         * dropped (when it is back) and the next cycle asks again. */
        pull_ctx_free(pc);
        if (res != LD_WR_OK)
            pull_fail(l, FAIL_LOCAL, "pull: the ingest could not be committed");
        else if (stopped)
            pull_fail(l, FAIL_LOCAL, "pull: %s", reason);
        else
            pull_abort_settle(l);
        return;
    }
    if (l->pull_held) { /* the next batch arrived while this one committed */
        pull_ctx *next = l->pull_held;
        l->pull_held = NULL;
        pull_ctx_free(pc);
        pull_run(l, next);
        return;
    }
    if (l->pull_waiting) { /* the next batch is on its way */
        pull_ctx_free(pc);
        l->ph = PH_PULL;
        return;
    }
    if (more) { /* the peer does not read CommittedLogSequence: no pull went ahead */
        pull_ctx_free(pc);
        ld_repl_pull_next(l);
        return;
    }
    if (l->pull_req_committed < l->pull_req_after) {
        /* The last pull went ahead of our commits: the peer still believes we hold only what
         * it said, two batches short of the end, and its next push would carry them again. One
         * more pull, from the end, tells it (and compares digests with its answer). */
        pull_ctx_free(pc);
        ld_repl_pull_next(l);
        return;
    }
    check_divergence(l, pc);
    pull_ctx_free(pc);
    ld_repl_cycle_ok(l);
}

/* Takes a pull's answer: at once when no batch of the link is in the writer, else once it
 * committed (ingest_done). */
static void pull_take(ld_link *l, pull_ctx *pc)
{
    if (l->pull_busy) {
        l->pull_held = pc;
        return;
    }
    pull_run(l, pc);
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
 * (taken over by the ingest). Decoded here, as it arrives, while the batch before it may still
 * be committing; pull_take applies it in order. */
static void pull_reply(ld_link *l, int code, json_t *body, ld_wireops_frame *f, const char *err)
{
    ld_repl *r = l->repl;
    uint64_t after = l->pull_req_after;
    if (code == 410 && json_is_true(ld_json_get_ci(body, "SnapshotRequired"))) {
        ld_json_as_u64(ld_json_get_ci(body, "OldestAvailableLogSequence"), &l->peer_oldest);
        pull_ctx *pc = calloc(1, sizeof *pc);
        if (!pc) {
            pull_fail(l, FAIL_LOCAL, "pull: out of memory");
            return;
        }
        pc->link = l;
        pc->snapshot = "its log does not hold every operation this node lacks";
        pull_take(l, pc);
        return;
    }
    if (code < 200 || code > 299) {
        char msg[sizeof l->last_error];
        int why = ld_repl_peer_error_why(l, code, body, err, "pull", msg, sizeof msg);
        pull_fail(l, why, "%s", msg);
        return;
    }
    char perr[256];
    if (!ld_wire_protocol_ok(body, perr, sizeof perr)) {
        pull_fail(l, FAIL_PROTOCOL, "pull: %s", perr);
        return;
    }
    const char *answered = json_string_value(ld_json_get_ci(body, "NodeId"));
    if (answered && strcmp(answered, l->peer) != 0) { /* a node without TargetNodeId checks */
        ld_repl_link_identity(l, answered);
        pull_fail(l, FAIL_PROTOCOL, "pull: the node at this address is '%.128s', not '%s'",
                  answered, l->peer);
        return;
    }
    json_t *ops = f ? NULL : ld_json_get_ci(body, "Operations");
    uint64_t scanned = 0;
    if (!f && !json_is_array(ops)) {
        pull_fail(l, FAIL_PROTOCOL, "pull: the answer has no Operations array");
        return;
    }
    size_t n = f ? f->n : json_array_size(ops);
    if (!ld_json_as_u64(ld_json_get_ci(body, "LastLogSequence"), &scanned)) {
        /* The original sends no LastLogSequence: the last op's LogSequence stands for it. */
        json_t *last = n ? ld_json_get_ci(json_array_get(ops, n - 1), "LogSequence") : NULL;
        if (f && n)
            scanned = f->ops[n - 1].log_seq;
        else if (!ld_json_as_u64(last, &scanned))
            scanned = after;
    }
    ld_json_as_u64(ld_json_get_ci(body, "LocalMaxLogSequence"), &l->peer_max);
    json_t *more = ld_json_get_ci(body, "HasMore");
    pull_ctx *pc = calloc(1, sizeof *pc);
    ld_ingest *in = n ? calloc(1, sizeof *in) : NULL;
    ld_wjob *job = n ? ld_wjob_custom(ld_ingest_apply, ingest_done, pc) : NULL;
    if (!pc || (n && (!in || !job)) || (!f && n && !(in->ops = calloc(n, sizeof *in->ops)))) {
        free(pc);
        ld_ingest_free(in);
        free(job);
        pull_fail(l, FAIL_LOCAL, "pull: out of memory");
        return;
    }
    pc->link = l;
    pc->job = job;
    pc->in = in;
    pc->scanned = scanned;
    pc->more = json_is_true(more) || (!more && n >= (size_t)r->node->cfg.repl_batch_size);
    if (after == 0 && pc->more && l->peer_max > (uint64_t)r->node->cfg.repl_batch_size &&
        db_has_only_own_ops(r, l->db)) {
        /* More than a batch of ops to replay into a database that holds nothing from other
         * nodes (a few large ops that fill a batch by bytes replay as fast as a snapshot). */
        pull_ctx_free(pc);
        pc = calloc(1, sizeof *pc);
        if (!pc) {
            pull_fail(l, FAIL_LOCAL, "pull: out of memory");
            return;
        }
        pc->link = l;
        pc->snapshot = "this database holds nothing from other nodes yet";
        pull_take(l, pc);
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
    if (f && n) { /* decoded and validated with the frame: the ingest takes them over */
        in->ops = f->ops;
        in->n = f->n;
        f->ops = NULL;
        f->n = 0;
    }
    for (size_t i = 0; !f && i < n; i++) {
        char derr[256];
        if (!ld_wire_op_decode(json_array_get(ops, i), &in->ops[i], derr, sizeof derr)) {
            pull_ctx_free(pc);
            pull_fail(l, FAIL_PROTOCOL, "pull: operation %zu: %s", i, derr);
            return;
        }
        in->n++;
    }
    if (in) {
        in->policy = r->node->cfg.conflict_policy;
        in->max_skew_ms = (uint64_t)r->node->cfg.max_clock_skew_s * 1000u;
        snprintf(in->peer, sizeof in->peer, "%s", l->peer);
        in->set_pull_ckpt = scanned > after;
        in->pull_scanned = scanned;
    }
    pull_take(l, pc);
}

/* Applies a pull's answer, no batch of the link being in the writer: its ops go to the writer,
 * and while the peer has more, the next pull goes out at once, after this batch's
 * LastLogSequence, without waiting for the commit (when the peer reads CommittedLogSequence). */
static void pull_run(ld_link *l, pull_ctx *pc)
{
    ld_repl *r = l->repl;
    if (pc->snapshot) {
        const char *why = pc->snapshot;
        pull_ctx_free(pc);
        pull_to_snapshot(l, why);
        return;
    }
    if (!pc->job) {
        /* Nothing to ingest: at most the checkpoint moves past entries we already have, saved
         * without holding up the cycle (the next push may be waiting for it to end). No batch is
         * in the writer, so every op before it is committed. */
        bool advanced = pc->scanned > l->pull_ckpt;
        if (advanced) {
            l->pull_ckpt = pc->scanned;
            ld_repl_save_ckpts(l);
        }
        bool again = pc->more && advanced; /* a peer saying "more" without moving: stop */
        if (!again) check_divergence(l, pc);
        pull_ctx_free(pc);
        if (again)
            ld_repl_pull_next(l);
        else
            ld_repl_cycle_ok(l);
        return;
    }
    ld_db *db = NULL;
    if (ld_registry_get_or_create(&r->node->reg, l->db, &db) != LD_OK) {
        pull_ctx_free(pc);
        pull_fail(l, FAIL_LOCAL, "pull: cannot open the database");
        return;
    }
    ld_wjob *job = pc->job;
    job->ctx = pc->in; /* the writer's until ingest_done */
    l->ph = PH_INGEST;
    l->pull_busy = true;
    bool ahead = pc->more && l->peer_reads_committed;
    uint64_t next = pc->scanned;
    ld_node_submit(r->node, db, job);
    ld_registry_release(&r->node->reg, db);
    if (ahead) {
        l->pipelined_pulls++;
        pull_send(l, next);
    }
}

/* A pull's answer as received: a compact frame when the peer answered in one (we asked for it),
 * JSON otherwise. */
static void pull_raw(ld_link *l, int code, struct evbuffer *in, const char *err)
{
    l->pull_waiting = false;
    if (pull_abort_settle(l)) return; /* the batch before it failed: the answer is moot */
    size_t len = in ? evbuffer_get_length(in) : 0;
    const char *text = len ? (const char *)evbuffer_pullup(in, -1) : NULL;
    if (in && l->answer_compact && code >= 200 && code <= 299) {
        ld_wireops_frame f;
        char ferr[300];
        if (!ld_wireops_decode((const uint8_t *)text, len, &f, ferr, sizeof ferr)) {
            pull_fail(l, FAIL_PROTOCOL, "pull: %s", ferr);
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

void ld_repl_pull_next(ld_link *l)
{
    l->ph = PH_PULL;
    pull_send(l, l->pull_ckpt);
}

/* Sends a pull for the peer's log after `after`: the committed pull checkpoint, or, sent while
 * a batch commits, that batch's LastLogSequence. CommittedLogSequence tells the peer what we
 * hold (ld_repl_peer_pulled moves its push checkpoint for us only that far), the VersionVector
 * is the committed one too. A started pull step runs until caught up (the peer pauses its
 * pushes meanwhile). */
static void pull_send(ld_link *l, uint64_t after)
{
    ld_repl *r = l->repl;
    json_t *vv = NULL, *promises = NULL;
    char digest[2 * LD_DIGEST_LEN + 1];
    ld_db *db = ld_registry_get(&r->node->reg, l->db);
    if (db) {
        ld_status st = ld_oplog_state(db, &vv, digest);
        if (st == LD_OK) promises = ld_repl_promises_json(r, db);
        ld_registry_release(&r->node->reg, db);
        if (st != LD_OK) {
            pull_fail(l, FAIL_LOCAL, "pull: reading the version vector: %s", ld_status_str(st));
            return;
        }
    }
    json_t *body = json_pack("{s:i, s:s, s:I, s:I, s:i, s:o, s:o?}", "ProtocolVersion",
                             LD_REPL_PROTOCOL, "RequestingNodeId", r->node->node_id,
                             "AfterLogSequence", (json_int_t)after, "CommittedLogSequence",
                             (json_int_t)l->pull_ckpt, "BatchSize", r->node->cfg.repl_batch_size,
                             "VersionVector", vv ? vv : json_object(), "PurgePromises", promises);
    struct evbuffer *text = body ? evbuffer_new() : NULL;
    l->pull_req_after = after;
    l->pull_req_committed = l->pull_ckpt;
    l->pull_waiting = true;
    bool ok = text && ld_json_dump_evbuffer(body, JSON_COMPACT, text) &&
              ld_repl_call_post_wire(l, "pull", text, NULL, pull_raw, false, true);
    json_decref(body);
    if (text) evbuffer_free(text);
    if (!ok) {
        l->pull_waiting = false;
        pull_fail(l, FAIL_UNREACHABLE, "pull: cannot send the request");
    }
}
