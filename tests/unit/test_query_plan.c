/* Unit tests for the LiteQL planner: which index, which key ranges (checked byte for byte against
 * the key encoding), what is left to the residual, the order properties, EXPLAIN's rows, and
 * expressions printed back as LiteQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "index/keyenc.h"
#include "query/eval.h"
#include "query/parser.h"
#include "query/plan.h"

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------- */

/* An index over up to 3 paths, its segments taken from parsed statements it keeps. */
typedef struct tix {
    ld_plan_index ix;
    char *paths[3];
    ld_ql_seg *segs[3];
    size_t nsegs[3];
    ld_ql_stmt *held[3];
} tix;

static void tix_init(tix *t, uint32_t num, const char *name, size_t n, const char **paths)
{
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < n; i++) {
        char q[256];
        snprintf(q, sizeof q, "SELECT %s AS v FROM c", paths[i]);
        ld_ql_error err;
        t->held[i] = ld_ql_parse(q, strlen(q), NULL, &err);
        assert_non_null(t->held[i]);
        assert_int_equal(t->held[i]->cols[0].expr->kind, LD_QN_PATH);
        t->paths[i] = (char *)paths[i];
        t->segs[i] = t->held[i]->cols[0].expr->segs;
        t->nsegs[i] = t->held[i]->cols[0].expr->nsegs;
    }
    t->ix = (ld_plan_index){.num = num,
                            .name = name,
                            .npaths = n,
                            .paths = t->paths,
                            .segs = t->segs,
                            .nsegs = t->nsegs};
}

static void tix_free(tix *t)
{
    for (size_t i = 0; i < 3; i++)
        ld_ql_stmt_free(t->held[i]);
}

static ld_ql_stmt *parse(const char *q)
{
    ld_ql_error err;
    ld_ql_stmt *s = ld_ql_parse(q, strlen(q), NULL, &err);
    if (!s) fail_msg("parsing %s: %s", q, err.msg);
    return s;
}

/* Plans q against the given indexes. */
static ld_ql_stmt *plan(const char *q, const tix *ixs, size_t n, ld_plan *out)
{
    ld_ql_stmt *s = parse(q);
    /* the plan borrows the index descriptions: they outlive it here */
    static ld_plan_index keep[4];
    for (size_t i = 0; i < n; i++)
        keep[i] = ixs[i].ix;
    assert_int_equal(ld_plan_choose(s, keep, n, out), LD_OK);
    return s;
}

/* The key bytes: index number, then each JSON value's encoding ("MISSING" for the tag), then,
 * when ff, one 0xff byte (the end of an equality class). */
static ld_qbuf key(uint32_t num, const char **vals, size_t n, bool ff)
{
    ld_qbuf b;
    ld_qbuf_init(&b);
    uint8_t be[4] = {(uint8_t)(num >> 24), (uint8_t)(num >> 16), (uint8_t)(num >> 8), (uint8_t)num};
    ld_qbuf_add(&b, be, 4);
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(vals[i], "MISSING")) {
            assert_int_equal(ld_keyenc_append_missing(&b), LD_OK);
            continue;
        }
        json_t *v = ld_ql_parse_doc(vals[i], strlen(vals[i]));
        assert_non_null(v);
        assert_int_equal(ld_keyenc_append(&b, v), LD_OK);
        json_decref(v);
    }
    if (ff) ld_qbuf_addc(&b, (char)0xff);
    return b;
}

static void bytes_are(const uint8_t *got, size_t gotn, ld_qbuf want)
{
    assert_non_null(got);
    assert_int_equal(gotn, want.len);
    assert_memory_equal(got, want.data, want.len);
    ld_qbuf_free(&want);
}

#define V(...) ((const char *[]){__VA_ARGS__})

static char *explain(const ld_ql_stmt *s, const ld_plan *p)
{
    ld_qbuf b;
    ld_qbuf_init(&b);
    assert_true(ld_plan_explain(s, p, &b) > 0);
    return ld_qbuf_take(&b, NULL);
}

