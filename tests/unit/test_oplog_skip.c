/* Unit tests of what a batch read skips (core/repl/oplog.h) and of the log's version-vector marks
 * that let it step over stretches a peer holds (core/db/logvv.h), on a real storage plugin
 * (argv[1]): for random logs of several origins and random peer version vectors, the ops read
 * are exactly those the peer lacks, and a covered log is crossed in a few reads: the marks are
 * searched (about 2 log2 n reads), not walked one by one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db/apply.h"
#include "db/logvv.h"
#include "db_fixture.h"
#include "repl/oplog.h"

static const char *g_plugin;

#define ORIGINS 4
static const char *const origin_names[ORIGINS] = {"n1", "a", "bb", "c"}; /* n1: this node */

/* The generated log: entry i (LogSequence first + i) is origin[i]'s op origin_seq[i]. */
typedef struct gen_log {
    uint64_t first;
    size_t n;
    int origin[4096];
    uint64_t origin_seq[4096];
    uint64_t count[ORIGINS]; /* ops per origin */
    unsigned seed;
} gen_log;

static int fx_setup(void **state)
{
    return ld_tdb_setup(state, g_plugin, "oplogskip", true);
}

static int fx_teardown(void **state)
{
    return ld_tdb_teardown(state);
}

/* Applies the ops of g from index *from on, as one transaction of the writer. */
typedef struct gen_job {
    gen_log *g;
    size_t from, to;
} gen_job;

static ld_status gen_apply(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job)
{
    gen_job *gj = job->ctx;
    job->result = LD_WR_OK;
    for (size_t i = gj->from; i < gj->to; i++) {
        const char *origin = origin_names[gj->g->origin[i]];
        char id[32], json[96];
        snprintf(id, sizeof id, "d%zu", i % 97);
        snprintf(json, sizeof json, "{\"Id\":\"%s\",\"i\":%zu}", id, i);
        ld_op_rec op = {.op_type = LD_OP_UPDATE,
                        .hlc = 1000 + i,
                        .origin_seq = gj->g->origin_seq[i],
                        .origin = origin,
                        .origin_len = strlen(origin),
                        .collection = "c",
                        .collection_len = 1,
                        .doc_id = id,
                        .doc_id_len = strlen(id),
                        .payload = json,
                        .payload_len = strlen(json)};
        memset(op.id, 0, LD_OP_ID_LEN);
        memcpy(op.id, &i, sizeof i);
        op.id[LD_OP_ID_LEN - 1] = 1;
        ld_ingest_outcome outcome;
        ld_status st = ld_apply_remote(db, t, pending, &op, LD_POLICY_LWW, &outcome);
        if (st != LD_OK) return st;
        if (outcome == LD_INGEST_DUP || outcome == LD_INGEST_GAP) return LD_CORRUPT;
    }
    return LD_OK;
}

/* n ops after `local` local writes (which take LogSequences 1..local): origins drawn with
 * uneven weights, in runs, and one origin's ops alone here and there; each origin's seqs
 * contiguous; committed in a few transactions. */
static void make_log(ld_tdb *f, gen_log *g, size_t local, size_t n, unsigned seed)
{
    memset(g, 0, sizeof *g);
    g->seed = seed;
    for (size_t i = 0; i < local; i++) {
        char id[32], json[64];
        snprintf(id, sizeof id, "l%zu", i);
        snprintf(json, sizeof json, "{\"Id\":\"l%zu\"}", i);
        ld_tdb_write(f, "c", id, json);
    }
    g->count[0] = local;
    g->first = local + 1;
    g->n = n;
    srand(seed);
    int cur = 1;
    for (size_t i = 0; i < n; i++) {
        if (rand() % 40 == 0) cur = rand() % 10 < 7 ? 1 + rand() % 2 : 0;
        /* Origin "c" writes rarely: single ops, often alone between two marks. */
        int o = rand() % 150 == 0 ? 3 : cur;
        g->origin[i] = o;
        g->origin_seq[i] = ++g->count[o];
    }
    for (size_t from = 0; from < n; from += 700) {
        gen_job gj = {g, from, from + 700 < n ? from + 700 : n};
        ld_tdb_run(f, gen_apply, &gj);
    }
}

