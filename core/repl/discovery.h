/* Joining a cluster (docs/replication.md, "Adding a node"): this node introduces itself to its
 * node-wide peers and asks each for the databases it holds, creating here those it lacks so
 * their links start without any write; it registers nodes that introduce themselves, answers
 * their questions, drops those that announce their leave, and retires a peer whose address
 * has answered as another registered node for longer than Node.PeerReplacementSilenceSeconds.
 * Loop thread only. */
#ifndef LD_DISCOVERY_H
#define LD_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct ld_node;
struct ld_req;
typedef struct ld_discovery ld_discovery;

/* Idle until ld_discovery_start. NULL when memory fails. */
ld_discovery *ld_discovery_new(struct ld_node *node);

/* Drops every request in flight (no callback runs). NULL is ignored. */
void ld_discovery_free(ld_discovery *d);

/* The node listens on port: works out the URL peers should use (Node.AdvertisedUrl, else from
 * Node.ListenAddress), then introduces itself and asks every node-wide peer for its databases.
 * False with a message when Node.AdvertisedUrl is invalid; an URL that cannot be derived is
 * logged and only turns the introduction off. */
bool ld_discovery_start(ld_discovery *d, int port, char *err, size_t errlen);

/* The URL this node introduces itself with; "" when none (see ld_discovery_start). */
const char *ld_discovery_advertised(const ld_discovery *d);

/* The anti-entropy sweep: every node-wide peer is asked again. NULL is ignored. */
void ld_discovery_sweep(ld_discovery *d);

/* Database db was created here by a local write or a peer's push: every node-wide peer is told,
 * so that peers which do not replicate it yet ask for it. NULL is ignored. */
void ld_discovery_db_created(ld_discovery *d, const char *db);

/* peer_id was just registered as a node-wide peer (config, API, its own introduction): it is
 * introduced to and asked for its databases now. NULL is ignored. */
void ld_discovery_peer_added(ld_discovery *d, const char *peer_id);

/* peer_id reached this node with the cluster key (it is not silent; a discovery that failed
 * with it runs again). NULL is ignored. */
void ld_discovery_heard(ld_discovery *d, const char *peer_id);

/* GET /api/replication/databases: {ProtocolVersion, NodeId, Databases: [{DatabaseName,
 * VersionVector, LocalMaxLogSequence, Digest}]}. NULL when memory fails. */
json_t *ld_discovery_databases_json(struct ld_node *node);

/* POST /api/replication/announce: a peer's {NodeId, BaseUrl, Event: "join"|"leave"|"database",
 * Database}. Replies to r. */
void ld_discovery_announce(ld_discovery *d, struct ld_req *r, json_t *body);

/* POST /api/cluster/leave: tells every node-wide peer that this node leaves for good, then
 * replies to r with each peer's answer. */
void ld_discovery_leave(ld_discovery *d, struct ld_req *r);

/* Per node-wide peer, what discovery knows: merged into the entries of GET /api/cluster/peers
 * (Discovery: {LastUtc, LastError, Introduced, IntroductionError, AnswersAs}). */
void ld_discovery_annotate_peers(ld_discovery *d, json_t *peers);

/* The URL peers should use to reach a node (pure, for the unit tests): `configured` when given
 * (normalized), else scheme://listen:port, where listen must name an address others can dial
 * (not 0.0.0.0, ::, or empty). False with the reason in why. */
bool ld_discovery_advertised_url(const char *configured, const char *listen, int port, bool tls,
                                 char *out, size_t outlen, char *why, size_t whylen);

#endif
