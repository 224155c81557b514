/* Node-to-node routes (ReplicationApiKey): POST /api/replication/push, /pull, /snapshot and
 * /operation-log/prune, GET /api/replication/status and /databases, POST /api/replication/announce,
 * the peer registry under /api/cluster/peers and POST /api/cluster/leave. */
#include "api.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../db/apply.h"
#include "../db/names.h"
#include "../db/completions.h"
#include "../db/registry.h"
#include "../db/writer.h"
#include "../repl/discovery.h"
#include "../repl/ingest.h"
#include "../repl/oplog.h"
#include "../repl/prune.h"
#include "../repl/repl.h"
#include "../repl/snapshot_page.h"
#include "../util/workers.h"
#include "../repl/wire.h"
#include "../repl/wire_ops.h"
#include "../util/jsonbuf.h"
#include "../util/jsonget.h"
#include "../ws/ws.h"
#include "context.h"

#define PULL_DEFAULT_BATCH 200
#define PULL_MAX_BATCH     10000

/* The body as a JSON object with a matching ProtocolVersion, or NULL having replied. */
static json_t *repl_body(ld_req *r)
{
    json_t *body = ld_req_json(r);
    if (!body) return NULL;
    char err[256];
    if (!json_is_object(body)) {
        json_decref(body);
        ld_reply_error(r, 400, "Request body must be a JSON object.");
        return NULL;
    }
    if (!ld_wire_protocol_ok(body, err, sizeof err)) {
        json_decref(body);
        ld_reply_error(r, 400, "%s", err);
        return NULL;
    }
    return body;
}

/* Every push and pull answer but an error says this node reads and writes the compact encoding,
 * so a peer learns it from the answers it already gets; one whose compact push was refused sends
 * JSON next (docs/replication.md, "The compact encoding"). */
static void announce_compact(ld_req *r)
{
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), LD_WIREOPS_HEADER,
                      LD_WIREOPS_TOKEN);
}

/* A pull answer's: the compact encoding, and that this node reads CommittedLogSequence (a
 * requester may pull ahead of its commits, see ld_api_repl_pull). */
static void announce_pull(ld_req *r)
{
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), LD_WIREOPS_HEADER,
                      LD_WIREOPS_TOKEN ", " LD_WIRE_COMMITTED_TOKEN);
}

/* A push body: JSON, or a compact frame whose header stands for the JSON body (returned) and
 * whose ops, decoded and validated, are left in *f. NULL having replied. */
static json_t *push_body(ld_req *r, ld_wireops_frame *f, bool *framed)
{
    memset(f, 0, sizeof *f);
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(r->ev), "Content-Type");
    *framed = ld_wireops_is_type(ct);
    if (!*framed) return repl_body(r);
    size_t len;
    char *raw = ld_req_body(r, &len);
    if (!raw) return NULL;
    char err[300];
    bool ok = ld_wireops_decode((const uint8_t *)raw, len, f, err, sizeof err);
    free(raw);
    if (!ok) {
        ld_reply_error(r, 400, "The %s body is malformed: %s.", LD_WIREOPS_CONTENT_TYPE, err);
        return NULL;
    }
    if (!ld_wire_protocol_ok(f->header, err, sizeof err)) {
        ld_wireops_frame_clear(f);
        ld_reply_error(r, 400, "%s", err);
        return NULL;
    }
    json_t *body = f->header;
    f->header = NULL;
    return body;
}

static void push_done(ld_wjob *job)
{
    ld_req *r = job->arg;
    ld_ingest *in = job->ctx;
    if (job->result != LD_WR_OK) {
        ld_reply_error(r, 503, "The operations could not be committed; nothing was applied.");
    } else {
        /* Our version vector after the commit (litedist's addition): the sender's next pushes
         * skip what we have, which in a mesh we mostly got from the entries' origin. */
        json_t *vv = NULL;
        char digest[2 * LD_DIGEST_LEN + 1];
        if (ld_oplog_state(r->db, &vv, digest) != LD_OK) vv = NULL;
        /* And our clock promises (the purge frontier's input, litedist's addition). */
        json_t *promises = ld_repl_promises_json(r->node->repl, r->db);
        announce_compact(r);
        ld_reply_json(r, 200,
                      json_pack("{s:i, s:I, s:I, s:I, s:s?, s:o?, s:o?}", "ProtocolVersion",
                                LD_REPL_PROTOCOL, "ProcessedCount", (json_int_t)in->processed,
                                "AcceptedCount", (json_int_t)in->accepted,
                                "LastProcessedLogSequence", (json_int_t)in->last_processed,
                                "StoppedReason", in->stopped ? in->stop_reason : NULL,
                                "VersionVector", vv, "PurgePromises", promises));
    }
    ld_ingest_free(in);
    ld_wjob_free(job);
}

