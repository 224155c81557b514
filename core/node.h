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
#include "storage/storage.h"

/* Finished writer jobs travelling from writer threads back to the event loop. */
typedef struct ld_completions {
    pthread_mutex_t mu;
    struct ld_wjob *head, *tail;
    struct event *ev; /* activated by writer threads (libevent is thread-enabled) */
} ld_completions;

typedef struct ld_node {
    ld_config cfg;
    char node_id[LD_NODE_ID_MAX + 1];
    char *data_dir; /* absolute */
    char *db_dir;   /* <data_dir>/databases */
    ld_datadir dir; /* the data directory's lock (main.c) and identity (ld_node_open) */
    ld_hlc clock;
    ld_store store;
    ld_auth_chain auth;
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
    ld_completions done;
    struct ld_workers *workers;     /* SELECT queries run here, off the loop (util/workers.h) */
    struct ld_looplag *looplag;     /* how late the loop runs its callbacks (util/looplag.h) */
    struct ld_sweeper *sweeper;     /* frees expired cache bodies (cache/sweeper.h) */
    struct ld_pruner *pruner;       /* deletes op-log entries every peer has (repl/prune.h) */
    struct ld_changes_hub *changes; /* the changes feed's subscribers (api/changes.h) */
    struct ld_snapshots *snaps;     /* read snapshots shared within a loop pass (db/snapshot.h) */
    struct ld_failures *failures;   /* delays for refused keys, per address (http/failures.h) */
    struct ld_static *studio;       /* the Studio's files, or NULL when not found (api/studio.h) */
    uint64_t started_ms;
    int inflight; /* requests waiting for a writer or a worker; loop thread only */
    bool shutting_down;
    uint64_t shutdown_started_ms;
    uint64_t shutdown_deadline_ms;
    uint64_t last_request_ms; /* monotonic; when the router last saw a request (loop thread) */
    struct event *sig_int, *sig_term, *shutdown_timer;
    bool store_up, auth_up, reg_up; /* what ld_node_close must release */
} ld_node;

/* Builds the runtime of a node whose config, data directories, node id, clock, TLS contexts and
 * Studio are set: the storage and auth plugins, the event loop, writer completions, `workers`
 * query threads, the open databases, replication, the cache sweeper, read snapshots and the
 * HTTP server (configured, not yet listening). False with a message in err; ld_node_close then
 * releases what was made. */
bool ld_node_open(ld_node *n, int workers, char *err, size_t errlen);

/* Releases everything the node owns, in dependency order (the loop must have stopped). */
void ld_node_close(ld_node *n);

#endif
