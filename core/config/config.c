/* Loading and validating litedistd's configuration: file, then LITEDIST_* environment, then
 * flags. Keys are matched case-insensitively (as .NET configuration does) and renamed to their
 * canonical case; anything unknown is reported. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../util/log.h"
#include "../util/strutil.h"

#define ENV_PREFIX "LITEDIST_"

/* ---------------------------------------------------------------------------------------------
 * Schema
 * ------------------------------------------------------------------------------------------- */

typedef struct keydef {
    const char *name;
    bool used; /* false: a contract key that a later component implements; warned as unused */
} keydef;

static const keydef node_keys[] = {
    {"NodeId", true},
    {"ListenAddress", true},
    {"Port", true},
    {"DataDirectory", true},
    {"PluginDirectory", true},
    {"ReplicationApiKey", true},
    {"MaxBodyBytes", true},
    {"MaxHeaderBytes", true},
    {"LogLevel", true},
    {"LogFormat", true},
    {"MetricsApiKey", true},
    {"ReadinessCatchUpTimeoutSeconds", true},
    {"AllowDefaultKeys", true},
    {"ShutdownTimeoutSeconds", true},
    {"WriterBatchMax", true},
    {"IndexBuildBatchSize", true},
    {"ReadCacheKiB", true},
    {"MaxQueryLength", true},
    {"MaxQueryDepth", true},
    {"SeedPeers", true},
    {"ReplicationBatchSize", true},
    {"ReplicationBatchBytes", true},
    {"SnapshotPageBytes", true},
    {"OperationLogPruningEnabled", true},
    {"OperationLogRetentionDays", true},
    {"OperationLogRetainRecentOperations", true},
    {"OperationLogPruningIntervalMinutes", true},
    {"OperationLogPruningBatchSize", true},
    {"OperationReceiptRetentionDays", true},
    {"OperationLogMaxRetentionDays", true},
    {"ReplicationPeerConcurrency", true},
    {"ReplicationTimeoutSeconds", true},
    {"AntiEntropyIntervalSeconds", true},
    {"PeerProbeIntervalSeconds", true},
    {"AuthFailureDelayMilliseconds", true},
    {"RequestTimeoutSeconds", true},
    {"RequestReadTimeoutSeconds", true},
    {"MaxConnections", true},
    {"MaxListBytes", true},
    {"ChangesFeedMaxBufferBytes", true},
    {"MaxUrlBytes", true},
    {"ConflictResolutionPolicy", true},
    {"MaxClockSkewSeconds", true},
    {"TestClockOffsetMilliseconds", true},
    {"TombstoneRetentionSeconds", true},
    {"CacheCleanupIntervalSeconds", true},
    {"CacheCleanupBatchSize", true},
    {"CacheCleanupMaxScanPages", true},
    {"CacheCleanupTimeBudgetMilliseconds", true},
    {"CacheDurability", true},
    {"Tls", true},
    {"AdvertisedUrl", true},
    {"AutoRegisterPeers", true},
    {"PeerReplacementSilenceSeconds", true},
    /* A replication setting of the contract: accepted so a config written for the original
     * loads, reported as unused (litedist's hints need no acknowledgement timeout). */
    {"ReplicationSignalAckTimeoutMilliseconds", false},
    {NULL, false},
};

static const keydef tls_keys[] = {
    {"CertificateFile", true}, {"KeyFile", true}, {"ClientCaFile", true},
    {"PeerCaFile", true},      {NULL, false},
};

/* Fault: the settings of the storage-fault test plugin (docs/testing.md). */
static const keydef storage_keys[] = {
    {"Plugin", true},
    {"Sync", true},
    {"BusyTimeoutMs", true},
    {"CacheSizeKiB", true},
    {"MmapSizeMiB", true},
    {"PageSizeKiB", true},
    {"MapSizeMiB", true},
    {"CompactAtCloseMaxMiB", true},
    {"Fault", true},
    {NULL, false},
};

static const keydef auth_keys[] = {
    {"Plugins", true}, {"RootApiKey", true}, {"RootApiKeyHash", true},
    {"ApiKeys", true}, {NULL, false},
};

static const keydef studio_keys[] = {{"CorsOrigins", true}, {"Root", true}, {NULL, false}};

static const keydef resp_keys[] = {
    {"Enabled", true},        {"ListenAddress", true},      {"Port", true},
    {"MaxConnections", true}, {"IdleTimeoutSeconds", true}, {NULL, false},
};

typedef struct sectiondef {
    const char *name;
    const keydef *keys;
} sectiondef;

static const sectiondef sections[] = {
    {"Node", node_keys},     {"Auth", auth_keys}, {"Storage", storage_keys},
    {"Studio", studio_keys}, {"Resp", resp_keys}, {NULL, NULL},
};