/* A request from peer `id` (already authenticated with the cluster key) shows it is up. */
static void peer_alive(ld_node *n, const char *id)
{
    if (id && ld_node_id_valid(id) && strcmp(id, n->node_id) != 0) {
        ld_repl_peer_alive(n->repl, id);
        ld_discovery_heard(n->disc, id);
    }
}

void ld_api_repl_push(ld_req *r)
{
    if (!ld_api_cluster_auth(r) || !ld_api_cluster_db(r, true)) return;
    ld_wireops_frame f;
    bool framed;
    json_t *body = push_body(r, &f, &framed);
    if (!body) return;
    json_t *ops = ld_json_get_ci(body, "Operations");
    const char *source = json_string_value(ld_json_get_ci(body, "SourceNodeId"));
    if (!framed && !json_is_array(ops)) {
        json_decref(body);
        ld_reply_error(r, 400, "Operations payload is required.");
        return;
    }
    if (source && !strcmp(source, r->node->node_id)) {
        ld_wireops_frame_clear(&f);
        json_decref(body);
        ld_reply_error(r, 400, "SourceNodeId is this node's own id: node ids must be unique.");
        return;
    }
    peer_alive(r->node, source);
    size_t n = framed ? f.n : json_array_size(ops);
    ld_ingest *in = calloc(1, sizeof *in);
    ld_wjob *job = ld_wjob_custom(ld_ingest_apply, push_done, r);
    if (!in || !job || (!framed && n && !(in->ops = calloc(n, sizeof *in->ops)))) {
        ld_wireops_frame_clear(&f);
        ld_ingest_free(in);
        free(job);
        json_decref(body);
        ld_reply_error(r, 500, "Out of memory.");
        return;
    }
    if (framed) { /* a compact frame's ops were validated as it was decoded */
        in->ops = f.ops;
        in->n = f.n;
        f.ops = NULL;
        f.n = 0;
    }
    /* Every op is validated before anything is written: a bad batch changes nothing. */
    for (size_t i = 0; !framed && i < n; i++) {
        char err[256];
        if (!ld_wire_op_decode(json_array_get(ops, i), &in->ops[i], err, sizeof err)) {
            ld_ingest_free(in);
            free(job);
            json_decref(body);
            ld_reply_error(r, 400, "Operations[%zu]: %s.", i, err);
            return;
        }
        in->n++;
    }
    in->policy = r->node->cfg.conflict_policy;
    in->max_skew_ms = (uint64_t)r->node->cfg.max_clock_skew_s * 1000u;
    snprintf(in->peer, sizeof in->peer, "%s", source ? source : ""); /* source lives in body */
    json_t *promises = json_incref(ld_json_get_ci(body, "PurgePromises"));
    json_decref(body);
    if (!r->db && n == 0) {
        json_decref(promises);
        ld_ingest_free(in);
        free(job);
        announce_compact(r);
        ld_reply_json(r, 200,
                      json_pack("{s:i, s:i, s:i, s:i}", "ProtocolVersion", LD_REPL_PROTOCOL,
                                "ProcessedCount", 0, "AcceptedCount", 0, "LastProcessedLogSequence",
                                0));
        return;
    }
    /* A peer's push creates the database here: the cluster key stands for the whole node. */
    if (!ld_api_ensure_db(r)) {
        json_decref(promises);
        ld_ingest_free(in);
        free(job);
        return;
    }
    ld_repl_promises_merge(r->node->repl, r->db->name, promises);
    json_decref(promises);
    /* Before the commit, whose trigger could otherwise start a cycle that pulls these. */
    if (n && in->peer[0] && ld_node_id_valid(in->peer))
        ld_repl_peer_pushed(r->node->repl, r->db->name, in->peer);
    job->ctx = in;
    ld_node_submit(r->node, r->db, job);
}

