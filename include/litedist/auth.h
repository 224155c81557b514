/* litedist auth ABI: an ordered chain of API-key deciders. Each plugin answers ALLOW, DENY or
 * UNKNOWN ("not my key: ask the next one"); the first ALLOW or DENY ends the chain. Since ABI 1.2
 * a plugin may answer one question per request (decide) instead of one per role (authorize). */
#ifndef LITEDIST_AUTH_H
#define LITEDIST_AUTH_H

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Roles. A request needs a set of role bits; a plugin grants only when every required bit is
 * one of the key's roles, so a bit added by a later ABI minor is denied by plugins that do not
 * know it. Values are stable forever.
 * ------------------------------------------------------------------------------------------- */
#define LD_ROLE_ADD_DB          (1u << 0) /* create a database that does not exist yet */
#define LD_ROLE_DELETE_DB       (1u << 1) /* delete a database */
#define LD_ROLE_READ_DOCUMENT   (1u << 2) /* read documents and cache keys, run SELECT */
#define LD_ROLE_WRITE_DOCUMENT  (1u << 3) /* create documents and cache keys, run INSERT */
#define LD_ROLE_UPDATE_DOCUMENT (1u << 4) /* replace or merge existing documents, run UPDATE */
#define LD_ROLE_DELETE_DOCUMENT (1u << 5) /* delete documents and cache keys, run DELETE */
#define LD_ROLE_ALL             0x3fu

/* Decisions */
#define LD_AUTH_ALLOW   1 /* the key is this plugin's and has access and every required role */
#define LD_AUTH_DENY    2 /* the key is this plugin's but lacks access or a role: 403, chain ends */
#define LD_AUTH_UNKNOWN 3 /* not this plugin's key: the host asks the next one; 401 at the end */

/* ---------------------------------------------------------------------------------------------
 * ld_auth_request: one question. Filled and owned by the host; every pointer is borrowed for the
 * duration of the authorize() call only.
 * ------------------------------------------------------------------------------------------- */
typedef struct ld_auth_request {
    uint32_t abi_major;
    uint32_t abi_minor;
    uint32_t struct_size;
    uint32_t roles; /* LD_ROLE_* bits required; 0 asks only "may this key use `database`?" */

    /* The ApiKey header, trimmed, as bytes (not NUL-terminated; may contain any byte). Compare
     * it in constant time (sodium_memcmp or a hash comparison), never with strcmp. */
    const char *api_key;
    size_t api_key_len;

    /* The logical database, already trimmed, lowercased and validated, NUL-terminated. NULL
     * when the request names no database: then ALLOW means "a known key holding `roles` on at
     * least one database" (used by node-wide routes such as GET /api/databases). */
    const char *database;

    /* The client's address as text ("127.0.0.1", "::1"), NUL-terminated. Since ABI 1.0. */
    const char *client_addr;
} ld_auth_request;

/* ---------------------------------------------------------------------------------------------
 * ld_auth_query: the one question per request of ABI 1.2 (see decide below). Filled and owned
 * by the host; every pointer is borrowed for the duration of the decide() call only.
 * ------------------------------------------------------------------------------------------- */
typedef struct ld_auth_query {
    uint32_t abi_major;
    uint32_t abi_minor;
    uint32_t struct_size;

    /* LD_ROLE_* bits the request cannot go on without. Includes LD_ROLE_ADD_DB when the
     * database does not exist yet (every route that names a database creates it or needs the
     * right to, except DELETE /api/databases/{name}). */
    uint32_t needs;

    /* LD_ROLE_* bits the request may use, chosen later: an upsert needs WRITE_DOCUMENT for a
     * new id and UPDATE_DOCUMENT for an existing one (the writer decides in its transaction);
     * a query needs the role of its statement; the webhook that of its action. */
    uint32_t may_need;

    /* 1 when `database` exists on this node, 0 when not, -1 when no database is named. */
    int32_t db_exists;

    /* 1 when the document or cache key the request names exists, 0 when not, -1 when not
     * known at the time of the question or when the route names no id. */
    int32_t id_exists;

    /* For node-wide routes (database NULL): the number of names in `databases`. */
    uint32_t n_databases;

    /* The ApiKey header, trimmed, as bytes (not NUL-terminated). Compare in constant time. */
    const char *api_key;
    size_t api_key_len;

    /* The logical database, trimmed, lowercased and validated; NULL for node-wide routes. */
    const char *database;

    /* The client's address as text ("127.0.0.1", "::1"). */
    const char *client_addr;

    /* The route's action, a stable lowercase word for logs and policies: "documents.read",
     * "documents.write", "documents.delete", "collections.register", "query", "cache.read",
     * "cache.write", "cache.delete", "webhook", "databases.list", "databases.delete",
     * "node.overview", "indexes.read". A later minor may add words: treat an unknown one like any
     * other. */
    const char *action;

    /* Node-wide routes: the databases the answer's `access` is about (n_databases entries,
     * each NUL-terminated); NULL otherwise. */
    const char *const *databases;
} ld_auth_query;

