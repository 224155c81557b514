/* The ordered chain of auth plugins, asked once per request (see chain.h): each plugin's own
 * slice of the Auth section, the ABI 1.2 question and the old per-role path for 1.0/1.1. */
#include "chain.h"

#include <ctype.h>
#include <jansson.h>
#include <stdbool.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../util/log.h"
#include "../util/strutil.h"

/* ---------------------------------------------------------------------------------------------
 * Each plugin's configuration
 * ------------------------------------------------------------------------------------------- */

/* The members of the Auth section the core and the contract define: never a plugin's own. */
static bool contract_member(const char *k)
{
    static const char *const names[] = {"Plugins", "RootApiKey", "RootApiKeyHash", "ApiKeys"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(k, names[i])) return true;
    return false;
}

/* The plugin's own member: the one named like its configured name, else like its file's base
 * name (Auth.Plugins ["tsv"] found as auth-tsv.so reads "tsv", else "auth-tsv"). */
static json_t *own_member(json_t *auth, const char *cname, const char *fname, const char **key)
{
    const char *names[] = {cname, fname};
    for (size_t i = 0; i < 2; i++) {
        const char *k;
        json_t *v;
        json_object_foreach(auth, k, v)
        {
            if (!strcasecmp(k, names[i]) && !contract_member(k)) {
                *key = k;
                return v;
            }
        }
    }
    return NULL;
}

