/* Header checks, authorization and database opening for /api/... requests (see context.h). */
#include "context.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include <event2/http.h>

#include <litedist/auth.h>

#include "../auth/keynames.h"
#include "../db/names.h"
#include "../db/registry.h"
#include "../http/failures.h"
#include "../util/log.h"
#include "../util/timeutil.h"

const char *ld_role_action(uint32_t role)
{
    if (role & LD_ROLE_READ_DOCUMENT) return "read documents";
    if (role & LD_ROLE_WRITE_DOCUMENT) return "write documents";
    if (role & LD_ROLE_UPDATE_DOCUMENT) return "update documents";
    if (role & LD_ROLE_DELETE_DOCUMENT) return "delete documents";
    if (role & LD_ROLE_DELETE_DB) return "delete databases";
    if (role & LD_ROLE_ADD_DB) return "create databases";
    return "do this";
}

void ld_api_deny_role(ld_req *r, uint32_t roles)
{
    ld_counter_add(&r->node->stats.auth_failures[LD_AUTHFAIL_ROLE], 1);
    ld_reply_error(r, 403, "ApiKey is not allowed to %s.", ld_role_action(roles));
}

static const char *trim(const char *s, size_t *len)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    *len = n;
    return s;
}

/* Sets r->api_key to the trimmed key; replies 401 when it is missing or blank. */
static bool take_key(ld_req *r, const char *raw)
{
    size_t klen = 0;
    const char *key = raw ? trim(raw, &klen) : NULL;
    if (!key || !klen) {
        ld_counter_add(&r->node->stats.auth_failures[LD_AUTHFAIL_MISSING_KEY], 1);
        ld_reply_error(r, 401, "ApiKey header is required.");
        return false;
    }
    r->api_key = key;
    r->api_key_len = klen;
    return true;
}

/* How long to hold the answer to a wrong key from this client (http/failures.h). */
static uint32_t failure_delay(ld_req *r)
{
    return ld_failures_note(r->node->failures, r->client_addr, ld_mono_ms());
}

/* Replies for a chain answer other than ALLOW. */
static void reply_refusal(ld_req *r, ld_auth_result res, const char *deny_fmt, const char *arg)
{
    switch (res) {
    case LD_AUTHZ_UNKNOWN:
        ld_counter_add(&r->node->stats.auth_failures[LD_AUTHFAIL_UNKNOWN_KEY], 1);
        ld_reply_error_after(r, failure_delay(r), 401, "ApiKey is invalid.");
        return;
    case LD_AUTHZ_ERROR:
        ld_counter_add(&r->node->stats.auth_failures[LD_AUTHFAIL_PLUGIN_ERROR], 1);
        ld_reply_error(r, 503, "Authorization is unavailable; the request was refused.");
        return;
    default:
        ld_counter_add(&r->node->stats.auth_failures[LD_AUTHFAIL_DATABASE], 1);
        ld_reply_error(r, 403, deny_fmt, arg);
        return;
    }
}

/* Asks the chain the request's one question and keeps the granted roles. */
static ld_auth_result ask(ld_req *r, const char *db, int32_t db_exists, ld_api_need need)
{
    ld_auth_question q = {.key = r->api_key,
                          .key_len = r->api_key_len,
                          .database = db,
                          .db_exists = db ? db_exists : -1,
                          .id_exists = -1, /* asked before anything is read: never known yet */
                          .needs = need.needs,
                          .may_need = need.may_need,
                          .action = need.action,
                          .client_addr = r->client_addr};
    uint32_t granted = 0;
    ld_auth_result res = ld_auth_chain_ask(&r->node->auth, &q, &granted, NULL);
    r->auth_asked = need.needs | need.may_need;
    r->auth_granted = res == LD_AUTHZ_ALLOW ? granted : 0;
    if (res == LD_AUTHZ_ALLOW)
        ld_auth_key_name(r->node->cfg.root, r->api_key, r->api_key_len, r->key_name,
                         sizeof r->key_name);
    return res;
}

/* Replies for the answer to the one question: no access, no right to create the missing
 * database, or the first role of `needs` not granted (in bit order, as the contract's messages
 * name one role). Returns true when the request may go on. */
