/* The per-database writer thread and its group commit (see writer.h). */
#include "writer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../index/index.h"
#include "../util/log.h"
#include "../util/timeutil.h"
#include "apply.h"
#include "database.h"

struct ld_writer {
    ld_db *db;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ld_wjob *head, *tail; /* queue, guarded by mu */
    bool stop;
    void *(*alloc)(size_t); /* the group array's allocator: malloc, or a test's */
    unsigned degraded;      /* groups committed one job at a time for want of memory */
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
}

/* Runs jobs [first, first+n) in one transaction. Returns LD_OK when committed; otherwise the
 * storage status, and nothing of the batch is visible. */
static ld_status run_txn(ld_db *db, ld_wjob **jobs, size_t n, ld_db_state *out)
{
    ld_txn t;
    ld_db_state pending;
    ld_db_state_get(db, &pending);
    bool lazy = true;
    for (size_t i = 0; i < n; i++)
        lazy = lazy && jobs[i]->lazy;
    ld_status st = lazy ? ld_txn_begin_lazy(db->env->store, db->st, &t)
                        : ld_txn_begin(db->env->store, db->st, true, &t);
    if (st != LD_OK) return st;
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
        db->unstamped = false; /* ld_apply_finish recorded the incarnation */
    }
    return st;
}

static void publish(ld_db *db, const ld_db_state *s)
{
    pthread_mutex_lock(&db->mu);
    bool grew = s->last_seq != db->committed.last_seq;
    db->committed = *s;
    pthread_mutex_unlock(&db->mu);
    if (grew && db->env->committed) db->env->committed(db->env->committed_ctx, db);
}

/* Applies a batch with one commit. When the batch fails, each job is retried alone, so one bad
 * write (or a transient fault) fails only itself. */
static void run_batch(ld_db *db, ld_wjob **jobs, size_t n)
{
    ld_db_state s;
    uint64_t t0 = ld_mono_us();
    ld_status st = run_txn(db, jobs, n, &s);
    if (st == LD_OK) {
        ld_hist_observe(&db->commit_ops, &ld_buckets_ops, (double)n);
        ld_hist_observe(&db->commit_seconds, &ld_buckets_commit_seconds,
                        (double)(ld_mono_us() - t0) / 1e6);
        publish(db, &s);
        return;
    }
    if (n > 1)
        ld_log(LD_LOG_WARN, db->name, "group commit of %zu writes failed (%s); retrying each alone",
               n, ld_status_str(st));
    for (size_t i = 0; i < n; i++) {
        st = n > 1 ? run_txn(db, &jobs[i], 1, &s) : st;
        if (st == LD_OK) {
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
 * groups so writes keep flowing while an index builds. A failed step is logged and not retried
 * until the next definition change or restart (the build cursor keeps its progress). */
static void index_step(ld_db *db)
{
    bool more;
    size_t batch = db->env->index_build_batch > 0 ? (size_t)db->env->index_build_batch : 1000;
    ld_status st = ld_index_step(db, batch, &more);
    if (st != LD_OK)
        ld_log(LD_LOG_ERROR, db->name, "index build step failed (%s); resumes at the next restart",
               ld_status_str(st));
    db->ix_work = st == LD_OK && more;
    if (st == LD_OK && more) {
        /* A commit: the loop's shared read snapshots must not outlive it (snapshot.h). */
        pthread_mutex_lock(&db->mu);
        db->committed.commits++;
        pthread_mutex_unlock(&db->mu);
    }
}

static void *writer_main(void *arg)
{
    ld_writer *w = arg;
    ld_db *db = w->db;
    size_t cap = (size_t)db->env->writer_batch_max;
    ld_wjob **batch = NULL, *one[1];
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->head && !w->stop && !db->ix_work)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->head) {
            pthread_mutex_unlock(&w->mu);
            if (w->stop) break;
            index_step(db);
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
        /* Take everything that arrived while the last commit ran: that is the group. */
        size_t n = 0;
        pthread_mutex_lock(&w->mu);
        if (group == one) w->degraded++;
        while (w->head && n < limit) {
            group[n++] = w->head;
            w->head = w->head->next;
        }
        if (!w->head) w->tail = NULL;
        pthread_mutex_unlock(&w->mu);

        run_batch(db, group, n);
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
    pthread_cond_init(&w->cv, NULL);
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
    pthread_mutex_lock(&w->mu);
    if (w->tail)
        w->tail->next = job;
    else
        w->head = job;
    w->tail = job;
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
