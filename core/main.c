/* litedistd: start-up (config, data directory, node id, plugins, databases), the HTTP server on
 * one libevent loop, graceful shutdown on SIGINT/SIGTERM, key and certificate reload on SIGHUP,
 * systemd notification (sd_notify); plus the keygen, --check-config and --plugin-info commands. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>
#include <sodium.h>
#include <systemd/sd-daemon.h>

#include "admin/admin.h"
#include "api/changes.h"
#include "api/health.h"
#include "api/studio.h"
#include "cache/sweeper.h"
#include "repl/prune.h"
#include "http/conns.h"
#include "http/cors.h"
#include "http/request.h"
#include "http/tls.h"
#include "node.h"
#include "repl/discovery.h"
#include "repl/repl.h"
#include "resp/server.h"
#include "ws/ws.h"
#include "plugins/loader.h"
#include "util/log.h"
#include "util/sockopt.h"
#include "util/threadsched.h"
#include "util/timeutil.h"

extern char **environ;

#define DEFAULT_ROOT_KEY        "root"
#define SHUTDOWN_QUIET_MS       300
#define DEFAULT_REPLICATION_KEY "I_AM_ONE_OF_YOU"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: litedistd [--config FILE] [--port N] [--data DIR] [--plugin-dir DIR]\n"
            "       litedistd keygen\n"
            "       litedistd backup [--config FILE] --data DIR --out DIR\n"
            "       litedistd restore --from DIR --data NEW_DIR\n"
            "       litedistd export [--config FILE] --data DIR [--database NAME] --out FILE\n"
            "       litedistd import [--config FILE] --data DIR [--database NAME] --in FILE\n"
            "       litedistd --plugin-info FILE\n"
            "       litedistd --check-config [--config FILE]\n"
            "       litedistd --version | --help\n"
            "\n"
            "  -c, --config FILE    JSON configuration (default: ./litedist.json if present)\n"
            "  -p, --port N         listen port (Node.Port)\n"
            "  -d, --data DIR       data directory (Node.DataDirectory)\n"
            "      --plugin-dir DIR where plugins are looked up by name (Node.PluginDirectory)\n"
            "      --check-config   validate the configuration and exit (0: valid, 1: not)\n"
            "Every config key can be set from the environment: LITEDIST_Node__Port=17001.\n"
            "backup, restore, export and import: see docs/backup.md.\n");
}

/* ---------------------------------------------------------------------------------------------
 * keygen
 * ------------------------------------------------------------------------------------------- */

static int cmd_keygen(void)
{
    unsigned char raw[32], hash[32];
    char key[64], hex[2 * sizeof hash + 1];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(key, sizeof key, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    crypto_generichash(hash, sizeof hash, (const unsigned char *)key, strlen(key), NULL, 0);
    sodium_bin2hex(hex, sizeof hex, hash, sizeof hash);
    printf("Key: %s\n", key);
    printf("KeyHash: blake2b:%s\n", hex);
    printf("\nGive the key to the client; put only the hash in the config:\n"
           "  {\"Name\": \"my-app\", \"KeyHash\": \"blake2b:%s\", \"Databases\": [\"*\"],\n"
           "   \"Roles\": {\"READ_DOCUMENT\": true, \"WRITE_DOCUMENT\": true}}\n",
           hex);
    sodium_memzero(raw, sizeof raw);
    sodium_memzero(key, sizeof key);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Data directory and node id
 * ------------------------------------------------------------------------------------------- */

static int mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0750) != 0 && errno != EEXIST) return -1;
    return 0;
}

