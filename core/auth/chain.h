/* The auth chain: the configured auth plugins asked in order (docs/architecture.md §3), one
 * question per request. The first plugin that knows the key answers; UNKNOWN passes to the next; an
 * error fails closed. Each plugin gets only its own settings and the contract keys it asks for. */
#ifndef LD_AUTH_CHAIN_H
#define LD_AUTH_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../plugins/loader.h"

typedef struct ld_auth_link {
    ld_plugin *plugin;
    const ld_auth_v1 *ops;
    /* ABI 1.2's one question per request; NULL: the old path (authorize, once per role). */
    ld_status (*decide)(void *inst, const ld_auth_query *q, ld_auth_answer *a);
    void *inst;
} ld_auth_link;

typedef struct ld_auth_chain {
    ld_auth_link *links;
    size_t n;
    /* Every link declares LD_AUTH_FLAG_STABLE (ABI 1.4; the bundled auth-config does): its
     * answer depends only on the question and changes only when a reload replaces the chain,
     * so a RESP connection may keep an answer until the reload (resp/commands.c). A plugin
     * without the flag promises no such thing (it may rate-limit, or look keys up elsewhere). */
    bool stable;
} ld_auth_chain;

/* What the chain decided. */
typedef enum ld_auth_result {
    LD_AUTHZ_ALLOW,   /* a plugin knows the key and gives it the database; see `granted` */
    LD_AUTHZ_DENY,    /* a plugin knows the key and refuses it the database: 403 */
    LD_AUTHZ_UNKNOWN, /* no plugin knows the key: 401 */
    LD_AUTHZ_ERROR,   /* a plugin failed: 503, never passed to the next plugin */
} ld_auth_result;

/* The one question of a request (the host's side of ld_auth_query). */
typedef struct ld_auth_question {
    const char *key;
    size_t key_len;
    const char *database; /* NULL for node-wide routes */
    int32_t db_exists;    /* 1, 0; -1 when database is NULL */
    int32_t id_exists;    /* 1, 0; -1 unknown or no id */
    uint32_t needs;       /* LD_ROLE_* bits the request cannot go without */
    uint32_t may_need;    /* LD_ROLE_* bits it may use, chosen later */
    const char *action;   /* ld_auth_query.action */
    const char *client_addr;
    const char *const *databases; /* node-wide: the names `access` is about */
    size_t n_databases;
} ld_auth_question;

/* Loads and creates each plugin of names[] (resolved in plugin_dir, then the defaults).
 * auth_json is the whole Auth section: each plugin gets only `Plugins`, its own member (by
 * configured name, else file name) and the contract keys its `wants` asks for. On failure
 * returns non-OK with a message in err, and nothing stays loaded. */
ld_status ld_auth_chain_init(ld_auth_chain *c, char *const *names, size_t n, const char *plugin_dir,
                             const char *auth_json, const char *data_dir, char *err, size_t errlen);
void ld_auth_chain_destroy(ld_auth_chain *c);

/* Asks the chain the request's one question. On ALLOW, *granted holds the roles of
 * needs | may_need the key has (the caller checks `needs`); for a node-wide question access[i]
 * (n_databases bytes, caller-owned) says whether the key may use databases[i]. Plugins of ABI
 * 1.2 with decide are asked once; older ones through authorize, once per role (docs/plugins.md). */
ld_auth_result ld_auth_chain_ask(ld_auth_chain *c, const ld_auth_question *q, uint32_t *granted,
                                 uint8_t *access);

#endif