/* A pull answer read on a worker: the op-log walk (bounded by the entries it scans, but still
 * milliseconds on a long log the requester already holds) never runs on the loop. */
typedef struct pull_req {
    ld_req *r;
    ld_db *db;
    json_t *body;          /* the request's JSON (owned); vv and requester point into it */
    json_t *vv;            /* the requester's VersionVector, or NULL */
    const char *requester; /* RequestingNodeId, or NULL */
    uint64_t after;
    uint64_t held; /* what the requester holds: CommittedLogSequence when sent, else after */
    size_t batch, max_bytes;
    bool compact; /* the requester asked for the compact encoding (Accept) */
    ld_oplog_batch b;
    ld_status st;
} pull_req;

static void pull_work(void *arg)
{
    pull_req *c = arg;
    c->st = ld_oplog_read(c->db, c->after, c->batch, c->max_bytes, NULL, c->vv, true, c->compact,
                          &c->b);
}

/* A pull answer in the compact encoding: the JSON answer's other members in the frame's
 * header, the ops as ld_oplog_read wrote them. Takes over b and promises; replies. */
static void pull_answer_compact(ld_req *r, ld_oplog_batch *b, json_t *promises)
{
    json_t *h = promises
                    ? json_pack("{s:i, s:s, s:I, s:I, s:b, s:O, s:s, s:O}", "ProtocolVersion",
                                LD_REPL_PROTOCOL, "NodeId", r->node->node_id, "LastLogSequence",
                                (json_int_t)b->scanned, "LocalMaxLogSequence",
                                (json_int_t)b->local_max, "HasMore", b->more, "VersionVector",
                                b->vv, "Digest", b->digest, "PurgePromises", promises)
                    : NULL;
    struct evbuffer *out = h ? evbuffer_new() : NULL;
    bool ok = out && ld_wireops_frame_write(h, b->n, b->ops, out);
    json_decref(h);
    json_decref(promises);
    ld_oplog_batch_free(b);
    if (ok)
        ld_reply_bytes(r, 200, LD_WIREOPS_CONTENT_TYPE, out);
    else
        ld_reply_error(r, 500, "Out of memory.");
    if (out) evbuffer_free(out);
}

/* The answer, on the loop. A requester that went away meanwhile costs nothing more: libevent
 * frees a request whose connection is gone when it is answered. */
