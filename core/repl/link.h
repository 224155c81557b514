/* The replication scheduler's inside, shared by its files (repl.c, transport.c, push.c, pull.c,
 * snapshot_load.c, status.c): the link, its state machine and the functions one file calls in
 * another. Not part of the scheduler's interface (repl.h). Loop thread only, but where a field says
 * otherwise. */
#ifndef LD_REPL_LINK_H
#define LD_REPL_LINK_H

#include "repl.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include "../db/completions.h"
#include "../db/registry.h"
#include "../http/tls.h"
#include "../db/writer.h"
#include "../node.h"
#include "../util/jsonbuf.h"
#include "../util/jsonget.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "../util/timeutil.h"
#include "../util/workers.h"
#include "bootstrap.h"
#include "ingest.h"
#include "oplog.h"
#include "../ws/ws.h"
#include "discovery.h"
#include "peerconn.h"
#include "peers.h"
#include "probe.h"
#include "snapshot_page.h"
#include "wire.h"
#include "wire_ops.h"

/* A link's cycle, one phase at a time (ld_link.ph); every step runs on the loop thread.
 *
 * | phase       | what runs (file)                               | next |
 * |-------------|------------------------------------------------|------------------------------------|
 * | PH_IDLE     | nothing; a kick (commit, hint, sweep) queues it | PH_PUSH when it gets a slot |
 * | PH_PUSH     | step_push (push.c): a batch read on the pool,   | PH_PUSH while entries remain,
 * then | |             | sent, acknowledged; held back from an empty peer| PH_PULL | | PH_PULL |
 * step_pull (pull.c): one batch of the peer's log | PH_INGEST with ops; PH_SNAPSHOT on | | | (left
 * out while the peer's pushes arrive)       | 410 or a long log to replay; IDLE  | | PH_INGEST   |
 * the batch in the writer (pull.c)                | PH_PULL while HasMore, else IDLE   | |
 * PH_SNAPSHOT | step_snapshot (snapshot_load.c): pages merged   | PH_PULL for the log after it | |
 * | in the writer, two ahead of the download        |                                    |
 *
 * In PH_INGEST the next pull may already be out (the pull pipeline, pull.c): the phase is the
 * batch's until it committed, then PH_PULL while that pull is still on its way.
 *
 * Any phase ends in PH_IDLE through cycle_ok (caught up), cycle_end (nothing to do, or the link
 * was removed) or cycle_fail (a retry after exponential backoff with jitter); a pull step never
 * while its pull or its batch is out. A removed link is freed once nothing refers to it
 * (links_reap in repl.c). */
#define BACKOFF_BASE_MS 1000
#define BACKOFF_CAP_MS  30000
#define JITTER_MS       250
/* How long after answering a peer's pull with HasMore we expect its next pull (see
 * ld_repl_peer_pulled); past it, pushes to that peer resume. */
#define PEER_PULLING_MS 5000
/* How long after the peer's last push to us a cycle leaves out its pull: the peer's pushes are
 * delivering its log, and a pull beside them would mostly fetch the same entries again. */
#define PEER_PUSHING_MS 2000
/* How long a push holds a long log back from a peer that holds nothing, waiting for it to load
 * a snapshot instead: two sweep intervals, in which a peer with a link to us pulls at least once
 * (and it keeps waiting while the peer fetches snapshot pages from us). */
#define PUSH_GATE_MS(r) (2000u * (uint64_t)(r)->node->cfg.anti_entropy_s)

typedef enum { PH_IDLE, PH_PUSH, PH_PULL, PH_INGEST, PH_SNAPSHOT } phase;

/* Pages of a snapshot in the writer at once: the next page downloads while one is merged. */
#define SNAPSHOT_PAGES_AHEAD 2

/* A snapshot this link loads from its peer (bootstrap.h keeps the stored progress). */
typedef struct boot_state {
    uint8_t req_key[LD_SNAP_MAX_KEY]; /* the next page is asked after this key */
    size_t req_key_len;
    bool first;        /* the next page asked for is the first: a new snapshot */
    bool reload;       /* take req_key from the stored progress before the next request */
    bool all_received; /* the last page arrived */
    bool requesting;   /* a page request is out (one at a time: each asks after the last) */
    int jobs;          /* pages in the writer */
    uint64_t done, total, log_seq; /* records merged / in the source; where it stands */
    uint64_t started_wall, started_mono, resumed_done;
} boot_state;

