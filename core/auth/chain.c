/* The ordered chain of auth plugins, consulted per request (see chain.h). */
#include "chain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"

ld_status ld_auth_chain_init(ld_auth_chain *c, char *const *names, size_t n, const char *plugin_dir,
                             const char *config_json, const char *data_dir, char *err,
                             size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->links = calloc(n ? n : 1, sizeof *c->links);
    if (!c->links) return LD_NOMEM;
    for (size_t i = 0; i < n; i++) {
        char *path = ld_plugin_resolve(names[i], plugin_dir, LD_PLUGIN_KIND_AUTH, err, errlen);
        if (!path) goto fail;
        ld_auth_link *l = &c->links[i];
        ld_status st = ld_plugin_load(path, LD_PLUGIN_KIND_AUTH, config_json, data_dir, &l->plugin,
                                      err, errlen);
        if (st != LD_OK) {
            free(path);
            goto fail;
        }
        l->ops = l->plugin->desc->ops;
        st = l->ops->create(&l->plugin->host, &l->inst);
        if (st != LD_OK) {
            snprintf(err, errlen,
                     "auth plugin %s: create failed (status %d); check its settings in the Auth "
                     "section (see the lines above)",
                     path, st);
            free(path);
            ld_plugin_free(l->plugin);
            l->plugin = NULL;
            goto fail;
        }
        free(path);
        c->n = i + 1;
    }
    return LD_OK;
fail:
    ld_auth_chain_destroy(c);
    return LD_INVALID;
}

void ld_auth_chain_destroy(ld_auth_chain *c)
{
    for (size_t i = 0; i < c->n; i++) {
        if (c->links[i].inst && c->links[i].ops->destroy)
            c->links[i].ops->destroy(c->links[i].inst);
        ld_plugin_free(c->links[i].plugin);
    }
    free(c->links);
    memset(c, 0, sizeof *c);
}

ld_auth_result ld_auth_chain_decide(ld_auth_chain *c, const char *key, size_t key_len,
                                    const char *database, uint32_t roles, const char *client_addr)
{
    ld_auth_request req = {LD_ABI_HEADER_INIT(ld_auth_request), roles, key, key_len, database,
                           client_addr ? client_addr : ""};
    for (size_t i = 0; i < c->n; i++) {
        int32_t decision = 0;
        ld_status st = c->links[i].ops->authorize(c->links[i].inst, &req, &decision);
        if (st != LD_OK) {
            ld_log(LD_LOG_ERROR, c->links[i].plugin->name,
                   "authorize failed with status %d; request refused (fail closed)", st);
            return LD_AUTHZ_ERROR;
        }
        switch (decision) {
        case LD_AUTH_ALLOW:
            return LD_AUTHZ_ALLOW;
        case LD_AUTH_DENY:
            return LD_AUTHZ_DENY;
        case LD_AUTH_UNKNOWN:
            continue;
        default:
            ld_log(LD_LOG_ERROR, c->links[i].plugin->name,
                   "authorize returned decision %d, which is not ALLOW, DENY or UNKNOWN; request "
                   "refused",
                   decision);
            return LD_AUTHZ_ERROR;
        }
    }
    return LD_AUTHZ_UNKNOWN;
}