static void pull_done(void *arg)
{
    pull_req *c = arg;
    ld_req *r = c->r;
    json_t *body = c->body, *vv = c->vv;
    const char *requester = c->requester;
    uint64_t held = c->held;
    bool compact = c->compact;
    ld_status st = c->st;
    ld_oplog_batch b = c->b; /* zeroed by ld_oplog_read even when it fails */
    free(c);
    r->node->inflight--;
    bool valid_requester =
        requester && ld_node_id_valid(requester) && strcmp(requester, r->node->node_id) != 0;
    if (st == LD_OK && b.needs_snapshot) {
        /* Ops the requester lacks are not in this log: answering "nothing more" would leave it
         * behind for good. It must load a snapshot (POST /api/replication/snapshot). */
        if (valid_requester) ld_repl_peer_too_old(r->node->repl, r->db->name, requester, true);
        peer_alive(r->node, requester);
        json_decref(body);
        ld_db_state s;
        ld_db_state_get(r->db, &s);
        ld_reply_json(r, 410,
                      json_pack("{s:s, s:i, s:s, s:b, s:I, s:O}", "Error",
                                "This node's operation log does not hold every operation the "
                                "requester lacks (pruned, or loaded from a snapshot): the "
                                "requester needs a snapshot.",
                                "ProtocolVersion", LD_REPL_PROTOCOL, "NodeId", r->node->node_id,
                                "SnapshotRequired", 1, "OldestAvailableLogSequence",
                                (json_int_t)(s.pruned_through + 1), "LogFloorVersionVector",
                                b.floor));
        ld_oplog_batch_free(&b);
        return;
    }
    if (st == LD_OK && valid_requester)
        ld_repl_peer_too_old(r->node->repl, r->db->name, requester, false);
    if (st == LD_OK && valid_requester)
        ld_repl_peer_pulled(r->node->repl, r->db->name, requester, held, b.local_max, b.more, vv);
    ld_repl_promises_merge(r->node->repl, r->db->name, ld_json_get_ci(body, "PurgePromises"));
    json_t *promises = st == LD_OK ? ld_repl_promises_json(r->node->repl, r->db) : NULL;
    peer_alive(r->node, requester); /* after: a link it kicks sees the pull above */
    json_decref(body);
    if (st != LD_OK) {
        ld_reply_error(r, 500, "Reading the operation log failed: %s.", ld_status_str(st));
        return;
    }
    announce_pull(r);
    if (compact) {
        pull_answer_compact(r, &b, promises);
        return;
    }
    /* Written as text: the ops are JSON already (ld_wire_op_write), and a batch of 1 KB
     * documents is over a megabyte that a jansson tree would copy twice more. */
    struct evbuffer *out = evbuffer_new();
    bool ok =
        out &&
        evbuffer_add_printf(out, "{\"ProtocolVersion\":%d,\"NodeId\":", LD_REPL_PROTOCOL) > 0 &&
        ld_json_string_evbuffer(r->node->node_id, strlen(r->node->node_id), out) &&
        evbuffer_add(out, ",\"Operations\":[", 15) == 0 && evbuffer_add_buffer(out, b.ops) == 0 &&
        evbuffer_add_printf(out,
                            "],\"LastLogSequence\":%" PRIu64 ",\"LocalMaxLogSequence\":%" PRIu64
                            ",\"HasMore\":%s,\"VersionVector\":",
                            b.scanned, b.local_max, b.more ? "true" : "false") > 0 &&
        ld_json_dump_evbuffer(b.vv, JSON_COMPACT, out) &&
        evbuffer_add_printf(out, ",\"Digest\":\"%s\",\"PurgePromises\":", b.digest) > 0 &&
        promises && ld_json_dump_evbuffer(promises, JSON_COMPACT, out) &&
        evbuffer_add(out, "}", 1) == 0;
    json_decref(promises);
    ld_oplog_batch_free(&b);
    if (ok)
        ld_reply_buffer(r, 200, out);
    else
        ld_reply_error(r, 500, "Out of memory.");
    if (out) evbuffer_free(out);
}

void ld_api_repl_pull(ld_req *r)
{
    if (!ld_api_cluster_auth(r) || !ld_api_cluster_db(r, true)) return;
    json_t *body = repl_body(r);
    if (!body) return;
    uint64_t after = 0, batch = PULL_DEFAULT_BATCH;
    json_t *v = ld_json_get_ci(body, "AfterLogSequence");
    if (v && !json_is_null(v) && !ld_json_as_u64(v, &after)) {
        json_decref(body);
        ld_reply_error(r, 400, "AfterLogSequence must be a non-negative integer.");
        return;
    }
    /* A litedist requester pulls ahead of its commits (core/repl/pull.c): AfterLogSequence is
     * then past what it holds, and CommittedLogSequence says what it does. */
    uint64_t held = after, committed = 0;
    v = ld_json_get_ci(body, "CommittedLogSequence");
    if (v && !json_is_null(v)) {
        if (!ld_json_as_u64(v, &committed)) {
            json_decref(body);
            ld_reply_error(r, 400, "CommittedLogSequence must be a non-negative integer.");
            return;
        }
        if (committed < held) held = committed;
    }
    v = ld_json_get_ci(body, "BatchSize");
    if (v && !json_is_null(v)) {
        json_int_t signed_batch = json_is_integer(v) ? json_integer_value(v) : 1;
        if (signed_batch <= 0 || !ld_json_as_u64(v, &batch) || batch == 0) {
            json_decref(body);
            ld_reply_error(r, 400, "BatchSize must be greater than zero.");
            return;
        }
    }
    if (batch > PULL_MAX_BATCH) batch = PULL_MAX_BATCH;
    json_t *vv = ld_json_get_ci(body, "VersionVector");
    const char *requester = json_string_value(ld_json_get_ci(body, "RequestingNodeId"));
    if (!r->db) {
        peer_alive(r->node, requester);
        /* Nothing here yet: an empty answer, and nothing created. */
        json_decref(body);
        announce_pull(r);
        ld_reply_json(r, 200,
                      json_pack("{s:i, s:s, s:[], s:I, s:I, s:b, s:{}, s:s}", "ProtocolVersion",
                                LD_REPL_PROTOCOL, "NodeId", r->node->node_id, "Operations",
                                "LastLogSequence", (json_int_t)after, "LocalMaxLogSequence",
                                (json_int_t)0, "HasMore", 0, "VersionVector", "Digest",
                                "00000000000000000000000000000000"));
        return;
    }
    pull_req *c = calloc(1, sizeof *c);
    if (!c) {
        json_decref(body);
        ld_reply_error(r, 500, "Out of memory.");
        return;
    }
    /* The worker reads only what is copied here and the body, which the loop leaves alone until
     * pull_done; the request's database reference keeps the database open meanwhile. */
    const char *accept = evhttp_find_header(evhttp_request_get_input_headers(r->ev), "Accept");
    *c = (pull_req){.r = r,
                    .db = r->db,
                    .body = body,
                    .vv = json_is_object(vv) ? vv : NULL,
                    .requester = requester,
                    .after = after,
                    .held = held,
                    .batch = (size_t)batch,
                    .max_bytes = r->node->cfg.repl_batch_bytes,
                    .compact = ld_wireops_accepted(accept)};
    r->node->inflight++;
    if (r->node->shutting_down) {
        /* The loop's exit is decided when nothing is in flight, then comes after a short grace:
         * a worker item started in that grace could outlive the loop. Shutting down, the loop
         * serves nothing that would wait for this one bounded read. */
        pull_work(c);
        pull_done(c);
        return;
    }
    if (!ld_workers_submit(r->node->repl_workers, pull_work, pull_done, c)) {
        r->node->inflight--;
        json_decref(body);
        free(c);
        ld_reply_error(r, 500, "Out of memory.");
    }
}

