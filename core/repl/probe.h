/* Reachability probes for the node dashboard: each round, GET {BaseUrl}/node and a WebSocket
 * health-check on {BaseUrl}/ws/replication for this node and every known peer, 2 s timeout
 * each, keeping a latency history (60 min, at most 720 samples, at least 5 s apart).
 * Probes only observe: replication never waits for them. Loop thread only. */
#ifndef LD_PROBE_H
#define LD_PROBE_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <jansson.h>

struct ld_tls; /* http/tls.h */

typedef struct ld_probe ld_probe;

/* One node to probe; the strings are borrowed for the call. */
typedef struct ld_probe_target {
    const char *id;
    const char *base_url;
    bool active; /* IsActive of the peer (in any of its lists) */
} ld_probe_target;

/* Asked at the start of each round for the current peers: calls add() once per peer. */
typedef void (*ld_probe_targets_fn)(void *ctx, ld_probe *p,
                                    void (*add)(ld_probe *p, const ld_probe_target *t));

/* self_id and cluster_key are copied. interval_s 0 disables the rounds (every node then shows
 * Status "Unknown"). dns may be NULL (numeric peers only). tls (borrowed, outlives the probe)
 * dials https:// peers. NULL when memory fails. */
ld_probe *ld_probe_new(struct event_base *base, struct evdns_base *dns, struct ld_tls *tls,
                       const char *self_id, const char *cluster_key, int interval_s,
                       ld_probe_targets_fn targets, void *targets_ctx);

/* Drops every probe in flight (no callback runs) and frees. NULL is ignored. */
void ld_probe_free(ld_probe *p);
/* The cluster key changed (SIGHUP): later probes send the new one. False when memory fails (the
 * old key stays). */
bool ld_probe_set_key(ld_probe *p, const char *cluster_key);

/* This node's own URL (http://127.0.0.1:port), known once it listens; copied. Starts the rounds
 * with one at once. */
void ld_probe_start(ld_probe *p, const char *self_url);

/* Stops the rounds and drops the probes in flight (shutdown). */
void ld_probe_stop(ld_probe *p);

/* The contract's Nodes array (this node first) and PeerConnections array (peers only, with
 * IsPeerActive, OverallStatus and LatencyHistory). New references; NULL when memory fails. */
json_t *ld_probe_nodes_json(ld_probe *p);
json_t *ld_probe_connections_json(ld_probe *p);

#endif
