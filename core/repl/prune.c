/* Op-log pruning: the pass over the databases on the loop, and the writer job that deletes one
 * bounded batch of entries and raises the log floor in the same transaction (see prune.h). */
#include "prune.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "../db/hlc.h"
#include "../db/logvv.h"
#include "../db/completions.h"
#include "../db/registry.h"
#include "../db/writer.h"
#include "../node.h"
#include "../util/log.h"
#include "../util/timeutil.h"
#include "oplog.h"
#include "purge.h"
#include "repl.h"

#define DAY_MS (24ull * 3600ull * 1000ull)

struct ld_pruner {
    ld_node *node;
    struct event *timer;
    bool stopped;
    struct prune_pass *pausing; /* passes waiting out their pause between batches */
};

/* A pass pauses after each batch for this many times the batch's time from submission to
 * completion (at most LD_PRUNE_PAUSE_MAX_US), so that it takes about a quarter of the writer's
 * and the disk's time and a client's write rarely finds the prune's pages ahead of it. */
#define LD_PRUNE_PAUSE_FACTOR 3u
#define LD_PRUNE_PAUSE_MAX_US 50000u

/* One batch of one database, run in its writer. */
typedef struct prune_job {
    /* Input */
    uint64_t peer_limit;              /* every active peer holds the entries up to here */
    char blocker[LD_NODE_ID_MAX + 1]; /* the peer whose checkpoint is peer_limit ("" none) */
    uint64_t retain_recent;           /* the last this many entries stay */
    uint64_t keep_from_ms; /* entries stamped at or after this are in the retention window */
    uint64_t cap_ms;       /* entries stamped before this go whatever the peers hold */
    uint64_t until;        /* the log's last entry when the pass reached this database */
    size_t batch;
    /* Results, reset on every run */
    uint64_t took_us;    /* the apply's time: the next batch's size follows it */
    uint64_t target;     /* the entry the pass may prune through, as far as this batch saw */
    uint64_t pruned;     /* entries deleted */
    uint64_t max_pruned; /* the last deleted */
    bool more;           /* the batch was full: another may follow */
    char reason[200];    /* why it stopped before the log's end, when it did */
} prune_job;

/* A pass over every database, one database and batch at a time. */
typedef struct prune_pass {
    ld_pruner *p;
    char **names;
    /* Each database's last log entry when the pass was asked for: the pass prunes only entries
     * that were in the log then (a pass, paused between batches and databases, never chases
     * what arrives meanwhile), and keeps the last OperationLogRetainRecentOperations of them. */
    uint64_t *untils;
    size_t n, next;
    json_t *results;
    uint64_t db_pruned, db_max, db_target;
    /* Entries the next batch may take: OperationLogPruningBatchSize at most, halved while a
     * batch's deletions outlast the writer's background budget (a write queued behind a batch
     * waits for all of it), doubled again while they take under half of it. */
    size_t cap;
    uint64_t db_until; /* untils[] of the database the pass is at */
    char db_reason[200];
    bool db_error;
    void (*done)(void *ctx, json_t *results);
    void *ctx;
    uint64_t submitted_us;     /* when the current batch went to the writer */
    struct event *pause;       /* the pause before the next batch (made on first use) */
    struct prune_pass *next_p; /* in the pruner's pausing list */
} prune_pass;

/* Origin -> the highest sequence pruned in this batch. */
typedef struct floor_entry {
    char origin[LD_NODE_ID_MAX + 1];
    uint64_t seq;
} floor_entry;

static ld_status raise_floor(ld_txn *t, const floor_entry *f)
{
    const void *v;
    size_t vl;
    size_t ol = strlen(f->origin);
    ld_status st = ld_txn_get(t, LD_SPACE_FLOOR, f->origin, ol, &v, &vl);
    if (st == LD_OK && vl == 8 && ld_be64_get(v) >= f->seq) return LD_OK;
    if (st != LD_OK && st != LD_NOT_FOUND) return st;
    uint8_t b[8];
    ld_be64_put(b, f->seq);
    return ld_txn_put(t, LD_SPACE_FLOOR, f->origin, ol, b, 8);
}