/* The configured node id, or the one kept in <data>/node-id, generated at first start. */
static bool load_node_id(ld_node *n)
{
    if (n->cfg.node_id && n->cfg.node_id[0]) {
        if (!ld_node_id_valid(n->cfg.node_id)) {
            ld_log_error("Node.NodeId '%s' is invalid: use 1-%d characters of letters, digits, "
                         "'.', '_', ':' or '-'",
                         n->cfg.node_id, LD_NODE_ID_MAX);
            return false;
        }
        snprintf(n->node_id, sizeof n->node_id, "%s", n->cfg.node_id);
        return true;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/node-id", n->data_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        char buf[LD_NODE_ID_MAX + 2] = "";
        bool ok = fgets(buf, sizeof buf, f) != NULL;
        fclose(f);
        buf[strcspn(buf, "\r\n")] = '\0';
        if (!ok || !ld_node_id_valid(buf)) {
            ld_log_error("%s does not hold a valid node id; fix or remove it", path);
            return false;
        }
        memcpy(n->node_id, buf, strlen(buf) + 1); /* valid ids fit: at most LD_NODE_ID_MAX */
        return true;
    }
    unsigned char rnd[6];
    char hex[2 * sizeof rnd + 1];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
    snprintf(n->node_id, sizeof n->node_id, "node-%s", hex);
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f || fprintf(f, "%s\n", n->node_id) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0 ||
        fclose(f) != 0 || rename(tmp, path) != 0) {
        ld_log_error("cannot write %s: %s", path, strerror(errno));
        return false;
    }
    ld_log_info("generated node id %s (kept in %s)", n->node_id, path);
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Shutdown
 * ------------------------------------------------------------------------------------------- */

static void shutdown_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ld_node *n = arg;
    uint64_t now = ld_mono_ms();
    /* Done when no write is in flight and the connections have been quiet for a moment: evhttp
     * does not tell us about a request whose body is still arriving, so a request started just
     * before the signal gets SHUTDOWN_QUIET_MS to complete. */
    bool quiet = now - n->last_request_ms >= SHUTDOWN_QUIET_MS &&
                 now - n->shutdown_started_ms >= SHUTDOWN_QUIET_MS;
    bool ws_open = n->ws && ld_ws_server_count(n->ws) > 0;
    /* RESP connections close themselves once the replies of their writes are out. */
    bool resp_open = ld_resp_open(n->resp) > 0;
    if ((n->inflight > 0 || !quiet || ws_open || resp_open) && now < n->shutdown_deadline_ms)
        return;
    if (resp_open)
        ld_log_error("shutdown: %zu RESP connections still open after %d s; closing them",
                     ld_resp_open(n->resp), n->cfg.shutdown_timeout_s);
    if (n->inflight > 0)
        ld_log_error("shutdown: %d writes still in flight after %d s; exiting anyway", n->inflight,
                     n->cfg.shutdown_timeout_s);
    event_del(n->shutdown_timer);
    /* A short grace lets the last responses leave the socket buffers before connections go. */
    struct timeval grace = {0, 100 * 1000};
    event_base_loopexit(n->base, &grace);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    ld_node *n = arg;
    if (n->shutting_down) return;
    n->shutting_down = true;
    sd_notify(0, "STOPPING=1");
    ld_log_info("%s received: no new connections; finishing %d in-flight writes",
                sig == SIGINT ? "SIGINT" : "SIGTERM", n->inflight);
    if (n->listener) {
        ld_conns_set_listener(n->conns, NULL);
        evhttp_del_accept_socket(n->http, n->listener);
        n->listener = NULL;
    }
    ld_resp_drain(n->resp); /* no new commands; each connection closes after its replies */
    if (n->ws) ld_ws_server_close_all(n->ws, 1001, "node shutting down");
    ld_changes_stop(n->changes);
    ld_repl_stop_probes(n->repl);
    ld_sweeper_stop(n->sweeper);
    ld_pruner_stop(n->pruner);
    n->shutdown_started_ms = ld_mono_ms();
    n->shutdown_deadline_ms = n->shutdown_started_ms + (uint64_t)n->cfg.shutdown_timeout_s * 1000u;
    struct timeval tick = {0, 10 * 1000};
    n->shutdown_timer = event_new(n->base, -1, EV_PERSIST, shutdown_tick, n);
    if (!n->shutdown_timer) {
        event_base_loopexit(n->base, NULL);
        return;
    }
    event_add(n->shutdown_timer, &tick);
}

/* ---------------------------------------------------------------------------------------------
 * Start-up checks
 * ------------------------------------------------------------------------------------------- */

