/* Unit tests of a database's writer and merge (core/db) on a real storage plugin (argv[1]):
 * group commit retries a failed group job by job, a writer without memory for its group still
 * commits, ld_node_submit counts a job in and out of node->inflight, ld_node_submit_later hands
 * a pipeline of writes to the writer as one group in order, the three conflict
 * policies decide between a local document and an incoming op as docs/replication.md says, a
 * restored database writes under its new origin past its old log, and Node.CacheDurability
 * everysec commits cache writes lazily and flushes them within the interval, and a background
 * job commits in a group of its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ftw.h>
#include <unistd.h>

#include <cmocka.h>

#include <pthread.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "config/config.h"
#include "db/apply.h"
#include "db/completions.h"
#include "db/database.h"
#include "db/writer.h"
#include "db_fixture.h"
#include "node.h"
#include "storage/storage.h"
#include "util/timeutil.h"

static const char *g_plugin;

/* ---------------------------------------------------------------------------------------------
 * A database on a temporary directory, with completions delivered to the test thread
 * ------------------------------------------------------------------------------------------- */

typedef ld_tdb fx;

static void wait_completed(fx *f, int n)
{
    ld_tdb_wait(f, n);
}

static int fx_setup(void **state)
{
    return ld_tdb_setup(state, g_plugin, "db", false);
}

static int fx_teardown(void **state)
{
    return ld_tdb_teardown(state);
}

static ld_wjob *put_job(const char *id, const char *json)
{
    ld_wjob *j = calloc(1, sizeof *j);
    assert_non_null(j);
    j->kind = LD_W_PUT;
    j->collection = strdup("c");
    j->id = strdup(id);
    j->json = strdup(json);
    j->json_len = strlen(json);
    j->may_create = j->may_update = true;
    return j;
}

/* The stored record of c/id: its JSON (malloc'd) and version, or NULL when absent. */
static char *stored(fx *f, const char *id, uint8_t version[LD_OP_ID_LEN], uint64_t *hlc)
{
    uint8_t *buf = NULL;
    ld_doc_rec rec;
    ld_status st = ld_db_get_doc(f->db, NULL, "c", 1, id, strlen(id), &buf, &rec);
    if (st == LD_NOT_FOUND) return NULL;
    assert_int_equal(st, LD_OK);
    char *json = strndup(rec.json, rec.json_len);
    if (version) memcpy(version, rec.version, LD_OP_ID_LEN);
    if (hlc) *hlc = rec.hlc;
    free(buf);
    return json;
}

static void expect_doc(fx *f, const char *id, const char *json)
{
    char *got = stored(f, id, NULL, NULL);
    if (!json) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_string_equal(got, json);
    free(got);
}

/* ---------------------------------------------------------------------------------------------
 * Group commit
 * ------------------------------------------------------------------------------------------- */

/* A custom job that holds the writer until released, so the jobs queued meanwhile make one
 * group. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool entered, open;
} gate;

static ld_status gate_apply(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job)
{
    (void)db;
    (void)t;
    (void)pending;
    gate *g = job->ctx;
    pthread_mutex_lock(&g->mu);
    g->entered = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    job->result = LD_WR_OK;
    return LD_OK;
}

/* A custom job writing one document that fails its first `fail_runs` runs with LD_IO. */
typedef struct flaky {
    int fail_runs;
    int runs;
} flaky;

static ld_status flaky_apply(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job)
{
    flaky *fl = job->ctx;
    if (fl->runs++ < fl->fail_runs) return LD_IO;
    ld_wjob one = {.kind = LD_W_PUT,
                   .collection = "c",
                   .id = "flaky",
                   .json = "{\"Id\":\"flaky\"}",
                   .json_len = 14,
                   .may_create = true,
                   .may_update = true};
    ld_status st = ld_apply_job(db, t, pending, &one);
    free(one.payload);
    job->result = one.result;
    return st;
}

static ld_wjob *custom_job(ld_wapply_fn fn, void *ctx)
{
    ld_wjob *j = calloc(1, sizeof *j);
    assert_non_null(j);
    j->kind = LD_W_CUSTOM;
    j->collection = strdup("c");
    j->apply = fn;
    j->ctx = ctx;
    return j;
}