/* ---------------------------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------------------------- */

static void no_index_scans(void **state)
{
    (void)state;
    ld_plan p;
    ld_ql_stmt *s = plan("SELECT $ FROM c WHERE $.a = 1 AND $.b > 2", NULL, 0, &p);
    assert_int_equal(p.kind, LD_PLAN_SCAN);
    assert_null(p.ix);
    assert_int_equal(p.nresidual, 2);
    assert_false(p.exact);
    char *e = explain(s, &p);
    assert_string_equal(e, "{\"Step\":1,\"Operation\":\"scan\",\"Index\":null,\"Collection\":\"c\","
                           "\"Paths\":[],\"Bounds\":[],\"Residual\":\"$.a = 1 AND $.b > 2\"}");
    free(e);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
}

static void equality(void **state)
{
    (void)state;
    tix t;
    tix_init(&t, 7, "by_a", 1, V("$.a"));
    ld_plan p;
    ld_ql_stmt *s = plan("SELECT $ FROM c WHERE $.a = 5", &t, 1, &p);
    assert_int_equal(p.kind, LD_PLAN_INDEX_EQ);
    assert_int_equal(p.nranges, 1);
    bytes_are(p.ranges[0].lo, p.ranges[0].lo_len, key(7, V("5"), 1, false));
    bytes_are(p.ranges[0].hi, p.ranges[0].hi_len, key(7, V("5"), 1, true));
    assert_true(p.id_order);
    assert_true(p.exact);
    assert_int_equal(p.nresidual, 0);
    char *e = explain(s, &p);
    assert_string_equal(e, "{\"Step\":1,\"Operation\":\"index eq\",\"Index\":\"by_a\","
                           "\"Collection\":\"c\",\"Paths\":[\"$.a\"],\"Bounds\":[\"$.a = 5\"],"
                           "\"Residual\":null}");
    free(e);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    /* the constant on the left, and 5.0 is the same class as 5 */
    s = plan("SELECT $ FROM c WHERE 5.0 = $.a", &t, 1, &p);
    assert_int_equal(p.kind, LD_PLAN_INDEX_EQ);
    bytes_are(p.ranges[0].lo, p.ranges[0].lo_len, key(7, V("5"), 1, false));
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    tix_free(&t);
}

static void null_spans_missing(void **state)
{
    (void)state;
    tix t;
    tix_init(&t, 1, "by_a", 1, V("$.a"));
    const char *qs[] = {"SELECT $ FROM c WHERE $.a = null", "SELECT $ FROM c WHERE $.a IS NULL"};
    for (size_t i = 0; i < 2; i++) {
        ld_plan p;
        ld_ql_stmt *s = plan(qs[i], &t, 1, &p);
        assert_int_equal(p.nranges, 1);
        bytes_are(p.ranges[0].lo, p.ranges[0].lo_len, key(1, V("MISSING"), 1, false));
        bytes_are(p.ranges[0].hi, p.ranges[0].hi_len, key(1, V("null"), 1, true));
        /* MISSING then null entries: each in id order, not together */
        assert_false(p.id_order);
        assert_string_equal(p.ranges[0].text, "$.a IS NULL");
        ld_plan_free(&p);
        ld_ql_stmt_free(s);
    }
    /* below a value: from the start of the index (MISSING evaluates as null < 3) */
    ld_plan p;
    ld_ql_stmt *s = plan("SELECT $ FROM c WHERE $.a < 3", &t, 1, &p);
    assert_int_equal(p.kind, LD_PLAN_INDEX_RANGE);
    bytes_are(p.ranges[0].lo, p.ranges[0].lo_len, key(1, NULL, 0, false));
    bytes_are(p.ranges[0].hi, p.ranges[0].hi_len, key(1, V("3"), 1, false));
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    /* IS NOT NULL: past null's class */
    s = plan("SELECT $ FROM c WHERE $.a IS NOT NULL", &t, 1, &p);
    bytes_are(p.ranges[0].lo, p.ranges[0].lo_len, key(1, V("null"), 1, true));
    bytes_are(p.ranges[0].hi, p.ranges[0].hi_len, key(1, NULL, 0, true));
    assert_true(p.exact);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    tix_free(&t);
}