/* Each client connection is a descriptor: below MaxConnections (plus Resp.MaxConnections when
 * the RESP listener is on) + a reserve for databases and peers, the soft open-file limit is
 * raised toward the hard one (as far as needed); a cap still above it would meet EMFILE
 * (accepting then pauses, http/conns.c and resp/server.c) before it is reached. */
static void fit_descriptor_limit(const ld_node *n)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)n->cfg.max_connections + 256 +
                  (n->cfg.resp.enabled ? (rlim_t)n->cfg.resp.max_connections : 0);
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
        return;
    rlim_t raised = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (raised > rl.rlim_cur) {
        struct rlimit nl = {raised, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &nl) == 0) rl.rlim_cur = raised;
    }
    if (rl.rlim_cur < want)
        ld_log_warn("Node.MaxConnections is %d but the open-file limit is %llu: raise it (ulimit "
                    "-n) or lower Node.MaxConnections, so the databases and peers keep "
                    "descriptors",
                    n->cfg.max_connections, (unsigned long long)rl.rlim_cur);
}

/* The port the listener really has: Node.Port 0 lets the kernel choose. */
static int bound_port(ld_node *n)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(n->listener), (struct sockaddr *)&ss, &sl) != 0)
        return n->cfg.port;
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
}

/* How this node reaches itself (the dashboard probes it like a peer): the bound port, and a
 * loopback address when it listens on every interface. */
static void self_url_of(ld_node *n, char *out, size_t outlen)
{
    const char *a = n->cfg.listen_address;
    const char *scheme = ld_tls_serves(n->tls) ? "https" : "http";
    int port = bound_port(n);
    if (!strcmp(a, "0.0.0.0") || !*a)
        snprintf(out, outlen, "%s://127.0.0.1:%d", scheme, port);
    else if (!strcmp(a, "::"))
        snprintf(out, outlen, "%s://[::1]:%d", scheme, port);
    else if (strchr(a, ':'))
        snprintf(out, outlen, "%s://[%s]:%d", scheme, a, port);
    else
        snprintf(out, outlen, "%s://%s:%d", scheme, a, port);
}

static bool is_loopback(const char *addr)
{
    return !strncmp(addr, "127.", 4) || !strcmp(addr, "::1") || !strcasecmp(addr, "localhost");
}

/* The contract's default keys are public knowledge: fine on loopback, refused beyond it unless
 * the config says it is wanted. */
static bool check_default_keys(const ld_config *cfg)
{
    bool default_repl = strcmp(cfg->replication_api_key, DEFAULT_REPLICATION_KEY) == 0;
    json_t *auth = json_object_get(cfg->root, "Auth");
    json_t *root = auth ? json_object_get(auth, "RootApiKey") : NULL;
    json_t *root_hash = auth ? json_object_get(auth, "RootApiKeyHash") : NULL;
    bool default_root =
        !root_hash &&
        (!root || (json_is_string(root) && !strcmp(json_string_value(root), DEFAULT_ROOT_KEY)));
    if (default_repl)
        ld_log_warn("Node.ReplicationApiKey is the public default: set your own cluster key");
    if (!(default_repl || default_root) || is_loopback(cfg->listen_address)) return true;
    if (cfg->allow_default_keys) {
        ld_log_warn("listening on %s with a default key because Node.AllowDefaultKeys is true",
                    cfg->listen_address);
        return true;
    }
    ld_log_error("refusing to listen on %s with the default %s: set your own key, or set "
                 "Node.AllowDefaultKeys to true if this is really wanted",
                 cfg->listen_address,
                 default_root ? "Auth.RootApiKey 'root'" : "Node.ReplicationApiKey");
    return false;
}

/* Node.TestClockOffsetMilliseconds skews this node's clock for the fault test (tests/fault).
 * Refused beyond loopback: there it could only be a mistake, and it would reorder real users'
 * conflicting writes (last writer wins by clock). */