/* Why a replication cycle failed: litedist_replication_failures_total's reason label. */
enum {
    FAIL_LOCAL,       /* this node's side: storage, memory (0: what a new link starts with) */
    FAIL_UNREACHABLE, /* no answer: refused, reset, timed out, TLS failed */
    FAIL_HTTP_4XX,    /* the peer refused the request */
    FAIL_HTTP_5XX,    /* the peer failed it */
    FAIL_PROTOCOL,    /* an answer that does not add up: wrong node, bad operations, digest */
    FAIL_N
};
static const char *const fail_names[FAIL_N] = {"local", "unreachable", "http_4xx", "http_5xx",
                                               "protocol"};

/* A push batch read on a worker, so the op-log walk (bounded by the entries it scans, but
 * milliseconds over a long log the peer already holds) never runs on the loop. */
typedef struct push_read {
    struct ld_link *l; /* NULL once the link was freed: the completion only frees */
    ld_node *node;
    ld_db *db; /* referenced until the completion */
    char peer[LD_NODE_ID_MAX + 1];
    json_t *peer_vv; /* owned copy, or NULL: then the peer's own ops are skipped */
    uint64_t after;
    size_t limit, max_bytes;
    bool compact; /* the peer reads the compact encoding: the batch is read in it */
    ld_oplog_batch b;
    ld_status st;
} push_read;

typedef struct ld_link {
    ld_repl *repl;
    char db[LD_DB_NAME_MAX + 1];
    char peer[LD_NODE_ID_MAX + 1];
    char *base_url;
    bool active, removed;
    ld_peer_conn pc;   /* kept alive (peerconn.h) */
    ld_peer_addr addr; /* where BaseUrl points */
    struct event *retry_ev;

    phase ph;
    bool queued, again, loaded;
    int failures;
    uint64_t next_retry_wall;
    uint64_t push_ckpt, pull_ckpt;
    size_t push_limit; /* ops per push; halved on 413 */
    uint64_t *sent;    /* LogSequences of the push in flight */
    size_t n_sent;
    uint64_t sent_last;
    bool sent_more; /* entries remained after the push in flight (cut by count or bytes) */

    bool online;
    uint64_t last_success_wall, last_attempt_wall;
    char last_error[256];
    uint64_t peer_max;           /* the peer's LocalMaxLogSequence at the last pull */
    uint64_t peer_pulling_until; /* monotonic ms: the peer is catching up by pulling from us */
    uint64_t peer_pushed_at;     /* monotonic ms: the peer's last push to us arrived */
    bool must_pull;              /* a sweep or a new link: the next cycle pulls, pushes or not */
    /* The peer's version vector as it last told us (its pull request, or the answer to our
     * push): pushes skip the entries it has, which in a mesh it mostly got from their origin. */
    json_t *peer_vv;
    uint64_t local_max; /* ours at the last push read */
    /* The peer's own-origin sequence for which the push walk last restarted from the start of
     * our log (push_batch_read: a peer that lost its own writes, e.g. restored from a backup),
     * so that one loss restarts it once. */
    uint64_t rewound_for;
    /* Since this process started, for the status route: ops the peer acknowledged / ops pulled
     * and processed, and how many of each the receiving side already held. A restarted node's
     * duplicates show how much it re-moved (the fault test bounds them by one batch). */
    uint64_t ops_pushed, ops_pulled, push_dups, pull_dups;
    bool diverged;
    bool ckpt_saving, ckpt_dirty; /* a checkpoint save is in the writer; another is due */
    boot_state *boot;             /* a snapshot being loaded from the peer, or NULL */
    bool peer_too_old;            /* our log cannot serve the peer's pulls: it needs a snapshot */
    uint64_t peer_oldest;         /* the peer's OldestAvailableLogSequence (its 410 answer) */
    bool push_gated;   /* step_push holds our log back until the peer's version vector is known */
    struct call *call; /* the request in flight: freed with the link when it never answers */
    struct push_read *reading; /* a push batch being read on a worker (step_push) */
    uint64_t gated_since;      /* monotonic ms: since when step_push holds our log back */
    uint64_t peer_snapshot_at; /* monotonic ms: the peer's last snapshot page request to us */
    /* The NodeId that answered at BaseUrl when it was not the peer's (a node replaced under a
     * new id at the same address): the link reports IdentityMismatch until a cycle succeeds. */
    char answers_as[LD_NODE_ID_MAX + 1];
    /* For GET /metrics, since this process started: request and answer bytes of every call on
     * the link, and failed cycles by reason. fail_reason: the reason of the failure about to be
     * counted (set by the paths that know it; cycle_fail resets it to FAIL_LOCAL). */
    uint64_t bytes_sent, bytes_received;
    /* The peer announced the compact encoding (X-Litedist-Wire: ops1 on its last answer): our
     * pushes to it use it. answer_compact: the answer being handled is a compact frame. Pull
     * answers and pushes that went compact, for the status (CompactPulls, CompactPushes). */
    bool peer_compact, answer_compact;
    uint64_t compact_pulls, compact_pushes;
    /* The pull pipeline (pull.c): a link's next pull goes out while its last batch commits.
     * pull_busy: an ingest job of this link is in the writer (one at most); pull_waiting: a pull
     * is out, asked after pull_req_after; pull_held: its answer, decoded, when it arrived before
     * the batch ahead of it committed; pull_abort: a failure met while the other half was still
     * out, which ends the cycle (with pull_abort_msg, reason pull_abort_reason) once both are
     * back. peer_reads_committed: the peer's last pull answer announced that it reads our
     * CommittedLogSequence (X-Litedist-Wire: committed1), so pulls may run ahead of our commits.
     * pipelined_pulls: pulls sent while a batch committed, for the status (PipelinedPulls). */
    bool pull_busy, pull_waiting, pull_abort, peer_reads_committed;
    int pull_abort_reason;
    char pull_abort_msg[256];
    uint64_t pull_req_after, pull_req_committed; /* the pull out (or last sent) */
    struct pull_ctx *pull_held;
    uint64_t pipelined_pulls;
    uint64_t fails[FAIL_N];
    int fail_reason;
} ld_link;

