/* Assembling and releasing a node's runtime (see node.h), shared by litedistd (main.c) and the
 * fuzzers' in-process node (tests/fuzz/fuzz_node.c), so both run the same server. */
#include "node.h"

#include <stdio.h>
#include <stdlib.h>

#include <event2/thread.h>

#include "api/changes.h"
#include "api/health.h"
#include "api/studio.h"
#include "cache/sweeper.h"
#include "repl/prune.h"
#include "db/completions.h"
#include "db/snapshot.h"
#include "http/conns.h"
#include "http/failures.h"
#include "http/router.h"
#include "http/static.h"
#include "http/tls.h"
#include "plugins/loader.h"
#include "repl/discovery.h"
#include "repl/repl.h"
#include "resp/server.h"
#include "util/strutil.h"
#include "util/evbase.h"
#include "util/looplag.h"
#include "util/timeutil.h"
#include "util/workers.h"
#include "ws/ws.h"

/* A commit appended to db's log (a writer thread): replication and the changes feed react. */
static void node_committed(void *ctx, ld_db *db)
{
    ld_node *n = ctx;
    ld_repl_committed(n->repl, db);
    ld_changes_committed(n->changes, db);
}

static int count_db(void *ctx, const char *name)
{
    (void)name;
    ++*(size_t *)ctx;
    return 0;
}