static bool apply_test_clock_offset(ld_node *n)
{
    int64_t off = n->cfg.test_clock_offset_ms;
    if (off == 0) return true;
    if (!is_loopback(n->cfg.listen_address)) {
        ld_log_error("Node.TestClockOffsetMilliseconds is for tests on loopback only; remove it "
                     "to listen on %s",
                     n->cfg.listen_address);
        return false;
    }
    ld_log_warn("TEST ONLY: this node's clock runs %" PRId64 " ms off the real clock "
                "(Node.TestClockOffsetMilliseconds)",
                off);
    ld_hlc_set_offset(&n->clock, off);
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Reload (SIGHUP) and systemd notification
 * ------------------------------------------------------------------------------------------- */

static const char *g_config_path;       /* --config as given, for the reload */
static ld_config_overrides g_overrides; /* the command line's, applied again on reload */

static void swap_str(char **a, char **b)
{
    char *t = *a;
    *a = *b;
    *b = t;
}

/* root without what a reload applies (the Auth section, Node's keys and TLS files): a deep copy,
 * NULL when memory fails. */
static json_t *fixed_part(json_t *root)
{
    json_t *c = json_deep_copy(root);
    json_t *node = c ? json_object_get(c, "Node") : NULL;
    if (c) json_object_del(c, "Auth");
    if (node) {
        json_object_del(node, "ReplicationApiKey");
        json_object_del(node, "MetricsApiKey");
        json_object_del(node, "Tls");
    }
    return c;
}

/* A reload applies keys and TLS files only: say so when the file changed anything else, so an
 * edited setting is not believed in force. */
static void warn_unapplied(json_t *old_root, json_t *new_root)
{
    json_t *a = fixed_part(old_root), *b = fixed_part(new_root);
    if (a && b && !json_equal(a, b))
        ld_log_warn("reload (SIGHUP): settings other than the API keys and TLS files changed; "
                    "they apply at the next restart");
    json_decref(a);
    json_decref(b);
}

/* Reads the config file again and swaps in its API keys (the auth chain, the root and
 * replication keys, Node.MetricsApiKey) and its TLS certificate and key. Open connections stay;
 * requests from now on see the new ones. Any failure keeps everything as it was and says why.
 * Other settings need a restart. */
static void reload(ld_node *n)
{
    sd_notify(0, "RELOADING=1");
    ld_config cfg = {0};
    ld_auth_chain chain = {0};
    char err[1024] = "";
    bool ok = ld_config_load(&cfg, g_config_path, environ, &g_overrides, err, sizeof err);
    if (ok && !check_default_keys(&cfg)) {
        snprintf(err, sizeof err, "the new configuration uses a default key beyond loopback");
        ok = false;
    }
    if (ok && ld_auth_chain_init(&chain, cfg.auth_plugins, cfg.n_auth_plugins, n->cfg.plugin_dir,
                                 cfg.auth_json, n->data_dir, err, sizeof err) != LD_OK)
        ok = false;
    /* The certificate last: once swapped in, nothing below can fail. */
    if (ok && !ld_tls_reload(n->tls, &cfg.tls, err, sizeof err)) {
        ld_auth_chain_destroy(&chain);
        ok = false;
    }
    if (!ok) {
        ld_log_error("reload (SIGHUP) failed, keeping the current keys and certificate: %s", err);
        ld_config_free(&cfg);
        sd_notify(0, "READY=1");
        return;
    }
    warn_unapplied(n->cfg.root, cfg.root);
    ld_auth_chain old = n->auth;
    n->auth = chain;
    n->auth_gen++; /* RESP connections ask the new chain from their next command on */
    ld_auth_chain_destroy(&old);
    /* The new values go into the node's config, the old ones leave with cfg. */
    json_t *root = n->cfg.root;
    n->cfg.root = cfg.root;
    cfg.root = root;
    swap_str(&n->cfg.auth_json, &cfg.auth_json);
    char **plugins = n->cfg.auth_plugins;
    size_t n_plugins = n->cfg.n_auth_plugins;
    n->cfg.auth_plugins = cfg.auth_plugins;
    n->cfg.n_auth_plugins = cfg.n_auth_plugins;
    cfg.auth_plugins = plugins;
    cfg.n_auth_plugins = n_plugins;
    swap_str(&n->cfg.replication_api_key, &cfg.replication_api_key);
    if (!ld_repl_cluster_key_changed(n->repl))
        ld_log_warn("reload (SIGHUP): the dashboard probes keep the old cluster key (out of "
                    "memory)");
    swap_str(&n->cfg.metrics_api_key, &cfg.metrics_api_key);
    ld_tls_config tls = n->cfg.tls;
    n->cfg.tls = cfg.tls;
    cfg.tls = tls;
    ld_config_free(&cfg);
    ld_log_info("reload (SIGHUP): API keys%s reloaded from %s",
                ld_tls_serves(n->tls) ? " and TLS certificate" : "",
                n->cfg.source_path ? n->cfg.source_path : "the environment");
    sd_notify(0, "READY=1");
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    ld_node *n = arg;
    if (!n->shutting_down) reload(n);
}

static void watchdog_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    sd_notify(0, "WATCHDOG=1");
}