static bool accept_answer(ld_req *r, ld_auth_result res, const char *db, bool creates,
                          uint32_t needs)
{
    if (res != LD_AUTHZ_ALLOW) {
        if (db)
            reply_refusal(r, res, "ApiKey does not have access to database '%s'.", db);
        else
            reply_refusal(r, res, "%s", "ApiKey does not have access to any database.");
        return false;
    }
    if (creates && !(r->auth_granted & LD_ROLE_ADD_DB)) {
        ld_counter_add(&r->node->stats.auth_failures[LD_AUTHFAIL_ROLE], 1);
        ld_reply_error(r, 403, "ApiKey is not allowed to create database '%s'.", db);
        return false;
    }
    for (uint32_t bit = 1; bit <= LD_ROLE_ALL; bit <<= 1) {
        if ((needs & bit) && !(r->auth_granted & bit)) {
            ld_api_deny_role(r, bit);
            return false;
        }
    }
    return true;
}

bool ld_api_begin_with(ld_req *r, const char *db_raw, const char *key_raw, ld_api_need need)
{
    if (!db_raw || !*db_raw) {
        ld_reply_error(r, 400, "Database header is required.");
        return false;
    }
    if (!ld_db_name_normalize(db_raw, r->db_name)) {
        ld_reply_error(r, 400,
                       "Database name contains invalid characters. Use lowercase "
                       "letters, numbers, '-' or '_' only.");
        return false;
    }
    if (!take_key(r, key_raw)) return false;
    r->db = ld_registry_get(&r->node->reg, r->db_name);
    bool creates = !r->db;
    /* Every route naming a database creates it on first use, or needs the right to. */
    if (creates) need.needs |= LD_ROLE_ADD_DB;
    return accept_answer(r, ask(r, r->db_name, !creates, need), r->db_name, creates,
                         need.needs & ~(uint32_t)LD_ROLE_ADD_DB);
}

bool ld_api_ensure_db(ld_req *r)
{
    if (!r->db) {
        ld_status st = ld_registry_get_or_create(&r->node->reg, r->db_name, &r->db);
        if (st == LD_BUSY) {
            ld_reply_error(r, 503, "Database '%s' is being deleted; retry shortly.", r->db_name);
            return false;
        }
        if (st != LD_OK) {
            ld_reply_error(r, 500, "Database '%s' could not be created: %s.", r->db_name,
                           ld_status_str(st));
            return false;
        }
    }
    return true;
}

bool ld_api_begin(ld_req *r, ld_api_need need)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(r->ev);
    return ld_api_begin_with(r, evhttp_find_header(h, "Database"), evhttp_find_header(h, "ApiKey"),
                             need);
}

bool ld_api_authorize(ld_req *r, const char *db, ld_api_need need)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(r->ev);
    if (!take_key(r, evhttp_find_header(h, "ApiKey"))) return false;
    ld_db *existing = db ? ld_registry_get(&r->node->reg, db) : NULL;
    int32_t exists = existing != NULL;
    if (existing) ld_registry_release(&r->node->reg, existing);
    return accept_answer(r, ask(r, db, exists, need), db, false, need.needs);
}

bool ld_api_authorize_list(ld_req *r, const char *action, char *const *names, size_t n,
                           uint8_t *access)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(r->ev);
    if (!take_key(r, evhttp_find_header(h, "ApiKey"))) return false;
    ld_auth_question q = {.key = r->api_key,
                          .key_len = r->api_key_len,
                          .db_exists = -1,
                          .id_exists = -1,
                          .action = action,
                          .client_addr = r->client_addr,
                          .databases = (const char *const *)names,
                          .n_databases = n};
    uint32_t granted = 0;
    ld_auth_result res = ld_auth_chain_ask(&r->node->auth, &q, &granted, access);
    r->auth_asked = r->auth_granted = 0;
    if (res == LD_AUTHZ_ALLOW)
        ld_auth_key_name(r->node->cfg.root, r->api_key, r->api_key_len, r->key_name,
                         sizeof r->key_name);
    return accept_answer(r, res, NULL, false, 0);
}

