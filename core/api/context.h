/* The preamble of every /api/... request: the Database and ApiKey headers checked in the
 * contract's order, the auth chain asked, and the database opened (or created, with ADD_DB). */
#ifndef LD_API_CONTEXT_H
#define LD_API_CONTEXT_H

#include <stdbool.h>
#include <stdint.h>

#include "../http/request.h"

/* What a route asks the auth chain, once per request (ld_auth_query). */
typedef struct ld_api_need {
    const char *action; /* ld_auth_query.action: "documents.read", ... */
    uint32_t needs;     /* LD_ROLE_* bits the route cannot go without */
    uint32_t may_need;  /* LD_ROLE_* bits it may use, chosen later with ld_api_has_role */
} ld_api_need;

#define LD_NEED(action, needs, may_need) ((ld_api_need){(action), (needs), (may_need)})

/* Checks the Database and ApiKey headers in the contract's order, then asks the auth chain the
 * request's one question: access to the database, ADD_DB when it does not exist yet, and
 * need.needs; the granted may_need roles are kept for ld_api_has_role. Sets r->db_name and
 * r->db (NULL while the database does not exist). Creates nothing, so a handler can validate
 * its parameters before anything changes. Replies and returns false on refusal. */
bool ld_api_begin(ld_req *r, ld_api_need need);

/* The same with the database name and key given directly (the webhook carries both in its
 * path). */
bool ld_api_begin_with(ld_req *r, const char *db_raw, const char *key_raw, ld_api_need need);

/* Creates r->db when it does not exist yet (begin has checked ADD_DB). Replies on failure. */
bool ld_api_ensure_db(ld_req *r);

/* Checks the ApiKey header and asks the one question for database `db` (normalized; it is not
 * created, so ADD_DB is not needed) and need.needs, without opening anything. Replies and
 * returns false on refusal. */
bool ld_api_authorize(ld_req *r, const char *db, ld_api_need need);

/* Node-wide routes: checks the ApiKey header and asks the one question about the databases
 * names[0..n) at once; access[i] (caller-owned, n bytes) says whether the key may use names[i].
 * Replies 401/403/503 and returns false when the key is unknown or reaches no database. */
bool ld_api_authorize_list(ld_req *r, const char *action, char *const *names, size_t n,
                           uint8_t *access);

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

/* Whether the request's accepted key holds `role` on r->db: the answer to the request's one
 * question, so no plugin is asked again. A role the route did not name in needs or may_need is
 * never held (fails closed, and logs the bug). No reply. */
bool ld_api_has_role(ld_req *r, uint32_t role);

/* The contract's words for a role in "ApiKey is not allowed to <action>." */
const char *ld_role_action(uint32_t role);

/* Replies 403 "ApiKey is not allowed to <action>." for the first bit of `roles`. */
void ld_api_deny_role(ld_req *r, uint32_t roles);

#endif
