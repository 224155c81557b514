/* Peer lists kept as small JSON files in the data directory: <data>/peers.json for the node-wide
 * peers every database replicates with, <data>/peers/<db>.json for a database's own. Written
 * atomically (temp file, fsync, rename), so a crash leaves the old list or the new one. */
#ifndef LD_PEERS_H
#define LD_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "../db/names.h"

typedef struct ld_peer {
    char id[LD_NODE_ID_MAX + 1];
    char *base_url; /* malloc'd, no trailing '/' */
    bool active;
    uint64_t updated_ms;
    /* How this node learned the peer: "config" (Node.SeedPeers), "api" (POST /api/cluster/peers)
     * or "announce" (the peer introduced itself, repl/discovery.h). */
    char learned[16];
} ld_peer;

typedef struct ld_peer_list {
    ld_peer *v;
    size_t n;
} ld_peer_list;

void ld_peer_list_free(ld_peer_list *l);

/* Reads a list file; a missing file is an empty list. False with err when unreadable/invalid. */
bool ld_peer_list_load(const char *path, ld_peer_list *out, char *err, size_t errlen);
bool ld_peer_list_save(const char *path, const ld_peer_list *l, char *err, size_t errlen);

/* Checks and normalizes a BaseUrl (http:// or https://host[:port][/prefix], trailing '/'
 * dropped; https peers are dialled over TLS, http/tls.h) into a malloc'd string; NULL with err
 * when invalid. */
char *ld_peer_url_normalize(const char *url, char *err, size_t errlen);

/* Where a BaseUrl points: what the replication links and the dashboard probes dial. */
typedef struct ld_peer_addr {
    char host[256];
    int port;         /* the URL's, else 443 for https and 80 for http */
    char prefix[256]; /* the URL's path, without trailing '/' ("" for none) */
    bool tls;         /* https:// */
} ld_peer_addr;

/* Splits a (normalized) BaseUrl into *out; false when it does not parse. */
bool ld_peer_addr_parse(const char *url, ld_peer_addr *out);

/* Inserts or replaces by id (copies base_url). False when out of memory. An existing entry keeps
 * how it was learned; a new one counts as learned by "api". */
bool ld_peer_list_upsert(ld_peer_list *l, const char *id, const char *base_url, bool active,
                         uint64_t now_ms);
/* Like ld_peer_list_upsert, setting how the peer was learned (NULL: as ld_peer_list_upsert). */
bool ld_peer_list_upsert_from(ld_peer_list *l, const char *id, const char *base_url, bool active,
                              uint64_t now_ms, const char *learned);
/* Removes by id; false when absent. */
bool ld_peer_list_remove(ld_peer_list *l, const char *id);
const ld_peer *ld_peer_list_find(const ld_peer_list *l, const char *id);

/* [{NodeId, BaseUrl, IsActive, UpdatedUtc, LearnedFrom}] */
json_t *ld_peer_list_json(const ld_peer_list *l);

#endif