/* Runs [a, flaky, b] as one group behind a gate; returns the jobs for inspection. */
static void run_group(fx *f, flaky *fl, ld_wjob *out[3])
{
    gate g = {.entered = false, .open = false};
    int before = f->completed;
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    ld_wjob *gj = custom_job(gate_apply, &g);
    ld_writer_submit(f->db->writer, gj);
    pthread_mutex_lock(&g.mu);
    while (!g.entered)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    /* The writer is inside the gate's transaction: these three queue up as one group. */
    out[0] = put_job("a", "{\"Id\":\"a\"}");
    out[1] = custom_job(flaky_apply, fl);
    out[2] = put_job("b", "{\"Id\":\"b\"}");
    for (int i = 0; i < 3; i++)
        ld_writer_submit(f->db->writer, out[i]);
    pthread_mutex_lock(&g.mu);
    g.open = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    wait_completed(f, before + 4);
    ld_wjob_free(gj);
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
}

static void a_failing_job_fails_alone_when_its_group_is_retried(void **state)
{
    fx *f = *state;
    flaky fl = {.fail_runs = 1000};
    ld_wjob *jobs[3];
    run_group(f, &fl, jobs);
    assert_int_equal(fl.runs, 2); /* once in the group, once alone */
    assert_int_equal(jobs[0]->result, LD_WR_OK);
    assert_int_equal(jobs[1]->result, LD_WR_STORAGE);
    assert_int_equal(jobs[2]->result, LD_WR_OK);
    /* The failed group left nothing: the retried jobs took the first two log positions. */
    assert_int_equal(jobs[0]->seq, 1);
    assert_int_equal(jobs[2]->seq, 2);
    ld_db_state s;
    ld_db_state_get(f->db, &s);
    assert_int_equal(s.last_seq, 2);
    assert_int_equal(s.self_seq, 2);
    expect_doc(f, "a", "{\"Id\":\"a\"}");
    expect_doc(f, "b", "{\"Id\":\"b\"}");
    expect_doc(f, "flaky", NULL);
    for (int i = 0; i < 3; i++)
        ld_wjob_free(jobs[i]);
}

static void a_transient_fault_is_absorbed_by_the_retry(void **state)
{
    fx *f = *state;
    flaky fl = {.fail_runs = 1}; /* fails in the group, succeeds alone */
    ld_wjob *jobs[3];
    run_group(f, &fl, jobs);
    assert_int_equal(fl.runs, 2);
    for (int i = 0; i < 3; i++)
        assert_int_equal(jobs[i]->result, LD_WR_OK);
    assert_int_equal(jobs[0]->seq, 1);
    assert_int_equal(jobs[2]->seq, 3); /* retried in order: a, flaky, b */
    ld_db_state s;
    ld_db_state_get(f->db, &s);
    assert_int_equal(s.last_seq, 3);
    expect_doc(f, "flaky", "{\"Id\":\"flaky\"}");
    for (int i = 0; i < 3; i++)
        ld_wjob_free(jobs[i]);
}

/* ---------------------------------------------------------------------------------------------
 * The group array's allocation, and the submit path
 * ------------------------------------------------------------------------------------------- */

static int g_alloc_failures; /* how many group arrays failing_alloc refuses next */

static void *failing_alloc(size_t n)
{
    if (g_alloc_failures > 0) {
        g_alloc_failures--;
        return NULL;
    }
    return malloc(n);
}

static void put_and_wait(fx *f, const char *id)
{
    char json[64];
    snprintf(json, sizeof json, "{\"Id\":\"%s\"}", id);
    int before = f->completed;
    ld_wjob *j = put_job(id, json);
    ld_writer_submit(f->db->writer, j);
    wait_completed(f, before + 1);
    assert_int_equal(j->result, LD_WR_OK);
    ld_wjob_free(j);
    expect_doc(f, id, json);
}