static char *dump(json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* The Auth-shaped object every plugin gets: `Plugins` and its own member. *settings receives
 * the member alone ("{}" when there is none). */
static ld_status base_config(json_t *auth, const char *entry, const char *path, char **config,
                             char **settings, char *err, size_t errlen)
{
    char cname[256], fname[256];
    ld_plugin_config_name(entry, cname, sizeof cname);
    ld_plugin_config_name(path, fname, sizeof fname);
    *config = *settings = NULL;
    const char *key = NULL;
    json_t *mine = own_member(auth, cname, fname, &key);
    if (mine && !json_is_object(mine)) {
        ld_set_err(err, errlen,
                   "Auth.%s must be an object: it holds the settings of auth plugin '%s'", key,
                   cname);
        return LD_INVALID;
    }
    json_t *out = json_object();
    json_t *plugins = json_object_get(auth, "Plugins");
    if (!out || (plugins && json_object_set(out, "Plugins", plugins) != 0) ||
        (mine && json_object_set(out, key, mine) != 0) || !(*config = dump(out)) ||
        !(*settings = mine ? dump(mine) : strdup("{}"))) {
        json_decref(out);
        free(*config);
        *config = NULL;
        ld_set_err(err, errlen, "auth plugin '%s': out of memory", cname);
        return LD_NOMEM;
    }
    json_decref(out);
    return LD_OK;
}

/* "blake2b:<hex>" of the root key, trimmed like auth-config trims it. */
static json_t *root_hash(const char *key)
{
    size_t n = strlen(key);
    while (n && isspace((unsigned char)*key))
        key++, n--;
    while (n && isspace((unsigned char)key[n - 1]))
        n--;
    unsigned char h[crypto_generichash_BYTES];
    char text[sizeof "blake2b:" + 2 * sizeof h];
    crypto_generichash(h, sizeof h, (const unsigned char *)key, n, NULL, 0);
    memcpy(text, "blake2b:", 8);
    sodium_bin2hex(text + 8, sizeof text - 8, h, sizeof h);
    return json_string(text);
}

/* Completes a plugin's config_json once its descriptor is known: its own member also under the
 * descriptor's name (a plugin of ABI 1.0/1.1 looks its member up by that name, whatever it was
 * configured as), and the contract keys it asked for (ld_auth_v1.wants). */
static ld_status complete_config(json_t *auth, ld_plugin *p, uint32_t wants, char *err,
                                 size_t errlen)
{
    json_t *cfg = json_loads(p->host.config_json, 0, NULL);
    if (!cfg) goto nomem;
    const char *k;
    json_t *v;
    bool named = false;
    json_object_foreach(cfg, k, v) named = named || !strcasecmp(k, p->name);
    json_t *mine =
        named || contract_member(p->name) ? NULL : json_loads(p->host.settings_json, 0, NULL);
    if (mine && json_object_size(mine) && json_object_set(cfg, p->name, mine) != 0) {
        json_decref(mine);
        goto nomem_cfg;
    }
    json_decref(mine);
    json_t *keys = json_object_get(auth, "ApiKeys");
    json_t *plain = json_object_get(auth, "RootApiKey");
    json_t *hashed = json_object_get(auth, "RootApiKeyHash");
    char what[160] = "";
    if ((wants & LD_AUTH_WANT_API_KEYS) && keys) {
        if (json_object_set(cfg, "ApiKeys", keys) != 0) goto nomem_cfg;
        strcat(what, " Auth.ApiKeys;");
    }
    if (wants & LD_AUTH_WANT_ROOT_KEY_HASH) {
        if (plain && !json_is_string(plain)) {
            json_decref(cfg);
            ld_set_err(err, errlen,
                       "Auth.RootApiKey must be a string (\"\" disables the root key)");
            return LD_INVALID;
        }
        json_t *h = hashed                               ? json_incref(hashed)
                    : plain && json_string_length(plain) ? root_hash(json_string_value(plain))
                                                         : NULL;
        if (h) {
            if (json_object_set_new(cfg, "RootApiKeyHash", h) != 0) goto nomem_cfg;
            strcat(what, " the root key as a hash;");
        } else if (plain) { /* "" disables the root key and holds nothing secret */
            if (json_object_set(cfg, "RootApiKey", plain) != 0) goto nomem_cfg;
        }
    } else if (wants & LD_AUTH_WANT_ROOT_KEY) {
        if ((plain && json_object_set(cfg, "RootApiKey", plain) != 0) ||
            (hashed && json_object_set(cfg, "RootApiKeyHash", hashed) != 0))
            goto nomem_cfg;
        if (plain || hashed) strcat(what, " the root key;");
    }
    char *text = dump(cfg);
    json_decref(cfg);
    if (!text || ld_plugin_extend_config(p, text) != LD_OK) {
        free(text);
        goto nomem;
    }
    free(text);
    if (what[0]) {
        what[strlen(what) - 1] = '\0'; /* the last ';' */
        ld_log_info("auth plugin '%s' receives, as it asked:%s", p->host.plugin_name, what);
    }
    return LD_OK;
nomem_cfg:
    json_decref(cfg);
nomem:
    ld_set_err(err, errlen, "auth plugin '%s': out of memory", p->host.plugin_name);
    return LD_NOMEM;
}

/* Loads one plugin with its slice of the configuration and creates its instance. */
static ld_status link_init(ld_auth_link *l, json_t *auth, const char *entry, const char *plugin_dir,
                           const char *data_dir, char *err, size_t errlen)
{
    char *path = ld_plugin_resolve(entry, plugin_dir, LD_PLUGIN_KIND_AUTH, err, errlen);
    if (!path) return LD_INVALID;
    char *config = NULL, *settings = NULL;
    ld_status st = base_config(auth, entry, path, &config, &settings, err, errlen);
    if (st == LD_OK) {
        ld_plugin_spec spec = {path, entry, config, settings, data_dir};
        st = ld_plugin_load(&spec, LD_PLUGIN_KIND_AUTH, &l->plugin, err, errlen);
    }
    free(config);
    free(settings);
    if (st == LD_OK) {
        l->ops = l->plugin->desc->ops;
        l->decide = ld_auth_ops_decide(l->ops);
        st = complete_config(auth, l->plugin, ld_auth_ops_wants(l->ops), err, errlen);
    }
    if (st == LD_OK && (st = l->ops->create(&l->plugin->host, &l->inst)) != LD_OK) {
        ld_set_err(err, errlen,
                   "auth plugin %s: create failed (status %d); check its settings in the Auth "
                   "section (see the lines above)",
                   path, st);
        l->inst = NULL;
    }
    if (st != LD_OK) {
        ld_plugin_free(l->plugin);
        l->plugin = NULL;
    }
    free(path);
    return st;
}

ld_status ld_auth_chain_init(ld_auth_chain *c, char *const *names, size_t n, const char *plugin_dir,
                             const char *auth_json, const char *data_dir, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    json_error_t jerr;
    json_t *auth = json_loads(auth_json ? auth_json : "{}", 0, &jerr);
    if (!auth || !json_is_object(auth)) {
        json_decref(auth);
        ld_set_err(err, errlen, "the Auth section is not a JSON object");
        return LD_INVALID;
    }
    c->links = calloc(n ? n : 1, sizeof *c->links);
    if (!c->links) {
        json_decref(auth);
        ld_set_err(err, errlen, "auth: out of memory");
        return LD_NOMEM;
    }
    ld_status st = LD_OK;
    for (size_t i = 0; i < n && st == LD_OK; i++) {
        st = link_init(&c->links[i], auth, names[i], plugin_dir, data_dir, err, errlen);
        if (st == LD_OK) c->n = i + 1;
    }
    json_decref(auth);
    c->stable = c->n > 0;
    for (size_t i = 0; i < c->n; i++)
        c->stable = c->stable && (ld_auth_ops_flags(c->links[i].ops) & LD_AUTH_FLAG_STABLE);
    if (st != LD_OK) ld_auth_chain_destroy(c);
    return st == LD_OK ? LD_OK : LD_INVALID;
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

/* ---------------------------------------------------------------------------------------------
 * Asking
 * -------------------------------------------------------------------------------------------
 */

static bool valid_decision(int32_t d)
{
    return d == LD_AUTH_ALLOW || d == LD_AUTH_DENY || d == LD_AUTH_UNKNOWN;
}

/* ABI 1.0/1.1 plugins: the question split into authorize calls, the way litedistd asked before
 * 1.2: database access first (per listed database on node-wide routes), then each role of
 * `needs` in bit order until one is refused, then each role of `may_need`. */
static ld_status old_path(const ld_auth_link *l, const ld_auth_question *q, int32_t *decision,
                          uint32_t *granted, uint8_t *access)
{
    ld_auth_request req = {LD_ABI_HEADER_INIT(ld_auth_request), 0, q->key, q->key_len, q->database,
                           q->client_addr ? q->client_addr : ""};
    ld_status st = l->ops->authorize(l->inst, &req, decision);
    if (st != LD_OK || *decision != LD_AUTH_ALLOW) return st;
    for (size_t i = 0; !q->database && access && i < q->n_databases; i++) {
        int32_t d = 0;
        req.database = q->databases[i];
        if ((st = l->ops->authorize(l->inst, &req, &d)) != LD_OK) return st;
        access[i] = d == LD_AUTH_ALLOW;
    }
    req.database = q->database;
    uint32_t wanted[2] = {q->needs, q->may_need & ~q->needs};
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t bit = 1; bit <= LD_ROLE_ALL; bit <<= 1) {
            if (!(wanted[pass] & bit)) continue;
            int32_t d = 0;
            req.roles = bit;
            if ((st = l->ops->authorize(l->inst, &req, &d)) != LD_OK) return st;
            if (!valid_decision(d)) {
                *decision = d;
                return LD_OK;
            }
            if (d == LD_AUTH_ALLOW)
                *granted |= bit;
            else if (pass == 0)
                return LD_OK; /* a role the request needs is refused: no more questions */
        }
    }
    return LD_OK;
}

