/* The in-process node of the network-side fuzz targets (see fuzz_node.h). Start-up follows
 * core/main.c step by step with the node's own modules; only the glue main.c keeps static (the
 * writer completion queue) is restated here. */
#include "fuzz_node.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <sodium.h>

#include "api/studio.h"
#include "http/cors.h"
#include "http/tls.h"
#include "node.h"
#include "repl/repl.h"
#include "util/log.h"
#include "util/timeutil.h"

#define EXCHANGE_TIMEOUT_S 20

static ld_node g_node;
static char g_tmp[PATH_MAX];
static uint16_t g_port;

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz node: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

/* ---------------------------------------------------------------------------------------------
 * Containment: a fuzzed request may register a peer at any address or host name; the node must
 * only ever reach 127.0.0.1. These connect() and sendto() take precedence over libc's (and the
 * sanitizers' weak interceptors) for libevent: TCP to a peer, and evdns's UDP queries, which it
 * sends with sendto to the resolver of /etc/resolv.conf. Every other destination is refused.
 * ------------------------------------------------------------------------------------------- */
static bool is_loopback(const struct sockaddr *sa, socklen_t len)
{
    return sa && ((sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in) &&
                   (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127) ||
                  (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6) &&
                   IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr)));
}

int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    if (!is_loopback(sa, len)) {
        errno = ENETUNREACH;
        return -1;
    }
    return (int)syscall(SYS_connect, fd, sa, len);
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa,
               socklen_t len)
{
    if (sa && !is_loopback(sa, len)) { /* NULL: a connected socket, checked at connect */
        errno = ENETUNREACH;
        return -1;
    }
    return (ssize_t)syscall(SYS_sendto, fd, buf, n, flags, sa, len);
}

/* ---------------------------------------------------------------------------------------------
 * Start-up
 * ------------------------------------------------------------------------------------------- */
