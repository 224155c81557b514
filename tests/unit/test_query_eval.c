/* Unit tests for the LiteQL evaluator: the total order over mixed types, null handling, LIKE
 * (wildcards, escapes, UTF-8, empty patterns), functions, arithmetic, runtime errors with their
 * positions, JSON output and result rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "query/eval.h"
#include "query/parser.h"

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------- */

static json_t *J(const char *text)
{
    json_t *v = ld_ql_parse_doc(text, strlen(text));
    if (!v) fail_msg("bad JSON in test: %s", text);
    return v;
}

static const char *DOC = "{\"Id\": \"d1\", \"n\": 5, \"r\": 2.5, \"s\": \"Hello\", \"t\": true, "
                         "\"z\": null, \"arr\": [1, 2, 3], \"o\": {\"k\": \"v\"}, \"e\": \"\"}";

/* Evaluates the single SELECT column `expr` against doc (id "d1") and returns it as JSON text
 * (malloc'd), or NULL with *err set. */
static char *eval_text(const char *doc_text, const char *expr, ld_ql_error *err)
{
    char q[1024];
    snprintf(q, sizeof q, "SELECT %s AS v FROM c", expr);
    ld_ql_stmt *s = ld_ql_parse(q, strlen(q), NULL, err);
    if (!s) fail_msg("parsing %s: %s", q, err->msg);
    json_t *root = J(doc_text);
    ld_ql_doc d = {.id = "d1", .id_len = 2, .root = root};
    json_t *v = NULL;
    char *out = NULL;
    if (ld_ql_eval(s->cols[0].expr, &d, &v, err)) {
        ld_qbuf b;
        ld_qbuf_init(&b);
        assert_true(ld_ql_dump(v, &b));
        out = ld_qbuf_take(&b, NULL);
        json_decref(v);
    }
    ld_ql_doc_clear(&d);
    json_decref(root);
    ld_ql_stmt_free(s);
    return out;
}

static void is(const char *expr, const char *want)
{
    ld_ql_error err = {0};
    char *got = eval_text(DOC, expr, &err);
    if (!got) fail_msg("%s failed: %s", expr, err.msg);
    if (strcmp(got, want) != 0) fail_msg("%s = %s, expected %s", expr, got, want);
    free(got);
}

static void eval_fails(const char *expr, ld_ql_errcode code, const char *msg)
{
    ld_ql_error err = {0};
    char *got = eval_text(DOC, expr, &err);
    if (got) fail_msg("%s = %s, expected the error %s", expr, got, msg);
    if (strcmp(err.msg, msg) != 0) fail_msg("%s\n  error %s\n  expected %s", expr, err.msg, msg);
    assert_int_equal(err.code, code);
}

/* WHERE cond against DOC: 1 match, 0 none. */
static int where(const char *cond)
{
    char q[1024];
    snprintf(q, sizeof q, "SELECT $ FROM c WHERE %s", cond);
    ld_ql_error err = {0};
    ld_ql_stmt *s = ld_ql_parse(q, strlen(q), NULL, &err);
    if (!s) fail_msg("parsing %s: %s", q, err.msg);
    json_t *root = J(DOC);
    ld_ql_doc d = {.id = "d1", .id_len = 2, .root = root};
    bool m = false;
    if (!ld_ql_test(s->where, &d, &m, &err)) fail_msg("%s failed: %s", cond, err.msg);
    ld_ql_doc_clear(&d);
    json_decref(root);
    ld_ql_stmt_free(s);
    return m;
}

/* ---------------------------------------------------------------------------------------------
 * The total order
 * ------------------------------------------------------------------------------------------- */