/* READY=1 once the node listens and the start-up catch-up settled (api/health.h): what /readyz
 * also waits for, so a unit ordered after this one finds a ready node. */
static void ready_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ld_node *n = arg;
    char why[300];
    if (n->shutting_down || !ld_readiness_catchup(n, why, sizeof why)) return;
    event_del(n->ready_poll);
    sd_notifyf(0, "READY=1\nSTATUS=ready: node %s", n->node_id);
}

/* Under systemd (NOTIFY_SOCKET set): the readiness poll and, with WatchdogSec, the keep-alive at
 * half the interval. Without it sd_notify does nothing and no timer is made. */
static bool start_notify(ld_node *n)
{
    if (!getenv("NOTIFY_SOCKET")) return true;
    struct timeval poll = {0, 100 * 1000};
    n->ready_poll = event_new(n->base, -1, EV_PERSIST, ready_tick, n);
    if (!n->ready_poll || event_add(n->ready_poll, &poll) != 0) return false;
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        uint64_t half = usec / 2;
        struct timeval tv = {(time_t)(half / 1000000), (suseconds_t)(half % 1000000)};
        n->watchdog = event_new(n->base, -1, EV_PERSIST, watchdog_tick, n);
        if (!n->watchdog || event_add(n->watchdog, &tv) != 0) return false;
        sd_notify(0, "WATCHDOG=1");
    }
    return true;
}

/* litedistd --check-config: what start-up would refuse in the configuration itself (values,
 * node id, default keys, CORS origins, TLS files, plugins found), without touching the data
 * directory or listening. */