/* The WebSocket to one peer that carries our sync-request hints, dialled when first needed and
 * re-dialled after a backoff when it drops. */
typedef struct hint_conn {
    ld_repl *repl;
    char peer[LD_NODE_ID_MAX + 1];
    ld_ws_conn *c;
    int failures;
    uint64_t next_try_mono;
} hint_conn;

struct ld_repl {
    ld_node *node;
    struct evdns_base *dns; /* peers given by host name resolve without blocking the loop */
    hint_conn **hints;
    size_t n_hints;
    char *node_peers_path;
    char *db_peers_dir;
    ld_peer_list node_peers;
    ld_link **links;
    size_t n_links, cap_links;
    /* Databases whose peers files links_sync_db has read: a commit to one of them without
     * links does not read its file again (the peers routes and the sweep re-read it). */
    char (*synced)[LD_DB_NAME_MAX + 1];
    size_t n_synced, cap_synced;
    ld_link **queue; /* links waiting for a slot, FIFO */
    size_t n_queue, cap_queue;
    int running;
    struct event *sweep_ev;

    pthread_mutex_t mu; /* guards kicked: writer threads add, the loop drains */
    char (*kicked)[LD_DB_NAME_MAX + 1];
    size_t n_kicked, cap_kicked;
    struct event *kick_ev;
    uint64_t divergences;
    ld_probe *probe; /* reachability for the dashboard */
    /* The newest clock promise heard of each (database, origin), from the origin or relayed:
     * the purge frontier's input (frontier.h). In memory: after a restart the frontier waits
     * for the next reports, and the stored purge floor never goes back meanwhile. */
    struct promise *promises;
    size_t n_promises, cap_promises;
};

typedef struct promise {
    char db[LD_DB_NAME_MAX + 1];
    char origin[LD_NODE_ID_MAX + 1];
    uint64_t seq, hlc;
} promise;

/* A call's answer: the JSON body (NULL when none or not JSON), or err when none came. */
typedef void (*reply_fn)(ld_link *l, int code, json_t *body, const char *err);
/* An answer that is not JSON (a snapshot page): the body as received, NULL on failure. */
typedef void (*raw_reply_fn)(ld_link *l, int code, struct evbuffer *body, const char *err);