static void ranges_and_between(void **state)
{
    (void)state;
    tix t;
    tix_init(&t, 2, "by_a", 1, V("$.a"));
    ld_plan p;
    ld_ql_stmt *s = plan("SELECT $ FROM c WHERE $.a > 310", &t, 1, &p);
    assert_int_equal(p.kind, LD_PLAN_INDEX_RANGE);
    bytes_are(p.ranges[0].lo, p.ranges[0].lo_len, key(2, V("310"), 1, true));
    bytes_are(p.ranges[0].hi, p.ranges[0].hi_len, key(2, NULL, 0, true));
    assert_false(p.id_order);
    assert_true(p.exact);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);

    /* the tightest bounds win; the others are answered too */
    s = plan("SELECT $ FROM c WHERE $.a >= 1 AND $.a > 2 AND $.a BETWEEN 0 AND 9 AND $.a <= 5", &t,
             1, &p);
    assert_int_equal(p.nranges, 1);
    bytes_are(p.ranges[0].lo, p.ranges[0].lo_len, key(2, V("2"), 1, true));
    bytes_are(p.ranges[0].hi, p.ranges[0].hi_len, key(2, V("5"), 1, true));
    assert_string_equal(p.ranges[0].text, "$.a > 2 AND $.a <= 5");
    assert_int_equal(p.nresidual, 0);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);

    /* nothing between the bounds: no range at all */
    s = plan("SELECT $ FROM c WHERE $.a > 5 AND $.a < 3", &t, 1, &p);
    assert_int_equal(p.kind, LD_PLAN_INDEX_RANGE);
    assert_int_equal(p.nranges, 0);
    char *none = explain(s, &p);
    assert_non_null(strstr(none, "\"Bounds\":[\"none\"]"));
    free(none);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);

    /* a constant expression is folded; the other conjuncts stay for the residual */
    s = plan("SELECT $ FROM c WHERE $.b LIKE 'x%' AND $.a < 2 * 3", &t, 1, &p);
    bytes_are(p.ranges[0].hi, p.ranges[0].hi_len, key(2, V("6"), 1, false));
    assert_int_equal(p.nresidual, 1);
    assert_false(p.exact);
    char *e = explain(s, &p);
    assert_non_null(strstr(e, "\"Residual\":\"$.b LIKE 'x%'\""));
    free(e);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    tix_free(&t);
}

static void in_lists(void **state)
{
    (void)state;
    tix t;
    tix_init(&t, 3, "by_a", 1, V("$.a"));
    ld_plan p;
    /* sorted and distinct (1 and 1.0 are one class), one range each */
    ld_ql_stmt *s = plan("SELECT $ FROM c WHERE $.a IN (3, 'x', 1, 1.0)", &t, 1, &p);
    assert_int_equal(p.kind, LD_PLAN_INDEX_EQ);
    assert_int_equal(p.nranges, 3);
    bytes_are(p.ranges[0].lo, p.ranges[0].lo_len, key(3, V("1"), 1, false));
    bytes_are(p.ranges[1].lo, p.ranges[1].lo_len, key(3, V("3"), 1, false));
    bytes_are(p.ranges[2].lo, p.ranges[2].lo_len, key(3, V("\"x\""), 1, false));
    assert_false(p.id_order);
    assert_true(p.exact);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    /* NOT IN, !=, OR: not answerable */
    const char *scans[] = {"SELECT $ FROM c WHERE $.a NOT IN (1)", "SELECT $ FROM c WHERE $.a != 1",
                           "SELECT $ FROM c WHERE $.a = 1 OR $.a = 2",
                           "SELECT $ FROM c WHERE $.a = $.b", "SELECT $ FROM c WHERE $.a = 1 / 0"};
    for (size_t i = 0; i < sizeof scans / sizeof scans[0]; i++) {
        s = plan(scans[i], &t, 1, &p);
        if (p.kind != LD_PLAN_SCAN) fail_msg("%s: not a scan", scans[i]);
        ld_plan_free(&p);
        ld_ql_stmt_free(s);
    }
    tix_free(&t);
}