/* Reads the whole log as a peer with version vector have[] (have[o] < 0: absent) skipping
 * skip_origin's ops; checks the ops read are exactly the ones it lacks; returns the reads. */
static int walk_and_check(ld_tdb *f, const gen_log *g, const long long have[ORIGINS],
                          int skip_origin, size_t max_ops)
{
    json_t *vv = json_object();
    for (int o = 0; o < ORIGINS; o++)
        if (have[o] >= 0) json_object_set_new(vv, origin_names[o], json_integer(have[o]));
    uint64_t total = g->first - 1 + g->n;
    unsigned char *seen = calloc(total + 1, 1);
    assert_non_null(seen);
    uint64_t after = 0;
    int reads = 0;
    for (;;) {
        assert_true(reads < 10000); /* bounded: the walk always moves */
        ld_oplog_batch b;
        assert_int_equal(ld_oplog_read(f->db, after, max_ops, 1 << 20,
                                       skip_origin >= 0 ? origin_names[skip_origin] : NULL, vv,
                                       false, false, &b),
                         LD_OK);
        reads++;
        for (size_t i = 0; i < b.n; i++) {
            assert_true(b.seqs[i] > after && b.seqs[i] <= total);
            assert_false(seen[b.seqs[i]]);
            seen[b.seqs[i]] = 1;
        }
        assert_true(b.n <= max_ops);
        assert_true(b.scanned >= after);
        bool more = b.more;
        assert_true(!more || b.scanned > after);
        after = b.scanned;
        ld_oplog_batch_free(&b);
        if (!more) break;
    }
    for (uint64_t s = 1; s <= total; s++) {
        int o = 0;
        uint64_t os = s;
        if (s >= g->first) {
            o = g->origin[s - g->first];
            os = g->origin_seq[s - g->first];
        }
        bool want = o != skip_origin && (have[o] < 0 || os > (uint64_t)have[o]);
        if (want != (bool)seen[s])
            fail_msg("seed %u: entry %llu (origin %s seq %llu) %s", g->seed, (unsigned long long)s,
                     origin_names[o], (unsigned long long)os,
                     want ? "was not read" : "was read though the peer holds it");
    }
    free(seen);
    json_decref(vv);
    return reads;
}

static gen_log g_log;

static void reads_exactly_what_a_peer_lacks(void **state)
{
    ld_tdb *f = *state;
    gen_log *g = &g_log;
    make_log(f, g, 300, 3500, 7);
    unsigned seed = 11;
    for (int trial = 0; trial < 60; trial++) {
        long long have[ORIGINS];
        srand(seed + (unsigned)trial);
        for (int o = 0; o < ORIGINS; o++) {
            int r = rand() % 5;
            /* Mostly covered, sometimes short by a little or a lot, or absent. */
            have[o] = r < 2    ? (long long)g->count[o]
                      : r == 2 ? (long long)(g->count[o] * (unsigned)(rand() % 100) / 100)
                      : r == 3 ? (long long)g->count[o] - rand() % 3
                               : (rand() % 4 ? (long long)g->count[o] + 5 : -1);
            if (have[o] < -1) have[o] = 0;
        }
        int skip = rand() % 3 == 0 ? rand() % ORIGINS : -1;
        walk_and_check(f, g, have, skip, (size_t)(1 + rand() % 300));
    }
}

/* Removes the marks up to *ctx, as a prune does. */
static ld_status prune_marks(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job)
{
    (void)db;
    (void)pending;
    job->result = LD_WR_OK;
    return ld_logvv_prune(t, *(uint64_t *)job->ctx);
}

