/* The preamble of every /api/... request: the Database and ApiKey headers checked in the
 * contract's order, the auth chain asked, and the database opened (or created, with ADD_DB). */
#ifndef LD_API_CONTEXT_H
#define LD_API_CONTEXT_H

#include <stdbool.h>
#include <stdint.h>

#include "../http/request.h"

/* Checks the Database and ApiKey headers and `roles` (LD_ROLE_* bits; 0 checks access only)
 * in the contract's order, including ADD_DB when the database does not exist yet; sets
 * r->db_name and r->db (NULL while the database does not exist). Creates nothing, so a handler
 * can validate its parameters before anything changes. Replies and returns false on refusal. */
bool ld_api_begin(ld_req *r, uint32_t roles);

/* The same with the database name and key given directly (the webhook carries both in its
 * path). */
bool ld_api_begin_with(ld_req *r, const char *db_raw, const char *key_raw, uint32_t roles);

/* Creates r->db when it does not exist yet (begin has checked ADD_DB). Replies on failure. */
bool ld_api_ensure_db(ld_req *r);

/* ld_api_begin, then ld_api_ensure_db. */
bool ld_api_open(ld_req *r, uint32_t roles);

/* Checks the ApiKey header for access to `db` (normalized; NULL for a node-wide route) and
 * `roles`, without opening anything. Replies and returns false on refusal. */
bool ld_api_authorize(ld_req *r, const char *db, uint32_t roles);

/* Whether key[0..len) is Node.ReplicationApiKey (constant time; an empty key never is). */
bool ld_cluster_key_ok(const ld_node *n, const char *key, size_t len);

/* Whether the ReplicationApiKey header (trimmed) is the cluster key; replies nothing. */
bool ld_api_has_cluster_key(ld_req *r);

/* Node-to-node routes: checks the ReplicationApiKey header against Node.ReplicationApiKey in
 * constant time; replies 403 "ReplicationApiKey is invalid." and returns false otherwise. */
bool ld_api_cluster_auth(ld_req *r);

/* For a node-to-node route with an optional (`required` false) or required Database header:
 * sets r->db_name ("" when absent and optional) and r->db when it exists. Replies 400 on a
 * missing (required) or invalid name. */
bool ld_api_cluster_db(ld_req *r, bool required);

/* Whether the request's (already accepted) key may access database `db` at all. No reply;
 * a chain error answers false (fails closed). */
bool ld_api_key_can_access(ld_req *r, const char *db);

/* Whether the request's (already accepted) key also holds `role` on r->db. No reply. Returns
 * false on a chain error too: callers treat that as "not allowed", which fails closed. */
bool ld_api_has_role(ld_req *r, uint32_t role);

/* The contract's words for a role in "ApiKey is not allowed to <action>." */
const char *ld_role_action(uint32_t role);

/* Replies 403 "ApiKey is not allowed to <action>." for the first bit of `roles`. */
void ld_api_deny_role(ld_req *r, uint32_t roles);

#endif