/* ---------------------------------------------------------------------------------------------
 * Environment overrides
 * ------------------------------------------------------------------------------------------- */

/* Finds member `name` of obj ignoring case; returns its exact key in *key_out. */
static json_t *obj_get_ci(json_t *obj, const char *name, const char **key_out)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (strcasecmp(k, name) == 0) {
            if (key_out) *key_out = k;
            return v;
        }
    }
    return NULL;
}

static bool parse_index(const char *s, size_t *out)
{
    if (!*s) return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || errno || v > 100000) return false;
    *out = (size_t)v;
    return true;
}

bool ld_config_apply_env(json_t *root, const char *path, const char *value, char *err,
                         size_t errlen)
{
    char *copy = strdup(path);
    if (!copy) return false;
    char *segs[16];
    size_t n = 0;
    for (char *p = copy; n < 16;) {
        segs[n++] = p;
        char *sep = strstr(p, "__");
        if (!sep) break;
        *sep = '\0';
        p = sep + 2;
    }
    bool ok = false;
    json_t *val = json_loads(value, JSON_DECODE_ANY, NULL);
    if (!val) val = json_string(value);
    if (!val) { /* a string jansson refuses: not UTF-8 (or out of memory) */
        ld_set_err(err, errlen, "environment %s%s: the value is neither JSON nor UTF-8 text",
                   ENV_PREFIX, path);
        goto out;
    }

    json_t *cur = root;
    for (size_t i = 0; i < n; i++) {
        bool last = i + 1 == n;
        size_t idx;
        if (!segs[i][0]) {
            ld_set_err(err, errlen, "environment %s%s: empty path segment", ENV_PREFIX, path);
            goto out;
        }
        if (json_is_array(cur) && parse_index(segs[i], &idx)) {
            if (idx > json_array_size(cur)) {
                ld_set_err(err, errlen, "environment %s%s: index %zu is past the end", ENV_PREFIX,
                           path, idx);
                goto out;
            }
            if (last) {
                if ((idx == json_array_size(cur) ? json_array_append(cur, val)
                                                 : json_array_set(cur, idx, val)) != 0) {
                    ld_set_err(err, errlen, "environment %s%s: out of memory", ENV_PREFIX, path);
                    goto out;
                }
                ok = true;
                goto out;
            }
            json_t *next = json_array_get(cur, idx);
            if (!next) {
                /* append_new frees `next` when it fails: never walk into it then */
                size_t ignored;
                if (!(next = parse_index(segs[i + 1], &ignored) ? json_array() : json_object()) ||
                    json_array_append_new(cur, next) != 0) {
                    ld_set_err(err, errlen, "environment %s%s: out of memory", ENV_PREFIX, path);
                    goto out;
                }
            }
            cur = next;
            continue;
        }
        if (!json_is_object(cur)) {
            ld_set_err(err, errlen, "environment %s%s: %s is not an object", ENV_PREFIX, path,
                       segs[i]);
            goto out;
        }
        const char *key = NULL;
        json_t *next = obj_get_ci(cur, segs[i], &key);
        /* jansson refuses a key that is not UTF-8 (an environment name may be any bytes), and
         * set_new frees the value it could not store: check each set, never walk into it. */
        if (last) {
            if (json_object_set(cur, key ? key : segs[i], val) != 0) {
                ld_set_err(err, errlen, "environment %s%s: %s is not a valid key (UTF-8)",
                           ENV_PREFIX, path, segs[i]);
                goto out;
            }
            ok = true;
            goto out;
        }
        if (!next || !(json_is_object(next) || json_is_array(next))) {
            /* An index next (ApiKeys__0__Key) makes an array, anything else an object. */
            size_t ignored;
            if (!(next = parse_index(segs[i + 1], &ignored) ? json_array() : json_object()) ||
                json_object_set_new(cur, key ? key : segs[i], next) != 0) {
                ld_set_err(err, errlen, "environment %s%s: %s is not a valid key (UTF-8)",
                           ENV_PREFIX, path, segs[i]);
                goto out;
            }
        }
        cur = next;
    }
out:
    json_decref(val);
    free(copy);
    return ok;
}

/* ---------------------------------------------------------------------------------------------
 * Canonical case and unknown keys
 * ------------------------------------------------------------------------------------------- */

/* Names are matched ignoring case, so two spellings of one name in one object would be the
 * same setting given twice: refused, naming both, rather than one silently winning. where is
 * "" for the top level. */
