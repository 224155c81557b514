/* litedistd configuration: one JSON file (sections Node, Auth, Storage, Studio), every key
 * overridable from the environment (LITEDIST_Node__Port=17001), then by command-line flags.
 * Unknown keys are reported, never silently ignored. */
#ifndef LD_CONFIG_H
#define LD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef enum ld_conflict_policy {
    LD_POLICY_LWW,            /* LastWriterWins: greatest (hlc, origin) stamp wins; convergent */
    LD_POLICY_APPLY_INCOMING, /* the original's default: whatever arrives last here; diverges */
    LD_POLICY_KEEP_LOCAL,     /* keep any local record; diverges */
} ld_conflict_policy;

/* Node.Tls: HTTPS/WSS for the listener and https:// peers (http/tls.h uses it). Every path is
 * NULL when not given. */
typedef struct ld_tls_config {
    char *certificate_file; /* PEM chain; with key_file, the listener serves HTTPS */
    char *key_file;         /* PEM private key of certificate_file */
    char *client_ca_file;   /* PEM CAs: clients must present a certificate they signed */
    char *peer_ca_file;     /* PEM CAs that verify https:// peers; NULL: system trust store */
} ld_tls_config;

/* Resp: the optional Redis-protocol listener of the cache (resp/server.h, docs/resp.md). */
typedef struct ld_resp_config {
    bool enabled;
    char *listen_address; /* Node.ListenAddress when not given */
    int port;
    int max_connections; /* RESP connections open at once, counted apart from HTTP's */
    int idle_timeout_s;  /* a connection silent this long is closed; 0: never */
} ld_resp_config;

typedef struct ld_config {
    json_t *root;      /* the merged tree (file, then env), keys in canonical case; owned */
    char *source_path; /* the file read, or NULL */

    /* Node */
    char *node_id; /* NULL: generated at first start and kept in the data directory */
    char *listen_address;
    int port;
    char *data_dir;   /* as configured (relative paths are relative to the working dir) */
    char *plugin_dir; /* NULL: <dir of litedistd>/plugins, then the install dir */
    char *replication_api_key;
    size_t max_body_bytes;
    size_t max_header_bytes;
    int32_t log_level;
    bool log_json;         /* Node.LogFormat json: every log line is one JSON object */
    char *metrics_api_key; /* Node.MetricsApiKey; NULL: GET /metrics needs no key */
    /* /readyz waits this long at start-up for the first cycle with each reachable peer */
    int readiness_catchup_s;
    bool allow_default_keys;
    int shutdown_timeout_s;
    int writer_batch_max;
    int index_build_batch; /* documents one step of an online index build takes */
    size_t read_cache_kib; /* each database's memo of records read (db/memo.h); 0: none */
    size_t max_query_length; /* LiteQL: bytes of query text */
    int max_query_depth;     /* LiteQL: nesting of expressions and JSON literals */

    /* Replication (Node section) */
    json_t *seed_peers; /* Node.SeedPeers as given, or NULL; owned (a reference) */
    int repl_batch_size;
    size_t repl_batch_bytes;
    size_t snapshot_page_bytes; /* bytes of records per snapshot page asked of a peer */
    /* Op-log pruning (repl/prune.h), the contract's names */
    bool oplog_pruning;
    int oplog_retention_days;
    int oplog_retain_recent;
    int oplog_prune_interval_min;
    int oplog_prune_batch;
    int oplog_receipt_days; /* accepted for the contract; litedist keeps no receipts */
    int oplog_max_retention_days;
    /* Dead records stay at least this long before the purge may take them (repl/purge.h) */
    long long tombstone_retention_s;
    int repl_peer_concurrency;
    int repl_timeout_s;
    int anti_entropy_s;
    int peer_probe_interval_s;  /* dashboard probes; 0: off */
    int auth_failure_delay_ms;  /* first refused key's delay per address; 0: off */
    int request_timeout_s;      /* evhttp read/write/idle timeout */
    int request_read_timeout_s; /* a request's headers and body are due within this */
    int max_connections;        /* client connections open at once (http/conns.h) */
    size_t max_list_bytes;      /* a document list answer stops past this */
    size_t changes_max_buffer;  /* bytes a changes-feed consumer may leave unread (api/changes.h) */
    size_t max_url_bytes;
    int max_clock_skew_s;
    int64_t test_clock_offset_ms; /* TEST ONLY: added to the wall clock the HLC reads */
    ld_conflict_policy conflict_policy;
    ld_tls_config tls; /* Node.Tls */
    /* Joining (repl/discovery.h) */
    char *advertised_url;           /* Node.AdvertisedUrl; NULL: derived from the listener */
    bool auto_register_peers;       /* introduce ourselves, register nodes that introduce */
    int peer_replacement_silence_s; /* a peer whose address answers as another goes; 0: never */

    /* Cache sweeper (cache/sweeper.h) */
    int cache_cleanup_interval_s; /* 0: off */
    int cache_cleanup_batch;      /* records scanned per page (one writer transaction) */
    int cache_cleanup_max_pages;  /* pages per database and run */
    int cache_cleanup_budget_ms;  /* writer time per database and run */
    bool cache_everysec;          /* Node.CacheDurability "everysec" (db/writer.h); else "full" */

    /* Storage */
    char *storage_plugin;
    char *storage_json; /* the whole Storage section as JSON text, for the plugin */

    /* Auth */
    char **auth_plugins;
    size_t n_auth_plugins;
    char *auth_json; /* the whole Auth section as JSON text, for every auth plugin */

    ld_resp_config resp;

    /* Studio */
    char **cors_origins; /* as given; checked at start-up by http/cors.h */
    size_t n_cors_origins;
    char *studio_root; /* NULL: found beside the binary, then in the install dir (api/studio.h) */
} ld_config;

/* Command-line overrides, applied last. NULL / 0 means not given. */
typedef struct ld_config_overrides {
    const char *data_dir;
    const char *plugin_dir;
    int port;
} ld_config_overrides;

/* Loads `path` (NULL: ./litedist.json when it exists, else defaults only), applies LITEDIST_*
 * variables from `envp` (NULL-terminated, e.g. environ), then `ov`. On failure returns false and
 * writes a message naming the file, key and problem into err. Unknown keys and known keys that
 * this build does not use are logged as warnings. */
bool ld_config_load(ld_config *cfg, const char *path, char *const *envp,
                    const ld_config_overrides *ov, char *err, size_t errlen);

/* Frees everything the config owns. Safe on a zeroed struct. */
void ld_config_free(ld_config *cfg);

/* How long a connection that presented the cluster key may idle before this node closes it:
 * past two anti-entropy sweeps (and never less than RequestTimeoutSeconds), so a peer's
 * connection used once per sweep stays open and over TLS costs no new handshake. */
int ld_config_peer_idle_s(const ld_config *cfg);

/* Sets root[section][key] = value from an environment-style path ("Node__Port"), creating
 * objects on the way; numeric segments index arrays. value is parsed as JSON when it parses,
 * else taken as a string. Exposed for unit tests. */
bool ld_config_apply_env(json_t *root, const char *path, const char *value, char *err,
                         size_t errlen);

#endif