static void compound_prefix(void **state)
{
    (void)state;
    tix t;
    tix_init(&t, 4, "ab", 2, V("$.a", "$.b"));
    ld_plan p;
    ld_ql_stmt *s = plan("SELECT $ FROM c WHERE $.b >= 2 AND $.a = 'k'", &t, 1, &p);
    assert_int_equal(p.kind, LD_PLAN_INDEX_RANGE);
    assert_int_equal(p.neq, 1);
    bytes_are(p.ranges[0].lo, p.ranges[0].lo_len, key(4, V("\"k\"", "2"), 2, false));
    bytes_are(p.ranges[0].hi, p.ranges[0].hi_len, key(4, V("\"k\""), 1, true));
    assert_string_equal(p.ranges[0].text, "$.a = 'k' AND $.b >= 2");
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    /* both paths equal: one id-ordered point; an IN on the first multiplies the ranges */
    s = plan("SELECT $ FROM c WHERE $.a = 1 AND $.b = 2", &t, 1, &p);
    assert_int_equal(p.kind, LD_PLAN_INDEX_EQ);
    assert_true(p.id_order);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    s = plan("SELECT $ FROM c WHERE $.a IN (2, 1) AND $.b = 5", &t, 1, &p);
    assert_int_equal(p.nranges, 2);
    bytes_are(p.ranges[0].lo, p.ranges[0].lo_len, key(4, V("1", "5"), 2, false));
    bytes_are(p.ranges[1].lo, p.ranges[1].lo_len, key(4, V("2", "5"), 2, false));
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    /* null on a leading path: its MISSING and null halves are separate prefixes */
    s = plan("SELECT $ FROM c WHERE $.a IS NULL AND $.b = 5", &t, 1, &p);
    assert_int_equal(p.nranges, 2);
    bytes_are(p.ranges[0].lo, p.ranges[0].lo_len, key(4, V("MISSING", "5"), 2, false));
    bytes_are(p.ranges[1].lo, p.ranges[1].lo_len, key(4, V("null", "5"), 2, false));
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    /* an equality prefix, then ORDER BY the next path: the walk is in its order */
    s = plan("SELECT $ FROM c WHERE $.a = 'k' ORDER BY $.b LIMIT 3", &t, 1, &p);
    assert_int_equal(p.kind, LD_PLAN_INDEX_ORDER);
    assert_int_equal(p.neq, 1);
    assert_true(p.ordered);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    /* not after an IN or null prefix: several runs, each in order, not together */
    s = plan("SELECT $ FROM c WHERE $.a IN (1, 2) ORDER BY $.b", &t, 1, &p);
    assert_false(p.ordered);
    assert_true(p.sort);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    s = plan("SELECT $ FROM c WHERE $.a IS NULL ORDER BY $.b", &t, 1, &p);
    assert_false(p.ordered);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    /* only the second path: the index cannot help */
    s = plan("SELECT $ FROM c WHERE $.b = 5", &t, 1, &p);
    assert_int_equal(p.kind, LD_PLAN_SCAN);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    tix_free(&t);
}

static void choice_between_indexes(void **state)
{
    (void)state;
    tix t[2];
    tix_init(&t[0], 1, "by_a", 1, V("$.a"));
    tix_init(&t[1], 2, "by_b", 1, V("$.b"));
    ld_plan p;
    ld_ql_stmt *s = plan("SELECT $ FROM c WHERE $.a > 1 AND $.b = 2", t, 2, &p);
    assert_string_equal(p.ix->name, "by_b"); /* equality over a range */
    assert_int_equal(p.nresidual, 1);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    tix_free(&t[0]);
    tix_free(&t[1]);
}