static bool no_case_duplicates(json_t *obj, const char *where, char *err, size_t errlen)
{
    const char *a, *b;
    json_t *va, *vb;
    json_object_foreach(obj, a, va)
    {
        bool after = false;
        json_object_foreach(obj, b, vb)
        {
            if (b == a) {
                after = true;
                continue;
            }
            if (after && strcasecmp(a, b) == 0) {
                ld_set_err(err, errlen,
                           "config: %s%s%s and %s%s%s are one %s (names are matched ignoring "
                           "case): keep one spelling",
                           where, *where ? "." : "", a, where, *where ? "." : "", b,
                           *where ? "key" : "section");
                return false;
            }
        }
    }
    return true;
}

/* Renames the members of obj to the canonical spelling in defs; reports the rest unless
 * extra_ok says a member is someone else's (an auth plugin's own section). */
static bool canonicalize(json_t *obj, const char *section, const keydef *defs,
                         bool (*extra_ok)(const char *key, void *ctx), void *ctx, char *err,
                         size_t errlen)
{
    if (!no_case_duplicates(obj, section, err, errlen)) return false;
    const char *k;
    json_t *v;
    void *tmp;
    json_t *renamed = json_object();
    json_object_foreach_safe(obj, tmp, k, v)
    {
        const keydef *d = defs;
        while (d->name && strcasecmp(d->name, k) != 0)
            d++;
        if (d->name) {
            if (!d->used)
                ld_log_warn("config: %s.%s is not used by this build of litedistd (ignored)",
                            section, d->name);
            if (strcmp(d->name, k) != 0) {
                json_object_set(renamed, d->name, v);
                json_object_del(obj, k);
            }
        } else if (!(extra_ok && extra_ok(k, ctx))) {
            ld_log_warn("config: unknown key %s.%s (ignored)", section, k);
        }
    }
    json_object_foreach(renamed, k, v)
    {
        json_object_set(obj, k, v); /* no clash: no_case_duplicates */
    }
    json_decref(renamed);
    return true;
}

/* Whether `key` is the settings member of an entry of Auth.Plugins: the entry's name ("tsv"),
 * or the file it is found as ("auth-tsv" for "tsv"; the base name without ".so" for a path).
 * The auth chain (auth/chain.c) selects the member by the same names. */
static bool auth_extra_ok(const char *key, void *ctx)
{
    json_t *plugins = ctx;
    size_t i;
    json_t *p;
    json_array_foreach(plugins, i, p)
    {
        if (!json_is_string(p)) continue;
        char base[256], file[264];
        ld_plugin_config_name(json_string_value(p), base, sizeof base);
        snprintf(file, sizeof file, "auth-%s", base);
        if (strcasecmp(base, key) == 0 || strcasecmp(file, key) == 0) return true;
    }
    return false;
}

/* ---------------------------------------------------------------------------------------------
 * Typed getters
 * ------------------------------------------------------------------------------------------- */

static bool get_str(json_t *sec, const char *sname, const char *key, const char *def, char **out,
                    char *err, size_t errlen)
{
    json_t *v = sec ? json_object_get(sec, key) : NULL;
    char buf[64];
    const char *s = def;
    if (v && !json_is_null(v)) {
        if (json_is_string(v))
            s = json_string_value(v);
        else if (json_is_integer(v)) {
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
            s = buf;
        } else {
            ld_set_err(err, errlen, "%s.%s must be a string", sname, key);
            return false;
        }
    }
    free(*out);
    *out = s ? strdup(s) : NULL;
    return s == NULL || *out != NULL;
}

static bool get_int(json_t *sec, const char *sname, const char *key, long long def, long long min,
                    long long max, long long *out, char *err, size_t errlen)
{
    json_t *v = sec ? json_object_get(sec, key) : NULL;
    long long x = def;
    if (v && !json_is_null(v)) {
        if (json_is_integer(v))
            x = json_integer_value(v);
        else if (json_is_string(v)) {
            char *end;
            errno = 0;
            x = strtoll(json_string_value(v), &end, 10);
            if (errno || *end || end == json_string_value(v)) {
                ld_set_err(err, errlen, "%s.%s must be an integer", sname, key);
                return false;
            }
        } else {
            ld_set_err(err, errlen, "%s.%s must be an integer", sname, key);
            return false;
        }
    }
    if (x < min || x > max) {
        ld_set_err(err, errlen, "%s.%s must be between %lld and %lld (got %lld)", sname, key, min,
                   max, x);
        return false;
    }
    *out = x;
    return true;
}

static bool get_bool(json_t *sec, const char *sname, const char *key, bool def, bool *out,
                     char *err, size_t errlen)
{
    json_t *v = sec ? json_object_get(sec, key) : NULL;
    *out = def;
    if (!v || json_is_null(v)) return true;
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return true;
    }
    if (json_is_string(v) &&
        (!strcasecmp(json_string_value(v), "true") || !strcasecmp(json_string_value(v), "false"))) {
        *out = !strcasecmp(json_string_value(v), "true");
        return true;
    }
    ld_set_err(err, errlen, "%s.%s must be true or false", sname, key);
    return false;
}