typedef struct call {
    ld_link *link;
    reply_fn fn;
    raw_reply_fn raw; /* instead of fn when set */
    char what[16];
    bool compact;        /* body is a compact frame (Content-Type application/x-litedist-ops) */
    bool accept_compact; /* Accept names the compact form */
    /* What was sent, shared with the request (no copy): an https request that finds its kept
     * connection closed by the peer is sent once more on a fresh one. */
    struct evbuffer *body;
    int error; /* evhttp's enum evhttp_request_error, -1 while none */
    bool retried;
} call;

/* repl.c */
/* Ends the cycle as failed (the message is the link's LastError) and schedules a retry after
 * backoff with jitter. */
void ld_repl_cycle_fail(ld_link *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ends the cycle with nothing learned (a removed link, shutdown): no success, no failure. */
void ld_repl_cycle_end(ld_link *l);
/* Brings the links in line with every database's peers (new links made, removed ones reaped).
 * reread: read every database's peers file again (the sweep, start-up, a node-wide peer
 * change); otherwise only databases not read yet are (status, probes, readiness: called per
 * request, they must not read a file per database). The registration routes sync the database
 * they change themselves, so a hand-edited peers file is picked up at the next sweep. */
void ld_repl_links_sync_all(ld_repl *r, bool reread);
/* Frees a link and what it holds; a request in flight goes without its callback. */
void ld_repl_link_free(ld_link *l);
/* Ends the cycle as a success: the peer is online, the backoff resets. */
void ld_repl_cycle_ok(ld_link *l);

/* transport.c */
/* POSTs body (moved into the call) to the peer's /api/replication/<what>; fn gets the answer.
 * False when the request could not leave (body freed). */
bool ld_repl_call_post(ld_link *l, const char *what, struct evbuffer *body, reply_fn fn);
/* Sends the peer a sync-request hint over the hint WebSocket (dialled when needed). */
void ld_repl_hint_send(ld_link *l);
/* ld_repl_call_post with the answer to raw, as received, when raw is set. */
bool ld_repl_call_post_any(ld_link *l, const char *what, struct evbuffer *body, reply_fn fn,
                           raw_reply_fn raw);
/* ld_repl_call_post_any with the compact encoding (wire_ops.h): compact_body sends body as a
 * compact frame; accept_compact asks for the answer in it (Accept), which the peer may ignore
 * (then it answers JSON: ld_link.answer_compact tells which came). */
bool ld_repl_call_post_wire(ld_link *l, const char *what, struct evbuffer *body, reply_fn fn,
                            raw_reply_fn raw, bool compact_body, bool accept_compact);
/* Records that another node (seen) answers at the peer's address (IdentityMismatch). */
void ld_repl_link_identity(ld_link *l, const char *seen);
void ld_repl_call_free(call *c);
/* Fails the cycle for an answer that was not a success, naming the call (what) and the cause. */
void ld_repl_peer_error(ld_link *l, int code, json_t *body, const char *err, const char *what);
/* What ld_repl_peer_error would fail the cycle with: the message in msg, the FAIL_ reason
 * returned (the pull pipeline may have to wait before it ends the cycle). */
int ld_repl_peer_error_why(ld_link *l, int code, json_t *body, const char *err, const char *what,
                           char *msg, size_t len);

/* push.c */
/* The push phase (PH_PUSH); it goes on to the pull. */
void ld_repl_step_push(ld_link *l);
/* Stores the link's checkpoints through the writer, one save in flight per link. */
void ld_repl_save_ckpts(ld_link *l);

/* pull.c */
/* The pull phase (PH_PULL): one batch of the peer's log, or a snapshot when the log cannot do. */
void ld_repl_step_pull(ld_link *l);
/* The next pull after the committed pull checkpoint (the first of a pull step, or the one after
 * a snapshot). */
void ld_repl_pull_next(ld_link *l);
/* Frees an answer held by the pull pipeline (the link is being freed). */
void ld_repl_pull_drop(ld_link *l);

/* snapshot_load.c */
/* Starts (fresh) or resumes loading a snapshot from the peer. */
void ld_repl_boot_begin(ld_link *l, bool fresh);
/* The snapshot phase (PH_SNAPSHOT): the next page requests while fewer than two are merging. */
void ld_repl_step_snapshot(ld_link *l);

/* status.c */
/* The dashboard probes' targets: this node's peers (probe.h's callback). */
void ld_repl_probe_targets(void *ctx, ld_probe *p,
                           void (*add)(ld_probe *, const ld_probe_target *));

#endif