static ld_status prune_apply(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job)
{
    prune_job *pj = job->ctx;
    job->result = LD_WR_OK;
    pj->pruned = pj->max_pruned = 0;
    pj->target = pending->pruned_through;
    pj->more = false;
    pj->reason[0] = '\0';
    uint64_t end = pj->until < pending->last_seq ? pj->until : pending->last_seq;
    uint64_t recent_end = end > pj->retain_recent ? end - pj->retain_recent : 0;

    const uint64_t t0 = ld_mono_us(), walk_budget_us = LD_WRITER_BACKGROUND_BUDGET_US / 2;
    uint64_t *seqs = malloc(pj->batch * sizeof *seqs);
    uint64_t bytes = 0;
    floor_entry *floors = NULL;
    size_t n = 0, nf = 0;
    if (!seqs) return LD_NOMEM;
    ld_oplog_iter it;
    ld_status st = ld_oplog_iter_seek(t, pending->pruned_through + 1, &it);
    while (st == LD_OK) {
        uint64_t seq = it.seq;
        const ld_op_rec op = it.op;
        uint64_t ms = ld_hlc_ms(op.hlc);
        if (seq > pj->until) break; /* written after the pass was asked for: the next pass's */
        if (seq > recent_end) {
            snprintf(pj->reason, sizeof pj->reason,
                     "the last %" PRIu64
                     " operations are retained (OperationLogRetainRecentOperations)",
                     pj->retain_recent);
            break;
        }
        if (ms >= pj->keep_from_ms) {
            snprintf(pj->reason, sizeof pj->reason,
                     "operation %" PRIu64 " is within OperationLogRetentionDays", seq);
            break;
        }
        if (seq > pj->peer_limit && ms >= pj->cap_ms) {
            snprintf(pj->reason, sizeof pj->reason,
                     "peer %s has not received operation %" PRIu64 " yet", pj->blocker, seq);
            break;
        }
        /* The batch ends at its size or, checked every 64 entries, when the walk has used half
         * the background budget (the deletions take about as long again). */
        if (n == pj->batch || (n && !(n & 63) && ld_mono_us() - t0 >= walk_budget_us)) {
            pj->more = true;
            break;
        }
        size_t j = 0;
        while (j < nf && (strlen(floors[j].origin) != op.origin_len ||
                          memcmp(floors[j].origin, op.origin, op.origin_len) != 0))
            j++;
        if (j == nf) {
            floor_entry *g =
                op.origin_len <= LD_NODE_ID_MAX ? realloc(floors, (nf + 1) * sizeof *floors) : NULL;
            if (!g) {
                st = op.origin_len <= LD_NODE_ID_MAX ? LD_NOMEM : LD_CORRUPT;
                break;
            }
            floors = g;
            memcpy(floors[nf].origin, op.origin, op.origin_len);
            floors[nf].origin[op.origin_len] = '\0';
            floors[nf].seq = 0;
            nf++;
        }
        if (op.origin_seq > floors[j].seq) floors[j].seq = op.origin_seq;
        seqs[n++] = seq;
        bytes += it.bytes;
        st = ld_oplog_iter_next(&it);
    }
    ld_oplog_iter_close(&it);
    if (st == LD_NOT_FOUND) st = LD_OK;
    /* Deleted after the walk: a transaction does not write to a space its open cursor reads. */
    for (size_t i = 0; i < n && st == LD_OK; i++) {
        uint8_t key[8];
        ld_be64_put(key, seqs[i]);
        st = ld_txn_del(t, LD_SPACE_LOG, key, 8);
    }
    for (size_t i = 0; i < nf && st == LD_OK; i++)
        st = raise_floor(t, &floors[i]);
    if (st == LD_OK && n > 0) {
        uint8_t b[8];
        ld_be64_put(b, seqs[n - 1]);
        st = ld_txn_put(t, LD_SPACE_META, "pruned_through", 14, b, 8);
        if (st == LD_OK) st = ld_logvv_prune(t, seqs[n - 1]);
        if (st == LD_OK) {
            pending->pruned_through = seqs[n - 1];
            pending->log_bytes = pending->log_bytes > bytes ? pending->log_bytes - bytes : 0;
            pj->pruned = n;
            pj->max_pruned = seqs[n - 1];
        }
    }
    pj->target = pending->pruned_through;
    pj->took_us = ld_mono_us() - t0;
    free(seqs);
    free(floors);
    (void)db;
    return st;
}

static void pass_next(prune_pass *ps);

uint64_t ld_prune_cap_ms(const ld_node *n, uint64_t now_ms)
{
    uint64_t cap = (uint64_t)n->cfg.oplog_max_retention_days * DAY_MS;
    return now_ms > cap ? now_ms - cap : 0;
}

static void pass_row(prune_pass *ps);

static void purged(void *arg, const ld_purge_result *res)
{
    prune_pass *ps = arg;
    if (!res->ok) {
        ps->db_error = true;
        snprintf(ps->db_reason, sizeof ps->db_reason, "the tombstone purge transaction failed");
    }
    pass_row(ps);
}