static void a_writer_without_memory_for_its_group_still_commits(void **state)
{
    fx *f = *state;
    /* A writer whose first two group arrays cannot be allocated (the writer is started after
     * the counter is set: pthread_create orders the two threads). */
    ld_writer_free(f->db->writer);
    g_alloc_failures = 2;
    f->db->writer = ld_writer_new_with(f->db, failing_alloc);
    assert_non_null(f->db->writer);
    put_and_wait(f, "one");
    put_and_wait(f, "two");
    assert_int_equal(ld_writer_degraded(f->db->writer), 2);
    /* Memory is back: the next group gets its array and the writer groups again. */
    put_and_wait(f, "three");
    flaky fl = {.fail_runs = 0};
    ld_wjob *jobs[3];
    run_group(f, &fl, jobs);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(jobs[i]->result, LD_WR_OK);
        ld_wjob_free(jobs[i]);
    }
    assert_int_equal(ld_writer_degraded(f->db->writer), 2);
    ld_db_state s;
    ld_db_state_get(f->db, &s);
    assert_int_equal(s.last_seq, 6);
}

/* A status no ABI minor defines yet (plugin.h: handled as LD_INTERNAL). */
static ld_status unknown_status_apply(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job)
{
    flaky one = {.fail_runs = 0};
    job->ctx = &one;
    ld_status st = flaky_apply(db, t, pending, job); /* writes c/flaky, then fails */
    job->ctx = NULL;
    return st == LD_OK ? 99 : st;
}

static void an_unknown_status_fails_the_write_like_an_internal_error(void **state)
{
    fx *f = *state;
    int before = f->completed;
    ld_wjob *j = custom_job(unknown_status_apply, NULL);
    ld_writer_submit(f->db->writer, j);
    wait_completed(f, before + 1);
    assert_int_equal(j->result, LD_WR_STORAGE);
    ld_wjob_free(j);
    expect_doc(f, "flaky", NULL); /* the transaction was aborted: nothing of it is visible */
    ld_db_state s;
    ld_db_state_get(f->db, &s);
    assert_int_equal(s.last_seq, 0);
}

static void count_done(ld_wjob *job)
{
    int *ran = job->arg;
    (*ran)++;
}

static void node_submit_counts_the_job_until_its_completion_runs(void **state)
{
    fx *f = *state;
    ld_node *n = calloc(1, sizeof *n);
    assert_non_null(n);
    assert_int_equal(evthread_use_pthreads(), 0);
    n->base = event_base_new();
    assert_non_null(n->base);
    pthread_mutex_init(&n->done.mu, NULL);
    n->done.ev = event_new(n->base, -1, 0, ld_completions_run, n);
    assert_non_null(n->done.ev);
    n->done.later_ev = event_new(n->base, -1, 0, ld_completions_submit_later, n);
    assert_non_null(n->done.later_ev);
    /* Completions reach the node's loop for this test, the fixture's again after it. */
    ld_db_env saved = f->env;
    f->env.complete = ld_completions_post;
    f->env.complete_ctx = n;

    int ran = 0;
    ld_wjob *j = ld_wjob_new(LD_W_PUT, count_done, &ran);
    assert_non_null(j);
    j->collection = strdup("c");
    j->id = strdup("counted");
    j->json = strdup("{\"Id\":\"counted\"}");
    j->json_len = strlen(j->json);
    j->may_create = j->may_update = true;
    ld_node_submit(n, f->db, j);
    assert_int_equal(n->inflight, 1);
    /* Bounded: up to 500 passes of 10 ms, each ending early when the writer's wake-up runs. */
    struct timeval tick = {0, 10000};
    for (int i = 0; i < 500 && !ran; i++) {
        assert_int_equal(event_base_loopexit(n->base, &tick), 0);
        assert_true(event_base_dispatch(n->base) >= 0);
    }
    assert_int_equal(ran, 1);
    assert_int_equal(n->inflight, 0);
    assert_int_equal(j->result, LD_WR_OK);
    assert_int_equal(j->seq, 1);
    ld_wjob_free(j);

    f->env.complete = saved.complete;
    f->env.complete_ctx = saved.complete_ctx;
    event_free(n->done.ev);
    event_free(n->done.later_ev);
    pthread_mutex_destroy(&n->done.mu);
    event_base_free(n->base);
    free(n);
}

/* Completion order of the jobs of submit_later_..., by their index. */
typedef struct order {
    int done[8];
    int n;
} order;

static void note_order(ld_wjob *job)
{
    order *o = job->arg;
    o->done[o->n++] = job->json[7] - '0'; /* {"Id":"<i>"} */
}

