/* The per-database writer thread and its group commit (see writer.h). */
#include "writer.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../index/index.h"
#include "../util/log.h"
#include "../util/timeutil.h"
#include "apply.h"
#include "database.h"
#include "memo.h"
#include "names.h"

struct ld_writer {
    ld_db *db;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ld_wjob *head, *tail; /* queue, guarded by mu */
    bool stop;
    void *(*alloc)(size_t); /* the group array's allocator: malloc, or a test's */
    unsigned degraded;      /* groups committed one job at a time for want of memory */
    /* Writer thread only: everysec cache writes committed lazily and not yet made durable by a
     * later durable commit, and when (ld_mono_us) that commit is due at the latest. */
    bool unflushed;
    uint64_t flush_due_us;
};

ld_wjob *ld_wjob_new(ld_wkind kind, void (*done)(ld_wjob *job), void *arg)
{
    ld_wjob *job = calloc(1, sizeof *job);
    if (!job) return NULL;
    job->kind = kind;
    job->done = done;
    job->arg = arg;
    return job;
}

ld_wjob *ld_wjob_custom(ld_wapply_fn apply, void (*done)(ld_wjob *job), void *arg)
{
    ld_wjob *job = ld_wjob_new(LD_W_CUSTOM, done, arg);
    if (job) job->apply = apply;
    return job;
}

void ld_wjob_free(ld_wjob *job)
{
    if (!job) return;
    free(job->collection);
    free(job->id);
    free(job->json);
    free(job->payload);
    free(job);
}

static void reset_results(ld_wjob *job)
{
    free(job->payload);
    job->payload = NULL;
    job->payload_len = 0;
    job->result = LD_WR_OK;
    job->committed_lazy = false;
}

bool ld_wjob_everysec(const ld_db *db, const ld_wjob *job)
{
    /* Decided here, from the collection, so that every door to the cache (HTTP, RESP) gets the
     * same durability without deciding it itself. The sweeper's pages carry no collection:
     * they are lazy bookkeeping in both modes (job->lazy). */
    return db->env->cache_everysec && job->collection && ld_collection_is_cache(job->collection) &&
           (job->kind == LD_W_PUT || job->kind == LD_W_DELETE || job->kind == LD_W_CUSTOM);
}

/* Runs jobs [first, first+n) in one transaction, lazily when every job may be and `durable` is
 * not asked (n == 0 with durable: a commit of the state alone, which makes the lazy commits
 * before it durable). Returns LD_OK when committed, with *lazy_out saying how; otherwise the
 * storage status, and nothing of the batch is visible. */
static ld_status run_txn(ld_db *db, ld_wjob **jobs, size_t n, bool durable, ld_db_state *out,
                         bool *lazy_out)
{
    ld_txn t;
    ld_db_state pending;
    ld_db_state_get(db, &pending);
    /* A plugin before ABI 1.1 commits everything durably: then nothing is lazy, nor said to be. */
    bool lazy = !durable && ld_store_can_lazy(db->env->store);
    for (size_t i = 0; i < n; i++)
        lazy = lazy && (jobs[i]->lazy || ld_wjob_everysec(db, jobs[i]));
    ld_status st = lazy ? ld_txn_begin_lazy(db->env->store, db->st, &t)
                        : ld_txn_begin(db->env->store, db->st, true, &t);
    if (st != LD_OK) return st;
    if (db->memo) { /* the keys this commit writes, for the loop's memo (memo.h) */
        ld_keylog_reset(&db->written);
        ld_txn_track(&t, LD_SPACE_DOCS, &db->written);
    }
    for (size_t i = 0; i < n && st == LD_OK; i++) {
        reset_results(jobs[i]);
        st = jobs[i]->kind == LD_W_CUSTOM ? jobs[i]->apply(db, &t, &pending, jobs[i])
                                          : ld_apply_job(db, &t, &pending, jobs[i]);
    }
    if (st == LD_OK) st = ld_apply_finish(db, &t, &pending);
    pending.commits++;
    /* This writer stamps this database's own ops one after the other: every later one is
     * stamped above a stamp issued now (the purge frontier's promise). Issued, not peeked, so
     * the promise follows the wall clock on a node that only observes others' stamps. */
    pending.promise_seq = pending.self_seq;
    pending.promise_hlc = ld_hlc_now(db->env->clock);
    if (st != LD_OK) {
        ld_txn_abort(&t);
        return st;
    }
    st = ld_txn_commit(&t);
    if (st == LD_OK) {
        *out = pending;
        *lazy_out = lazy;
        for (size_t i = 0; i < n; i++)
            jobs[i]->committed_lazy = lazy;
        db->unstamped = false; /* ld_apply_finish recorded the incarnation */
    }
    return st;
}

/* Notes a commit for the everysec flush: a lazy one holding an everysec write starts the
 * one-second clock (if it is not running yet); a durable one makes every earlier commit durable,
 * and counts as a flush when everysec writes were waiting for one. */
