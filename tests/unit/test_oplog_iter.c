/* Unit tests of the op-log iterator (core/repl/oplog.h) on a real storage plugin (argv[1]): it
 * walks the entries in LogSequence order from where it is told, decoded, stops at the end, and
 * reports an entry that does not decode rather than skip it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db_fixture.h"
#include "repl/oplog.h"

static const char *g_plugin;

static int fx_setup(void **state)
{
    return ld_tdb_setup(state, g_plugin, "oplog", true);
}

static int fx_teardown(void **state)
{
    return ld_tdb_teardown(state);
}

/* Writes d0..d<n-1> in collection c: LogSequences 1..n. */
static void fill(ld_tdb *f, int n)
{
    for (int i = 0; i < n; i++) {
        char id[16], json[64];
        snprintf(id, sizeof id, "d%d", i);
        snprintf(json, sizeof json, "{\"Id\":\"d%d\",\"n\":%d}", i, i);
        ld_tdb_write(f, "c", id, json);
    }
}

static void walks_every_entry_in_order_from_where_it_is_told(void **state)
{
    ld_tdb *f = *state;
    fill(f, 5);
    ld_tdb_write(f, "c", "d1", NULL); /* a delete: entry 6 */
    ld_txn t;
    assert_int_equal(ld_txn_begin(&f->store, f->db->st, false, &t), LD_OK);
    ld_oplog_iter it;
    ld_status st = ld_oplog_iter_seek(&t, 3, &it);
    uint64_t want = 3;
    for (; st == LD_OK; st = ld_oplog_iter_next(&it), want++) {
        assert_int_equal(it.seq, want);
        assert_int_equal(it.op.origin_seq, want);
        assert_int_equal(it.op.origin_len, 2);
        assert_memory_equal(it.op.origin, "n1", 2);
        assert_int_equal(it.op.collection_len, 1);
        assert_true(it.bytes > 8);
        char id[16];
        snprintf(id, sizeof id, "d%d", want == 6 ? 1 : (int)want - 1);
        assert_int_equal(it.op.doc_id_len, strlen(id));
        assert_memory_equal(it.op.doc_id, id, strlen(id));
        assert_int_equal(it.op.op_type, want == 6 ? LD_OP_DELETE : LD_OP_INSERT);
    }
    assert_int_equal(st, LD_NOT_FOUND);
    assert_int_equal(want, 7);
    ld_oplog_iter_close(&it);
    /* Past the end, and before the first entry. */
    assert_int_equal(ld_oplog_iter_seek(&t, 7, &it), LD_NOT_FOUND);
    ld_oplog_iter_close(&it);
    assert_int_equal(ld_oplog_iter_seek(&t, 0, &it), LD_OK);
    assert_int_equal(it.seq, 1);
    ld_oplog_iter_close(&it);
    ld_oplog_iter_close(&it); /* twice is harmless */
    ld_txn_abort(&t);
}

static void an_empty_log_has_no_entry(void **state)
{
    ld_tdb *f = *state;
    ld_txn t;
    assert_int_equal(ld_txn_begin(&f->store, f->db->st, false, &t), LD_OK);
    ld_oplog_iter it;
    ld_status st = ld_oplog_iter_seek(&t, 1, &it);
    assert_true(st == LD_NOT_FOUND);
    ld_oplog_iter_close(&it);
    ld_txn_abort(&t);
}

/* A bad entry stops the walk with LD_CORRUPT where it is: the entries before it come first. */
static ld_status put_bad(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job)
{
    (void)db;
    (void)pending;
    job->result = LD_WR_OK;
    uint8_t key[8];
    ld_be64_put(key, 3);
    return ld_txn_put(t, LD_SPACE_LOG, key, 8, "junk", 4);
}

static void an_entry_that_does_not_decode_is_reported(void **state)
{
    ld_tdb *f = *state;
    fill(f, 4);
    ld_tdb_run(f, put_bad, NULL);
    ld_txn t;
    assert_int_equal(ld_txn_begin(&f->store, f->db->st, false, &t), LD_OK);
    ld_oplog_iter it;
    assert_int_equal(ld_oplog_iter_seek(&t, 1, &it), LD_OK);
    assert_int_equal(it.seq, 1);
    assert_int_equal(ld_oplog_iter_next(&it), LD_OK);
    assert_int_equal(it.seq, 2);
    assert_int_equal(ld_oplog_iter_next(&it), LD_CORRUPT);
    ld_oplog_iter_close(&it);
    assert_int_equal(ld_oplog_iter_seek(&t, 3, &it), LD_CORRUPT);
    ld_oplog_iter_close(&it);
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
        FX(walks_every_entry_in_order_from_where_it_is_told),
        FX(an_empty_log_has_no_entry),
        FX(an_entry_that_does_not_decode_is_reported),
    };
    return cmocka_run_group_tests_name("op-log iterator", tests, NULL, NULL);
}