/* ---------------------------------------------------------------------------------------------
 * POST /api/replication/snapshot: one page of the database's records (repl/snapshot_page.h),
 * read on a worker thread so a page of megabytes never stalls the loop.
 * ------------------------------------------------------------------------------------------- */

typedef struct snap_req {
    ld_req *r;
    uint8_t after[LD_SNAP_MAX_KEY];
    size_t after_len;
    size_t max_bytes;
    struct evbuffer *out;
    ld_status st;
} snap_req;

static void snap_work(void *arg)
{
    snap_req *c = arg;
    c->st =
        ld_snap_read(c->r->db, c->r->node->node_id, c->after, c->after_len, c->max_bytes, c->out);
}

static void snap_done(void *arg)
{
    snap_req *c = arg;
    ld_req *r = c->r;
    r->node->inflight--;
    if (c->st == LD_OK)
        ld_reply_bytes(r, 200, LD_SNAP_CONTENT_TYPE, c->out);
    else
        ld_reply_error(r, 500, "Reading the snapshot page failed: %s.", ld_status_str(c->st));
    evbuffer_free(c->out);
    free(c);
}

void ld_api_repl_snapshot(ld_req *r)
{
    if (!ld_api_cluster_auth(r) || !ld_api_cluster_db(r, true)) return;
    json_t *body = repl_body(r);
    if (!body) return;
    const char *requester = json_string_value(ld_json_get_ci(body, "RequestingNodeId"));
    json_t *after = ld_json_get_ci(body, "AfterKey");
    json_t *maxb = ld_json_get_ci(body, "MaxBytes");
    uint64_t max_bytes = LD_SNAP_PAGE_DEFAULT;
    snap_req *c = calloc(1, sizeof *c);
    if (!c) {
        json_decref(body);
        ld_reply_error(r, 500, "Out of memory.");
        return;
    }
    const char *why = NULL;
    if (after && !json_is_null(after) &&
        (!json_is_string(after) || json_string_length(after) == 0 ||
         sodium_base642bin(c->after, sizeof c->after, json_string_value(after),
                           json_string_length(after), NULL, &c->after_len, NULL,
                           sodium_base64_VARIANT_ORIGINAL) != 0 ||
         c->after_len == 0))
        why = "AfterKey must be the base64 of a key of at most 511 bytes, or null.";
    else if (maxb && !json_is_null(maxb) && !ld_json_as_u64(maxb, &max_bytes))
        why = "MaxBytes must be a non-negative integer.";
    if (why) {
        json_decref(body);
        free(c);
        ld_reply_error(r, 400, "%s", why);
        return;
    }
    if (requester && ld_node_id_valid(requester)) {
        peer_alive(r->node, requester);
        if (r->db && strcmp(requester, r->node->node_id) != 0)
            ld_repl_peer_snapshotting(r->node->repl, r->db->name, requester);
    }
    json_decref(body);
    if (!r->db) {
        free(c);
        ld_reply_error(r, 404, "Database '%s' does not exist on this node.", r->db_name);
        return;
    }
    if (max_bytes < LD_SNAP_PAGE_MIN) max_bytes = LD_SNAP_PAGE_MIN;
    if (max_bytes > LD_SNAP_PAGE_MAX) max_bytes = LD_SNAP_PAGE_MAX;
    c->r = r;
    c->max_bytes = (size_t)max_bytes;
    c->out = evbuffer_new();
    r->node->inflight++;
    if (!c->out || !ld_workers_submit(r->node->repl_workers, snap_work, snap_done, c)) {
        r->node->inflight--;
        if (c->out) evbuffer_free(c->out);
        free(c);
        ld_reply_error(r, 500, "Out of memory.");
    }
}