static bool get_str_list(json_t *sec, const char *sname, const char *key, const char *def,
                         char ***out, size_t *n, char *err, size_t errlen)
{
    json_t *v = sec ? json_object_get(sec, key) : NULL;
    if (!v || json_is_null(v)) {
        if (!def) return true;
        *out = calloc(1, sizeof(char *));
        if (!*out || !((*out)[0] = strdup(def))) return false;
        *n = 1;
        return true;
    }
    if (json_is_string(v)) { /* a single string is a one-element list (env overrides) */
        *out = calloc(1, sizeof(char *));
        if (!*out || !((*out)[0] = strdup(json_string_value(v)))) return false;
        *n = 1;
        return true;
    }
    if (!json_is_array(v)) {
        ld_set_err(err, errlen, "%s.%s must be an array of strings", sname, key);
        return false;
    }
    size_t cnt = json_array_size(v);
    *out = calloc(cnt ? cnt : 1, sizeof(char *));
    if (!*out) return false;
    for (size_t i = 0; i < cnt; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_string(e)) {
            ld_set_err(err, errlen, "%s.%s[%zu] must be a string", sname, key, i);
            return false;
        }
        if (!((*out)[i] = strdup(json_string_value(e)))) return false;
        *n = i + 1;
    }
    return true;
}

static char *section_text(json_t *sec)
{
    return sec ? json_dumps(sec, JSON_COMPACT) : strdup("{}");
}

/* ---------------------------------------------------------------------------------------------
 * Load
 * ------------------------------------------------------------------------------------------- */

static json_t *section(json_t *root, const char *name)
{
    json_t *s = json_object_get(root, name);
    return json_is_object(s) ? s : NULL;
}

/* The replication settings of the contract (Node section); docs/architecture.md §5 for their
 * meaning. */