static void type_ordering(void **state)
{
    (void)state;
    /* Ascending: null < numbers < strings < booleans < arrays < objects. */
    const char *order[] = {
        "null",
        "-1e300",
        "-9223372036854775808",
        "-5",
        "-1.5",
        "0",
        "1",
        "1.5",
        "2",
        "9007199254740992.0",
        "9007199254740993",
        "9223372036854775807",
        "9223372036854775808.0",
        "1e300",
        "\"\"",
        "\"A\"",
        "\"B\"",
        "\"a\"",
        "\"ab\"",
        "\"b\"",
        "\"\\u00e9\"",
        "false",
        "true",
        "[]",
        "[null]",
        "[1]",
        "[1,2]",
        "[1,\"a\"]",
        "[2]",
        "[\"a\"]",
        "{}",
        "{\"a\":1}",
        "{\"a\":1,\"b\":1}",
        "{\"a\":2}",
        "{\"b\":0}",
    };
    size_t n = sizeof order / sizeof order[0];
    json_t *v[sizeof order / sizeof order[0]];
    for (size_t i = 0; i < n; i++)
        v[i] = J(order[i]);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            int c = ld_ql_compare(v[i], v[j]);
            int want = i < j ? -1 : i > j ? 1 : 0;
            if ((c > 0) - (c < 0) != want)
                fail_msg("compare(%s, %s) = %d, expected %d", order[i], order[j], c, want);
        }
    for (size_t i = 0; i < n; i++)
        json_decref(v[i]);

    /* Equal across representations. */
    const char *same[][2] = {
        {"1", "1.0"},
        {"0", "-0.0"},
        {"[1, 2.0]", "[1.0, 2]"},
        {"{\"a\":1,\"b\":[2]}", "{\"b\":[2.0],\"a\":1}"},
        {"\"x\"", "\"x\""},
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        json_t *a = J(same[i][0]), *b = J(same[i][1]);
        if (ld_ql_compare(a, b) != 0) fail_msg("%s should equal %s", same[i][0], same[i][1]);
        json_decref(a);
        json_decref(b);
    }
}

static void where_uses_the_order(void **state)
{
    (void)state;
    assert_true(where("$.n < 'a'"));  /* numbers < strings */
    assert_true(where("$.s < true")); /* strings < booleans */
    assert_true(where("$.t < []"));   /* booleans < arrays */
    assert_true(where("$.arr < {}")); /* arrays < objects */
    assert_true(where("$.z < 0"));    /* null < numbers */
    assert_true(where("$.missing < -1e300"));
    assert_true(where("$.n = 5.0 AND $.n != 5.5 AND $.n <> 4"));
    assert_true(where("$.arr = [1, 2, 3.0]"));
    assert_true(where("$.o = {k: 'v'}"));
    assert_true(where("$.n BETWEEN 5 AND 5"));
    assert_true(where("$.n NOT BETWEEN 6 AND 10"));
    assert_true(where("$.s BETWEEN 'A' AND 'Z'"));  /* 'Hello' */
    assert_false(where("$.s BETWEEN 'a' AND 'z'")); /* case matters: 'H' < 'a' */
    assert_true(where("$.n IN (1, '5', 5)"));
    assert_false(where("$.n IN (1, '5')"));
    assert_true(where("$.n NOT IN (1, '5')"));
    assert_true(where("$.r > $.n - 3 AND $.r >= 2.5 AND $.r <= 2.5"));
}

/* ---------------------------------------------------------------------------------------------
 * null
 * ------------------------------------------------------------------------------------------- */

static void null_handling(void **state)
{
    (void)state;
    is("$.missing", "null");
    is("$.n.deeper", "null"); /* a path through a number */
    is("$.arr[7]", "null");   /* past the end */
    is("$.o[0]", "null");     /* an index into an object */
    is("$.arr.k", "null");    /* a name into an array */
    is("$.z", "null");
    assert_true(where("$.missing IS NULL"));
    assert_true(where("$.z IS NULL"));
    assert_false(where("$.n IS NULL"));
    assert_true(where("$.n IS NOT NULL"));
    assert_true(where("$.missing = null"));
    assert_true(where("$.missing = $.z"));
    /* arithmetic and functions: null in, null out */
    is("$.missing + 1", "null");
    is("1 - $.z", "null");
    is("-$.missing", "null");
    is("LOWER($.missing)", "null");
    is("UPPER(null)", "null");
    is("LENGTH($.missing)", "null");
    is("TRIM(null)", "null");
    is("SUBSTRING($.missing, 1)", "null");
    is("SUBSTRING('abc', null)", "null");
    is("SUBSTRING('abc', 1, null)", "null");
    is("COALESCE($.missing, $.z, 'x', 'y')", "\"x\"");
    is("COALESCE($.missing)", "null");
    is("COALESCE($.n, 'x')", "5");
    /* in conditions null counts as false */
    assert_false(where("$.missing"));
    assert_true(where("NOT $.missing"));
    assert_false(where("$.missing AND true"));
    assert_true(where("$.missing OR true"));
    assert_false(where("null"));
    assert_true(where("$.missing IN (1, null)"));
    assert_false(where("$.missing LIKE '%'"));
    assert_true(where("$.missing NOT LIKE '%'"));
    assert_false(where("$.s LIKE $.missing"));
    assert_true(where("$.n BETWEEN null AND 10"));
}