/* POST /api/replication/operation-log/prune: a pruning pass now (repl/prune.h). */
static void prune_done(void *ctx, json_t *results)
{
    ld_req *r = ctx;
    r->node->inflight--;
    if (!results)
        ld_reply_error(r, 500, "Out of memory.");
    else
        ld_reply_json(r, 200, results);
}

void ld_api_repl_prune(ld_req *r)
{
    if (!ld_api_cluster_auth(r)) return;
    r->node->inflight++;
    if (!ld_pruner_run(r->node->pruner, prune_done, r)) {
        r->node->inflight--;
        ld_reply_error(r, 500, "Out of memory.");
    }
}

void ld_api_repl_status(ld_req *r)
{
    if (!ld_api_cluster_auth(r)) return;
    json_t *s = ld_repl_status(r->node->repl);
    if (!s)
        ld_reply_error(r, 500, "Out of memory.");
    else
        ld_reply_json(r, 200, s);
}

#define CONFLICTS_TAKE_DEFAULT 100
#define CONFLICTS_TAKE_MAX     1000

/* GET /api/replication/conflicts?after=<token>&take=<n>: the database's conflict records (ops
 * refused below the purge floor, repl/purge.h) in (origin, stamp) order, each in the wire's op
 * shape; X-Next-After names where the next page starts (token "<origin>:<Hlc>"). */