static void note_commit(ld_writer *w, ld_wjob **jobs, size_t n, bool lazy)
{
    ld_db *db = w->db;
    if (lazy) {
        bool everysec = false;
        for (size_t i = 0; i < n && !everysec; i++)
            everysec = ld_wjob_everysec(db, jobs[i]);
        if (!everysec || w->unflushed) return;
        w->unflushed = true;
        w->flush_due_us = ld_mono_us() + LD_CACHE_FLUSH_INTERVAL_US;
    } else if (w->unflushed) {
        w->unflushed = false;
    } else {
        return;
    }
    pthread_mutex_lock(&db->mu);
    db->cache_unflushed = w->unflushed;
    if (!w->unflushed) {
        db->cache_flushes++;
        db->cache_flush_ms = ld_wall_ms();
    }
    pthread_mutex_unlock(&db->mu);
}

/* Makes a commit's state the database's, then hands the keys it wrote to the memo: after the
 * state, so a read that misses the memo afterwards takes a snapshot with the commit in it; and
 * before its jobs are answered. */
static void publish(ld_db *db, const ld_db_state *s)
{
    pthread_mutex_lock(&db->mu);
    bool grew = s->last_seq != db->committed.last_seq;
    db->committed = *s;
    pthread_mutex_unlock(&db->mu);
    ld_memo_invalidate(db->memo, &db->written);
    if (grew && db->env->committed) db->env->committed(db->env->committed_ctx, db);
}

/* Applies a batch with one commit (a durable one when `durable`: the everysec flush is due).
 * When the batch fails, each job is retried alone, so one bad write (or a transient fault)
 * fails only itself. */
static void run_batch(ld_writer *w, ld_wjob **jobs, size_t n, bool durable)
{
    ld_db *db = w->db;
    ld_db_state s;
    bool lazy = false;
    uint64_t t0 = ld_mono_us();
    ld_status st = run_txn(db, jobs, n, durable, &s, &lazy);
    if (st == LD_OK) {
        ld_hist_observe(&db->commit_ops, &ld_buckets_ops, (double)n);
        ld_hist_observe(&db->commit_seconds, &ld_buckets_commit_seconds,
                        (double)(ld_mono_us() - t0) / 1e6);
        note_commit(w, jobs, n, lazy);
        publish(db, &s);
        return;
    }
    if (n > 1)
        ld_log(LD_LOG_WARN, db->name, "group commit of %zu writes failed (%s); retrying each alone",
               n, ld_status_str(st));
    for (size_t i = 0; i < n; i++) {
        st = n > 1 ? run_txn(db, &jobs[i], 1, durable, &s, &lazy) : st;
        if (st == LD_OK) {
            note_commit(w, &jobs[i], 1, lazy);
            publish(db, &s);
        } else {
            reset_results(jobs[i]);
            jobs[i]->result = LD_WR_STORAGE;
        }
    }
}

/* The group array, allocated on first use and again after a failure: an allocation that
 * fails once (memory is short for a moment) costs only the grouping of the writes that arrive
 * meanwhile, never the writes themselves. */
static ld_wjob **batch_array(ld_writer *w, ld_wjob ***batch)
{
    if (!*batch) *batch = w->alloc((size_t)w->db->env->writer_batch_max * sizeof **batch);
    return *batch;
}

/* One bounded step of background index work (a build, a drop's deletions), between write
 * groups so writes keep flowing while an index builds. A failed step (the build cursor keeps
 * its progress) is retried after a backoff (ld_index_retry_delay_us), shown by GET /api/indexes
 * and counted in litedist_index_step_failures_total. */
static void index_step(ld_db *db)
{
    bool more;
    size_t batch = db->env->index_build_batch > 0 ? (size_t)db->env->index_build_batch : 1000;
    if (db->ix_retry_us && ld_mono_us() < db->ix_retry_us) return; /* not due yet */
    ld_status st = ld_index_step(db, batch, &more);
    pthread_mutex_lock(&db->mu);
    if (st != LD_OK) {
        db->ix_failures++;
        db->ix_step_failures++;
        uint64_t delay = ld_index_retry_delay_us(db->ix_failures);
        db->ix_retry_us = ld_mono_us() + delay;
        snprintf(db->ix_error, sizeof db->ix_error, "%s", ld_status_str(st));
        ld_log(LD_LOG_ERROR, db->name, "index build step failed (%s); retrying in %llu s",
               ld_status_str(st), (unsigned long long)(delay / 1000000u));
    } else {
        db->ix_failures = 0;
        db->ix_retry_us = 0;
        db->ix_error[0] = '\0';
    }
    pthread_mutex_unlock(&db->mu);
    if (st != LD_OK) return; /* ix_work stays set: the retry is due at ix_retry_us */
    db->ix_work = st == LD_OK && more;
    if (st == LD_OK && more) {
        /* A commit: the loop's shared read snapshots must not outlive it (snapshot.h). */
        pthread_mutex_lock(&db->mu);
        db->committed.commits++;
        pthread_mutex_unlock(&db->mu);
    }
}