static bool load_replication(ld_config *cfg, json_t *node, char *err, size_t errlen)
{
    long long x;
    if (!get_int(node, "Node", "ReplicationBatchSize", 1000, 1, 10000, &x, err, errlen))
        return false;
    cfg->repl_batch_size = (int)x;
    if (!get_int(node, "Node", "ReplicationBatchBytes", 4 * 1024 * 1024, 64 * 1024,
                 256LL * 1024 * 1024, &x, err, errlen))
        return false;
    cfg->repl_batch_bytes = (size_t)x;
    if (!get_int(node, "Node", "SnapshotPageBytes", 4 * 1024 * 1024, 1024, 16 * 1024 * 1024, &x,
                 err, errlen))
        return false;
    cfg->snapshot_page_bytes = (size_t)x;
    if (!get_bool(node, "Node", "OperationLogPruningEnabled", true, &cfg->oplog_pruning, err,
                  errlen))
        return false;
    if (!get_int(node, "Node", "OperationLogRetentionDays", 7, 0, 36500, &x, err, errlen))
        return false;
    cfg->oplog_retention_days = (int)x;
    if (!get_int(node, "Node", "OperationLogRetainRecentOperations", 10000, 0, 1000000000, &x, err,
                 errlen))
        return false;
    cfg->oplog_retain_recent = (int)x;
    if (!get_int(node, "Node", "OperationLogPruningIntervalMinutes", 60, 1, 10080, &x, err, errlen))
        return false;
    cfg->oplog_prune_interval_min = (int)x;
    if (!get_int(node, "Node", "OperationLogPruningBatchSize", 1000, 1, 100000, &x, err, errlen))
        return false;
    cfg->oplog_prune_batch = (int)x;
    if (!get_int(node, "Node", "OperationReceiptRetentionDays", 90, 0, 36500, &x, err, errlen))
        return false;
    cfg->oplog_receipt_days = (int)x;
    if (!get_int(node, "Node", "OperationLogMaxRetentionDays", 30, 0, 36500, &x, err, errlen))
        return false;
    cfg->oplog_max_retention_days = (int)x;
    if (cfg->oplog_max_retention_days < cfg->oplog_retention_days) {
        ld_set_err(err, errlen,
                   "Node.OperationLogMaxRetentionDays (%d) must be at least "
                   "Node.OperationLogRetentionDays (%d)",
                   cfg->oplog_max_retention_days, cfg->oplog_retention_days);
        return false;
    }
    if (!get_int(node, "Node", "TombstoneRetentionSeconds", 7 * 24 * 3600, 0, 36500LL * 24 * 3600,
                 &x, err, errlen))
        return false;
    cfg->tombstone_retention_s = x;
    if (!get_int(node, "Node", "ReplicationPeerConcurrency", 4, 1, 32, &x, err, errlen))
        return false;
    cfg->repl_peer_concurrency = (int)x;
    if (!get_int(node, "Node", "ReplicationTimeoutSeconds", 10, 1, 600, &x, err, errlen))
        return false;
    cfg->repl_timeout_s = (int)x;
    if (!get_int(node, "Node", "AntiEntropyIntervalSeconds", 60, 1, 86400, &x, err, errlen))
        return false;
    cfg->anti_entropy_s = (int)x;
    if (!get_int(node, "Node", "PeerProbeIntervalSeconds", 5, 0, 3600, &x, err, errlen))
        return false;
    cfg->peer_probe_interval_s = (int)x;
    if (!get_int(node, "Node", "AuthFailureDelayMilliseconds", 200, 0, 10000, &x, err, errlen))
        return false;
    cfg->auth_failure_delay_ms = (int)x;
    if (!get_int(node, "Node", "RequestTimeoutSeconds", 30, 1, 3600, &x, err, errlen)) return false;
    cfg->request_timeout_s = (int)x;
    if (!get_int(node, "Node", "RequestReadTimeoutSeconds", 30, 1, 3600, &x, err, errlen))
        return false;
    cfg->request_read_timeout_s = (int)x;
    if (!get_int(node, "Node", "MaxConnections", 1024, 1, 1000000, &x, err, errlen)) return false;
    cfg->max_connections = (int)x;
    if (!get_int(node, "Node", "MaxListBytes", 8 * 1024 * 1024, 1024, 1024LL * 1024 * 1024, &x, err,
                 errlen))
        return false;
    cfg->max_list_bytes = (size_t)x;
    if (!get_int(node, "Node", "ChangesFeedMaxBufferBytes", 4 * 1024 * 1024, 4096,
                 1024LL * 1024 * 1024, &x, err, errlen))
        return false;
    cfg->changes_max_buffer = (size_t)x;
    if (!get_int(node, "Node", "MaxUrlBytes", 8192, 256, 1024 * 1024, &x, err, errlen))
        return false;
    cfg->max_url_bytes = (size_t)x;
    if (!get_int(node, "Node", "MaxClockSkewSeconds", 60, 1, 86400 * 365, &x, err, errlen))
        return false;
    cfg->max_clock_skew_s = (int)x;
    /* Test only (the fault test's clock skew): main.c refuses it beyond loopback. */
    if (!get_int(node, "Node", "TestClockOffsetMilliseconds", 0, -86400000LL, 86400000LL, &x, err,
                 errlen))
        return false;
    cfg->test_clock_offset_ms = (int64_t)x;
    if (!get_int(node, "Node", "CacheCleanupIntervalSeconds", 30, 0, 86400, &x, err, errlen))
        return false;
    cfg->cache_cleanup_interval_s = (int)x;
    if (!get_int(node, "Node", "CacheCleanupBatchSize", 500, 1, 100000, &x, err, errlen))
        return false;
    cfg->cache_cleanup_batch = (int)x;
    if (!get_int(node, "Node", "CacheCleanupMaxScanPages", 20, 1, 100000, &x, err, errlen))
        return false;
    cfg->cache_cleanup_max_pages = (int)x;
    if (!get_int(node, "Node", "CacheCleanupTimeBudgetMilliseconds", 50, 1, 60000, &x, err, errlen))
        return false;
    cfg->cache_cleanup_budget_ms = (int)x;
    char *durability = NULL;
    if (!get_str(node, "Node", "CacheDurability", "full", &durability, err, errlen)) return false;
    bool durability_ok = true;
    if (strcasecmp(durability, "full") == 0)
        cfg->cache_everysec = false;
    else if (strcasecmp(durability, "everysec") == 0)
        cfg->cache_everysec = true;
    else {
        ld_set_err(err, errlen, "Node.CacheDurability must be full or everysec (got '%s')",
                   durability);
        durability_ok = false;
    }
    free(durability);
    if (!durability_ok) return false;
    /* Joining (repl/discovery.h): the URL is checked when the node listens, its port known. */
    if (!get_str(node, "Node", "AdvertisedUrl", NULL, &cfg->advertised_url, err, errlen) ||
        !get_bool(node, "Node", "AutoRegisterPeers", true, &cfg->auto_register_peers, err,
                  errlen) ||
        !get_int(node, "Node", "PeerReplacementSilenceSeconds", 3600, 0, 86400 * 365, &x, err,
                 errlen))
        return false;
    cfg->peer_replacement_silence_s = (int)x;

    char *policy = NULL;
    if (!get_str(node, "Node", "ConflictResolutionPolicy", "LastWriterWins", &policy, err, errlen))
        return false;
    bool ok = true;
    if (strcasecmp(policy, "LastWriterWins") == 0)
        cfg->conflict_policy = LD_POLICY_LWW;
    else if (strcasecmp(policy, "ApplyIncoming") == 0)
        cfg->conflict_policy = LD_POLICY_APPLY_INCOMING;
    else if (strcasecmp(policy, "KeepLocal") == 0)
        cfg->conflict_policy = LD_POLICY_KEEP_LOCAL;
    else {
        ld_set_err(err, errlen,
                   "Node.ConflictResolutionPolicy must be LastWriterWins, ApplyIncoming or "
                   "KeepLocal (got '%s')",
                   policy);
        ok = false;
    }
    free(policy);
    if (!ok) return false;

    /* SeedPeers: validated by the replication module, which owns peers; kept as JSON here. */
    json_t *seeds = json_object_get(node, "SeedPeers");
    if (seeds && !json_is_null(seeds)) {
        if (!json_is_array(seeds)) {
            ld_set_err(err, errlen,
                       "Node.SeedPeers must be an array of {NodeId, BaseUrl, IsActive}");
            return false;
        }
        cfg->seed_peers = json_incref(seeds);
    }
    return true;
}