static int cmd_check_config(const char *path, const ld_config_overrides *ov)
{
    ld_config cfg = {0};
    char err[1024] = "";
    int rc = 1;
    if (!ld_config_load(&cfg, path, environ, ov, err, sizeof err)) goto bad;
    if (cfg.node_id && cfg.node_id[0] && !ld_node_id_valid(cfg.node_id)) {
        snprintf(err, sizeof err, "Node.NodeId '%.200s' is invalid", cfg.node_id);
        goto bad;
    }
    if (!check_default_keys(&cfg)) {
        snprintf(err, sizeof err, "a default key beyond loopback (see above)");
        goto bad;
    }
    if (!ld_cors_check_config(cfg.cors_origins, cfg.n_cors_origins, err, sizeof err)) goto bad;
    ld_tls *tls = ld_tls_new(&cfg.tls, err, sizeof err);
    if (!tls) goto bad;
    ld_tls_free(tls);
    char *p = ld_plugin_resolve(cfg.storage_plugin, cfg.plugin_dir, LD_PLUGIN_KIND_STORAGE, err,
                                sizeof err);
    if (!p) goto bad;
    free(p);
    for (size_t i = 0; i < cfg.n_auth_plugins; i++) {
        if (!(p = ld_plugin_resolve(cfg.auth_plugins[i], cfg.plugin_dir, LD_PLUGIN_KIND_AUTH, err,
                                    sizeof err)))
            goto bad;
        free(p);
    }
    printf("litedistd: configuration %s is valid\n",
           cfg.source_path ? cfg.source_path : "(defaults and environment)");
    rc = 0;
    goto out;
bad:
    fprintf(stderr, "litedistd: invalid configuration: %s\n", err);
out:
    ld_config_free(&cfg);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"port", required_argument, NULL, 'p'},
        {"data", required_argument, NULL, 'd'},
        {"plugin-dir", required_argument, NULL, 'P'},
        {"plugin-info", required_argument, NULL, 'I'},
        {"version", no_argument, NULL, 'V'},
        {"check-config", no_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    bool check_only = false;
    ld_config_overrides ov = {0};
    char err[1024] = "";
    int c;
    if (sodium_init() < 0) {
        fprintf(stderr, "litedistd: libsodium failed to initialize\n");
        return 1;
    }
    /* The operator commands take their own options (admin.h); argv[1] names the command. */
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } cmds[] = {{"backup", ld_cmd_backup},
                {"restore", ld_cmd_restore},
                {"export", ld_cmd_export},
                {"import", ld_cmd_import}};
    for (size_t i = 0; argc > 1 && i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name)) return cmds[i].run(argc - 1, argv + 1);
    while ((c = getopt_long(argc, argv, "c:p:d:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'p': {
            char *end;
            long p = strtol(optarg, &end, 10);
            if (*end || p < 1 || p > 65535) {
                fprintf(stderr, "litedistd: --port needs a number from 1 to 65535\n");
                return 2;
            }
            ov.port = (int)p;
            break;
        }
        case 'd':
            ov.data_dir = optarg;
            break;
        case 'P':
            ov.plugin_dir = optarg;
            break;
        case 'I':
            if (ld_plugin_print_info(optarg, err, sizeof err) != 0) {
                fprintf(stderr, "litedistd: %s\n", err);
                return 1;
            }
            return 0;
        case 'C':
            check_only = true;
            break;
        case 'V':
            printf("litedistd %s (plugin ABI %d.%d)\n", LD_VERSION, LD_ABI_MAJOR, LD_ABI_MINOR);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        if (!strcmp(argv[optind], "keygen") && optind + 1 == argc) return cmd_keygen();
        fprintf(stderr, "litedistd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    if (check_only) return cmd_check_config(config_path, &ov);
    g_config_path = config_path;
    g_overrides = ov;

    static ld_node node;
    ld_node *n = &node;
    int rc = 1;
    if (!ld_config_load(&n->cfg, config_path, environ, &ov, err, sizeof err)) {
        ld_log_error("%s", err);
        return 1;
    }
    ld_log_set_level(n->cfg.log_level);
    ld_log_set_json(n->cfg.log_json);
    if (mkdir_p(n->cfg.data_dir) != 0) {
        ld_log_error("cannot create data directory %s: %s", n->cfg.data_dir, strerror(errno));
        goto out;
    }
    n->data_dir = realpath(n->cfg.data_dir, NULL);
    if (!n->data_dir || asprintf(&n->db_dir, "%s/databases", n->data_dir) < 0) {
        n->db_dir = NULL;
        ld_log_error("cannot resolve data directory %s", n->cfg.data_dir);
        goto out;
    }
    if (mkdir_p(n->db_dir) != 0) {
        ld_log_error("cannot create %s: %s", n->db_dir, strerror(errno));
        goto out;
    }
    /* One litedistd per data directory: two would both write the same databases (SQLite in WAL
     * mode lets two processes open a file, and each would run its own writer). The lock is on
     * the directory itself (no file to delete) and dies with the process, so a kill -9 never
     * leaves a stale lock behind. */
    if (!ld_datadir_lock(&n->dir, n->data_dir, err, sizeof err)) {
        ld_log_error("%s", err);
        goto out;
    }
    if (!load_node_id(n) || !check_default_keys(&n->cfg)) goto out;
    if (!ld_cors_check_config(n->cfg.cors_origins, n->cfg.n_cors_origins, err, sizeof err) ||
        !ld_studio_init(n, err, sizeof err)) {
        ld_log_error("%s", err);
        goto out;
    }
    /* Before anything listens: a bad certificate or key stops the node here. */
    if (!(n->tls = ld_tls_new(&n->cfg.tls, err, sizeof err))) {
        ld_log_error("%s", err);
        goto out;
    }
    if (!ld_tls_serves(n->tls) && !is_loopback(n->cfg.listen_address))
        ld_log_warn("listening on %s over plain HTTP: API keys and documents cross the network "
                    "in clear; set Node.Tls (docs/tls.md)",
                    n->cfg.listen_address);
    ld_hlc_init(&n->clock, NULL);
    if (!apply_test_clock_offset(n)) goto out;
    n->started_ms = ld_wall_ms();

    /* Queries run off the loop, one per core (at least 2, so one long scan never holds up
     * every other query). */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (!ld_node_open(n, cpus < 2 ? 2 : cpus > 8 ? 8 : (int)cpus, err, sizeof err)) {
        ld_log_error("%s", err);
        goto out;
    }
    n->listener =
        evhttp_bind_socket_with_handle(n->http, n->cfg.listen_address, (ev_uint16_t)n->cfg.port);
    if (!n->listener) {
        ld_log_error("cannot listen on %s:%d: %s", n->cfg.listen_address, n->cfg.port,
                     strerror(errno));
        goto out;
    }
    if (ld_tls_serves(n->tls)) {
        /* One bufferevent factory per evhttp: the accounting's, which makes TLS ones. */
        ld_conns_set_maker(n->conns, ld_tls_server_bev, n->tls);
    }
    /* Plain HTTP too: evhttp writes an answer's head and a large body separately, and with
     * Nagle on, the body of every answer after a connection's first waits for the client's
     * delayed ACK (40 ms on Linux loopback: a 24 KB POST /api/query answer took 44 ms). */
    ld_listener_nodelay(n->listener);
    ld_conns_set_listener(n->conns, n->listener);
    if (n->cfg.resp.enabled) {
        if (!(n->resp = ld_resp_start(n, err, sizeof err))) {
            ld_log_error("%s", err);
            goto out;
        }
        ld_log_info("RESP (Redis protocol) listening on %s:%d%s", n->cfg.resp.listen_address,
                    ld_resp_port(n->resp), ld_tls_serves(n->tls) ? " over TLS" : "");
    }
    fit_descriptor_limit(n);
    char self_url[300];
    self_url_of(n, self_url, sizeof self_url);
    ld_repl_listening(n->repl, self_url);
    if (!ld_discovery_start(n->disc, bound_port(n), err, sizeof err)) {
        ld_log_error("%s", err);
        goto out;
    }
    n->sig_int = evsignal_new(n->base, SIGINT, on_signal, n);
    n->sig_term = evsignal_new(n->base, SIGTERM, on_signal, n);
    n->sig_hup = evsignal_new(n->base, SIGHUP, on_hup, n);
    if (!n->sig_int || !n->sig_term || !n->sig_hup || event_add(n->sig_int, NULL) ||
        event_add(n->sig_term, NULL) || event_add(n->sig_hup, NULL) || !start_notify(n))
        goto out;
    signal(SIGPIPE, SIG_IGN);

    ld_log_info("litedistd %s node %s listening on %s://%s:%d (data %s, storage %s, %zu "
                "databases%s)",
                LD_VERSION, n->node_id, ld_tls_serves(n->tls) ? "https" : "http",
                n->cfg.listen_address, bound_port(n), n->data_dir, n->store.plugin->name,
                ld_registry_count(&n->reg),
                ld_tls_requires_client_cert(n->tls) ? ", client certificates required" : "");
    char why[128];
    if (!ld_thread_short_slice(why, sizeof why))
        ld_log_info("the event loop runs with the scheduler's default time slice (%s)", why);
    event_base_dispatch(n->base);
    if (n->inflight > 0) {
        /* Writers still hold requests whose connections are about to go: do not free what
         * they will touch; the process exit reclaims it. */
        ld_log_error("stopped with %d writes still in flight", n->inflight);
        return 1;
    }
    rc = 0;
    ld_log_info("stopped");

out:
    ld_node_close(n);
    ld_datadir_unlock(&n->dir);
    return rc;
}