bool ld_node_open(ld_node *n, int workers, char *err, size_t errlen)
{
    char *storage_path = ld_plugin_resolve(n->cfg.storage_plugin, n->cfg.plugin_dir,
                                           LD_PLUGIN_KIND_STORAGE, err, errlen);
    if (!storage_path || ld_store_init(&n->store, storage_path, n->cfg.storage_plugin,
                                       n->cfg.storage_json, n->data_dir, err, errlen) != LD_OK) {
        free(storage_path);
        return false;
    }
    free(storage_path);
    n->store_up = true;
    if (ld_auth_chain_init(&n->auth, n->cfg.auth_plugins, n->cfg.n_auth_plugins, n->cfg.plugin_dir,
                           n->cfg.auth_json, n->data_dir, err, errlen) != LD_OK)
        return false;
    n->auth_up = true;

    if (evthread_use_pthreads() != 0 || !(n->base = ld_evbase_new())) {
        ld_set_err(err, errlen, "cannot create the event loop");
        return false;
    }
    pthread_mutex_init(&n->done.mu, NULL);
    n->done.ev = event_new(n->base, -1, 0, ld_completions_run, n);
    n->done.later_ev = event_new(n->base, -1, 0, ld_completions_submit_later, n);
    if (!n->done.ev || !n->done.later_ev || !(n->workers = ld_workers_new(n->base, workers)) ||
        !(n->repl_workers = ld_workers_new(n->base, LD_REPL_WORKERS)))
        goto nomem;
    if (!(n->looplag = ld_looplag_new(n->base))) goto nomem;

    /* Another backend's data, or another node's, is refused before any database is opened
     * (or created) under this node's id. */
    size_t listed = 0;
    ld_status st = ld_store_list(&n->store, n->db_dir, count_db, &listed);
    if (st != LD_OK) {
        ld_set_err(err, errlen, "cannot list the databases in %s: %s", n->db_dir,
                   ld_status_str(st));
        return false;
    }
    if (!ld_datadir_check(&n->dir, n->data_dir, n->db_dir, n->store.plugin->name, n->node_id,
                          listed, err, errlen))
        return false;
    n->env = (ld_db_env){
        .store = &n->store,
        .clock = &n->clock,
        .node_id = n->node_id,
        .dir = n->db_dir,
        .incarnation = n->dir.incarnation,
        .origin = n->dir.origin[0] ? n->dir.origin : NULL,
        .restored_from = n->dir.restored_from[0] ? n->dir.restored_from : NULL,
        .adopt = n->dir.adopting,
        .writer_batch_max = n->cfg.writer_batch_max,
        .index_build_batch = n->cfg.index_build_batch,
        .read_cache_bytes = n->cfg.read_cache_kib * 1024,
        .cache_everysec = n->cfg.cache_everysec,
        .complete = ld_completions_post,
        .complete_ctx = n,
    };
    st = ld_registry_init(&n->reg, &n->env);
    n->reg_up = true;
    if (st == LD_INVALID) { /* a database of another incarnation: logged with the recipe */
        ld_set_err(err, errlen, "refusing to start: a database in %s does not belong here",
                   n->db_dir);
        return false;
    }
    if (st != LD_OK) {
        ld_set_err(err, errlen, "cannot open the databases in %s: %s", n->db_dir,
                   ld_status_str(st));
        return false;
    }
    /* Only now: every database found carries the incarnation the record will name. */
    if (!ld_datadir_record(&n->dir, n->data_dir, n->store.plugin->name, n->node_id, err, errlen))
        return false;
    n->env.adopt = false;

    if (!(n->ws = ld_ws_server_new(NULL)) ||
        !(n->failures = ld_failures_new((uint32_t)n->cfg.auth_failure_delay_ms)))
        goto nomem;
    char rerr[256];
    if (!(n->repl = ld_repl_new(n, rerr, sizeof rerr))) {
        ld_set_err(err, errlen, "replication: %s", rerr);
        return false;
    }
    if (!(n->disc = ld_discovery_new(n)) || !(n->readiness = ld_readiness_new(n))) goto nomem;
    n->catchup_deadline_ms = ld_mono_ms() + (uint64_t)n->cfg.readiness_catchup_s * 1000u;
    if (!(n->sweeper = ld_sweeper_new(n)) || !(n->snaps = ld_snapshots_new(n->base, &n->reg)) ||
        !(n->pruner = ld_pruner_new(n)))
        goto nomem;
    if (!(n->changes = ld_changes_hub_new(n))) goto nomem;
    n->env.committed = node_committed;
    n->env.committed_ctx = n;

    if (!(n->http = evhttp_new(n->base))) goto nomem;
    evhttp_set_gencb(n->http, ld_router_handle, n);
    evhttp_set_allowed_methods(n->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                            EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    /* Likewise for headers (below): the router answers a header block over Node.MaxHeaderBytes
     * with JSON, evhttp's HTML page is left to blocks over twice the limit. */
    evhttp_set_max_headers_size(n->http, (ev_ssize_t)(2 * n->cfg.max_header_bytes + 65536));
    /* evhttp answers bodies past its own limit with an HTML 413 before any handler runs, so its
     * limit sits above Node.MaxBodyBytes: bodies up to twice the limit get our JSON 413, and
     * only abuse beyond that meets evhttp's guard. */
    evhttp_set_max_body_size(n->http, (ev_ssize_t)(2 * n->cfg.max_body_bytes + 65536));
    /* Beyond that guard evhttp answers 413 and closes at once, while the client is still
     * sending: the client then sees a write error, not the 413 (over TLS always, a 5 MB push to
     * a node with a 1 MB limit; over plain TCP when the rest did not fit the socket buffers), so
     * a replicating peer retried the same push forever instead of halving it. Lingering, evhttp
     * reads the rest of the body and drops it before answering; what it drops still counts in
     * the body's size, so such a request never reaches a handler. */
    if (evhttp_set_flags(n->http, EVHTTP_SERVER_LINGERING_CLOSE) != 0) {
        ld_set_err(err, errlen, "cannot set up the HTTP server (lingering close)");
        return false;
    }
    /* Idle keep-alive connections and stalled reads or writes go after the idle timeout;
     * clients trickling a request byte by byte go at the read deadline (http/conns.h). */
    evhttp_set_timeout(n->http, n->cfg.request_timeout_s);
    ld_errpage_limits lim = {n->cfg.max_header_bytes, n->cfg.max_body_bytes};
    if (!(n->conns = ld_conns_new(n->base, n->http, n->cfg.max_connections,
                                  n->cfg.request_read_timeout_s, &lim)))
        goto nomem;
    return true;
nomem:
    ld_set_err(err, errlen, "out of memory starting the node");
    return false;
}

void ld_node_close(ld_node *n)
{
    /* Idle by now: every query was answered. */
    ld_workers_free(n->workers);
    ld_workers_free(n->repl_workers);
    ld_looplag_free(n->looplag);
    ld_readiness_free(n->readiness); /* after the workers: no probe runs */
    ld_static_free(n->studio);
    ld_ws_server_free(n->ws);        /* before evhttp_free, which owns their connections */
    ld_resp_free(n->resp);           /* its connections, before the TLS contexts they use */
    ld_changes_drop_all(n->changes); /* likewise: their requests go with evhttp */
    if (n->http) evhttp_free(n->http);
    ld_conns_free(n->conns); /* after evhttp_free: it let go of every connection */
    free(n->metrics_buf);    /* likewise: no answer is sent from it any more */
    n->env.committed = NULL;
    ld_discovery_free(n->disc); /* before the replication it calls into */
    ld_repl_free(n->repl);
    ld_failures_free(n->failures);
    ld_sweeper_free(n->sweeper); /* before the registry: it may hold a database reference */
    ld_pruner_free(n->pruner);
    ld_snapshots_free(n->snaps); /* likewise */
    if (n->reg_up) ld_registry_close_all(&n->reg);
    ld_changes_hub_free(n->changes);                    /* after the writers, which wake it */
    if (n->done.ev) event_free(n->done.ev);             /* empty: every write was answered */
    if (n->done.later_ev) event_free(n->done.later_ev); /* likewise: all were submitted */
    if (n->shutdown_timer) event_free(n->shutdown_timer);
    if (n->sig_int) event_free(n->sig_int);
    if (n->sig_term) event_free(n->sig_term);
    if (n->sig_hup) event_free(n->sig_hup);
    if (n->watchdog) event_free(n->watchdog);
    if (n->ready_poll) event_free(n->ready_poll);
    ld_tls_free(n->tls); /* after every connection that used it, before the loop it reaps on */
    if (n->base) event_base_free(n->base);
    if (n->auth_up) ld_auth_chain_destroy(&n->auth);
    if (n->store_up) ld_store_destroy(&n->store);
    free(n->data_dir);
    free(n->db_dir);
    ld_config_free(&n->cfg);
}