static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    /* Only the data files: the node itself is left to the process exit, as litedistd's
     * writers may still hold a job when libFuzzer exits. */
    if (g_tmp[0]) nftw(g_tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void write_config(const char *path, const char *plugin_dir, const char *studio)
{
    json_t *cfg = json_pack(
        "{s:{s:s, s:s, s:i, s:s, s:s, s:s, s:i, s:i, s:i, s:s, s:i, s:i, s:i, s:i, s:i, s:i},"
        " s:{s:[s], s:s, s:[{s:s, s:s, s:[s, s], s:{s:b, s:b, s:b, s:b, s:b, s:b}}]},"
        " s:{s:s, s:s}, s:{s:s}}",
        "Node", "NodeId", "fuzz-node", "ListenAddress", "127.0.0.1", "Port", 0, "DataDirectory",
        g_tmp, "PluginDirectory", plugin_dir, "ReplicationApiKey", FUZZ_REPL_KEY, "MaxBodyBytes",
        65536, "MaxHeaderBytes", 16384, "MaxUrlBytes", 4096, "LogLevel", "error",
        "AuthFailureDelayMilliseconds", 0, "RequestTimeoutSeconds", 5, "PeerProbeIntervalSeconds",
        0, "ReplicationTimeoutSeconds", 1, "AntiEntropyIntervalSeconds", 3600, "WriterBatchMax",
        100, "Auth", "Plugins", "auth-config", "RootApiKey", FUZZ_ROOT_KEY, "ApiKeys", "Name",
        "limited", "Key", "fuzz-limited", "Databases", "a", "b", "Roles", "ADD_DB", 1, "DELETE_DB",
        1, "READ_DOCUMENT", 1, "WRITE_DOCUMENT", 1, "UPDATE_DOCUMENT", 0, "DELETE_DOCUMENT", 1,
        "Storage", "Plugin", "sqlite", "Sync", "off", "Studio", "Root", studio);
    if (!cfg || json_dump_file(cfg, path, 0) != 0) die("cannot write the config", path);
    json_decref(cfg);
}

void fuzz_node_start(void)
{
    ld_node *n = &g_node;
    char err[1024] = "";
    if (sodium_init() < 0) die("libsodium failed to initialize", NULL);
    ld_log_set_level(LD_LOG_ERROR);
    signal(SIGPIPE, SIG_IGN);

    snprintf(g_tmp, sizeof g_tmp, "/tmp/ld-fuzz-XXXXXX");
    if (!mkdtemp(g_tmp)) die("mkdtemp", strerror(errno));
    atexit(cleanup);
    const char *pd = getenv("LD_FUZZ_PLUGIN_DIR");
    char plugin_dir[PATH_MAX], studio[PATH_MAX], config[PATH_MAX + 16];
    if (!realpath(pd ? pd : "build/bin/plugins", plugin_dir))
        die("no plugin directory (build first, or set LD_FUZZ_PLUGIN_DIR)",
            pd ? pd : "build/bin/plugins");
    if (!realpath("studio", studio)) die("run from the repository root (no ./studio)", NULL);
    snprintf(config, sizeof config, "%s/litedist.json", g_tmp);
    write_config(config, plugin_dir, studio);

    char *const no_env[] = {NULL};
    if (!ld_config_load(&n->cfg, config, no_env, NULL, err, sizeof err)) die(err, NULL);
    ld_log_set_level(n->cfg.log_level);
    n->data_dir = strdup(g_tmp);
    if (!n->data_dir || asprintf(&n->db_dir, "%s/databases", g_tmp) < 0 ||
        mkdir(n->db_dir, 0700) != 0)
        die("cannot make the databases directory", NULL);
    snprintf(n->node_id, sizeof n->node_id, "%s", n->cfg.node_id);
    if (!ld_cors_check_config(n->cfg.cors_origins, n->cfg.n_cors_origins, err, sizeof err) ||
        !ld_studio_init(n, err, sizeof err))
        die(err, NULL);
    /* No Node.Tls: plain HTTP, and the client side for https:// peers a request may register. */
    if (!(n->tls = ld_tls_new(&n->cfg.tls, err, sizeof err))) die(err, NULL);
    ld_hlc_init(&n->clock, NULL);
    n->started_ms = ld_wall_ms();

    if (!ld_node_open(n, 2, err, sizeof err)) die(err, NULL);
    n->listener = evhttp_bind_socket_with_handle(n->http, "127.0.0.1", 0);
    if (!n->listener) die("cannot listen on 127.0.0.1", strerror(errno));
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    if (getsockname(evhttp_bound_socket_get_fd(n->listener), (struct sockaddr *)&sin, &sl) != 0)
        die("getsockname", strerror(errno));
    g_port = ntohs(sin.sin_port);
    char self_url[64];
    snprintf(self_url, sizeof self_url, "http://127.0.0.1:%u", (unsigned)g_port);
    ld_repl_listening(n->repl, self_url);
}

/* ---------------------------------------------------------------------------------------------
 * One exchange
 * ------------------------------------------------------------------------------------------- */
typedef struct exchange {
    struct event_base *base;
    bool closed, timed_out;
    char *head;
    size_t head_len, got;
} exchange;

static void on_client_read(evutil_socket_t fd, short what, void *arg)
{
    exchange *x = arg;
    if (what & EV_TIMEOUT) {
        x->timed_out = true;
        event_base_loopbreak(x->base);
        return;
    }
    char buf[16384];
    ssize_t got = read(fd, buf, sizeof buf);
    if (got > 0) {
        if (x->got < x->head_len) {
            size_t n = x->head_len - x->got < (size_t)got ? x->head_len - x->got : (size_t)got;
            memcpy(x->head + x->got, buf, n);
        }
        x->got += (size_t)got;
    }
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
        x->closed = true;
        event_base_loopbreak(x->base);
    }
}

/* Writes everything, letting the node's loop run when the socket buffer is full (a large body
 * is read by the node while we write). */
static void send_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            len -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            event_base_loop(g_node.base, EVLOOP_NONBLOCK);
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            poll(&pf, 1, 10);
        } else {
            return; /* the node closed on us (a limit): what it got is the input */
        }
    }
}

size_t fuzz_node_exchange(const void *prefix, size_t prefix_len, const uint8_t *data, size_t size,
                          char *head, size_t head_len)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket", strerror(errno));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(g_port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0 && errno != EINPROGRESS)
        die("connect to the node", strerror(errno));
    send_all(fd, prefix, prefix_len);
    send_all(fd, data, size);
    shutdown(fd, SHUT_WR);

    exchange x = {.base = g_node.base, .head = head, .head_len = head_len};
    struct event *ev = event_new(g_node.base, fd, EV_READ | EV_PERSIST, on_client_read, &x);
    struct timeval limit = {EXCHANGE_TIMEOUT_S, 0};
    if (!ev || event_add(ev, &limit) != 0) die("event_add", NULL);
    while (!x.closed && !x.timed_out)
        event_base_loop(g_node.base, EVLOOP_ONCE);
    event_free(ev);
    close(fd);
    if (x.timed_out) die("the node neither answered nor closed the connection in time", NULL);
    return x.got;
}