/* Node.Tls. Only the shape is checked here; http/tls.c opens the files at start-up and names
 * the one that fails. */
static bool load_tls(ld_config *cfg, json_t *node, char *err, size_t errlen)
{
    json_t *tls = node ? json_object_get(node, "Tls") : NULL;
    if (!tls || json_is_null(tls)) return true;
    if (!json_is_object(tls)) {
        ld_set_err(err, errlen, "Node.Tls must be an object {CertificateFile, KeyFile, ...}");
        return false;
    }
    if (!canonicalize(tls, "Node.Tls", tls_keys, NULL, NULL, err, errlen)) return false;
    ld_tls_config *t = &cfg->tls;
    if (!get_str(tls, "Node.Tls", "CertificateFile", NULL, &t->certificate_file, err, errlen) ||
        !get_str(tls, "Node.Tls", "KeyFile", NULL, &t->key_file, err, errlen) ||
        !get_str(tls, "Node.Tls", "ClientCaFile", NULL, &t->client_ca_file, err, errlen) ||
        !get_str(tls, "Node.Tls", "PeerCaFile", NULL, &t->peer_ca_file, err, errlen))
        return false;
    char **paths[] = {&t->certificate_file, &t->key_file, &t->client_ca_file, &t->peer_ca_file};
    static const char *const names[] = {"CertificateFile", "KeyFile", "ClientCaFile", "PeerCaFile"};
    for (size_t i = 0; i < 4; i++) {
        if (*paths[i] && !**paths[i]) {
            ld_set_err(err, errlen, "Node.Tls.%s is empty: give a file or leave the key out",
                       names[i]);
            return false;
        }
    }
    if (!t->certificate_file != !t->key_file) {
        ld_set_err(err, errlen, "Node.Tls needs both CertificateFile and KeyFile (got only %s)",
                   t->certificate_file ? "CertificateFile" : "KeyFile");
        return false;
    }
    if (t->client_ca_file && !t->certificate_file) {
        ld_set_err(err, errlen,
                   "Node.Tls.ClientCaFile needs CertificateFile and KeyFile: client certificates "
                   "are asked for only over HTTPS");
        return false;
    }
    return true;
}