/* ---------------------------------------------------------------------------------------------
 * ld_auth_answer: filled by the plugin in decide(); the struct belongs to the host and arrives
 * with decision LD_AUTH_UNKNOWN, granted 0 and access zeroed.
 * ------------------------------------------------------------------------------------------- */
typedef struct ld_auth_answer {
    uint32_t abi_major; /* the host's */
    uint32_t abi_minor;
    uint32_t struct_size;

    /* LD_AUTH_UNKNOWN: not this plugin's key (the next plugin is asked; 401 after the last).
     * LD_AUTH_DENY: this plugin's key, without access to `database` (node-wide: to any
     * database): 403, the chain ends.
     * LD_AUTH_ALLOW: this plugin's key, with access to `database` (node-wide: a known key) and
     * the roles in `granted`: the chain ends and the host serves the request only when
     * `granted` covers `needs`, using the may_need bits in `granted` to choose later. */
    int32_t decision;

    /* LD_ROLE_* bits the key holds on `database`. Bits outside needs | may_need are ignored,
     * so a plugin may simply answer all of the key's roles. */
    uint32_t granted;
    uint32_t reserved0;

    /* Node-wide routes: n_databases bytes, host-owned and zeroed; set access[i] to 1 when the
     * key may use databases[i]. NULL when the query names a database. */
    uint8_t *access;
} ld_auth_answer;

/* ld_auth_v1.flags bits (since ABI 1.4).
 * LD_AUTH_FLAG_STABLE: the answer to a question depends only on the question (key, database,
 * whether it exists, the roles, the action and the client's address) and on the configuration
 * create() read; it never depends on time or on earlier questions (no rate limits, no lookups
 * elsewhere). The host may then keep an answer for as long as the chain lives (until a reload
 * replaces it) instead of asking again: a RESP connection asks once per distinct question. */
#define LD_AUTH_FLAG_STABLE (1u << 0)

/* ld_auth_v1.wants bits (since ABI 1.2): the contract's key settings of the `Auth` section a
 * plugin asks to find in its host->config_json. A plugin that asks for none sees no key of the
 * contract; plugins of ABI 1.0 and 1.1 cannot ask and see none either. */
#define LD_AUTH_WANT_API_KEYS (1u << 0) /* Auth.ApiKeys, as configured (plain keys too) */
#define LD_AUTH_WANT_ROOT_KEY (1u << 1) /* RootApiKey or RootApiKeyHash, as configured */
#define LD_AUTH_WANT_ROOT_KEY_HASH                                                                 \
    (1u << 2) /* the root key only as RootApiKeyHash; a plain                                      \
                 RootApiKey is hashed by the host; an empty one                                    \
                 (disabled) arrives as RootApiKey "" */

typedef struct ld_auth_v1 {
    uint32_t abi_major;
    uint32_t abi_minor;
    uint32_t struct_size;
    uint32_t reserved0;

    /* create: builds the plugin's state from host->config_json (the whole `Auth` section; a
     * plugin conventionally reads its own settings from the member named after it).
     *   out   receives the instance; owned by the plugin until destroy().
     * Returns LD_OK, LD_INVALID (bad config: log which key and why; the server will not start),
     * LD_NOMEM, LD_IO. Main thread, once. Since ABI 1.0. Required. */
    ld_status (*create)(const ld_host *host, void **out);

    /* authorize: decides one request.
     *   decision  receives LD_AUTH_ALLOW, LD_AUTH_DENY or LD_AUTH_UNKNOWN.
     * Returns LD_OK when *decision is set. Any other status fails the request closed with 503;
     * the host never asks a later plugin after an error. Must not block for long: it runs on
     * the network thread. Called concurrently from any thread: keep state read-only after
     * create or lock it. Never log the key. Since ABI 1.0. Required. */
    ld_status (*authorize)(void *inst, const ld_auth_request *req, int32_t *decision);

    /* destroy: frees the instance. Main thread, after every authorize() has returned.
     * Since ABI 1.0. Required. */
    void (*destroy)(void *inst);

    /* LD_AUTH_WANT_* bits: the contract's key settings this plugin needs (see above). Read by
     * the host after the entry point returns, before create. Since ABI 1.2; 0 asks for none. */
    uint32_t wants;
    uint32_t reserved1; /* zero */

    /* decide: answers the one question of a request (ld_auth_query) in `answer`.
     * Returns LD_OK when answer->decision is set; any other status fails the request closed
     * with 503 and no later plugin is asked. When set, the host calls decide, once per request,
     * and never authorize; authorize stays required so that a host of ABI 1.0 or 1.1 can use
     * the plugin. Same threading and secrecy rules as authorize. Since ABI 1.2. Optional. */
    ld_status (*decide)(void *inst, const ld_auth_query *query, ld_auth_answer *answer);

    /* LD_AUTH_FLAG_* bits: promises the plugin makes about its answers. Read by the host after
     * the entry point returns. Since ABI 1.4; 0 (and any older plugin) promises nothing. */
    uint32_t flags;
    uint32_t reserved2; /* zero */
} ld_auth_v1;

#ifdef __cplusplus
}
#endif

#endif /* LITEDIST_AUTH_H */