/* ---------------------------------------------------------------------------------------------
 * LIKE
 * ------------------------------------------------------------------------------------------- */

static int like(const char *s, const char *p, const char *esc)
{
    return ld_ql_like(s, strlen(s), p, strlen(p), esc, strlen(esc));
}

static void like_edge_cases(void **state)
{
    (void)state;
    /* empty strings and patterns */
    assert_int_equal(like("", "", "\\"), 1);
    assert_int_equal(like("a", "", "\\"), 0);
    assert_int_equal(like("", "%", "\\"), 1);
    assert_int_equal(like("", "_", "\\"), 0);
    assert_int_equal(like("", "%%", "\\"), 1);
    /* % and _ */
    assert_int_equal(like("abc", "%", "\\"), 1);
    assert_int_equal(like("abc", "a%", "\\"), 1);
    assert_int_equal(like("abc", "%c", "\\"), 1);
    assert_int_equal(like("abc", "%b%", "\\"), 1);
    assert_int_equal(like("abc", "%d%", "\\"), 0);
    assert_int_equal(like("abc", "_b_", "\\"), 1);
    assert_int_equal(like("abc", "__", "\\"), 0);
    assert_int_equal(like("abc", "___", "\\"), 1);
    assert_int_equal(like("abc", "____", "\\"), 0);
    assert_int_equal(like("abc", "a%%%c", "\\"), 1);
    assert_int_equal(like("aaa", "%a%a%a%", "\\"), 1);
    assert_int_equal(like("aa", "%a%a%a%", "\\"), 0);
    assert_int_equal(like("mississippi", "%iss%ppi", "\\"), 1);
    assert_int_equal(like("mississippi", "m%s%s%s%i", "\\"), 1);
    assert_int_equal(like("mississippi", "%iss%ppx", "\\"), 0);
    /* case-sensitive, exact otherwise */
    assert_int_equal(like("ABC", "abc", "\\"), 0);
    assert_int_equal(like("abc", "abc", "\\"), 1);
    assert_int_equal(like("abc", "ab", "\\"), 0);
    /* characters, not bytes */
    assert_int_equal(like("\xc3\xa9", "_", "\\"), 1);
    assert_int_equal(like("\xc3\xa9t\xc3\xa9", "_t_", "\\"), 1);
    assert_int_equal(like("\xe2\x82\xac\xf0\x9f\x98\x80", "__", "\\"), 1);
    assert_int_equal(like("\xc3\xa9", "__", "\\"), 0);
    /* escapes: the default is backslash */
    assert_int_equal(like("a%b", "a\\%b", "\\"), 1);
    assert_int_equal(like("axb", "a\\%b", "\\"), 0);
    assert_int_equal(like("a_b", "a\\_b", "\\"), 1);
    assert_int_equal(like("axb", "a\\_b", "\\"), 0);
    assert_int_equal(like("a\\b", "a\\\\b", "\\"), 1);
    assert_int_equal(like("ab", "a\\b", "\\"), 1); /* an escaped ordinary character is itself */
    assert_int_equal(like("100%", "%\\%", "\\"), 1);
    assert_int_equal(like("100", "%\\%", "\\"), 0);
    assert_int_equal(like("a", "a\\", "\\"), -1); /* ends with the escape */
    assert_int_equal(like("ab", "a!", "!"), -1);
    assert_int_equal(like("a!", "a!!", "!"), 1);
    assert_int_equal(like("a%", "a!%", "!"), 1);
    assert_int_equal(like("a\\x", "a\\_", ""), 1); /* no escape at all */
    assert_int_equal(like("a\\", "a\\", ""), 1);
    assert_int_equal(like("a%", "a%%", "%"), 1); /* % as its own escape */
    assert_int_equal(like("ab", "a%%", "%"), 0);
    assert_int_equal(like("a%", "a\xc3\xa9%", "\xc3\xa9"), 1); /* a two-byte escape */
    assert_int_equal(like("ax", "a\xc3\xa9%", "\xc3\xa9"), 0);
    /* through the evaluator */
    assert_true(where("$.s LIKE 'H%o'"));
    assert_true(where("$.s LIKE '_ello'"));
    assert_false(where("$.s LIKE 'h%'"));
    assert_true(where("LOWER($.s) LIKE 'h%'"));
    assert_true(where("$.e LIKE ''"));
    assert_true(where("$.e LIKE '%'"));
    assert_false(where("$.e LIKE '_'"));
    assert_true(where("'50%' LIKE '50!%' ESCAPE '!'"));
    assert_true(where("'a\\' LIKE 'a\\' ESCAPE ''"));
    assert_false(where("$.n LIKE '5'")); /* a number is not a string */
    assert_true(where("$.n NOT LIKE '5'"));
    eval_fails("$.s LIKE $.n", LD_QE_TYPE,
               "LIKE needs a string pattern, got number (document 'd1') at position 17.");
    eval_fails("$.s LIKE 'a\\' ESCAPE $.s", LD_QE_RUNTIME,
               "ESCAPE needs a single character (document 'd1') at position 29.");
    eval_fails("LOWER($.n) LIKE 'x'", LD_QE_TYPE,
               "LOWER needs a string, got number (document 'd1') at position 14.");
}