bool ld_config_load(ld_config *cfg, const char *path, char *const *envp,
                    const ld_config_overrides *ov, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    if (!path && access("litedist.json", R_OK) == 0) path = "litedist.json";
    json_error_t jerr;
    if (path) {
        cfg->root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (!cfg->root) {
            /* jansson quotes the text near the error ("near '\"s3cret\"'"), which can be a
             * key: keep only the reason. */
            char *near = strstr(jerr.text, " near '");
            if (near) *near = '\0';
            ld_set_err(err, errlen, "config file %s: %s (line %d, column %d)", path, jerr.text,
                       jerr.line, jerr.column);
            return false;
        }
        if (!json_is_object(cfg->root)) {
            ld_set_err(err, errlen, "config file %s: the top level must be a JSON object", path);
            goto fail;
        }
        if (!(cfg->source_path = strdup(path))) goto nomem;
    } else if (!(cfg->root = json_object())) {
        goto nomem;
    }

    for (char *const *e = envp; e && *e; e++) {
        if (strncmp(*e, ENV_PREFIX, strlen(ENV_PREFIX)) != 0) continue;
        const char *eq = strchr(*e, '=');
        if (!eq) continue;
        size_t klen = (size_t)(eq - *e) - strlen(ENV_PREFIX);
        char *key = strndup(*e + strlen(ENV_PREFIX), klen);
        if (!key) goto nomem;
        bool ok = ld_config_apply_env(cfg->root, key, eq + 1, err, errlen);
        free(key);
        if (!ok) goto fail;
    }

    /* Canonical section names first, then keys within each. */
    if (!no_case_duplicates(cfg->root, "", err, errlen)) goto fail;
    {
        const char *k;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(cfg->root, tmp, k, v)
        {
            const sectiondef *s = sections;
            while (s->name && strcasecmp(s->name, k) != 0)
                s++;
            if (!s->name) {
                ld_log_warn("config: unknown section %s (ignored)", k);
                continue;
            }
            if (!json_is_object(v)) {
                ld_set_err(err, errlen, "config: %s must be an object", s->name);
                goto fail;
            }
            if (strcmp(s->name, k) != 0) {
                json_object_set(cfg->root, s->name, v);
                json_object_del(cfg->root, k);
            }
        }
    }
    json_t *node = section(cfg->root, "Node");
    json_t *auth = section(cfg->root, "Auth");
    json_t *storage = section(cfg->root, "Storage");
    json_t *studio = section(cfg->root, "Studio");
    json_t *resp = section(cfg->root, "Resp");
    if ((node && !canonicalize(node, "Node", node_keys, NULL, NULL, err, errlen)) ||
        (storage && !canonicalize(storage, "Storage", storage_keys, NULL, NULL, err, errlen)) ||
        (studio && !canonicalize(studio, "Studio", studio_keys, NULL, NULL, err, errlen)) ||
        (resp && !canonicalize(resp, "Resp", resp_keys, NULL, NULL, err, errlen)))
        goto fail;
    if (auth) {
        json_t *plugins = obj_get_ci(auth, "Plugins", NULL);
        json_t *list = json_is_array(plugins) ? plugins : json_array();
        if (!list) goto nomem;
        if (json_is_string(plugins)) json_array_append(list, plugins);
        bool ok = canonicalize(auth, "Auth", auth_keys, auth_extra_ok, list, err, errlen);
        if (list != plugins) json_decref(list);
        if (!ok) goto fail;
    }

    long long x;
    char *level = NULL;
    if (!get_str(node, "Node", "NodeId", NULL, &cfg->node_id, err, errlen) ||
        !get_str(node, "Node", "ListenAddress", "127.0.0.1", &cfg->listen_address, err, errlen) ||
        !get_str(node, "Node", "DataDirectory", "./data", &cfg->data_dir, err, errlen) ||
        !get_str(node, "Node", "PluginDirectory", NULL, &cfg->plugin_dir, err, errlen) ||
        !get_str(node, "Node", "ReplicationApiKey", "I_AM_ONE_OF_YOU", &cfg->replication_api_key,
                 err, errlen) ||
        !get_str(node, "Node", "LogLevel", "info", &level, err, errlen))
        goto fail;
    cfg->log_level = ld_log_level_parse(level);
    free(level);
    if (cfg->log_level < 0) {
        ld_set_err(err, errlen, "Node.LogLevel must be one of error, warn, info, debug");
        goto fail;
    }
    char *format = NULL;
    if (!get_str(node, "Node", "LogFormat", "text", &format, err, errlen)) goto fail;
    cfg->log_json = !strcasecmp(format, "json");
    bool format_ok = cfg->log_json || !strcasecmp(format, "text");
    free(format);
    if (!format_ok) {
        ld_set_err(err, errlen, "Node.LogFormat must be text or json");
        goto fail;
    }
    if (!get_str(node, "Node", "MetricsApiKey", NULL, &cfg->metrics_api_key, err, errlen))
        goto fail;
    if (cfg->metrics_api_key && !cfg->metrics_api_key[0]) {
        free(cfg->metrics_api_key); /* empty: the same as not set, /metrics needs no key */
        cfg->metrics_api_key = NULL;
    }
    if (!get_int(node, "Node", "ReadinessCatchUpTimeoutSeconds", 60, 0, 86400, &x, err, errlen))
        goto fail;
    cfg->readiness_catchup_s = (int)x;
    if (!get_int(node, "Node", "Port", 1446, 0, 65535, &x, err, errlen)) goto fail;
    cfg->port = (int)x;
    if (!get_int(node, "Node", "MaxBodyBytes", 8 * 1024 * 1024, 1024, 1024LL * 1024 * 1024, &x, err,
                 errlen))
        goto fail;
    cfg->max_body_bytes = (size_t)x;
    if (!get_int(node, "Node", "MaxHeaderBytes", 64 * 1024, 1024, 1024 * 1024, &x, err, errlen))
        goto fail;
    cfg->max_header_bytes = (size_t)x;
    if (!get_int(node, "Node", "ShutdownTimeoutSeconds", 10, 0, 3600, &x, err, errlen)) goto fail;
    cfg->shutdown_timeout_s = (int)x;
    if (!get_int(node, "Node", "WriterBatchMax", 1000, 1, 100000, &x, err, errlen)) goto fail;
    cfg->writer_batch_max = (int)x;
    if (!get_int(node, "Node", "IndexBuildBatchSize", 1000, 1, 100000, &x, err, errlen))
        goto fail;
    cfg->index_build_batch = (int)x;
    if (!get_int(node, "Node", "ReadCacheKiB", 8192, 0, 16 * 1024 * 1024, &x, err, errlen))
        goto fail;
    cfg->read_cache_kib = (size_t)x;
    if (!get_int(node, "Node", "MaxQueryLength", 65536, 16, 16 * 1024 * 1024, &x, err, errlen))
        goto fail;
    cfg->max_query_length = (size_t)x;
    if (!get_int(node, "Node", "MaxQueryDepth", 64, 4, 256, &x, err, errlen)) goto fail;
    cfg->max_query_depth = (int)x;
    if (!get_bool(node, "Node", "AllowDefaultKeys", false, &cfg->allow_default_keys, err, errlen))
        goto fail;
    if (!load_replication(cfg, node, err, errlen) || !load_tls(cfg, node, err, errlen)) goto fail;

    if (!get_str(storage, "Storage", "Plugin", "sqlite", &cfg->storage_plugin, err, errlen))
        goto fail;
    if (!(cfg->storage_json = section_text(storage))) goto nomem;

    if (!get_str_list(auth, "Auth", "Plugins", "auth-config", &cfg->auth_plugins,
                      &cfg->n_auth_plugins, err, errlen))
        goto fail;
    if (cfg->n_auth_plugins == 0) {
        ld_set_err(err, errlen, "Auth.Plugins is empty: at least one auth plugin is required");
        goto fail;
    }
    if (!(cfg->auth_json = section_text(auth))) goto nomem;
    if (!get_str_list(studio, "Studio", "CorsOrigins", NULL, &cfg->cors_origins,
                      &cfg->n_cors_origins, err, errlen) ||
        !get_str(studio, "Studio", "Root", NULL, &cfg->studio_root, err, errlen))
        goto fail;

    if (!get_bool(resp, "Resp", "Enabled", false, &cfg->resp.enabled, err, errlen) ||
        !get_str(resp, "Resp", "ListenAddress", cfg->listen_address, &cfg->resp.listen_address, err,
                 errlen) ||
        !get_int(resp, "Resp", "Port", 6380, 0, 65535, &x, err, errlen))
        goto fail;
    cfg->resp.port = (int)x;
    if (!get_int(resp, "Resp", "MaxConnections", 1024, 1, 1000000, &x, err, errlen)) goto fail;
    cfg->resp.max_connections = (int)x;
    if (!get_int(resp, "Resp", "IdleTimeoutSeconds", 300, 0, 86400 * 365, &x, err, errlen))
        goto fail;
    cfg->resp.idle_timeout_s = (int)x;

    if (ov) {
        if (ov->port > 0) cfg->port = ov->port;
        if (ov->data_dir) {
            free(cfg->data_dir);
            if (!(cfg->data_dir = strdup(ov->data_dir))) goto nomem;
        }
        if (ov->plugin_dir) {
            free(cfg->plugin_dir);
            if (!(cfg->plugin_dir = strdup(ov->plugin_dir))) goto nomem;
        }
    }
    if (!cfg->data_dir[0]) {
        ld_set_err(err, errlen, "Node.DataDirectory is empty");
        goto fail;
    }
    return true;

nomem:
    ld_set_err(err, errlen, "config: out of memory");
fail:
    ld_config_free(cfg);
    return false;
}

