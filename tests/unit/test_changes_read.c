/* Unit tests of the changes feed's log reader (core/repl/changes_read.c) on a real storage plugin
 * (argv[1]): cursors, the collection filter moving the cursor past what it skips, limits and
 * HasMore, current documents with line breaks blanked, and a cursor past the log's end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <unistd.h>

#include <cmocka.h>

#include <pthread.h>

#include <event2/buffer.h>

#include "db_fixture.h"
#include "repl/changes_read.h"

static const char *g_plugin;

typedef ld_tdb fx;

static int fx_setup(void **state)
{
    return ld_tdb_setup(state, g_plugin, "changes", true);
}

static int fx_teardown(void **state)
{
    return ld_tdb_teardown(state);
}

static void write_doc(fx *f, const char *coll, const char *id, const char *json)
{
    ld_tdb_write(f, coll, id, json);
}

/* Reads after `after` and returns the output as a string (malloc'd). */
static char *read_changes(fx *f, ld_changes_query *q, ld_changes_batch *b)
{
    b->out = evbuffer_new();
    assert_non_null(b->out);
    assert_int_equal(ld_changes_read(f->db, q, b), LD_OK);
    size_t n = evbuffer_get_length(b->out);
    char *s = malloc(n + 1);
    assert_non_null(s);
    evbuffer_remove(b->out, s, n);
    s[n] = '\0';
    evbuffer_free(b->out);
    b->out = NULL;
    return s;
}

static void cursors_parse_as_decimal_log_positions(void **state)
{
    (void)state;
    uint64_t v;
    assert_true(ld_changes_cursor_parse("0", &v) && v == 0);
    assert_true(ld_changes_cursor_parse("18446744073709551615", &v) && v == UINT64_MAX);
    const char *bad[] = {"", "-1", "+1", " 1", "1a", "18446744073709551616", "now", NULL};
    for (size_t i = 0; bad[i]; i++)
        assert_false(ld_changes_cursor_parse(bad[i], &v));
    char s[21];
    ld_changes_cursor_str(42, s);
    assert_string_equal(s, "42");
}

static void the_filter_passes_over_entries_and_the_cursor_moves_past_them(void **state)
{
    fx *f = *state;
    write_doc(f, "a", "1", "{\"Id\":\"1\"}");
    write_doc(f, "b", "2", "{\"Id\":\"2\"}");
    write_doc(f, "cache", "k", "{\"Id\":\"k\"}");
    write_doc(f, "a", "1", NULL);
    char *only_b[] = {"b"};
    ld_changes_query q = {.after = 0, .max_changes = 10, .max_bytes = 1 << 20};
    ld_changes_batch b;
    char *s = read_changes(f, &q, &b);
    assert_int_equal(b.n, 3); /* the cache entry is passed over */
    assert_int_equal(b.last, 4);
    assert_int_equal(b.local_max, 4);
    assert_false(b.more);
    assert_non_null(strstr(s, "\"Id\":\"1\",\"Stamp\":\""));
    assert_non_null(strstr(s, "\"Deleted\":true,\"Cursor\":\"4\"}\n"));
    free(s);
    q.collections = only_b;
    q.n_collections = 1;
    s = read_changes(f, &q, &b);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.last, 4);
    assert_non_null(strstr(s, "\"Collection\":\"b\""));
    free(s);
    /* Limits: one change, more after it; the cache with include_cache. */
    q = (ld_changes_query){
        .after = 1, .max_changes = 1, .max_bytes = 1 << 20, .include_cache = true, .comma = true};
    s = read_changes(f, &q, &b);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.last, 2);
    assert_true(b.more);
    assert_int_equal(s[strlen(s) - 1], '}'); /* an array element: no line break */
    free(s);
    q.after = 2;
    s = read_changes(f, &q, &b);
    assert_non_null(strstr(s, "\"Collection\":\"cache\""));
    free(s);
}

static void docs_are_current_and_on_one_line(void **state)
{
    fx *f = *state;
    write_doc(f, "a", "1", "{\"Id\":\"1\",\n \"v\": 1}");
    write_doc(f, "a", "1", "{\"Id\":\"1\",\r\n \"v\": \"x\\ny\"}");
    write_doc(f, "a", "2", "{\"Id\":\"2\"}");
    write_doc(f, "a", "2", NULL);
    ld_changes_query q = {
        .after = 0, .max_changes = 10, .max_bytes = 1 << 20, .include_docs = true};
    ld_changes_batch b;
    char *s = read_changes(f, &q, &b);
    assert_int_equal(b.n, 4);
    const char *cur = "\"Doc\":{\"Id\":\"1\",   \"v\": \"x\\ny\"}}\n";
    char *p = strstr(s, cur);
    assert_non_null(p);
    assert_non_null(strstr(p + 1, cur)); /* both changes of 1 show its current state */
    assert_non_null(strstr(s, "\"Deleted\":false,\"Cursor\":\"3\",\"Doc\":null}\n"));
    size_t lines = 0;
    for (const char *c = s; *c; c++)
        lines += *c == '\n';
    assert_int_equal(lines, 4);
    free(s);
}

static void a_cursor_past_the_end_is_gone(void **state)
{
    fx *f = *state;
    write_doc(f, "a", "1", "{\"Id\":\"1\"}");
    ld_changes_query q = {.after = 1, .max_changes = 10, .max_bytes = 1 << 20};
    ld_changes_batch b;
    char *s = read_changes(f, &q, &b);
    assert_false(b.gone);
    assert_int_equal(b.n, 0);
    assert_int_equal(b.last, 1);
    free(s);
    q.after = 2;
    s = read_changes(f, &q, &b);
    assert_true(b.gone);
    assert_int_equal(b.oldest, 1);
    assert_string_equal(s, "");
    free(s);
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
        cmocka_unit_test(cursors_parse_as_decimal_log_positions),
        FX_TEST(the_filter_passes_over_entries_and_the_cursor_moves_past_them),
        FX_TEST(docs_are_current_and_on_one_line),
        FX_TEST(a_cursor_past_the_end_is_gone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
