/* GET /livez (the process answers) and GET /readyz (the node should take traffic: not draining,
 * the start-up catch-up with reachable peers settled or timed out, storage commits a write
 * probe); 503 with the reason otherwise. The probe commits a meta key in a database of its own
 * (<data>/probe, never listed or replicated), on a worker thread, one probe at a time; requests
 * arriving while it runs wait for its answer. */
#include "health.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../repl/repl.h"
#include "../util/log.h"
#include "../util/timeutil.h"
#include "../util/workers.h"
#include "api.h"

#define PROBE_DB    "readyz"
#define PROBE_REUSE 1000 /* ms a probe's answer serves later requests */
#define WAITERS_MAX 64   /* requests parked on one probe; beyond, 503 at once */

struct ld_readiness {
    ld_node *node;
    char *dir;        /* <data>/probe */
    ld_stdb *db;      /* opened by the first probe (worker thread), closed by ld_readiness_free */
    bool running;     /* a probe is on a worker */
    uint64_t last_ms; /* monotonic: when the last probe finished; 0: none yet */
    ld_status last;   /* its result */
    ld_req *waiting[WAITERS_MAX];
    size_t n_waiting;
};

ld_readiness *ld_readiness_new(ld_node *n)
{
    ld_readiness *rd = calloc(1, sizeof *rd);
    if (!rd || asprintf(&rd->dir, "%s/probe", n->data_dir) < 0) {
        free(rd);
        return NULL;
    }
    rd->node = n;
    return rd;
}

void ld_readiness_free(ld_readiness *rd)
{
    if (!rd) return;
    if (rd->db) ld_store_close(&rd->node->store, rd->db);
    free(rd->dir);
    free(rd);
}

/* Worker thread: open once, then one committed write of a meta key (the time), as a real
 * write of any database would. */
static void probe_work(void *arg)
{
    ld_readiness *rd = arg;
    ld_store *s = &rd->node->store;
    ld_status st = LD_OK;
    if (!rd->db) {
        if (mkdir(rd->dir, 0750) != 0 && errno != EEXIST) {
            rd->last = LD_IO;
            return;
        }
        st = ld_store_open(s, rd->dir, PROBE_DB, &rd->db);
    }
    ld_txn t;
    if (st == LD_OK) st = ld_txn_begin(s, rd->db, true, &t);
    if (st == LD_OK) {
        uint64_t now = ld_wall_ms();
        st = ld_txn_put(&t, "meta", "probe", 5, &now, sizeof now);
        if (st == LD_OK)
            st = ld_txn_commit(&t);
        else
            ld_txn_abort(&t);
    }
    rd->last = st;
}

static void answer(ld_req *r, ld_status st)
{
    ld_node *n = r->node;
    if (st != LD_OK) {
        ld_reply_json(r, 503,
                      json_pack("{s:s, s:s, s:s, s:s}", "Status", "NotReady", "NodeId", n->node_id,
                                "Reason", "storage does not commit a write", "Storage",
                                ld_status_str(st)));
        return;
    }
    ld_reply_json(r, 200,
                  json_pack("{s:s, s:s, s:s, s:s}", "Status", "Ready", "NodeId", n->node_id,
                            "CatchUp", n->catchup_timed_out ? "TimedOut" : "Done", "Storage",
                            "Ok"));
}

static void probe_done(void *arg)
{
    ld_readiness *rd = arg;
    rd->running = false;
    rd->last_ms = ld_mono_ms();
    if (rd->last != LD_OK)
        ld_log_warn("readiness: the storage write probe failed: %s", ld_status_str(rd->last));
    size_t n = rd->n_waiting;
    rd->n_waiting = 0;
    for (size_t i = 0; i < n; i++) {
        rd->node->inflight--;
        answer(rd->waiting[i], rd->last);
    }
}

static void not_ready(ld_req *r, const char *reason)
{
    ld_reply_json(r, 503,
                  json_pack("{s:s, s:s, s:s}", "Status", "NotReady", "NodeId", r->node->node_id,
                            "Reason", reason));
}

void ld_api_livez(ld_req *r)
{
    ld_reply_json(r, 200, json_pack("{s:s, s:s}", "Status", "Alive", "NodeId", r->node->node_id));
}

bool ld_readiness_catchup(ld_node *n, char *why, size_t len)
{
    if (n->catchup_done) return true;
    if (ld_repl_catchup_settled(n->repl, why, len)) {
        n->catchup_done = true;
        ld_log_info("readiness: the start-up catch-up with reachable peers is done");
        return true;
    }
    if (ld_mono_ms() >= n->catchup_deadline_ms) {
        n->catchup_done = n->catchup_timed_out = true;
        ld_log_warn("readiness: the start-up catch-up timed out after %d s (%s); ready anyway "
                    "(Node.ReadinessCatchUpTimeoutSeconds)",
                    n->cfg.readiness_catchup_s, why);
        return true;
    }
    return false;
}

void ld_api_readyz(ld_req *r)
{
    ld_node *n = r->node;
    char why[300] = "";
    if (n->shutting_down) {
        not_ready(r, "draining: the node is shutting down");
        return;
    }
    if (!ld_readiness_catchup(n, why, sizeof why)) {
        char reason[340];
        snprintf(reason, sizeof reason, "start-up catch-up: %s", why);
        not_ready(r, reason);
        return;
    }
    ld_readiness *rd = n->readiness;
    if (rd->last_ms && !rd->running && ld_mono_ms() - rd->last_ms < PROBE_REUSE) {
        answer(r, rd->last);
        return;
    }
    if (rd->n_waiting == WAITERS_MAX) {
        not_ready(r, "too many readiness probes at once");
        return;
    }
    if (!rd->running) {
        if (!ld_workers_submit(n->workers, probe_work, probe_done, rd)) {
            ld_reply_error(r, 500, "Out of memory.");
            return;
        }
        rd->running = true;
    }
    rd->waiting[rd->n_waiting++] = r;
    n->inflight++;
}