ld_auth_result ld_auth_chain_ask(ld_auth_chain *c, const ld_auth_question *q, uint32_t *granted,
                                 uint8_t *access)
{
    size_t nacc = q->database ? 0 : q->n_databases;
    for (size_t i = 0; i < c->n; i++) {
        const ld_auth_link *l = &c->links[i];
        int32_t decision = LD_AUTH_UNKNOWN;
        uint32_t got = 0;
        ld_status st;
        if (nacc) memset(access, 0, nacc);
        if (l->decide) {
            ld_auth_query query = {LD_ABI_HEADER_INIT(ld_auth_query),
                                   q->needs,
                                   q->may_need,
                                   q->database ? q->db_exists : -1,
                                   q->id_exists,
                                   (uint32_t)nacc,
                                   q->key,
                                   q->key_len,
                                   q->database,
                                   q->client_addr ? q->client_addr : "",
                                   q->action,
                                   nacc ? q->databases : NULL};
            ld_auth_answer ans = {LD_ABI_HEADER_INIT(ld_auth_answer), LD_AUTH_UNKNOWN, 0, 0,
                                  nacc ? access : NULL};
            st = l->decide(l->inst, &query, &ans);
            decision = ans.decision;
            got = ans.granted;
        } else {
            st = old_path(l, q, &decision, &got, access);
        }
        if (st != LD_OK) {
            ld_log(LD_LOG_ERROR, l->plugin->name,
                   "%s failed with status %d; request refused (fail closed)",
                   l->decide ? "decide" : "authorize", st);
            return LD_AUTHZ_ERROR;
        }
        switch (decision) {
        case LD_AUTH_ALLOW:
            *granted = got & (q->needs | q->may_need);
            for (size_t k = 0; k < nacc; k++)
                access[k] = access[k] != 0;
            return LD_AUTHZ_ALLOW;
        case LD_AUTH_DENY:
            return LD_AUTHZ_DENY;
        case LD_AUTH_UNKNOWN:
            continue;
        default:
            ld_log(LD_LOG_ERROR, l->plugin->name,
                   "%s returned decision %d, which is not ALLOW, DENY or UNKNOWN; request "
                   "refused",
                   l->decide ? "decide" : "authorize", decision);
            return LD_AUTHZ_ERROR;
        }
    }
    if (nacc) memset(access, 0, nacc);
    return LD_AUTHZ_UNKNOWN;
}