static void submit_later_hands_a_pipeline_to_the_writer_as_one_group_in_order(void **state)
{
    fx *f = *state;
    ld_node *n = calloc(1, sizeof *n);
    assert_non_null(n);
    assert_int_equal(evthread_use_pthreads(), 0);
    n->base = event_base_new();
    assert_non_null(n->base);
    pthread_mutex_init(&n->done.mu, NULL);
    n->done.ev = event_new(n->base, -1, 0, ld_completions_run, n);
    n->done.later_ev = event_new(n->base, -1, 0, ld_completions_submit_later, n);
    assert_non_null(n->done.ev);
    assert_non_null(n->done.later_ev);
    ld_db_env saved = f->env;
    f->env.complete = ld_completions_post;
    f->env.complete_ctx = n;
    ld_db_state before;
    ld_db_state_get(f->db, &before);

    /* Eight writes, the fourth refused (the key may not create): it fails alone, in its place. */
    order o = {0};
    ld_wjob *j[8];
    for (int i = 0; i < 8; i++) {
        char id[2] = {(char)('0' + i), 0}, json[16];
        snprintf(json, sizeof json, "{\"Id\":\"%d\"}", i);
        j[i] = ld_wjob_new(LD_W_PUT, note_order, &o);
        assert_non_null(j[i]);
        j[i]->collection = strdup("c");
        j[i]->id = strdup(id);
        j[i]->json = strdup(json);
        j[i]->json_len = strlen(json);
        j[i]->may_create = j[i]->may_update = i != 3;
        ld_node_submit_later(n, f->db, j[i]);
    }
    assert_int_equal(n->inflight, 8);
    /* Held on the loop until its pass runs: the writer has not seen any of them. */
    ld_db_state mid;
    ld_db_state_get(f->db, &mid);
    assert_int_equal(mid.commits, before.commits);
    struct timeval tick = {0, 10000};
    for (int i = 0; i < 500 && o.n < 8; i++) {
        assert_int_equal(event_base_loopexit(n->base, &tick), 0);
        assert_true(event_base_dispatch(n->base) >= 0);
    }
    assert_int_equal(o.n, 8);
    assert_int_equal(n->inflight, 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(o.done[i], i);
    uint64_t seq = 0;
    for (int i = 0; i < 8; i++) {
        if (i == 3) {
            assert_int_equal(j[i]->result, LD_WR_NEED_CREATE);
        } else {
            assert_int_equal(j[i]->result, LD_WR_OK);
            assert_true(j[i]->seq == seq + 1); /* in submission order, no gap */
            seq = j[i]->seq;
        }
        ld_wjob_free(j[i]);
    }
    ld_db_state after;
    ld_db_state_get(f->db, &after);
    assert_int_equal(after.commits, before.commits + 1); /* one group, one commit */
    assert_int_equal(after.last_seq, before.last_seq + 7);

    f->env.complete = saved.complete;
    f->env.complete_ctx = saved.complete_ctx;
    event_free(n->done.ev);
    event_free(n->done.later_ev);
    pthread_mutex_destroy(&n->done.mu);
    event_base_free(n->base);
    free(n);
}

/* ---------------------------------------------------------------------------------------------
 * Conflict policies
 * ------------------------------------------------------------------------------------------- */

typedef struct remote {
    const ld_op_rec *op;
    ld_conflict_policy policy;
    ld_ingest_outcome outcome;
} remote;

static ld_status remote_apply(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job)
{
    remote *rm = job->ctx;
    job->result = LD_WR_OK;
    return ld_apply_remote(db, t, pending, rm->op, rm->policy, &rm->outcome);
}

/* Ingests op through the writer and returns what the merge did. */
static ld_ingest_outcome ingest(fx *f, const ld_op_rec *op, ld_conflict_policy policy)
{
    remote rm = {.op = op, .policy = policy};
    int before = f->completed;
    ld_wjob *j = custom_job(remote_apply, &rm);
    ld_writer_submit(f->db->writer, j);
    wait_completed(f, before + 1);
    assert_int_equal(j->result, LD_WR_OK);
    ld_wjob_free(j);
    return rm.outcome;
}

/* Writes c/id locally; returns its stamp. */
static uint64_t local_put(fx *f, const char *id, const char *json)
{
    int before = f->completed;
    ld_wjob *j = put_job(id, json);
    ld_writer_submit(f->db->writer, j);
    wait_completed(f, before + 1);
    assert_int_equal(j->result, LD_WR_OK);
    uint64_t hlc = j->hlc;
    ld_wjob_free(j);
    return hlc;
}

static ld_op_rec op_from(const char *origin, uint64_t origin_seq, uint64_t hlc, const char *id,
                         const char *json, uint8_t fill)
{
    ld_op_rec op = {.op_type = LD_OP_UPDATE,
                    .hlc = hlc,
                    .origin_seq = origin_seq,
                    .origin = origin,
                    .origin_len = strlen(origin),
                    .collection = "c",
                    .collection_len = 1,
                    .doc_id = id,
                    .doc_id_len = strlen(id),
                    .payload = json,
                    .payload_len = strlen(json)};
    memset(op.id, fill, LD_OP_ID_LEN);
    return op;
}

/* For each policy: an op older than the local write, one newer, and one with the same clock
 * from an origin that sorts after this node's id ("p" > "n1"). */
typedef struct policy_case {
    ld_conflict_policy policy;
    bool older_wins, newer_wins, tie_wins;
} policy_case;

static void check_policy(fx *f, policy_case pc)
{
    static const char *const local = "{\"Id\":\"d\",\"v\":\"local\"}";
    uint64_t seq = 0, last_before;
    ld_db_state s;
    struct {
        int64_t delta; /* from the local stamp */
        bool wins;
    } arrivals[] = {{-(int64_t)(1000 << 16), pc.older_wins},
                    {(int64_t)1000 << 16, pc.newer_wins},
                    {0, pc.tie_wins}};
    for (size_t i = 0; i < 3; i++) {
        char id[8];
        snprintf(id, sizeof id, "d%zu", i);
        uint64_t h = local_put(f, id, local);
        char json[64];
        snprintf(json, sizeof json, "{\"Id\":\"%s\",\"v\":\"incoming\"}", id);
        ld_op_rec op =
            op_from("p", ++seq, h + (uint64_t)arrivals[i].delta, id, json, (uint8_t)(0xa0 + i));
        ld_db_state_get(f->db, &s);
        last_before = s.last_seq;
        ld_ingest_outcome out = ingest(f, &op, pc.policy);
        assert_int_equal(out, arrivals[i].wins ? LD_INGEST_APPLIED : LD_INGEST_LOGGED);
        uint8_t version[LD_OP_ID_LEN];
        char *got = stored(f, id, version, NULL);
        assert_non_null(got);
        if (arrivals[i].wins) {
            assert_string_equal(got, json);
            assert_memory_equal(version, op.id, LD_OP_ID_LEN);
        } else {
            assert_string_equal(got, local);
        }
        free(got);
        /* Logged either way (so it is relayed), and VV[p] advanced. */
        ld_db_state_get(f->db, &s);
        assert_int_equal(s.last_seq, last_before + 1);
        /* The same op again is a duplicate; one from further ahead is a gap. */
        assert_int_equal(ingest(f, &op, pc.policy), LD_INGEST_DUP);
        ld_op_rec ahead = op_from("p", seq + 2, h, id, json, 0x11);
        assert_int_equal(ingest(f, &ahead, pc.policy), LD_INGEST_GAP);
    }
    /* With no local document every policy takes the incoming one. */
    ld_op_rec fresh = op_from("p", ++seq, 1, "new", "{\"Id\":\"new\"}", 0x55);
    assert_int_equal(ingest(f, &fresh, pc.policy), LD_INGEST_APPLIED);
    expect_doc(f, "new", "{\"Id\":\"new\"}");
}

static void last_writer_wins_takes_the_greater_stamp(void **state)
{
    check_policy(*state, (policy_case){LD_POLICY_LWW, false, true, true});
}

static void apply_incoming_takes_whatever_arrives(void **state)
{
    check_policy(*state, (policy_case){LD_POLICY_APPLY_INCOMING, true, true, true});
}

static void keep_local_keeps_any_local_document(void **state)
{
    check_policy(*state, (policy_case){LD_POLICY_KEEP_LOCAL, false, false, false});
}

static void apply_incoming_ignores_its_own_version_again(void **state)
{
    /* An op whose version the document already has (it came another way) changes nothing. */
    fx *f = *state;
    ld_op_rec op = op_from("p", 1, 5, "same", "{\"Id\":\"same\"}", 0x77);
    assert_int_equal(ingest(f, &op, LD_POLICY_APPLY_INCOMING), LD_INGEST_APPLIED);
    ld_op_rec relayed = op_from("q", 1, 5, "same", "{\"Id\":\"same\",\"x\":1}", 0x77);
    assert_int_equal(ingest(f, &relayed, LD_POLICY_APPLY_INCOMING), LD_INGEST_LOGGED);
    expect_doc(f, "same", "{\"Id\":\"same\"}");
}

/* ---------------------------------------------------------------------------------------------
 * A restored database (litedistd restore, docs/backup.md)
 * ------------------------------------------------------------------------------------------- */

static uint64_t vv_of(fx *f, const char *origin)
{
    ld_txn t;
    assert_int_equal(ld_txn_begin(&f->store, f->db->st, false, &t), LD_OK);
    const void *v;
    size_t vl;
    uint64_t seq = 0;
    if (ld_txn_get(&t, LD_SPACE_VV, origin, strlen(origin), &v, &vl) == LD_OK && vl == 8)
        seq = ld_be64_get(v);
    ld_txn_abort(&t);
    return seq;
}

static void put_and_keep(fx *f, const char *id, ld_wjob **out)
{
    int before = f->completed;
    *out = put_job(id, "{}");
    ld_writer_submit(f->db->writer, *out);
    wait_completed(f, before + 1);
    assert_int_equal((*out)->result, LD_WR_OK);
}

/* Opened under the restored directory's incarnation, a database of the backup is taken over:
 * its writes carry the new origin from sequence 1, the old one stays a version vector entry, and
 * its log continues past the restore's base (the old life's entries are below it). */
static void a_restored_database_writes_under_its_new_origin_past_the_old_log(void **state)
{
    fx *f = *state;
    char old_inc[] = "0123456789abcdef0123456789abcdef",
         new_inc[] = "fedcba9876543210fedcba9876543210";
    assert_int_equal(ld_db_close(f->db, true), LD_OK);
    f->env.incarnation = old_inc;
    assert_int_equal(ld_db_open(&f->env, "t", &f->db), LD_OK);
    ld_wjob *j;
    for (int i = 0; i < 3; i++) {
        put_and_keep(f, i == 0 ? "a" : i == 1 ? "b" : "c", &j);
        ld_wjob_free(j);
    }
    assert_int_equal(vv_of(f, "n1"), 3);
    assert_int_equal(ld_db_close(f->db, false), LD_OK);

    /* Another incarnation that does not name this one as its backup refuses the database. */
    f->env.incarnation = new_inc;
    f->db = NULL;
    assert_int_equal(ld_db_open(&f->env, "t", &f->db), LD_INVALID);

    f->env.restored_from = old_inc;
    f->env.origin = "n1.fedcba98";
    uint64_t base = ld_restored_log_base((uint64_t)time(NULL) - 1);
    assert_int_equal(ld_db_open(&f->env, "t", &f->db), LD_OK);
    put_and_keep(f, "d", &j);
    assert_int_equal(j->origin_seq, 1);
    assert_true(j->seq > base);
    ld_wjob_free(j);
    assert_int_equal(vv_of(f, "n1.fedcba98"), 1);
    assert_int_equal(vv_of(f, "n1"), 3);
    /* Counted from positions, the log holds its 3 old entries and the new one, not the jump. */
    ld_db_state s;
    ld_db_state_get(f->db, &s);
    assert_int_equal(s.skip_from, 3);
    assert_int_equal(ld_log_span(&s, 0, s.last_seq), 4);
    assert_int_equal(ld_log_span(&s, 2, s.last_seq), 2);
    assert_int_equal(ld_log_span(&s, s.skip_to, s.last_seq), 1);
    f->env.origin = NULL;
    f->env.restored_from = NULL;
    f->env.incarnation = NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Node.CacheDurability everysec: which commits are lazy, and the flush that follows them
 * ------------------------------------------------------------------------------------------- */

static ld_wjob *cache_put_job(const char *key)
{
    ld_wjob *j = put_job(key, "{}");
    free(j->collection);
    j->collection = strdup("cache");
    assert_non_null(j->collection);
    return j;
}

/* Submits j alone and waits for it; returns it (the caller frees it). */
static ld_wjob *run_alone(fx *f, ld_wjob *j)
{
    int before = f->completed;
    ld_writer_submit(f->db->writer, j);
    wait_completed(f, before + 1);
    assert_int_equal(j->result, LD_WR_OK);
    return j;
}

static void flush_state(fx *f, uint64_t *flushes, bool *unflushed)
{
    pthread_mutex_lock(&f->db->mu);
    *flushes = f->db->cache_flushes;
    *unflushed = f->db->cache_unflushed;
    pthread_mutex_unlock(&f->db->mu);
}

/* Under everysec a cache write commits lazily and the writer itself makes it durable within
 * the interval: a commit of the state alone (the commit count grows, the log does not), counted
 * as a flush. A document write stays durable and, with nothing waiting, is no flush. */
static void everysec_cache_writes_are_lazy_and_flushed_within_the_interval(void **state)
{
    fx *f = *state;
    if (!ld_store_can_lazy(&f->store)) { /* before ABI 1.1: every commit durable, nothing to do */
        f->env.cache_everysec = true;
        ld_wjob *j = run_alone(f, cache_put_job("k1"));
        assert_false(j->committed_lazy);
        ld_wjob_free(j);
        f->env.cache_everysec = false;
        skip();
    }
    f->env.cache_everysec = true;
    ld_wjob *j = run_alone(f, cache_put_job("k1"));
    assert_true(j->committed_lazy);
    ld_wjob_free(j);
    uint64_t flushes;
    bool unflushed;
    flush_state(f, &flushes, &unflushed);
    assert_int_equal(flushes, 0);
    assert_true(unflushed);
    ld_db_state before;
    ld_db_state_get(f->db, &before);
    /* Bounded: 3 intervals, polled every 10 ms. */
    uint64_t t0 = ld_mono_us();
    for (int i = 0; i < 300 && (flushes == 0 || unflushed); i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        flush_state(f, &flushes, &unflushed);
    }
    assert_int_equal(flushes, 1);
    assert_false(unflushed);
    assert_true(ld_mono_us() - t0 <= 3 * (uint64_t)LD_CACHE_FLUSH_INTERVAL_US);
    ld_db_state after;
    ld_db_state_get(f->db, &after);
    assert_int_equal(after.commits, before.commits + 1);
    assert_int_equal(after.last_seq, before.last_seq);
    pthread_mutex_lock(&f->db->mu);
    assert_true(f->db->cache_flush_ms > 0);
    pthread_mutex_unlock(&f->db->mu);

    j = run_alone(f, put_job("doc", "{}"));
    assert_false(j->committed_lazy);
    ld_wjob_free(j);
    flush_state(f, &flushes, &unflushed);
    assert_int_equal(flushes, 1);
    assert_false(unflushed);
    f->env.cache_everysec = false;
}

/* A group holding an everysec cache write and a document write commits durably: the cache
 * write rides on the document's fsync and reports full. */
static void a_mixed_group_commits_durably(void **state)
{
    fx *f = *state;
    f->env.cache_everysec = true;
    gate g = {.entered = false, .open = false};
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    int before = f->completed;
    ld_wjob *gj = custom_job(gate_apply, &g);
    ld_writer_submit(f->db->writer, gj);
    pthread_mutex_lock(&g.mu);
    while (!g.entered)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    ld_wjob *c = cache_put_job("k"), *d = put_job("d", "{}");
    ld_writer_submit(f->db->writer, c);
    ld_writer_submit(f->db->writer, d);
    pthread_mutex_lock(&g.mu);
    g.open = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    wait_completed(f, before + 3);
    assert_int_equal(c->result, LD_WR_OK);
    assert_int_equal(d->result, LD_WR_OK);
    assert_int_equal(c->seq + 1, d->seq); /* one group, in order */
    assert_false(c->committed_lazy);
    assert_false(d->committed_lazy);
    uint64_t flushes;
    bool unflushed;
    flush_state(f, &flushes, &unflushed);
    assert_false(unflushed);
    assert_int_equal(flushes, 0);
    ld_wjob_free(gj);
    ld_wjob_free(c);
    ld_wjob_free(d);
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
    f->env.cache_everysec = false;
}

/* A background job (a prune, purge or sweep batch) is a group of its own: queued between two
 * clients' writes, it commits alone and lazily, and neither write commits its work. */
static ld_status noop_apply(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job)
{
    (void)db;
    (void)t;
    (void)pending;
    job->result = LD_WR_OK;
    return LD_OK;
}

static void a_background_job_commits_in_a_group_of_its_own(void **state)
{
    fx *f = *state;
    gate g = {.entered = false, .open = false};
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    int before = f->completed;
    ld_db_state s0;
    ld_db_state_get(f->db, &s0);
    ld_wjob *gj = custom_job(gate_apply, &g);
    ld_writer_submit(f->db->writer, gj);
    pthread_mutex_lock(&g.mu);
    while (!g.entered)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    ld_wjob *a = put_job("a", "{}"), *bg = custom_job(noop_apply, NULL), *b = put_job("b", "{}");
    bg->lazy = bg->background = true;
    ld_writer_submit(f->db->writer, a);
    ld_writer_submit(f->db->writer, bg);
    ld_writer_submit(f->db->writer, b);
    pthread_mutex_lock(&g.mu);
    g.open = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    wait_completed(f, before + 4);
    assert_int_equal(a->result, LD_WR_OK);
    assert_int_equal(bg->result, LD_WR_OK);
    assert_int_equal(b->result, LD_WR_OK);
    ld_db_state s1;
    ld_db_state_get(f->db, &s1);
    assert_int_equal(s1.commits, s0.commits + 4); /* the gate, a, the background job, b */
    assert_int_equal(a->seq + 1, b->seq);
    assert_false(a->committed_lazy);
    assert_false(b->committed_lazy);
    assert_true(bg->committed_lazy == ld_store_can_lazy(&f->store));
    ld_wjob_free(gj);
    ld_wjob_free(a);
    ld_wjob_free(bg);
    ld_wjob_free(b);
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
}

/* Under full (the default) a cache write commits durably; under everysec, a writer that stops
 * flushes what waits before its thread ends. */
static void full_is_durable_and_a_stopping_writer_flushes(void **state)
{
    fx *f = *state;
    ld_wjob *j = run_alone(f, cache_put_job("k1"));
    assert_false(j->committed_lazy);
    ld_wjob_free(j);
    f->env.cache_everysec = true;
    j = run_alone(f, cache_put_job("k2"));
    assert_true(j->committed_lazy == ld_store_can_lazy(&f->store));
    ld_wjob_free(j);
    ld_writer_free(f->db->writer); /* well within the interval */
    f->db->writer = NULL;
    uint64_t flushes;
    bool unflushed;
    flush_state(f, &flushes, &unflushed);
    assert_int_equal(flushes, ld_store_can_lazy(&f->store) ? 1 : 0);
    assert_false(unflushed);
    f->env.cache_everysec = false;
    f->db->writer = ld_writer_new(f->db);
    assert_non_null(f->db->writer);
}

#define FX_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <storage plugin .so>\n", argv[0]);
        return 2;
    }
    g_plugin = argv[1];
    const struct CMUnitTest tests[] = {
        FX_TEST(a_failing_job_fails_alone_when_its_group_is_retried),
        FX_TEST(a_transient_fault_is_absorbed_by_the_retry),
        FX_TEST(a_writer_without_memory_for_its_group_still_commits),
        FX_TEST(node_submit_counts_the_job_until_its_completion_runs),
        FX_TEST(submit_later_hands_a_pipeline_to_the_writer_as_one_group_in_order),
        FX_TEST(an_unknown_status_fails_the_write_like_an_internal_error),
        FX_TEST(last_writer_wins_takes_the_greater_stamp),
        FX_TEST(apply_incoming_takes_whatever_arrives),
        FX_TEST(keep_local_keeps_any_local_document),
        FX_TEST(apply_incoming_ignores_its_own_version_again),
        FX_TEST(a_restored_database_writes_under_its_new_origin_past_the_old_log),
        FX_TEST(everysec_cache_writes_are_lazy_and_flushed_within_the_interval),
        FX_TEST(a_mixed_group_commits_durably),
        FX_TEST(full_is_durable_and_a_stopping_writer_flushes),
        FX_TEST(a_background_job_commits_in_a_group_of_its_own),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