/* The everysec flush with nothing to ride on: a durable commit of the database's state alone
 * (never empty: it rewrites the state records, and an empty transaction would sync nothing on
 * either backend), which makes every lazy commit before it durable. A failure is logged and
 * retried a second later; the writes stay as durable as a process crash allows. */
static void flush(ld_writer *w)
{
    ld_db_state s;
    bool lazy = false;
    ld_status st = run_txn(w->db, NULL, 0, true, &s, &lazy);
    if (st == LD_OK) {
        note_commit(w, NULL, 0, false);
        publish(w->db, &s);
    } else {
        ld_log(LD_LOG_ERROR, w->db->name,
               "making the everysec cache writes durable failed (%s); retrying in a second",
               ld_status_str(st));
        w->flush_due_us = ld_mono_us() + LD_CACHE_FLUSH_INTERVAL_US;
    }
}

/* Waits (w->mu held) until a job is queued, the writer stops, index work waits (a failed step:
 * once its retry is due), or the everysec flush is due. Returns true when the flush is due and
 * nothing is queued. */
static bool wait_for_work(ld_writer *w)
{
    ld_db *db = w->db;
    while (!w->head && !w->stop &&
           !(db->ix_work && (!db->ix_retry_us || ld_mono_us() >= db->ix_retry_us))) {
        bool retry = db->ix_work && db->ix_retry_us; /* a failed index step waits its backoff */
        if (!w->unflushed && !retry) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        uint64_t due = w->unflushed ? w->flush_due_us : db->ix_retry_us;
        if (retry && db->ix_retry_us < due) due = db->ix_retry_us;
        struct timespec ts = {(time_t)(due / 1000000u), (long)(due % 1000000u) * 1000};
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT && !w->head && w->unflushed &&
            ld_mono_us() >= w->flush_due_us)
            return true;
    }
    return false;
}

static void *writer_main(void *arg)
{
    ld_writer *w = arg;
    ld_db *db = w->db;
    size_t cap = (size_t)db->env->writer_batch_max;
    ld_wjob **batch = NULL, *one[1];
    for (;;) {
        pthread_mutex_lock(&w->mu);
        bool due = wait_for_work(w);
        if (!w->head) {
            pthread_mutex_unlock(&w->mu);
            if (w->stop) {
                /* What waits for its flush gets it now, not at some later close. */
                if (w->unflushed) flush(w);
                break;
            }
            /* The flush is due with nothing queued to ride on (also between index steps). */
            if (due || (w->unflushed && ld_mono_us() >= w->flush_due_us)) flush(w);
            if (db->ix_work) index_step(db);
            continue;
        }
        pthread_mutex_unlock(&w->mu);
        /* Without the group array the writer commits one job at a time, on a stack slot. */
        ld_wjob **group = batch_array(w, &batch);
        size_t limit = group ? cap : 1;
        if (!group) {
            group = one;
            ld_log(LD_LOG_WARN, db->name, "no memory for the group of %zu writes; committing one",
                   cap);
        }
        /* Take everything that arrived while the last commit ran: that is the group. A
         * background job is a group of its own: clients' writes never commit its work. */
        size_t n = 0;
        pthread_mutex_lock(&w->mu);
        if (group == one) w->degraded++;
        while (w->head && n < limit && !(n && (w->head->background || group[0]->background))) {
            group[n++] = w->head;
            w->head = w->head->next;
        }
        if (!w->head) w->tail = NULL;
        pthread_mutex_unlock(&w->mu);

        /* A flush that is due rides on this group: it commits durably. */
        run_batch(w, group, n, w->unflushed && ld_mono_us() >= w->flush_due_us);
        for (size_t i = 0; i < n; i++)
            group[i]->next = i + 1 < n ? group[i + 1] : NULL;
        db->env->complete(db->env->complete_ctx, group[0]);
        if (db->ix_work) index_step(db);
    }
    free(batch);
    return NULL;
}

ld_writer *ld_writer_new(ld_db *db)
{
    return ld_writer_new_with(db, malloc);
}

ld_writer *ld_writer_new_with(ld_db *db, void *(*alloc)(size_t))
{
    ld_writer *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->db = db;
    w->alloc = alloc;
    pthread_mutex_init(&w->mu, NULL);
    /* The flush deadline is on the monotonic clock (ld_mono_us), so is the wait for it. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        return NULL;
    }
    return w;
}

void ld_writer_submit(ld_writer *w, ld_wjob *job)
{
    job->next = NULL;
    ld_writer_submit_chain(w, job, job);
}

void ld_writer_submit_chain(ld_writer *w, ld_wjob *first, ld_wjob *last)
{
    last->next = NULL;
    pthread_mutex_lock(&w->mu);
    if (w->tail)
        w->tail->next = first;
    else
        w->head = first;
    w->tail = last;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

unsigned ld_writer_degraded(ld_writer *w)
{
    pthread_mutex_lock(&w->mu);
    unsigned n = w->degraded;
    pthread_mutex_unlock(&w->mu);
    return n;
}

void ld_writer_free(ld_writer *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}
