/* The auth chain: the configured auth plugins asked in order (docs/architecture.md §3). The first
 * ALLOW or DENY decides; UNKNOWN passes to the next; an error fails closed. */
#ifndef LD_AUTH_CHAIN_H
#define LD_AUTH_CHAIN_H

#include <stddef.h>
#include <stdint.h>

#include "../plugins/loader.h"

typedef struct ld_auth_link {
    ld_plugin *plugin;
    const ld_auth_v1 *ops;
    void *inst;
} ld_auth_link;

typedef struct ld_auth_chain {
    ld_auth_link *links;
    size_t n;
} ld_auth_chain;

/* What the chain decided. */
typedef enum ld_auth_result {
    LD_AUTHZ_ALLOW,
    LD_AUTHZ_DENY,    /* a plugin knows the key and refuses: 403 */
    LD_AUTHZ_UNKNOWN, /* no plugin knows the key: 401 */
    LD_AUTHZ_ERROR,   /* a plugin failed: 503, never passed to the next plugin */
} ld_auth_result;

/* Loads and creates each plugin of names[] (resolved in plugin_dir). On failure returns non-OK
 * with a message in err, and nothing stays loaded. */
ld_status ld_auth_chain_init(ld_auth_chain *c, char *const *names, size_t n, const char *plugin_dir,
                             const char *config_json, const char *data_dir, char *err,
                             size_t errlen);
void ld_auth_chain_destroy(ld_auth_chain *c);

/* Asks the chain. database may be NULL (node-wide routes). */
ld_auth_result ld_auth_chain_decide(ld_auth_chain *c, const char *key, size_t key_len,
                                    const char *database, uint32_t roles, const char *client_addr);

#endif