static void order_by(void **state)
{
    (void)state;
    tix t;
    tix_init(&t, 5, "by_a", 1, V("$.a"));
    ld_plan p;
    /* no WHERE: the whole index in order */
    ld_ql_stmt *s = plan("SELECT $ FROM c ORDER BY $.a", &t, 1, &p);
    assert_int_equal(p.kind, LD_PLAN_INDEX_ORDER);
    assert_true(p.ordered);
    assert_int_equal(p.nranges, 1);
    assert_string_equal(p.ranges[0].text, "");
    char *e = explain(s, &p);
    assert_string_equal(e, "{\"Step\":1,\"Operation\":\"index order\",\"Index\":\"by_a\","
                           "\"Collection\":\"c\",\"Paths\":[\"$.a\"],\"Bounds\":[],"
                           "\"Residual\":null}");
    free(e);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    /* a range on the order path keeps the order */
    s = plan("SELECT $ FROM c WHERE $.a > 3 ORDER BY $.a LIMIT 5", &t, 1, &p);
    assert_int_equal(p.kind, LD_PLAN_INDEX_ORDER);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    /* DESC: the forward walk ranks by the keys alone when nothing is left to check */
    s = plan("SELECT $ FROM c ORDER BY $.a DESC", &t, 1, &p);
    assert_int_equal(p.kind, LD_PLAN_INDEX_ORDER);
    assert_true(p.desc_keys);
    assert_false(p.ordered);
    e = explain(s, &p);
    assert_null(strstr(e, "sort"));
    free(e);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    s = plan("SELECT $ FROM c WHERE $.a >= 2 ORDER BY $.a DESC LIMIT 1", &t, 1, &p);
    assert_int_equal(p.kind, LD_PLAN_INDEX_ORDER);
    assert_true(p.desc_keys);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    /* but not with a residual, nor by two keys: the range, then the bounded heap of documents;
     * and without a range, the scan */
    s = plan("SELECT $ FROM c WHERE $.a >= 2 AND $.b = 1 ORDER BY $.a DESC", &t, 1, &p);
    assert_int_equal(p.kind, LD_PLAN_INDEX_RANGE);
    assert_false(p.desc_keys);
    assert_true(p.sort);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    s = plan("SELECT $ FROM c WHERE $.b = 1 ORDER BY $.a DESC LIMIT 3", &t, 1, &p);
    assert_int_equal(p.kind, LD_PLAN_SCAN);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    s = plan("SELECT $ FROM c ORDER BY $.a DESC, $.b", &t, 1, &p);
    assert_int_equal(p.kind, LD_PLAN_SCAN);
    assert_true(p.sort);
    e = explain(s, &p);
    assert_non_null(strstr(e, "{\"Step\":2,\"Operation\":\"sort\",\"Index\":null,"
                              "\"Collection\":\"c\",\"Paths\":[\"$.a DESC\",\"$.b\"]"));
    free(e);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    /* a WHERE the index does not answer, no LIMIT: counting every match reads every document
     * anyway, so the scan */
    s = plan("SELECT $ FROM c WHERE $.b = 1 ORDER BY $.a", &t, 1, &p);
    assert_int_equal(p.kind, LD_PLAN_SCAN);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    s = plan("SELECT $ FROM c WHERE $.b = 1 ORDER BY $.a LIMIT 3", &t, 1, &p);
    assert_int_equal(p.kind, LD_PLAN_INDEX_ORDER);
    assert_false(p.exact);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    /* an IN on the order path is a set of points, in order */
    s = plan("SELECT $ FROM c WHERE $.a IN (1, 2) ORDER BY $.a", &t, 1, &p);
    assert_int_equal(p.kind, LD_PLAN_INDEX_EQ);
    assert_false(p.ordered);
    assert_true(p.sort);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    tix_free(&t);
}