bool ld_api_has_role(ld_req *r, uint32_t role)
{
    if ((r->auth_asked & role) != role) {
        ld_log_error("auth: a route asked for role bits 0x%x it did not name in its question "
                     "(a bug); refused",
                     (unsigned)role);
        return false;
    }
    return (r->auth_granted & role) == role;
}

bool ld_cluster_key_ok(const ld_node *n, const char *key, size_t len)
{
    const char *want = n->cfg.replication_api_key;
    /* Hash both sides so the comparison takes the same time whatever the lengths. */
    uint8_t a[32], b[32];
    crypto_generichash(a, sizeof a, (const uint8_t *)key, len, NULL, 0);
    crypto_generichash(b, sizeof b, (const uint8_t *)want, strlen(want), NULL, 0);
    return len > 0 && sodium_memcmp(a, b, sizeof a) == 0;
}

bool ld_api_has_cluster_key(ld_req *r)
{
    const char *raw =
        evhttp_find_header(evhttp_request_get_input_headers(r->ev), "ReplicationApiKey");
    size_t len = 0;
    const char *key = raw ? trim(raw, &len) : NULL;
    bool ok = key && ld_cluster_key_ok(r->node, key, len);
    if (ok) snprintf(r->key_name, sizeof r->key_name, "replication");
    return ok;
}

/* A node-to-node request names the node it means to reach (TargetNodeId, a litedist addition):
 * when another node answers at that address (a node replaced under a new id, a wrong BaseUrl),
 * it is refused naming both ids, so the caller's link reports it instead of replicating with a
 * stranger under the old id's name. */
static bool target_ok(ld_req *r)
{
    const char *target =
        evhttp_find_header(evhttp_request_get_input_headers(r->ev), "TargetNodeId");
    if (!target || !strcmp(target, r->node->node_id)) return true;
    if (!ld_node_id_valid(target)) {
        ld_reply_error(r, 400, "TargetNodeId is not a valid node id.");
        return false;
    }
    char msg[LD_NODE_ID_MAX * 2 + 160];
    snprintf(msg, sizeof msg,
             "This node is '%s', not '%s': the address registered for peer '%s' now serves "
             "another node.",
             r->node->node_id, target, target);
    ld_reply_json(r, 409,
                  json_pack("{s:s, s:s, s:s}", "Error", msg, "NodeId", r->node->node_id,
                            "TargetNodeId", target));
    return false;
}

/* A peer's connection carries its pushes, pulls and discovery, some of them once per sweep: it
 * may idle longer than a client's (ld_config_peer_idle_s). Only the cluster key earns that. */
static void keep_peer_connection(ld_req *r)
{
    struct evhttp_connection *c = evhttp_request_get_connection(r->ev);
    if (c) evhttp_connection_set_timeout(c, ld_config_peer_idle_s(&r->node->cfg));
}

bool ld_api_cluster_auth(ld_req *r)
{
    if (ld_api_has_cluster_key(r)) {
        keep_peer_connection(r);
        return target_ok(r);
    }
    /* A missing key is a misconfiguration, a wrong one may be a guess: only that waits. */
    bool given = evhttp_find_header(evhttp_request_get_input_headers(r->ev), "ReplicationApiKey");
    ld_counter_add(&r->node->stats.auth_failures[LD_AUTHFAIL_REPLICATION_KEY], 1);
    ld_reply_error_after(r, given ? failure_delay(r) : 0, 403, "ReplicationApiKey is invalid.");
    return false;
}

bool ld_api_cluster_db(ld_req *r, bool required)
{
    const char *raw = evhttp_find_header(evhttp_request_get_input_headers(r->ev), "Database");
    if (!raw || !*raw) {
        if (!required) {
            r->db_name[0] = '\0';
            return true;
        }
        ld_reply_error(r, 400, "Database header is required.");
        return false;
    }
    if (!ld_db_name_normalize(raw, r->db_name)) {
        ld_reply_error(r, 400,
                       "Database name contains invalid characters. Use lowercase "
                       "letters, numbers, '-' or '_' only.");
        return false;
    }
    r->db = ld_registry_get(&r->node->reg, r->db_name);
    return true;
}