/* The database's log batches are done: its dead records next, then its row. */
static void pass_finish_db(prune_pass *ps)
{
    ld_node *n = ps->p->node;
    ld_db *db = n->shutting_down ? NULL : ld_registry_get(&n->reg, ps->names[ps->next - 1]);
    bool started = db && ld_purge_db(n, db, ps->db_pruned, purged, ps);
    if (db) ld_registry_release(&n->reg, db);
    if (!started) pass_row(ps);
}

static void pass_row(prune_pass *ps)
{
    const char *status = ps->db_error ? "Error" : ps->db_pruned ? "Pruned" : "Skipped";
    json_t *row = json_pack(
        "{s:s, s:s, s:s?, s:I, s:I, s:I, s:i}", "DatabaseName", ps->names[ps->next - 1], "Status",
        status, "Reason", ps->db_reason[0] ? ps->db_reason : NULL, "PruneThroughLogSequence",
        (json_int_t)ps->db_target, "PrunedCount", (json_int_t)ps->db_pruned, "MaxPrunedLogSequence",
        (json_int_t)ps->db_max, "PrunedReceiptCount", 0);
    if (ps->db_pruned)
        ld_log(LD_LOG_INFO, ps->names[ps->next - 1],
               "op log pruned: %" PRIu64 " entries, through log sequence %" PRIu64, ps->db_pruned,
               ps->db_max);
    if (ps->results && (!row || json_array_append_new(ps->results, row))) {
        json_decref(ps->results);
        ps->results = NULL;
    }
    pass_next(ps);
}

static void submit_batch(prune_pass *ps, ld_db *db);
static void next_batch(prune_pass *ps);
static void pause_done(evutil_socket_t fd, short what, void *arg);

static void batch_done(ld_wjob *job)
{
    prune_pass *ps = job->arg;
    prune_job *pj = job->ctx;
    bool ok = job->result == LD_WR_OK;
    if (ok) {
        size_t max = (size_t)ps->p->node->cfg.oplog_prune_batch;
        if (pj->took_us > LD_WRITER_BACKGROUND_BUDGET_US && ps->cap > 16)
            ps->cap /= 2;
        else if (pj->took_us < LD_WRITER_BACKGROUND_BUDGET_US / 2 && ps->cap < max)
            ps->cap = ps->cap * 2 < max ? ps->cap * 2 : max;
        ps->db_pruned += pj->pruned;
        if (pj->max_pruned) ps->db_max = pj->max_pruned;
        ps->db_target = pj->target;
        snprintf(ps->db_reason, sizeof ps->db_reason, "%s", pj->reason);
    } else {
        ps->db_error = true;
        snprintf(ps->db_reason, sizeof ps->db_reason, "the pruning transaction failed");
    }
    bool more = ok && pj->more && !ps->p->node->shutting_down;
    ld_wjob_free(job);
    free(pj);
    if (!more) {
        pass_finish_db(ps);
        return;
    }
    uint64_t pause = (ld_mono_us() - ps->submitted_us) * LD_PRUNE_PAUSE_FACTOR;
    if (pause > LD_PRUNE_PAUSE_MAX_US) pause = LD_PRUNE_PAUSE_MAX_US;
    if (!ps->pause) ps->pause = evtimer_new(ps->p->node->base, pause_done, ps);
    struct timeval tv = {0, (suseconds_t)pause};
    if (!ps->pause || evtimer_add(ps->pause, &tv) != 0) {
        next_batch(ps); /* no timer to be had: no pause, rather than no pruning */
        return;
    }
    ps->next_p = ps->p->pausing;
    ps->p->pausing = ps;
}

/* The next batch of the pass's current database, or its end when the node stops or the
 * database went away meanwhile. */
static void next_batch(prune_pass *ps)
{
    ld_node *n = ps->p->node;
    ld_db *db = n->shutting_down ? NULL : ld_registry_get(&n->reg, ps->names[ps->next - 1]);
    if (!db) {
        pass_finish_db(ps);
        return;
    }
    submit_batch(ps, db);
    ld_registry_release(&n->reg, db);
}

static void pause_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    prune_pass *ps = arg;
    prune_pass **pp = &ps->p->pausing;
    while (*pp && *pp != ps)
        pp = &(*pp)->next_p;
    if (*pp) *pp = ps->next_p;
    next_batch(ps);
}

