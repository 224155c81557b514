/* The replication manager of a node: its peers (node-wide and per database), one link per
 * (database, peer) that runs push-then-pull cycles with checkpoints, backoff and a periodic
 * anti-entropy sweep, all on the event loop (docs/architecture.md §5). Loop thread only, except
 * ld_repl_committed. */
#ifndef LD_REPL_H
#define LD_REPL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "../db/names.h"

struct ld_node;
struct ld_db;
typedef struct ld_repl ld_repl;

/* Loads the node-wide peers (<data>/peers.json and Node.SeedPeers) and starts the sweep timer.
 * NULL with a message in err on failure. */
ld_repl *ld_repl_new(struct ld_node *node, char *err, size_t errlen);

/* Drops every link (requests in flight are abandoned, their callbacks never run). */
void ld_repl_free(ld_repl *r);

/* A database committed new log entries: schedule a coalesced cycle with each of its peers.
 * Thread-safe (called on writer threads). */
void ld_repl_committed(void *repl, struct ld_db *db);

/* peer_id just reached this node with the cluster key (a push, a pull, a hint or a health-check):
 * it is up, so every link to it that waits out a backoff runs now. A node back from an outage
 * cannot pull a database it does not know yet; without this it would wait up to the backoff cap
 * for its peers' pushes. Loop thread. */
void ld_repl_peer_alive(ld_repl *r, const char *peer_id);

/* We answered peer_id's pull of db; the peer holds every entry of our log up to `held` (its
 * CommittedLogSequence, or the AfterLogSequence of a pull that sent none: a peer that does not
 * pull ahead of its commits asks from its committed checkpoint), local_max is our last entry,
 * `more` when entries remain. Our push checkpoint for it moves to `held`. While it keeps pulling
 * (more), our pushes to it pause, so a catching-up peer gets each entry once, not once by its
 * pull and again by our push. vv (the request's VersionVector, may be NULL; a reference is
 * kept) is what the peer holds: our pushes skip it. Loop thread. */
void ld_repl_peer_pulled(ld_repl *r, const char *db, const char *peer_id, uint64_t held,
                         uint64_t local_max, bool more, json_t *vv);

/* peer_id pushes ops of db to us (called as the push arrives). While its pushes keep coming, our
 * cycles with it leave out their pull (the sweep still pulls): a pull beside them fetches the same
 * entries twice over. Loop thread. */
void ld_repl_peer_pushed(ld_repl *r, const char *db, const char *peer_id);

/* The log sequence through which every active peer of db holds our log (the least push
 * checkpoint; UINT64_MAX when db has no active peer), and in blocker the peer at that least.
 * Op-log pruning never deletes past it (repl/prune.h) but for its hard cap. Loop thread. */
/* Takes the clock promises a peer sent (the PurgePromises field of a push or pull, request or
 * answer: {origin: {Sequence, Hlc}}) for database db: per origin the newest is kept. Malformed
 * entries are ignored (they would only lower nothing). */
void ld_repl_promises_merge(ld_repl *r, const char *db, json_t *promises);

/* The PurgePromises this node sends for db: its own promise, every one it heard of, and each
 * active peer of db not heard of yet with an empty one. NULL when out of memory. */
json_t *ld_repl_promises_json(ld_repl *r, struct ld_db *db);

/* A writer the purge frontier counts (purge.h): every origin with a promise and every active
 * peer of the database. */
typedef struct ld_purge_origin {
    char origin[LD_NODE_ID_MAX + 1];
    bool has_promise;
    uint64_t seq, hlc;
} ld_purge_origin;

/* The writers of db the purge frontier counts, in *out (malloc'd; the caller frees); SIZE_MAX
 * when out of memory. */
size_t ld_repl_purge_origins(ld_repl *r, const char *db, ld_purge_origin **out);

uint64_t ld_repl_prune_limit(ld_repl *r, const char *db, char *blocker, size_t len);

/* peer_id fetches a snapshot page of db from us: it is loading one, so our pushes keep holding
 * back the log it will not need. Loop thread. */
void ld_repl_peer_snapshotting(ld_repl *r, const char *db, const char *peer_id);

/* Our log could not serve peer_id's pull of db (too_old: it lacks ops that are not in our log,
 * so it loads a snapshot), or could again. Shown as its CatchUpStatus. Loop thread. */
void ld_repl_peer_too_old(ld_repl *r, const char *db, const char *peer_id, bool too_old);

/* A peer asked us to pull `db` from it now (WebSocket sync-request). */
void ld_repl_sync_request(ld_repl *r, const char *db, const char *peer_id);

/* Peers. `db` NULL means the node-wide list. Replies are JSON arrays of {NodeId, BaseUrl,
 * IsActive, UpdatedUtc, LearnedFrom}; upsert/remove return false with a message (for a
 * 400/404/500). */
json_t *ld_repl_peers_list(ld_repl *r, const char *db);
bool ld_repl_peer_upsert(ld_repl *r, const char *db, const char *id, const char *base_url,
                         bool active, int *status, char *err, size_t errlen);
bool ld_repl_peer_remove(ld_repl *r, const char *db, const char *id, int *status, char *err,
                         size_t errlen);

/* Database db was created here because a peer holds it (repl/discovery.h): its links start at
 * once. Loop thread. */
void ld_repl_db_discovered(ld_repl *r, const char *db);

/* Node id introduced itself at base_url (normalized): registered as an active node-wide peer
 * learned by "announce", unless id is registered already (that entry, perhaps an operator's
 * proxy address, stays as it is). *added says which; false with err when it could not be
 * saved. */
bool ld_repl_peer_introduced(ld_repl *r, const char *id, const char *base_url, bool *added,
                             char *err, size_t errlen);

/* GET /api/replication/status. */
json_t *ld_repl_status(ld_repl *r);

/* The node listens at self_url (http://127.0.0.1:port): the dashboard probes start. */
void ld_repl_listening(ld_repl *r, const char *self_url);
/* Shutdown: no more probes. */
void ld_repl_stop_probes(ld_repl *r);
/* The dashboard's Nodes (this node first) and PeerConnections arrays (repl/probe.h); new
 * references, NULL when memory fails. */
json_t *ld_repl_overview_nodes(ld_repl *r);
json_t *ld_repl_overview_connections(ld_repl *r);

struct ld_mx;
/* The replication families of GET /metrics, per database and peer (metrics/metrics.h). Loop
 * thread. */
void ld_repl_metrics(ld_repl *r, struct ld_mx *w);

/* The start-up catch-up for /readyz: true when every active link had a successful cycle or found
 * its peer unreachable, and no snapshot is loading; otherwise false with what is pending in why.
 * Loop thread. */
bool ld_repl_catchup_settled(ld_repl *r, char *why, size_t len);

/* Node.ReplicationApiKey changed (SIGHUP): the dashboard probes, which keep a copy, take the
 * new one; every other request reads it from the config when it is made. False when memory
 * fails. Loop thread. */
bool ld_repl_cluster_key_changed(ld_repl *r);

/* Counters for tests and the dashboard. */
uint64_t ld_repl_divergences(ld_repl *r);

#endif
