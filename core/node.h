/* The node: everything one litedistd process owns (config, clock, storage, auth chain, open
 * databases, event loop), passed to every request handler. */
#ifndef LD_NODE_H
#define LD_NODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>

#include "auth/chain.h"
#include "config/config.h"
#include "db/datadir.h"
#include "db/hlc.h"
#include "db/names.h"
#include "db/registry.h"
#include "metrics/metrics.h"
#include "storage/storage.h"

/* Finished writer jobs travelling from writer threads back to the event loop. */
typedef struct ld_completions {
    pthread_mutex_t mu;
    struct ld_wjob *head, *tail;
    struct event *ev; /* activated by writer threads (libevent is thread-enabled) */
    /* Loop thread only: jobs ld_node_submit_later holds until the callbacks of this loop pass
     * have run, and the event that then hands them to their writers, a chain per database. */
    struct ld_wjob *later_head, *later_tail;
    struct event *later_ev;
} ld_completions;

/* Why a request's credentials were refused: litedist_auth_failures_total's reason label. */
typedef enum ld_auth_fail {
    LD_AUTHFAIL_MISSING_KEY,     /* no ApiKey header */
    LD_AUTHFAIL_UNKNOWN_KEY,     /* no auth plugin knows the key (401) */
    LD_AUTHFAIL_DATABASE,        /* the key has no access to the database (403) */
    LD_AUTHFAIL_ROLE,            /* the key lacks a role the request needs (403) */
    LD_AUTHFAIL_REPLICATION_KEY, /* a missing or wrong ReplicationApiKey (403) */
    LD_AUTHFAIL_METRICS_KEY,     /* a missing or wrong Node.MetricsApiKey on /metrics (401) */
    LD_AUTHFAIL_PLUGIN_ERROR,    /* an auth plugin failed: refused closed (503) */
    LD_AUTHFAIL_N
} ld_auth_fail;

/* Route slots of the HTTP metrics: the router's table (http/router.c) fits below, the last slot
 * counts requests that matched no route (404, 405, refused before routing). */
#define LD_ROUTES_MAX 48

/* The node's event counters (metrics/metrics.h: relaxed atomics, updated where things happen,
 * by the loop or a writer thread, read by GET /metrics). */
typedef struct ld_node_stats {
    ld_counter http_requests[LD_ROUTES_MAX + 1][5]; /* per route and status class 1xx..5xx */
    ld_hist http_seconds[LD_ROUTES_MAX + 1];        /* per route, handler start to reply */
    ld_counter auth_failures[LD_AUTHFAIL_N];
    ld_counter sweeper_runs, sweeper_scanned, sweeper_freed;
    ld_counter resp_commands; /* commands the RESP listener ran (resp/commands.c) */
} ld_node_stats;

typedef struct ld_node {
    ld_config cfg;
    char node_id[LD_NODE_ID_MAX + 1];
    char *data_dir; /* absolute */
    char *db_dir;   /* <data_dir>/databases */
    ld_datadir dir; /* the data directory's lock (main.c) and identity (ld_node_open) */
    ld_hlc clock;
    ld_store store;
    ld_auth_chain auth;
    uint64_t auth_gen; /* bumped when a reload replaces auth: answers kept from before are stale */
    ld_db_env env;
    ld_registry reg;
    struct ld_repl *repl;      /* replication: peers, links, scheduler (repl/repl.h) */
    struct ld_discovery *disc; /* joining and leaving: peers' databases (repl/discovery.h) */
    struct ld_ws_server *ws;   /* accepted WebSockets (/ws/replication), for shutdown */
    struct ld_tls *tls;        /* TLS contexts (http/tls.h): HTTPS listener, https:// peers */
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *listener;
    struct ld_conns *conns; /* the connection cap and read deadline (http/conns.h) */
    struct ld_resp_server
        *resp; /* the Redis-protocol listener, when Resp.Enabled (resp/server.h) */
    ld_completions done;
    struct ld_workers *workers;      /* SELECT queries run here, off the loop (util/workers.h) */
    struct ld_workers *repl_workers; /* replication's log and snapshot reads: a pool of their own,
                                      * so a storm of long SELECTs never delays a peer's pull */
    struct ld_looplag *looplag;      /* how late the loop runs its callbacks (util/looplag.h) */
    struct ld_sweeper *sweeper;      /* frees expired cache bodies (cache/sweeper.h) */
    struct ld_pruner *pruner;        /* deletes op-log entries every peer has (repl/prune.h) */
    struct ld_changes_hub *changes;  /* the changes feed's subscribers (api/changes.h) */
    struct ld_snapshots *snaps;      /* read snapshots shared within a loop pass (db/snapshot.h) */
    struct ld_failures *failures;    /* delays for refused keys, per address (http/failures.h) */
    struct ld_static *studio;        /* the Studio's files, or NULL when not found (api/studio.h) */
    struct ld_readiness *readiness;  /* /readyz's storage write probe (api/health.h) */
    uint64_t started_ms;
    ld_node_stats stats;
    /* GET /metrics' text buffer, kept between scrapes (api/metrics.c); busy while an answer is
     * being sent from it by reference. Freed by ld_node_close after the HTTP server. */
    char *metrics_buf;
    size_t metrics_cap;
    bool metrics_busy;
    /* Readiness (api/health.c): until the start-up catch-up ends (every reachable peer had one
     * cycle, or Node.ReadinessCatchUpTimeoutSeconds passed), /readyz answers 503. */
    uint64_t catchup_deadline_ms; /* monotonic */
    bool catchup_done, catchup_timed_out;
    int inflight; /* requests waiting for a writer or a worker; loop thread only */
    bool shutting_down;
    uint64_t shutdown_started_ms;
    uint64_t shutdown_deadline_ms;
    uint64_t last_request_ms; /* monotonic; when the router last saw a request (loop thread) */
    struct event *sig_int, *sig_term, *sig_hup, *shutdown_timer;
    struct event *watchdog;         /* sd_notify WATCHDOG=1 at half of WATCHDOG_USEC (main.c) */
    struct event *ready_poll;       /* until sd_notify READY=1 is sent (main.c) */
    bool store_up, auth_up, reg_up; /* what ld_node_close must release */
} ld_node;

/* Builds the runtime of a node whose config, data directories, node id, clock, TLS contexts and
 * Studio are set: the storage and auth plugins, the event loop, writer completions, `workers`
 * query threads and LD_REPL_WORKERS replication-read threads, the open databases, replication, the
 * cache sweeper, read snapshots and the HTTP server (configured, not yet listening). False with a
 * message in err; ld_node_close then releases what was made. */
bool ld_node_open(ld_node *n, int workers, char *err, size_t errlen);

/* Threads of the replication-read pool: pulls served, pushes read and snapshot pages, one or two
 * per peer at a time, each a bounded read. */
#define LD_REPL_WORKERS 2

/* Releases everything the node owns, in dependency order (the loop must have stopped). */
void ld_node_close(ld_node *n);

#endif