/* ---------------------------------------------------------------------------------------------
 * Functions and arithmetic
 * ------------------------------------------------------------------------------------------- */

static void functions(void **state)
{
    (void)state;
    is("LOWER($.s)", "\"hello\"");
    is("UPPER($.s)", "\"HELLO\"");
    is("LOWER('\xc3\x80\xc3\x89\xc3\x8e x')", "\"\xc3\xa0\xc3\xa9\xc3\xae x\"");
    is("UPPER('\xc3\xbf\xce\xb1')", "\"\xc5\xb8\xce\x91\"");
    is("LENGTH($.s)", "5");
    is("LENGTH('h\xc3\xa9llo')", "5");
    is("LENGTH($.e)", "0");
    is("LENGTH($.arr)", "3");
    is("LENGTH($.o)", "1");
    is("SUBSTRING($.s, 1)", "\"ello\"");
    is("SUBSTRING($.s, 1, 3)", "\"ell\"");
    is("SUBSTRING($.s, 0, 0)", "\"\"");
    is("SUBSTRING($.s, 9)", "\"\"");
    is("SUBSTRING($.s, 2, 100)", "\"llo\"");
    is("SUBSTRING('h\xc3\xa9llo', 1, 2)", "\"\xc3\xa9l\"");
    is("SUBSTRING($.s, 1.0, 2.0)", "\"el\"");
    is("TRIM('  a b \t\n')", "\"a b\"");
    is("TRIM('   ')", "\"\"");
    is("TRIM($.s)", "\"Hello\"");
    is("_id", "\"d1\"");
    is("LOWER(Id)", "\"d1\"");
    eval_fails("LOWER($.n)", LD_QE_TYPE,
               "LOWER needs a string, got number (document 'd1') at position 14.");
    eval_fails("LENGTH($.t)", LD_QE_TYPE,
               "LENGTH needs a string, an array or an object, got boolean (document 'd1') at "
               "position 15.");
    eval_fails("SUBSTRING($.s, -1)", LD_QE_RUNTIME,
               "SUBSTRING needs non-negative integer positions (they count from 0) (document "
               "'d1') at position 23.");
    eval_fails("SUBSTRING($.s, 0.5)", LD_QE_RUNTIME,
               "SUBSTRING needs non-negative integer positions (they count from 0) (document "
               "'d1') at position 23.");
    eval_fails("SUBSTRING($.s, $.s)", LD_QE_TYPE,
               "SUBSTRING needs integer positions, got string (document 'd1') at position 23.");
}

static void arithmetic(void **state)
{
    (void)state;
    is("$.n + 1", "6");
    is("$.n - 7", "-2");
    is("$.n * $.r", "12.5");
    is("7 / 2", "3.5");
    is("6 / 3", "2");
    is("7 % 3", "1");
    is("-7 % 3", "-1");
    is("5.5 % 2", "1.5");
    is("0.1 + 0.2", "0.30000000000000004");
    is("1 / 3", "0.3333333333333333");
    is("9223372036854775807 + 1", "9.223372036854776e+18");
    is("-9223372036854775808 / -1", "9.223372036854776e+18");
    is("-9223372036854775808 % -1", "0");
    is("-(-9223372036854775808)", "9.223372036854776e+18");
    is("4 * 2.0", "8.0");
    is("$.n * -1", "-5");
    eval_fails("$.n / 0", LD_QE_RUNTIME, "Division by zero (document 'd1') at position 12.");
    eval_fails("$.n % 0", LD_QE_RUNTIME, "Division by zero (document 'd1') at position 12.");
    eval_fails("$.r / 0.0", LD_QE_RUNTIME, "Division by zero (document 'd1') at position 12.");
    eval_fails("1e308 * 10", LD_QE_RUNTIME, "Numeric overflow (document 'd1') at position 14.");
    eval_fails("$.s + 1", LD_QE_TYPE,
               "Operator '+' needs numbers, got string (document 'd1') at position 8.");
    eval_fails("1 - $.t", LD_QE_TYPE,
               "Operator '-' needs numbers, got boolean (document 'd1') at position 12.");
    eval_fails("-$.o", LD_QE_TYPE,
               "Operator '-' needs a number, got object (document 'd1') at position 9.");
}