void ld_api_repl_conflicts(ld_req *r)
{
    if (!ld_api_cluster_auth(r) || !ld_api_cluster_db(r, true)) return;
    long long take;
    if (!ld_req_param_int(r, "take", CONFLICTS_TAKE_DEFAULT, &take)) return;
    if (take < 1) take = 1;
    if (take > CONFLICTS_TAKE_MAX) take = CONFLICTS_TAKE_MAX;
    const char *after = ld_req_param(r, "after");
    uint8_t akey[LD_NODE_ID_MAX + 9];
    size_t akl = 0;
    if (after) {
        /* "<node id>:<Hlc>": the id may hold ':' itself, the stamp is after the last one. */
        const char *colon = strrchr(after, ':');
        size_t ol = colon ? (size_t)(colon - after) : 0;
        char origin[LD_NODE_ID_MAX + 1] = "";
        char *end = NULL;
        unsigned long long hlc = 0;
        bool valid = colon && ol > 0 && ol <= LD_NODE_ID_MAX && colon[1] >= '0' && colon[1] <= '9';
        if (valid) {
            memcpy(origin, after, ol);
            origin[ol] = '\0';
            errno = 0;
            hlc = strtoull(colon + 1, &end, 10);
            valid = errno == 0 && *end == '\0' && ld_node_id_valid(origin) &&
                    ld_conflict_key(origin, ol, (uint64_t)hlc, akey, &akl) == LD_OK;
        }
        if (!valid) {
            ld_reply_error(r, 400,
                           "Query parameter 'after' is not a conflict token (<node id>:<Hlc>).");
            return;
        }
    }
    if (!r->db) {
        ld_reply_json(r, 200, json_array());
        return;
    }
    struct evbuffer *out = evbuffer_new();
    ld_txn t;
    ld_cursor c;
    bool opened = false;
    ld_status st = out ? ld_txn_begin(r->db->env->store, r->db->st, false, &t) : LD_NOMEM;
    if (st == LD_OK) {
        opened = true;
        st = ld_cursor_open(&t, LD_SPACE_CONFLICTS, &c);
    }
    long long n = 0;
    char last[LD_NODE_ID_MAX + 24] = "";
    bool more = false;
    bool ok = st == LD_OK && evbuffer_add(out, "[", 1) == 0;
    if (ok) {
        const void *k, *v;
        size_t kl, vl;
        st = ld_cursor_seek(&c, akey, akl, &k, &kl, &v, &vl);
        if (st == LD_OK && akl && kl == akl && !memcmp(k, akey, kl))
            st = ld_cursor_next(&c, &k, &kl, &v, &vl);
        while (st == LD_OK && ok) {
            ld_op_rec op;
            if (!ld_op_rec_decode(v, vl, &op)) {
                st = LD_CORRUPT;
                break;
            }
            if (n == take) {
                more = true;
                break;
            }
            ok = (n == 0 || evbuffer_add(out, ",", 1) == 0) && ld_wire_op_write(&op, 0, out);
            snprintf(last, sizeof last, "%.*s:%" PRIu64, (int)op.origin_len, op.origin, op.hlc);
            n++;
            st = ld_cursor_next(&c, &k, &kl, &v, &vl);
        }
        ld_cursor_close(&c);
        if (st == LD_NOT_FOUND) st = LD_OK;
    }
    if (opened) ld_txn_abort(&t);
    ok = ok && st == LD_OK && evbuffer_add(out, "]", 1) == 0;
    if (!ok) {
        if (out) evbuffer_free(out);
        ld_reply_error(r, 500, "Reading the conflict records failed: %s.",
                       st != LD_OK ? ld_status_str(st) : "out of memory");
        return;
    }
    /* More follow: the next page starts after the last record sent. */
    if (more) evhttp_add_header(evhttp_request_get_output_headers(r->ev), "X-Next-After", last);
    ld_reply_buffer(r, 200, out);
    evbuffer_free(out);
}

/* GET /api/replication/databases: what a joining node, or any peer's sweep, learns databases
 * from. */
void ld_api_repl_databases(ld_req *r)
{
    if (!ld_api_cluster_auth(r)) return;
    json_t *l = ld_discovery_databases_json(r->node);
    if (!l)
        ld_reply_error(r, 500, "Out of memory.");
    else
        ld_reply_json(r, 200, l);
}

void ld_api_repl_announce(ld_req *r)
{
    if (!ld_api_cluster_auth(r)) return;
    json_t *body = repl_body(r);
    if (!body) return;
    ld_discovery_announce(r->node->disc, r, body);
    json_decref(body);
}

void ld_api_cluster_leave(ld_req *r)
{
    if (!ld_api_cluster_auth(r)) return;
    ld_discovery_leave(r->node->disc, r);
}

/* ---------------------------------------------------------------------------------------------
 * /api/cluster/peers: with a Database header the database's own peers, without the node-wide
 * ones every database replicates with.
 * ------------------------------------------------------------------------------------------- */

void ld_api_peers_list(ld_req *r)
{
    if (!ld_api_cluster_auth(r) || !ld_api_cluster_db(r, false)) return;
    json_t *l = ld_repl_peers_list(r->node->repl, r->db_name[0] ? r->db_name : NULL);
    if (l && !r->db_name[0]) ld_discovery_annotate_peers(r->node->disc, l);
    if (!l)
        ld_reply_error(r, 500, "The peer list could not be read.");
    else
        ld_reply_json(r, 200, l);
}