static void free_list(char **l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(l[i]);
    free(l);
}

void ld_config_free(ld_config *cfg)
{
    if (cfg->root) json_decref(cfg->root);
    if (cfg->seed_peers) json_decref(cfg->seed_peers);
    free(cfg->source_path);
    free(cfg->node_id);
    free(cfg->listen_address);
    free(cfg->advertised_url);
    free(cfg->data_dir);
    free(cfg->plugin_dir);
    free(cfg->replication_api_key);
    free(cfg->metrics_api_key);
    free(cfg->storage_plugin);
    free(cfg->storage_json);
    free_list(cfg->auth_plugins, cfg->n_auth_plugins);
    free(cfg->auth_json);
    free_list(cfg->cors_origins, cfg->n_cors_origins);
    free(cfg->studio_root);
    free(cfg->resp.listen_address);
    free(cfg->tls.certificate_file);
    free(cfg->tls.key_file);
    free(cfg->tls.client_ca_file);
    free(cfg->tls.peer_ca_file);
    memset(cfg, 0, sizeof *cfg);
}

int ld_config_peer_idle_s(const ld_config *cfg)
{
    long s = 2L * cfg->anti_entropy_s + cfg->repl_timeout_s;
    if (s < cfg->request_timeout_s) s = cfg->request_timeout_s;
    return s > 86400 * 3 ? 86400 * 3 : (int)s;
}