static void condition_errors(void **state)
{
    (void)state;
    char q[] = "SELECT $ FROM c WHERE $.n";
    ld_ql_error err = {0};
    ld_ql_stmt *s = ld_ql_parse(q, strlen(q), NULL, &err);
    assert_non_null(s);
    json_t *root = J(DOC);
    /* A long id is cut in the message. */
    const char *id = "an-id-that-is-rather-long-0123456789-0123456789-0123456789-0123456789";
    ld_ql_doc d = {.id = id, .id_len = strlen(id), .root = root};
    bool m;
    assert_false(ld_ql_test(s->where, &d, &m, &err));
    assert_string_equal(err.msg,
                        "WHERE needs a boolean condition, got number (document "
                        "'an-id-that-is-rather-long-0123456789-0123456789-0123456789-0...') at "
                        "position 23.");
    ld_ql_stmt_free(s);
    ld_ql_doc_clear(&d);
    json_decref(root);
    eval_fails("$.s AND true", LD_QE_TYPE,
               "AND needs booleans, got string (document 'd1') at position 8.");
    eval_fails("$.t AND $.n", LD_QE_TYPE,
               "AND needs booleans, got number (document 'd1') at position 16.");
    eval_fails("false OR $.arr", LD_QE_TYPE,
               "OR needs booleans, got array (document 'd1') at position 17.");
    eval_fails("NOT $.s", LD_QE_TYPE,
               "NOT needs a boolean, got string (document 'd1') at position 12.");
    /* short-circuit: the right side is never evaluated */
    is("false AND $.s", "false");
    is("true OR $.s", "true");
}

/* ---------------------------------------------------------------------------------------------
 * Output
 * ------------------------------------------------------------------------------------------- */

static void dump_text(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"0.1", "0.1"},
        {"3.0", "3.0"},
        {"-0.0", "-0.0"},
        {"1e300", "1e+300"},
        {"1.5e-7", "1.5e-07"},
        {"123456789012", "123456789012"},
        {"[1, 2.5, \"x\", null, true, false, {}]", "[1,2.5,\"x\",null,true,false,{}]"},
        {"{\"a\\\"b\": \"\\n\\u0001\\u00e9\", \"c\": []}",
         "{\"a\\\"b\":\"\\n\\u0001\xc3\xa9\",\"c\":[]}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v = J(cases[i][0]);
        ld_qbuf b;
        ld_qbuf_init(&b);
        assert_true(ld_ql_dump(v, &b));
        if (strcmp(b.data, cases[i][1]) != 0)
            fail_msg("dump(%s) = %s, expected %s", cases[i][0], b.data, cases[i][1]);
        ld_qbuf_free(&b);
        json_decref(v);
    }
}

static char *row(const char *select, const char *doc_text, bool strip)
{
    ld_ql_error err = {0};
    ld_ql_stmt *s = ld_ql_parse(select, strlen(select), NULL, &err);
    if (!s) fail_msg("parsing %s: %s", select, err.msg);
    json_t *root = J(doc_text);
    ld_ql_doc d = {
        .id = "d1", .id_len = 2, .root = root, .text = doc_text, .text_len = strlen(doc_text)};
    ld_qbuf b;
    ld_qbuf_init(&b);
    if (!ld_ql_row(s, &d, strip, &b, &err)) fail_msg("row of %s: %s", select, err.msg);
    ld_ql_doc_clear(&d);
    json_decref(root);
    ld_ql_stmt_free(s);
    return ld_qbuf_take(&b, NULL);
}

