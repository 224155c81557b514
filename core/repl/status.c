/* What the scheduler shows: the replication status route, the dashboard's probes, the metrics
 * families per database and peer, and the start-up catch-up that readiness waits for. */
#include "link.h"

/* ---------------------------------------------------------------------------------------------
 * Status
 * ------------------------------------------------------------------------------------------- */

static json_t *time_or_null(uint64_t ms)
{
    char when[LD_ISO_TIME_LEN];
    if (!ms) return json_null();
    ld_iso_time(ms, when);
    return json_string(when);
}

/* The snapshot this link loads, for the status and the dashboard; NULL when none. */
static json_t *boot_json(const ld_link *l)
{
    const boot_state *b = l->boot;
    if (!b) return NULL;
    uint64_t ms = ld_mono_ms() - b->started_mono;
    uint64_t moved = b->done > b->resumed_done ? b->done - b->resumed_done : 0;
    return json_pack("{s:s, s:s, s:I, s:I, s:f, s:I, s:o}", "State", "Loading", "SourceNodeId",
                     l->peer, "RecordsDone", (json_int_t)b->done, "RecordsTotal",
                     (json_int_t)b->total, "RecordsPerSecond",
                     ms ? 1000.0 * (double)moved / (double)ms : 0.0, "LogSequence",
                     (json_int_t)b->log_seq, "StartedUtc", time_or_null(b->started_wall));
}

static json_t *link_json(ld_link *l, const ld_db_state *s)
{
    uint64_t local_max = s->last_seq;
    uint64_t pending = ld_log_span(s, l->push_ckpt, local_max);
    uint64_t behind = l->peer_max > l->pull_ckpt ? l->peer_max - l->pull_ckpt : 0;
    /* TooOldNeedsSnapshot: we load one from the peer, or the peer needs one from us. */
    const char *catchup = !l->active                     ? "Inactive"
                          : (l->boot || l->peer_too_old) ? "TooOldNeedsSnapshot"
                          : pending == 0                 ? "Ready"
                                                         : "CatchingUp";
    char reason[200];
    const char *why = l->last_error[0] ? l->last_error : NULL;
    if (l->boot) {
        snprintf(reason, sizeof reason,
                 "loading a snapshot from %s: %" PRIu64 " of %" PRIu64 " records", l->peer,
                 l->boot->done, l->boot->total);
        why = reason;
    } else if (l->peer_too_old && !why) {
        why = "the peer lacks operations that are not in this node's log: it loads a snapshot";
    }
    bool retrying = l->failures > 0 && l->next_retry_wall > ld_wall_ms();
    return json_pack("{s:s, s:s, s:b, s:s, s:s?, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:o, s:o, "
                     "s:s?, s:i, s:o, s:b, s:o}",
                     "PeerNodeId", l->peer, "BaseUrl", l->base_url, "IsActive", l->active,
                     "CatchUpStatus", catchup, "CatchUpReason", why, "OldestAvailableLogSequence",
                     (json_int_t)(l->peer_oldest ? l->peer_oldest : 1),
                     "LastPushedLocalLogSequence", (json_int_t)l->push_ckpt,
                     "LastPulledPeerLogSequence", (json_int_t)l->pull_ckpt, "LocalMaxLogSequence",
                     (json_int_t)local_max, "EstimatedPendingPushOperations", (json_int_t)pending,
                     "OpsBehind", (json_int_t)behind, "IsOnline", l->online, "LastSuccessUtc",
                     time_or_null(l->last_success_wall), "LastAttemptUtc",
                     time_or_null(l->last_attempt_wall), "LastError",
                     l->last_error[0] ? l->last_error : NULL, "ConsecutiveFailures", l->failures,
                     "NextRetryUtc", time_or_null(retrying ? l->next_retry_wall : 0), "Diverged",
                     l->diverged, "UpdatedUtc", time_or_null(ld_wall_ms()));
}

