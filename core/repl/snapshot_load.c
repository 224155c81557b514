/* A link loading a snapshot from its peer: pages of records merged without op-log entries (a new
 * node joining, or one the peer's pruned log can no longer serve), then the log after it. */
#include "link.h"

/* ---------------------------------------------------------------------------------------------
 * Snapshot bootstrap: pages of the peer's records merged without op-log entries, then the pull
 * of its log after the position the snapshot stands at (bootstrap.h, snapshot_page.h)
 * ------------------------------------------------------------------------------------------- */

void ld_repl_boot_begin(ld_link *l, bool fresh)
{
    if (!l->boot) {
        l->boot = calloc(1, sizeof *l->boot);
        if (!l->boot) return; /* the next cycle tries again */
    }
    boot_state *b = l->boot;
    b->first = fresh;
    b->reload = !fresh;
    b->all_received = false;
    b->req_key_len = 0;
    if (fresh) b->done = b->resumed_done = b->total = b->log_seq = 0;
    b->started_wall = ld_wall_ms();
    b->started_mono = ld_mono_ms();
}

static void boot_end(ld_link *l)
{
    free(l->boot);
    l->boot = NULL;
}

static void snap_reply(ld_link *l, int code, struct evbuffer *in, const char *err);

static void snap_request(ld_link *l)
{
    ld_repl *r = l->repl;
    boot_state *b = l->boot;
    char key_b64[sodium_base64_ENCODED_LEN(LD_SNAP_MAX_KEY, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(key_b64, sizeof key_b64, b->req_key, b->req_key_len,
                      sodium_base64_VARIANT_ORIGINAL);
    json_t *body =
        json_pack("{s:i, s:s, s:s?, s:I}", "ProtocolVersion", LD_REPL_PROTOCOL, "RequestingNodeId",
                  r->node->node_id, "AfterKey", b->first ? NULL : key_b64, "MaxBytes",
                  (json_int_t)r->node->cfg.snapshot_page_bytes);
    struct evbuffer *text = body ? evbuffer_new() : NULL;
    bool ok = text && ld_json_dump_evbuffer(body, JSON_COMPACT, text) &&
              ld_repl_call_post_any(l, "snapshot", text, NULL, snap_reply);
    json_decref(body);
    if (text) evbuffer_free(text);
    b->requesting = ok;
    if (!ok) {
        b->reload = true;
        l->fail_reason = FAIL_UNREACHABLE;
        ld_repl_cycle_fail(l, "snapshot: cannot send the request");
    }
}

/* The snapshot step of a cycle: asks for the next page unless pages are still being merged
 * (their completion calls it again) or the last one arrived. */
void ld_repl_step_snapshot(ld_link *l)
{
    l->ph = PH_SNAPSHOT;
    boot_state *b = l->boot;
    if (!b) {
        ld_repl_cycle_fail(l, "snapshot: out of memory");
        return;
    }
    if (b->requesting || b->jobs >= SNAPSHOT_PAGES_AHEAD ||
        (b->jobs > 0 && (b->reload || b->all_received)))
        return;
    if (b->all_received) {
        /* Every page was merged but none finished the snapshot (one was refused as stale):
         * go on from what is stored. */
        b->all_received = false;
        b->reload = true;
    }
    if (b->reload) {
        ld_db *db = ld_registry_get(&l->repl->node->reg, l->db);
        ld_boot_progress p;
        bool found = false;
        ld_status st = db ? ld_boot_progress_load(db, &p, &found) : LD_NOT_FOUND;
        if (db) ld_registry_release(&l->repl->node->reg, db);
        if (st != LD_OK && st != LD_NOT_FOUND) {
            ld_repl_cycle_fail(l, "snapshot: reading its progress: %s", ld_status_str(st));
            return;
        }
        b->reload = false;
        if (found && !strcmp(p.peer, l->peer)) {
            b->first = false;
            memcpy(b->req_key, p.next_key, p.next_key_len);
            b->req_key_len = p.next_key_len;
            b->done = p.done;
            b->total = p.total;
            b->log_seq = p.log_seq;
            /* A snapshot stored before its first record cannot name the page after: restart. */
            if (p.next_key_len == 0) b->first = true;
        } else {
            b->first = true; /* nothing stored (or another node's): a new snapshot */
            b->req_key_len = 0;
        }
        ld_boot_progress_clear(&p);
    }
    snap_request(l);
}

static void boot_job_done(ld_wjob *job)
{
    ld_link *l = job->arg;
    ld_boot_page *pg = job->ctx;
    ld_wresult res = job->result;
    ld_boot_outcome oc = pg->outcome;
    boot_state *b = l->boot;
    if (b) {
        b->jobs--;
        if (res == LD_WR_OK && (oc == LD_BOOT_APPLIED || oc == LD_BOOT_FINISHED)) {
            b->done = pg->done;
            b->total = pg->total;
            b->log_seq = pg->log_seq;
        } else {
            b->reload = true;
        }
    }
    uint64_t log_seq = pg->log_seq, done = pg->done;
    ld_boot_page_free(pg);
    ld_wjob_free(job);
    if (!b) return;
    /* A request still out answers into snap_reply, which sees `reload` and goes on from the
     * stored progress; failing the cycle under it would mix its answer into the next cycle. */
    bool in_cycle = l->ph == PH_SNAPSHOT && !b->requesting;
    if (res != LD_WR_OK) {
        if (in_cycle) ld_repl_cycle_fail(l, "snapshot: a page could not be committed");
        return;
    }
    if (oc == LD_BOOT_MISMATCH) {
        /* The progress is gone: the reload starts a new snapshot. */
        l->repl->divergences++;
        ld_log(LD_LOG_ERROR, l->db,
               "snapshot from %s: the records received do not add up to its digest although it "
               "did not change meanwhile; starting over",
               l->peer);
        b->all_received = false;
        l->fail_reason = FAIL_PROTOCOL;
        if (in_cycle)
            ld_repl_cycle_fail(l, "snapshot: the records do not match the source's digest");
        return;
    }
    if (oc == LD_BOOT_FINISHED) {
        uint64_t ms = ld_mono_ms() - b->started_mono;
        uint64_t moved = done - b->resumed_done;
        ld_log(LD_LOG_INFO, l->db,
               "snapshot from %s loaded: %" PRIu64 " records (%" PRIu64 " in %" PRIu64
               " ms, %.0f/s); replication continues after its log sequence %" PRIu64,
               l->peer, done, moved, ms, ms ? 1000.0 * (double)moved / (double)ms : 0.0, log_seq);
        if (log_seq > l->pull_ckpt) l->pull_ckpt = log_seq;
        boot_end(l);
        if (in_cycle) ld_repl_pull_next(l);
        return;
    }
    if (in_cycle) ld_repl_step_snapshot(l);
}

static void snap_reply(ld_link *l, int code, struct evbuffer *in, const char *err)
{
    ld_repl *r = l->repl;
    boot_state *b = l->boot;
    if (!b) { /* cannot happen: the link keeps its boot state while a request is out */
        ld_repl_cycle_fail(l, "snapshot: lost its state");
        return;
    }
    b->requesting = false;
    if (b->reload && l->ph == PH_SNAPSHOT && code >= 200 && code <= 299) {
        /* An earlier page failed or did not add up: this one cannot follow it. */
        ld_repl_step_snapshot(l);
        return;
    }
    if (code < 200 || code > 299) {
        b->reload = true;
        json_error_t je;
        size_t len = in ? evbuffer_get_length(in) : 0;
        json_t *body = len ? json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &je) : NULL;
        /* The peer no longer holds the database: this snapshot cannot end; another peer's
         * pull (or snapshot) takes over, and what was merged stays. */
        if (code == 404 && b->jobs == 0) boot_end(l);
        ld_repl_peer_error(l, code, body, err, "snapshot");
        json_decref(body);
        return;
    }
    ld_boot_page *pg = calloc(1, sizeof *pg);
    ld_wjob *job = ld_wjob_custom(ld_boot_apply, boot_job_done, l);
    size_t len = evbuffer_get_length(in);
    if (pg) pg->buf = malloc(len ? len : 1);
    if (!pg || !job || !pg->buf) {
        ld_boot_page_free(pg);
        free(job);
        b->reload = true;
        ld_repl_cycle_fail(l, "snapshot: out of memory");
        return;
    }
    pg->len = len;
    evbuffer_remove(in, pg->buf, len);
    char perr[200];
    if (!ld_snap_parse(pg->buf, pg->len, &pg->hdr, &pg->recs, &pg->recs_len, perr, sizeof perr) ||
        pg->hdr.first != b->first) {
        if (perr[0] == '\0') snprintf(perr, sizeof perr, "the page is not the one asked for");
        ld_boot_page_free(pg);
        free(job);
        b->reload = true;
        l->fail_reason = FAIL_PROTOCOL;
        ld_repl_cycle_fail(l, "snapshot: %s", perr);
        return;
    }
    snprintf(pg->peer, sizeof pg->peer, "%s", l->peer);
    memcpy(pg->after, b->req_key, b->req_key_len);
    pg->after_len = b->first ? 0 : b->req_key_len;
    pg->policy = r->node->cfg.conflict_policy;
    if (b->first) {
        b->total = pg->hdr.total;
        b->log_seq = pg->hdr.log_seq;
        b->done = b->resumed_done = 0;
    }
    /* The next page starts after this page's last key. */
    const uint8_t *q = pg->recs, *end = pg->recs + pg->recs_len, *key = NULL, *val;
    size_t kl = 0, vl;
    while (ld_snap_next(&q, end, &key, &kl, &val, &vl)) {
    }
    if (key) {
        memcpy(b->req_key, key, kl);
        b->req_key_len = kl;
    }
    b->first = false;
    b->all_received = pg->hdr.done;
    ld_db *db = NULL;
    if (ld_registry_get_or_create(&r->node->reg, l->db, &db) != LD_OK) {
        ld_boot_page_free(pg);
        free(job);
        b->reload = true;
        ld_repl_cycle_fail(l, "snapshot: cannot open the database");
        return;
    }
    job->ctx = pg;
    b->jobs++;
    ld_node_submit(r->node, db, job);
    ld_registry_release(&r->node->reg, db);
    ld_repl_step_snapshot(l); /* the next page downloads while this one is merged */
}