static void rows(void **state)
{
    (void)state;
    const char *doc = "{\"Id\":\"d1\", \"n\": 1.50, \"a\": {\"b\": [10, 20.0]}, \"_id\": \"x\", "
                      "\"_sys_v\": 1, \"big\": 123456789012345678901234567890}";
    char *r = row("SELECT $ FROM c", doc, false);
    assert_string_equal(r, doc);
    free(r);
    r = row("SELECT * FROM c", doc, true);
    assert_string_equal(r, "{\"Id\":\"d1\",\"n\": 1.50,\"a\": {\"b\": [10, 20.0]},\"big\": "
                           "123456789012345678901234567890}");
    free(r);
    /* Paths copy the stored text: numbers as they were written, big integers exact. */
    r = row("SELECT $.n, $.a.b[1] AS b1, $.big, $.missing, $.n * 2 AS twice, _id, $.a FROM c", doc,
            false);
    assert_string_equal(r, "{\"n\":1.50,\"b1\":20.0,\"big\":123456789012345678901234567890,"
                           "\"missing\":null,\"twice\":3.0,\"_id\":\"d1\",\"a\":{\"b\": [10, "
                           "20.0]}}");
    free(r);
    r = row("SELECT UPPER(Id) FROM c", doc, false);
    assert_string_equal(r, "{\"[value]\":\"D1\"}");
    free(r);
}

static void path_spans(void **state)
{
    (void)state;
    const char *doc = " { \"a\" : 1 , \"a\" : [ 1 , { \"x\\u0079\" : \"v\" } , \"t\" ] , "
                      "\"b\\\\c\": {\"d\": \"}\"} } ";
    ld_ql_error err = {0};
    const char *q = "SELECT $.a[1].xy AS v, $.a[2] AS t, $.a AS a, $.\"b\\\\c\".d AS d, $.a[3] AS "
                    "none, $.b AS nb FROM c";
    ld_ql_stmt *s = ld_ql_parse(q, strlen(q), NULL, &err);
    assert_non_null(s);
    size_t b, l;
    assert_true(
        ld_ql_path_span(doc, strlen(doc), s->cols[0].expr->segs, s->cols[0].expr->nsegs, &b, &l));
    assert_int_equal(l, 3);
    assert_memory_equal(doc + b, "\"v\"", 3);
    assert_true(ld_ql_path_span(doc, strlen(doc), s->cols[1].expr->segs, 2, &b, &l));
    assert_memory_equal(doc + b, "\"t\"", 3);
    /* repeated members: the last wins, as in the parsed value */
    assert_true(ld_ql_path_span(doc, strlen(doc), s->cols[2].expr->segs, 1, &b, &l));
    assert_int_equal(doc[b], '[');
    assert_true(ld_ql_path_span(doc, strlen(doc), s->cols[3].expr->segs, 2, &b, &l));
    assert_memory_equal(doc + b, "\"}\"", 3);
    assert_false(ld_ql_path_span(doc, strlen(doc), s->cols[4].expr->segs, 2, &b, &l));
    assert_false(ld_ql_path_span(doc, strlen(doc), s->cols[5].expr->segs, 1, &b, &l));
    /* damaged text is "not found", never a crash */
    assert_false(ld_ql_path_span("{\"a\": [1, ", 10, s->cols[1].expr->segs, 2, &b, &l));
    assert_false(ld_ql_path_span("{\"a", 3, s->cols[2].expr->segs, 1, &b, &l));
    assert_false(ld_ql_path_span("", 0, s->cols[2].expr->segs, 1, &b, &l));
    ld_ql_stmt_free(s);
}

/* Evaluating against the stored text (each path reads its own value: what the server does)
 * gives what evaluating against the parsed document gives. */