static void a_covered_log_is_crossed_by_its_marks(void **state)
{
    ld_tdb *f = *state;
    gen_log *g = &g_log;
    make_log(f, g, 10, 3800, 3);
    long long have[ORIGINS];
    for (int o = 0; o < ORIGINS; o++)
        have[o] = (long long)g->count[o];
    /* 100 ops asked for: at most 1,000 entries or marks looked at per read. Entry by entry, the
     * 3,810 entries would take 4 reads; by the marks, one (255 entries, then 14 marks). */
    assert_int_equal(walk_and_check(f, g, have, -1, 100), 1);
    /* The peer lacks one op of origin "bb": the walk reads it, and still steps over the rest. */
    size_t last_bb = 0;
    for (size_t i = 0; i < g->n; i++)
        if (g->origin[i] == 2) last_bb = i;
    have[2] = (long long)g->origin_seq[last_bb] - 1;
    assert_int_equal(walk_and_check(f, g, have, -1, 100), 1);
    /* Without marks (a log written before them), the read looks at 1,000 entries at most: the
     * covered log takes one read per 1,000 entries, each answering where it stopped. */
    have[2] = (long long)g->count[2];
    uint64_t all = UINT64_MAX;
    ld_tdb_run(f, prune_marks, &all);
    uint64_t total = g->first - 1 + g->n;
    assert_int_equal(walk_and_check(f, g, have, -1, 100), (int)((total + 999) / 1000));
}

/* Marks: one per LD_LOGVV_EVERY positions, each the VV as of its entry; pruned ones go. */
static void marks_hold_the_vv_at_their_entry_and_are_pruned(void **state)
{
    ld_tdb *f = *state;
    gen_log *g = &g_log;
    make_log(f, g, 5, 2 * LD_LOGVV_EVERY + 10, 5);
    ld_txn t;
    assert_int_equal(ld_txn_begin(&f->store, f->db->st, false, &t), LD_OK);
    for (uint64_t s = 1; s <= g->first - 1 + g->n; s++) {
        const void *v;
        size_t vl;
        uint8_t key[8];
        ld_be64_put(key, s);
        ld_status st = ld_txn_get(&t, LD_SPACE_LOGVV, key, 8, &v, &vl);
        assert_int_equal(st, s % LD_LOGVV_EVERY == 0 ? LD_OK : LD_NOT_FOUND);
        if (st != LD_OK) continue;
        /* The VV as of entry s: each origin's count among entries 1..s. */
        uint64_t want[ORIGINS] = {0};
        for (uint64_t e = 1; e <= s; e++)
            if (e < g->first)
                want[0]++;
            else
                want[g->origin[e - g->first]]++;
        size_t off = 0;
        int seen = 0;
        const uint8_t *p = v;
        while (off < vl) {
            size_t len = p[off++];
            int o = 0;
            while (o < ORIGINS &&
                   (strlen(origin_names[o]) != len || memcmp(origin_names[o], p + off, len) != 0))
                o++;
            assert_true(o < ORIGINS);
            assert_int_equal(ld_be64_get(p + off + len), want[o]);
            off += len + 8;
            seen++;
        }
        int nonzero = 0;
        for (int o = 0; o < ORIGINS; o++)
            nonzero += want[o] > 0;
        assert_int_equal(seen, nonzero);
    }
    ld_txn_abort(&t);
    uint64_t through = LD_LOGVV_EVERY + 3;
    ld_tdb_run(f, prune_marks, &through);
    assert_int_equal(ld_txn_begin(&f->store, f->db->st, false, &t), LD_OK);
    ld_cursor c;
    assert_int_equal(ld_cursor_open(&t, LD_SPACE_LOGVV, &c), LD_OK);
    const void *k, *v;
    size_t kl, vl;
    assert_int_equal(ld_cursor_next(&c, &k, &kl, &v, &vl), LD_OK);
    assert_int_equal(ld_be64_get(k), 2 * LD_LOGVV_EVERY); /* the first is gone */
    assert_int_equal(ld_cursor_next(&c, &k, &kl, &v, &vl), LD_NOT_FOUND);
    ld_cursor_close(&c);
    ld_txn_abort(&t);
}

/* Synthetic marks for a log of MARKS * LD_LOGVV_EVERY entries of two origins: at mark i, "a"
 * has i * 200 ops and "n1" the rest; marks in holes[] are left out (a log whose marks have gaps,
 * as after a version without them). */
#define MARKS 3906 /* a 1,000,000-entry log */
static const uint64_t holes[] = {7, 8, 9, 1000, 2500};