static void submit_batch(prune_pass *ps, ld_db *db)
{
    ld_node *n = ps->p->node;
    prune_job *pj = calloc(1, sizeof *pj);
    ld_wjob *job = ld_wjob_custom(prune_apply, batch_done, ps);
    if (!pj || !job) {
        free(pj);
        free(job);
        ps->db_error = true;
        snprintf(ps->db_reason, sizeof ps->db_reason, "out of memory");
        pass_finish_db(ps);
        return;
    }
    uint64_t now = ld_hlc_wall(&n->clock);
    uint64_t keep = (uint64_t)n->cfg.oplog_retention_days * DAY_MS;
    pj->peer_limit = ld_repl_prune_limit(n->repl, db->name, pj->blocker, sizeof pj->blocker);
    pj->retain_recent = (uint64_t)n->cfg.oplog_retain_recent;
    pj->keep_from_ms = now > keep ? now - keep : 0;
    pj->cap_ms = ld_prune_cap_ms(n, now);
    pj->batch = ps->cap;
    pj->until = ps->db_until;
    job->ctx = pj;
    ps->submitted_us = ld_mono_us();
    /* Lazy: a prune lost to a crash only means pruning again (the entries and the floor go back
     * together). Background: a client's write never commits a batch of deletions. */
    job->lazy = true;
    job->background = true;
    ld_node_submit(n, db, job);
}

static void pass_free(prune_pass *ps)
{
    if (ps->pause) event_free(ps->pause);
    ld_registry_names_free(ps->names, ps->n);
    free(ps->untils);
    free(ps);
}

static void pass_next(prune_pass *ps)
{
    ld_node *n = ps->p->node;
    while (ps->next < ps->n && !n->shutting_down) {
        size_t i = ps->next++;
        ld_db *db = ld_registry_get(&n->reg, ps->names[i]);
        if (!db) continue; /* dropped meanwhile */
        ps->db_pruned = ps->db_max = ps->db_target = 0;
        ps->cap = (size_t)n->cfg.oplog_prune_batch;
        ps->db_until = ps->untils[i];
        ps->db_reason[0] = '\0';
        ps->db_error = false;
        submit_batch(ps, db);
        ld_registry_release(&n->reg, db);
        return;
    }
    if (ps->done)
        ps->done(ps->ctx, ps->results);
    else
        json_decref(ps->results);
    pass_free(ps);
}

bool ld_pruner_run(ld_pruner *p, void (*done)(void *ctx, json_t *results), void *ctx)
{
    prune_pass *ps = calloc(1, sizeof *ps);
    if (!ps) return false;
    ps->p = p;
    ps->done = done;
    ps->ctx = ctx;
    ps->results = json_array();
    if (!ps->results) {
        free(ps);
        return false;
    }
    if (p->node->cfg.oplog_pruning) {
        ps->names = ld_registry_names(&p->node->reg, &ps->n);
        if (!ps->names) ps->n = 0;
        ps->untils = calloc(ps->n ? ps->n : 1, sizeof *ps->untils);
        if (!ps->untils) {
            json_decref(ps->results);
            pass_free(ps);
            return false;
        }
        for (size_t i = 0; i < ps->n; i++) {
            ld_db *db = ld_registry_get(&p->node->reg, ps->names[i]);
            if (!db) continue; /* dropped meanwhile: pass_next skips it */
            ld_db_state st;
            ld_db_state_get(db, &st);
            ps->untils[i] = st.last_seq;
            ld_registry_release(&p->node->reg, db);
        }
    }
    pass_next(ps);
    return true;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ld_pruner *p = arg;
    if (p->stopped || p->node->shutting_down) return;
    if (!ld_pruner_run(p, NULL, NULL))
        ld_log(LD_LOG_WARN, NULL, "op log pruning: out of memory; the next interval retries");
}

ld_pruner *ld_pruner_new(ld_node *node)
{
    ld_pruner *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->node = node;
    if (!node->cfg.oplog_pruning) return p;
    p->timer = event_new(node->base, -1, EV_PERSIST, timer_cb, p);
    if (!p->timer) {
        free(p);
        return NULL;
    }
    struct timeval tv = {(time_t)node->cfg.oplog_prune_interval_min * 60, 0};
    event_add(p->timer, &tv);
    return p;
}

void ld_pruner_stop(ld_pruner *p)
{
    if (!p) return;
    p->stopped = true;
    if (p->timer) event_del(p->timer);
    /* A pass in its pause ends now (the node is shutting down: no further batch), answering
     * the prune route that asked for it, if one did. */
    while (p->pausing) {
        prune_pass *ps = p->pausing;
        p->pausing = ps->next_p;
        event_del(ps->pause);
        next_batch(ps);
    }
}

void ld_pruner_free(ld_pruner *p)
{
    if (!p) return;
    if (p->timer) event_free(p->timer);
    free(p);
}