static void writes_use_indexes(void **state)
{
    (void)state;
    tix t;
    tix_init(&t, 6, "by_a", 1, V("$.a"));
    ld_plan p;
    ld_ql_stmt *s = plan("DELETE FROM c WHERE $.a = 3", &t, 1, &p);
    assert_int_equal(p.kind, LD_PLAN_INDEX_EQ);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    s = plan("UPDATE c SET {\"x\": 1} WHERE $.a BETWEEN 1 AND 2", &t, 1, &p);
    assert_int_equal(p.kind, LD_PLAN_INDEX_RANGE);
    ld_plan_free(&p);
    ld_ql_stmt_free(s);
    tix_free(&t);
}

/* Expressions print back as text the parser reads to the same expression. */
static void expr_text(void **state)
{
    (void)state;
    const char *exprs[] = {
        "$.a = 1 AND ($.b = 2 OR $.c = 3)",
        "NOT $.a > 1",
        "NOT ($.a = 1 OR $.b = 2)",
        "$.a - ($.b - 1) * 2 > 0",
        "$.a IN (1, 'x', null)",
        "$.a NOT BETWEEN 1 AND 2",
        "$.s NOT LIKE 'a!%' ESCAPE '!'",
        "LOWER($[\"odd key\"].x[2]) IS NOT NULL",
        "-$.a < 3 AND _id = 'k'",
    };
    for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
        char q[256];
        snprintf(q, sizeof q, "SELECT $ FROM c WHERE %s", exprs[i]);
        ld_ql_stmt *s = parse(q);
        ld_qbuf b;
        ld_qbuf_init(&b);
        assert_true(ld_plan_expr_text(s->where, &b));
        if (strcmp(b.data, exprs[i]) != 0) fail_msg("%s printed as %s", exprs[i], b.data);
        ld_qbuf_free(&b);
        ld_ql_stmt_free(s);
    }
}

/* EXPLAIN is a prefix of SELECT, UPDATE and DELETE, not a reserved word. */
static void explain_parses(void **state)
{
    (void)state;
    const char *ok[] = {"EXPLAIN SELECT $ FROM c WHERE $.a = 1", "explain DELETE FROM c",
                        "Explain UPDATE c SET {\"a\": 1} WHERE $.explain = 2"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        ld_ql_stmt *s = parse(ok[i]);
        assert_true(s->explain);
        ld_ql_stmt_free(s);
    }
    ld_ql_stmt *s = parse("SELECT explain FROM c");
    assert_false(s->explain);
    ld_ql_stmt_free(s);
    const struct {
        const char *q, *msg;
        size_t pos;
    } bad[] = {
        {"EXPLAIN", "EXPLAIN needs a SELECT, UPDATE or DELETE statement", 1},
        {"EXPLAIN INSERT INTO c VALUES {}", "EXPLAIN needs a SELECT, UPDATE or DELETE statement",
         9},
        {"EXPLAIN EXPLAIN SELECT $ FROM c", "EXPLAIN needs a SELECT, UPDATE or DELETE statement",
         9},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ld_ql_error err;
        ld_ql_stmt *t = ld_ql_parse(bad[i].q, strlen(bad[i].q), NULL, &err);
        assert_null(t);
        assert_int_equal(err.code, LD_QE_SYNTAX);
        assert_int_equal(err.pos, bad[i].pos);
        if (!strstr(err.msg, bad[i].msg)) fail_msg("%s: %s", bad[i].q, err.msg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_index_scans),
        cmocka_unit_test(equality),
        cmocka_unit_test(null_spans_missing),
        cmocka_unit_test(ranges_and_between),
        cmocka_unit_test(in_lists),
        cmocka_unit_test(compound_prefix),
        cmocka_unit_test(choice_between_indexes),
        cmocka_unit_test(order_by),
        cmocka_unit_test(writes_use_indexes),
        cmocka_unit_test(expr_text),
        cmocka_unit_test(explain_parses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