static bool is_hole(uint64_t i)
{
    for (size_t h = 0; h < sizeof holes / sizeof holes[0]; h++)
        if (holes[h] == i) return true;
    return false;
}

static ld_status put_marks(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job)
{
    (void)db;
    (void)pending;
    (void)job;
    job->result = LD_WR_OK;
    for (uint64_t i = 1; i <= MARKS; i++) {
        if (is_hole(i)) continue;
        uint64_t a = i * 200, self = i * LD_LOGVV_EVERY - a;
        uint8_t key[8], val[2 * (1 + 2 + 8)], *p = val;
        ld_be64_put(key, i * LD_LOGVV_EVERY);
        *p++ = 1, *p++ = 'a', ld_be64_put(p, a), p += 8;
        *p++ = 2, *p++ = 'n', *p++ = '1', ld_be64_put(p, self), p += 8;
        ld_status st = ld_txn_put(t, LD_SPACE_LOGVV, key, 8, val, (size_t)(p - val));
        if (st != LD_OK) return st;
    }
    return LD_OK;
}

/* Where a sequential walk over the marks from mark 1 stops for a peer holding `a` ops of "a"
 * and `self` of "n1": the last mark before the first whose VV the peer does not hold. */
static uint64_t walk_stops(uint64_t a, uint64_t self)
{
    uint64_t last = 1;
    for (uint64_t i = 2; i <= MARKS; i++) {
        if (is_hole(i)) continue;
        if (i * 200 > a || i * LD_LOGVV_EVERY - i * 200 > self) break;
        last = i;
    }
    return last * LD_LOGVV_EVERY;
}

static void the_marks_are_searched_not_walked(void **state)
{
    ld_tdb *f = *state;
    ld_tdb_run(f, put_marks, NULL);
    ld_txn t;
    assert_int_equal(ld_txn_begin(&f->store, f->db->st, false, &t), LD_OK);
    uint64_t top = (uint64_t)MARKS * LD_LOGVV_EVERY;
    /* The peer's "a" count decides where the walk stops; "n1" it holds whole. */
    const uint64_t as[] = {top, 200, 201, 399, 1999, 200 * 1001, 200 * 2499, 200 * MARKS - 1, 0};
    for (size_t i = 0; i < sizeof as / sizeof as[0]; i++) {
        json_t *vv = json_pack("{s:I, s:I}", "a", (json_int_t)as[i], "n1", (json_int_t)top);
        uint64_t to;
        size_t used;
        assert_int_equal(ld_logvv_skip(&t, LD_LOGVV_EVERY, NULL, vv, 10000, &to, &used), LD_OK);
        assert_int_equal(to, walk_stops(as[i], top));
        assert_true(used <= 2 * 22 + 2); /* about 2 log2(MARKS * 256), not MARKS */
        /* The peer's own origin is skipped whatever its VV says. */
        json_t *none = json_pack("{s:I}", "n1", (json_int_t)top);
        assert_int_equal(ld_logvv_skip(&t, LD_LOGVV_EVERY, "a", none, 10000, &to, &used), LD_OK);
        assert_int_equal(to, top);
        json_decref(none);
        /* A budget cuts the search short at a mark the walk reaches, never past it. */
        assert_int_equal(ld_logvv_skip(&t, LD_LOGVV_EVERY, NULL, vv, 5, &to, &used), LD_OK);
        assert_true(used <= 5);
        assert_true(to >= LD_LOGVV_EVERY && to <= walk_stops(as[i], top));
        json_decref(vv);
    }
    ld_txn_abort(&t);
}

#define FX(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <storage plugin .so>\n", argv[0]);
        return 2;
    }
    g_plugin = argv[1];
    const struct CMUnitTest tests[] = {
        FX(reads_exactly_what_a_peer_lacks),
        FX(a_covered_log_is_crossed_by_its_marks),
        FX(marks_hold_the_vv_at_their_entry_and_are_pruned),
        FX(the_marks_are_searched_not_walked),
    };
    return cmocka_run_group_tests_name("op-log skip", tests, NULL, NULL);
}