static void text_and_tree_agree(void **state)
{
    (void)state;
    const char *texts[] = {
        DOC,
        "{\"a\": 1, \"a\": {\"b\": [true, \"x\\\"y\", -0.5e-3, {\"c\": null}]}, \"k\\u0065y\": 7,"
        " \"s\": \"caf\\u00e9 \\ud83d\\ude00\", \"n\" :  -12 , \"arr\":[ [1] , [ ] ]}",
        "{}",
        "{\"Id\":\"x\",\"nested\":{\"deep\":{\"deeper\":[0,1,[2,[3]]]}},\"e\":\"\",\"z\":null}",
    };
    const char *exprs[] = {
        "$.n",
        "$.s",
        "$.a",
        "$.a.b",
        "$.a.b[1]",
        "$.a.b[2] * 2",
        "$.a.b[3].c",
        "$.a.b[9]",
        "$.key",
        "$.\"k\\u0065y\"",
        "LENGTH($.s)",
        "UPPER($.s)",
        "$.arr[0]",
        "$.arr[1]",
        "$.nested.deep.deeper[2][1][0]",
        "$.missing.x",
        "$.n.x",
        "$.o.k",
        "$.t AND $.t",
        "COALESCE($.z, $.e, 'd')",
        "$",
        "$.arr",
        "$.o",
        "$.r + $.n",
        "LOWER(_id)",
        "$.s LIKE '%o'",
        "$.n IN (5, -12)",
        "$.e = ''",
        "SUBSTRING($.s, 1, 2)",
    };
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        json_t *root = J(texts[t]);
        for (size_t e = 0; e < sizeof exprs / sizeof exprs[0]; e++) {
            char q[512];
            snprintf(q, sizeof q, "SELECT %s AS v FROM c", exprs[e]);
            ld_ql_error err = {0};
            ld_ql_stmt *s = ld_ql_parse(q, strlen(q), NULL, &err);
            if (!s) fail_msg("parsing %s: %s", q, err.msg);
            char *out[2];
            for (int mode = 0; mode < 2; mode++) {
                ld_ql_doc d = {.id = "d1", .id_len = 2};
                if (mode == 0)
                    d.root = root;
                else {
                    d.text = texts[t];
                    d.text_len = strlen(texts[t]);
                }
                json_t *v;
                ld_ql_error e2 = {0};
                ld_qbuf b;
                ld_qbuf_init(&b);
                if (ld_ql_eval(s->cols[0].expr, &d, &v, &e2)) {
                    ld_ql_dump(v, &b);
                    json_decref(v);
                } else {
                    ld_qbuf_adds(&b, e2.msg);
                }
                out[mode] = ld_qbuf_take(&b, NULL);
                ld_ql_doc_clear(&d);
            }
            if (strcmp(out[0], out[1]) != 0)
                fail_msg("%s on %s: parsed %s, text %s", exprs[e], texts[t], out[0], out[1]);
            free(out[0]);
            free(out[1]);
            ld_ql_stmt_free(s);
        }
        json_decref(root);
    }
    /* Stored text that is not JSON is reported, not guessed at. */
    ld_ql_error err = {0};
    const char *q = "SELECT $ AS v FROM c";
    ld_ql_stmt *s = ld_ql_parse(q, strlen(q), NULL, &err);
    ld_ql_doc d = {.id = "bad", .id_len = 3, .text = "{\"a\": ", .text_len = 6};
    json_t *v;
    assert_false(ld_ql_eval(s->cols[0].expr, &d, &v, &err));
    assert_int_equal(err.code, LD_QE_CORRUPT);
    assert_string_equal(err.msg, "A stored document is not valid JSON (document 'bad').");
    ld_ql_doc_clear(&d);
    ld_ql_stmt_free(s);
}

static void documents(void **state)
{
    (void)state;
    /* Integers stay exact 64-bit integers... */
    json_t *v = J("{\"a\": 9007199254740993}");
    assert_true(json_is_integer(json_object_get(v, "a")));
    assert_true(json_integer_value(json_object_get(v, "a")) == 9007199254740993LL);
    json_decref(v);
    /* ...even beside one too large for 64 bits, which alone is read as a real, as the lexer
     * reads a literal (so an INSERTed literal reads back as the value the parser saw). */
    v = J("{\"a\": 9007199254740993, \"b\": 123456789012345678901234567890}");
    assert_true(json_integer_value(json_object_get(v, "a")) == 9007199254740993LL);
    assert_true(json_is_real(json_object_get(v, "b")));
    json_decref(v);
    assert_null(ld_ql_parse_doc("{\"a\": ", 6));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(type_ordering),
        cmocka_unit_test(where_uses_the_order),
        cmocka_unit_test(null_handling),
        cmocka_unit_test(like_edge_cases),
        cmocka_unit_test(functions),
        cmocka_unit_test(arithmetic),
        cmocka_unit_test(condition_errors),
        cmocka_unit_test(dump_text),
        cmocka_unit_test(rows),
        cmocka_unit_test(path_spans),
        cmocka_unit_test(documents),
        cmocka_unit_test(text_and_tree_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