/* Adds the link's counters since start-up (beyond the contract's fields) to its status j. */
static json_t *link_counters(const ld_link *l, json_t *j)
{
    json_t *snap = boot_json(l);
    if (j &&
        (json_object_set_new(j, "Snapshot", snap ? snap : json_null()) ||
         json_object_set_new(j, "PushedOperations", json_integer((json_int_t)l->ops_pushed)) ||
         json_object_set_new(j, "PushedDuplicates", json_integer((json_int_t)l->push_dups)) ||
         json_object_set_new(j, "PulledOperations", json_integer((json_int_t)l->ops_pulled)) ||
         json_object_set_new(j, "PulledDuplicates", json_integer((json_int_t)l->pull_dups)) ||
         json_object_set_new(j, "PeerWire",
                             json_string(l->peer_compact ? LD_WIREOPS_TOKEN : "json")) ||
         json_object_set_new(j, "CompactPulls", json_integer((json_int_t)l->compact_pulls)) ||
         json_object_set_new(j, "CompactPushes", json_integer((json_int_t)l->compact_pushes)) ||
         json_object_set_new(j, "PipelinedPulls", json_integer((json_int_t)l->pipelined_pulls)))) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* A link whose address answers as another node says so in its status j (and the dashboard's):
 * CatchUpStatus IdentityMismatch and PeerAnswersAs, the id found there. */
static json_t *link_identity_json(const ld_link *l, json_t *j)
{
    if (j && l->answers_as[0] && !l->removed &&
        (json_object_set_new(j, "CatchUpStatus", json_string("IdentityMismatch")) ||
         json_object_set_new(j, "PeerAnswersAs", json_string(l->answers_as)))) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* The purge's fields of a database's status row (docs/replication.md, "Purging tombstones").
 * Non-zero when out of memory. */
static int purge_json(json_t *row, const ld_db_state *s)
{
    char floor[24], when[LD_ISO_TIME_LEN];
    snprintf(floor, sizeof floor, "%" PRIu64, s->purge_floor);
    json_t *last = json_null();
    if (s->last_prune_ms) {
        ld_iso_time(s->last_prune_ms, when);
        last = json_pack("{s:s, s:I, s:I}", "TimeUtc", when, "EntriesRemoved",
                         (json_int_t)s->last_prune_entries, "TombstonesPurged",
                         (json_int_t)s->last_prune_purged);
    }
    return !last || json_object_set_new(row, "LastPrune", last) ||
           json_object_set_new(row, "Tombstones",
                               s->last_prune_ms ? json_integer((json_int_t)s->dead_records)
                                                : json_null()) ||
           json_object_set_new(row, "PurgeFloor", json_string(floor)) ||
           json_object_set_new(row, "RefusedBelowFloor", json_integer((json_int_t)s->refused)) ||
           json_object_set_new(row, "ConflictRecords", json_integer((json_int_t)s->conflicts)) ||
           json_object_set_new(row, "OperationLogBytes", json_integer((json_int_t)s->log_bytes));
}

json_t *ld_repl_status(ld_repl *r)
{
    ld_repl_links_sync_all(r, false);
    char now[LD_ISO_TIME_LEN];
    ld_iso_time(ld_wall_ms(), now);
    json_t *dbs = json_array();
    size_t n;
    char **names = ld_registry_names(&r->node->reg, &n);
    for (size_t i = 0; names && dbs && i < n; i++) {
        ld_db *db = ld_registry_get(&r->node->reg, names[i]);
        if (!db) continue;
        ld_db_state s;
        ld_db_state_get(db, &s);
        json_t *vv = NULL;
        char digest[2 * LD_DIGEST_LEN + 1] = "";
        json_t *floor = NULL;
        ld_status st = ld_oplog_status(db, &vv, digest, &floor);
        ld_registry_release(&r->node->reg, db);
        json_t *peers = json_array(), *snap = NULL;
        uint64_t total = 0;
        int active = 0;
        for (size_t j = 0; peers && j < r->n_links; j++) {
            ld_link *l = r->links[j];
            if (l->removed || strcmp(l->db, names[i]) != 0) continue;
            if (!snap) snap = boot_json(l);
            if (l->active) {
                active++;
                total += ld_log_span(&s, l->push_ckpt, s.last_seq);
            }
            json_array_append_new(peers, link_identity_json(l, link_counters(l, link_json(l, &s))));
        }
        json_array_append_new(
            dbs,
            json_pack("{s:s, s:s, s:s?, s:I, s:I, s:i, s:I, s:I, s:o, s:o, s:s, s:o, s:o}",
                      "DatabaseName", names[i], "Status", st == LD_OK ? "Healthy" : "Error",
                      "Error", st == LD_OK ? NULL : ld_status_str(st), "OldestAvailableLogSequence",
                      (json_int_t)(s.last_seq ? s.pruned_through + 1 : 0), "LocalMaxLogSequence",
                      (json_int_t)s.last_seq, "ActivePeerCount", active,
                      "TotalEstimatedPendingPushOperations", (json_int_t)total,
                      "OperationLogEntries",
                      (json_int_t)ld_log_span(&s, s.pruned_through, s.last_seq), "VersionVector",
                      vv ? vv : json_object(), "LogFloorVersionVector",
                      floor ? floor : json_object(), "Digest", digest, "Snapshot",
                      snap ? snap : json_null(), "Peers", peers ? peers : json_array()));
        json_t *row = json_array_get(dbs, json_array_size(dbs) - 1);
        if (row && purge_json(row, &s)) {
            json_decref(dbs); /* out of memory: no half answer */
            dbs = NULL;
        }
    }
    ld_registry_names_free(names, n);
    uint64_t full, resumed;
    ld_tls_handshakes(r->node->tls, &full, &resumed);
    return json_pack("{s:s, s:s, s:I, s:{s:I, s:I}, s:o}", "NodeId", r->node->node_id,
                     "TimestampUtc", now, "DivergenceCount", (json_int_t)r->divergences,
                     "TlsClientHandshakes", "Full", (json_int_t)full, "Resumed",
                     (json_int_t)resumed, "Databases", dbs ? dbs : json_array());
}

bool ld_repl_cluster_key_changed(ld_repl *r)
{
    return !r->probe || ld_probe_set_key(r->probe, r->node->cfg.replication_api_key);
}

uint64_t ld_repl_divergences(ld_repl *r)
{
    return r->divergences;
}

/* ---------------------------------------------------------------------------------------------
 * Probes (dashboard)
 * ------------------------------------------------------------------------------------------- */

/* Every peer of any list: the node-wide ones and each database's own (through its links). */
void ld_repl_probe_targets(void *ctx, ld_probe *p, void (*add)(ld_probe *, const ld_probe_target *))
{
    ld_repl *r = ctx;
    ld_repl_links_sync_all(r, false);
    for (size_t i = 0; i < r->node_peers.n; i++) {
        const ld_peer *e = &r->node_peers.v[i];
        add(p, &(ld_probe_target){.id = e->id, .base_url = e->base_url, .active = e->active});
    }
    for (size_t i = 0; i < r->n_links; i++) {
        const ld_link *l = r->links[i];
        if (!l->removed)
            add(p, &(ld_probe_target){.id = l->peer, .base_url = l->base_url, .active = l->active});
    }
}

void ld_repl_listening(ld_repl *r, const char *self_url)
{
    ld_probe_start(r->probe, self_url);
}

void ld_repl_stop_probes(ld_repl *r)
{
    ld_probe_stop(r->probe);
}

json_t *ld_repl_overview_nodes(ld_repl *r)
{
    return ld_probe_nodes_json(r->probe);
}

json_t *ld_repl_overview_connections(ld_repl *r)
{
    return ld_probe_connections_json(r->probe);
}

/* ---------------------------------------------------------------------------------------------
 * Metrics and readiness
 * ------------------------------------------------------------------------------------------- */

/* The links to report: active or not, never removed ones. */
static bool link_reported(const ld_link *l)
{
    return !l->removed;
}

/* The per-link families: one row each, its value read by link_value. */
typedef enum link_metric {
    LM_BEHIND,
    LM_PENDING,
    LM_SINCE,
    LM_ONLINE,
    LM_SENT_OPS,
    LM_RECV_OPS,
    LM_SENT_BYTES,
    LM_RECV_BYTES,
    LM_DIVERGED,
    LM_PIPELINED,
} link_metric;

static const struct {
    link_metric m;
    const char *name, *type, *help;
} link_families[] = {
    {LM_BEHIND, "litedist_replication_ops_behind", "gauge",
     "Operations the peer's log holds beyond our pull checkpoint (at the last pull)."},
    {LM_PENDING, "litedist_replication_pending_push_ops", "gauge",
     "Operations of our log past the peer's push checkpoint."},
    {LM_SINCE, "litedist_replication_seconds_since_last_success", "gauge",
     "Seconds since the last successful cycle with the peer (+Inf: none since start)."},
    {LM_ONLINE, "litedist_replication_peer_online", "gauge",
     "1 when the last cycle with the peer succeeded."},
    {LM_SENT_OPS, "litedist_replication_sent_ops_total", "counter",
     "Operations pushed to the peer and acknowledged."},
    {LM_RECV_OPS, "litedist_replication_received_ops_total", "counter",
     "Operations pulled from the peer and processed."},
    {LM_SENT_BYTES, "litedist_replication_sent_bytes_total", "counter",
     "Request body bytes sent to the peer (pushes, pulls, snapshot page requests)."},
    {LM_RECV_BYTES, "litedist_replication_received_bytes_total", "counter",
     "Answer body bytes received from the peer."},
    {LM_DIVERGED, "litedist_replication_diverged", "gauge",
     "1 when the peer's digest disagreed with ours at equal version vectors."},
    {LM_PIPELINED, "litedist_replication_pipelined_pulls_total", "counter",
     "Pulls sent while the batch before them was being committed (the pull pipeline)."},
};

/* Link l's sample of family m; local_max is its database's last log sequence. */
static double link_value(const ld_link *l, uint64_t local_max, link_metric m)
{
    switch (m) {
    case LM_BEHIND:
        return (double)(l->peer_max > l->pull_ckpt ? l->peer_max - l->pull_ckpt : 0);
    case LM_PENDING:
        return (double)(local_max > l->push_ckpt ? local_max - l->push_ckpt : 0);
    case LM_SINCE: {
        if (!l->last_success_wall) return INFINITY; /* never succeeded since start-up */
        uint64_t now = ld_wall_ms();
        return now > l->last_success_wall ? (double)(now - l->last_success_wall) / 1000.0 : 0.0;
    }
    case LM_ONLINE:
        return l->online ? 1.0 : 0.0;
    case LM_SENT_OPS:
        return (double)l->ops_pushed;
    case LM_RECV_OPS:
        return (double)l->ops_pulled;
    case LM_SENT_BYTES:
        return (double)l->bytes_sent;
    case LM_RECV_BYTES:
        return (double)l->bytes_received;
    case LM_DIVERGED:
        return l->diverged ? 1.0 : 0.0;
    case LM_PIPELINED:
        return (double)l->pipelined_pulls;
    }
    return 0.0;
}

void ld_repl_metrics(ld_repl *r, ld_mx *w)
{
    uint64_t *local_max = calloc(r->n_links ? r->n_links : 1, sizeof *local_max);
    if (!local_max) {
        w->failed = true;
        return;
    }
    /* Each database's last sequence once, though it has a link per peer. */
    for (size_t i = 0; i < r->n_links; i++) {
        const ld_link *l = r->links[i];
        if (i > 0 &&
            !strcmp(r->links[i - 1]->db, l->db)) { /* a database's links are made together */
            local_max[i] = local_max[i - 1];
            continue;
        }
        ld_db *db = ld_registry_get(&r->node->reg, l->db);
        if (!db) continue;
        ld_db_state s;
        ld_db_state_get(db, &s);
        ld_registry_release(&r->node->reg, db);
        local_max[i] = s.last_seq;
    }
    for (size_t f = 0; f < sizeof link_families / sizeof link_families[0]; f++) {
        const char *name = link_families[f].name;
        ld_mx_family(w, name, link_families[f].type, link_families[f].help);
        for (size_t i = 0; i < r->n_links; i++) {
            const ld_link *l = r->links[i];
            if (!link_reported(l)) continue;
            const char *labels[] = {"database", l->db, "peer", l->peer, NULL};
            ld_mx_sample(w, name, labels, link_value(l, local_max[i], link_families[f].m));
        }
    }
    free(local_max);

    const char *fam = "litedist_replication_failures_total";
    ld_mx_family(w, fam, "counter", "Failed replication cycles with the peer, by reason.");
    for (size_t i = 0; i < r->n_links; i++) {
        const ld_link *l = r->links[i];
        if (!link_reported(l)) continue;
        for (int k = 0; k < FAIL_N; k++) {
            if (!l->fails[k]) continue; /* a reason appears once it happened: 300 links x 5 */
            const char *labels[] = {"database", l->db,         "peer", l->peer,
                                    "reason",   fail_names[k], NULL};
            ld_mx_sample_u64(w, fam, labels, l->fails[k]);
        }
    }
    ld_mx_family(w, "litedist_replication_divergences_total", "counter",
                 "Digest disagreements at equal version vectors found since start-up.");
    ld_mx_sample_u64(w, "litedist_replication_divergences_total", NULL, r->divergences);

    /* Snapshot loads in progress: one series per link loading. */
    static const char *const snap[2][2] = {
        {"litedist_replication_snapshot_records_done", "Records of the snapshot being loaded "
                                                       "from the peer merged so far."},
        {"litedist_replication_snapshot_records_total", "Records of the snapshot being loaded "
                                                        "from the peer, as the peer counted them."},
    };
    for (int k = 0; k < 2; k++) {
        ld_mx_family(w, snap[k][0], "gauge", snap[k][1]);
        for (size_t i = 0; i < r->n_links; i++) {
            const ld_link *l = r->links[i];
            if (!link_reported(l) || !l->boot) continue;
            const char *labels[] = {"database", l->db, "peer", l->peer, NULL};
            ld_mx_sample_u64(w, snap[k][0], labels, k ? l->boot->total : l->boot->done);
        }
    }
}

bool ld_repl_catchup_settled(ld_repl *r, char *why, size_t len)
{
    ld_repl_links_sync_all(r, false);
    for (size_t i = 0; i < r->n_links; i++) {
        const ld_link *l = r->links[i];
        if (l->removed || !l->active) continue;
        if (l->boot) {
            snprintf(why, len, "loading a snapshot of '%s' from %s", l->db, l->peer);
            return false;
        }
        /* Settled: a cycle succeeded, or the peer did not answer (unreachable peers do not
         * hold readiness back: a node alone must become ready). */
        bool unreachable = l->failures > 0 && !l->online && l->fails[FAIL_UNREACHABLE] > 0;
        if (!l->last_success_wall && !unreachable) {
            snprintf(why, len, "catching up '%s' with %s", l->db, l->peer);
            return false;
        }
    }
    return true;
}