void ld_api_peers_upsert(ld_req *r)
{
    if (!ld_api_cluster_auth(r) || !ld_api_cluster_db(r, false)) return;
    json_t *body = ld_req_json(r);
    if (!body) return;
    if (!json_is_object(body)) {
        json_decref(body);
        ld_reply_error(r, 400, "Request body must be a JSON object.");
        return;
    }
    const char *id = json_string_value(ld_json_get_ci(body, "NodeId"));
    const char *url = json_string_value(ld_json_get_ci(body, "BaseUrl"));
    json_t *act = ld_json_get_ci(body, "IsActive");
    if (act && !json_is_boolean(act) && !json_is_null(act)) {
        json_decref(body);
        ld_reply_error(r, 400, "IsActive must be true or false.");
        return;
    }
    char err[300];
    int status;
    bool ok = ld_repl_peer_upsert(r->node->repl, r->db_name[0] ? r->db_name : NULL, id, url,
                                  !json_is_false(act), &status, err, sizeof err);
    if (!ok) {
        json_decref(body);
        ld_reply_error(r, status, "%s", err);
        return;
    }
    json_decref(body);
    json_t *l = ld_repl_peers_list(r->node->repl, r->db_name[0] ? r->db_name : NULL);
    ld_reply_json(r, 200, l ? l : json_array());
}

void ld_api_peers_delete(ld_req *r)
{
    if (!ld_api_cluster_auth(r) || !ld_api_cluster_db(r, false)) return;
    if (!ld_req_seg_is_text(r, 3)) {
        ld_reply_error(r, 404, "Peer is not registered.");
        return;
    }
    char err[300];
    int status;
    if (!ld_repl_peer_remove(r->node->repl, r->db_name[0] ? r->db_name : NULL, r->segs[3], &status,
                             err, sizeof err)) {
        ld_reply_error(r, status, "%s", err);
        return;
    }
    ld_reply_json(r, 200, json_pack("{s:s, s:b}", "NodeId", r->segs[3], "Removed", 1));
}

/* ---------------------------------------------------------------------------------------------
 * GET /ws/replication: sync-request hints. A hint carries no data, so a lost one loses nothing;
 * it only makes this node run a cycle with the sender at once.
 * ------------------------------------------------------------------------------------------- */

static void ws_answer(ld_ws_conn *c, const char *error)
{
    json_t *a = json_pack("{s:b, s:s?}", "accepted", error == NULL, "error", error);
    char *text = a ? json_dumps(a, JSON_COMPACT) : NULL;
    if (text) ld_ws_send_text(c, text, strlen(text));
    free(text);
    json_decref(a);
}

static const char *ws_handle(ld_node *n, json_t *f)
{
    const char *type = json_string_value(ld_json_get_ci(f, "type"));
    const char *source = json_string_value(ld_json_get_ci(f, "sourceNodeId"));
    if (type && !strcasecmp(type, "health-check")) {
        peer_alive(n, source); /* the connection was opened with the cluster key */
        return NULL;
    }
    if (!type || strcasecmp(type, "sync-request") != 0) return "invalid-payload";
    const char *db_raw = json_string_value(ld_json_get_ci(f, "database"));
    json_t *key = ld_json_get_ci(f, "replicationApiKey");
    char db[LD_DB_NAME_MAX + 1];
    if (!source || !ld_node_id_valid(source) || !strcmp(source, n->node_id) || !db_raw ||
        !ld_db_name_normalize(db_raw, db) || !json_is_string(key) ||
        !ld_cluster_key_ok(n, json_string_value(key), json_string_length(key)))
        return "invalid-payload";
    peer_alive(n, source);
    ld_repl_sync_request(n->repl, db, source);
    return NULL;
}

static void ws_on_text(ld_ws_conn *c, const char *msg, size_t len, void *arg)
{
    json_error_t je;
    json_t *f = json_loadb(msg, len, 0, &je);
    ws_answer(c, json_is_object(f) ? ws_handle(arg, f) : "invalid-json");
    json_decref(f);
}

void ld_api_repl_ws(ld_req *r)
{
    if (!ld_api_cluster_auth(r)) return;
    static const ld_ws_callbacks cbs = {.on_text = ws_on_text};
    ld_ws_conn *c;
    const char *why = NULL;
    ld_status st = ld_ws_accept(r->node->ws, r->ev, &cbs, r->node, &c, &why);
    if (st == LD_OK) {
        ld_req_taken_over(r); /* the connection now belongs to the WebSocket layer */
        return;
    }
    if (st == LD_INVALID || st == LD_UNSUPPORTED)
        ld_reply_error(r, 400, "A WebSocket request is required.");
    else
        ld_reply_error(r, 500, "The WebSocket could not be set up.");
}
