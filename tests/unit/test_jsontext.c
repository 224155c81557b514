/* Unit tests for JSON text splicing: members dropped and prepended without touching the exact
 * text of the others (numbers, escapes, nesting). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/jsontext.h"

static bool drop_id(const char *key, void *ctx)
{
    (void)ctx;
    return !strcmp(key, "Id") || !strcmp(key, "id") || !strcmp(key, "_id");
}

static void rewrite(const char *in, const char *prepend, const char *want)
{
    size_t n;
    char *out = ld_json_rewrite_object(in, strlen(in), prepend, drop_id, NULL, &n);
    assert_non_null(out);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
    json_t *j = ld_json_parse(out, n, NULL);
    assert_non_null(j); /* always valid JSON */
    json_decref(j);
    free(out);
}

static void keeps_exact_text(void **state)
{
    (void)state;
    rewrite("{\"a\":0.1,\"b\":1.5e300,\"c\":123456789012345678901234}", "\"Id\":\"x\"",
            "{\"Id\":\"x\",\"a\":0.1,\"b\":1.5e300,\"c\":123456789012345678901234}");
    rewrite(" { \"id\" : 5 , \"n\" : { \"id\": [1, {\"}\": \"]\"}] } , \"_id\":\"q\" } ",
            "\"Id\":\"y\"", "{\"Id\":\"y\",\"n\" : { \"id\": [1, {\"}\": \"]\"}] }}");
    rewrite("{}", "\"Id\":\"z\"", "{\"Id\":\"z\"}");
    rewrite("{\"Id\":\"old\"}", "\"Id\":\"new\"", "{\"Id\":\"new\"}");
    rewrite("{\"\\u0049d\":\"escaped key is Id\",\"s\":\"a\\\"b\"}", NULL, "{\"s\":\"a\\\"b\"}");
    rewrite("{\"a\":true,\"b\":null,\"c\":false}", NULL, "{\"a\":true,\"b\":null,\"c\":false}");
}

static void rejects_non_objects(void **state)
{
    (void)state;
    size_t n;
    assert_null(ld_json_rewrite_object("[1]", 3, NULL, NULL, NULL, &n));
    assert_null(ld_json_rewrite_object("\"s\"", 3, NULL, NULL, NULL, &n));
}

static void parse_accepts_big_numbers(void **state)
{
    (void)state;
    json_error_t err;
    json_t *j = ld_json_parse("{\"a\":123456789012345678901234567890}", 36, &err);
    assert_non_null(j);
    json_decref(j);
    assert_null(ld_json_parse("{\"a\":", 5, &err));
}

/* Found by fuzz_query: one wide integer used to turn every integer of the text into a rounded
 * real, so a literal INSERT stored and read back differed from what the parser saw. */
static void parse_exact_widens_only_wide_integers(void **state)
{
    (void)state;
    const char *t = "{\"Id\":678901901234567890,\"w\":6789012345678901234567890,"
                    "\"a\":[-99999999999999999999,-9223372036854775808,9223372036854775807,"
                    "9223372036854775808,\"12345678901234567890123\",1.5]}";
    json_error_t e;
    json_t *v = ld_json_parse_exact(t, strlen(t), &e);
    assert_non_null(v);
    assert_true(json_is_integer(json_object_get(v, "Id")));
    assert_int_equal(json_integer_value(json_object_get(v, "Id")), 678901901234567890LL);
    assert_true(json_is_real(json_object_get(v, "w")));
    json_t *a = json_object_get(v, "a");
    assert_true(json_is_real(json_array_get(a, 0)));
    assert_true(json_integer_value(json_array_get(a, 1)) == INT64_MIN);
    assert_true(json_integer_value(json_array_get(a, 2)) == INT64_MAX);
    assert_true(json_is_real(json_array_get(a, 3)));
    assert_string_equal(json_string_value(json_array_get(a, 4)), "12345678901234567890123");
    assert_true(json_real_value(json_array_get(a, 5)) == 1.5);
    json_decref(v);
    assert_null(ld_json_parse_exact("[1e400]", 7, &e));
    assert_null(ld_json_parse_exact("[1,", 3, &e));
}

/* Found by fuzz_wire: jansson reads past a raw NUL byte outside strings, so this text parsed
 * and a document (or a replicated op's Payload) could carry the byte into storage. */
static void raw_nul_is_not_json(void **state)
{
    (void)state;
    json_error_t e;
    assert_null(ld_json_parse("{\"n\":1\0}", 8, &e));
    assert_int_equal(e.position, 6);
    assert_int_equal(json_error_code(&e), json_error_invalid_syntax);
    assert_null(ld_json_parse_exact("{\n\"n\":1\0}", 9, &e));
    assert_int_equal(e.line, 2);
    const char *esc = "{\"s\":\"a\\u0000b\"}";
    json_t *ok = ld_json_parse(esc, strlen(esc), &e); /* an escaped NUL is fine */
    assert_non_null(ok);
    assert_int_equal(json_string_length(json_object_get(ok, "s")), 3);
    json_decref(ok);
}

static void member_span(void **state)
{
    (void)state;
    const char *t = "{\"x\":1,\"Data\": {\"Id\": 2, \"v\": 0.10},\"y\":[]}";
    size_t s, l;
    assert_true(ld_json_member_span(t, strlen(t), "data", &s, &l));
    assert_int_equal(l, strlen("{\"Id\": 2, \"v\": 0.10}"));
    assert_memory_equal(t + s, "{\"Id\": 2, \"v\": 0.10}", l);
    assert_false(ld_json_member_span(t, strlen(t), "nope", &s, &l));
    /* Strings whose quotes are escaped, after runs of backslashes odd and even: each value
     * ends where jansson says it does. */
    static const char *const vals[] = {
        "\"a\\\"b\"",            /* "a\"b": an escaped quote */
        "\"a\\\\\"",             /* "a\\": ends after two backslashes */
        "\"\\\\\\\"\\\\\"",      /* "\\\"\\": three, then two */
        "\"\\\"\"",              /* "\"": only an escaped quote */
        "\"{\\\"Value\\\":1}\"", /* a member's name inside a string is not a member */
    };
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        char doc[128];
        snprintf(doc, sizeof doc, "{\"Key\":%s,\"Value\":%s,\"z\":%s}", vals[i], vals[i], vals[i]);
        json_t *tree = json_loads(doc, 0, NULL);
        assert_non_null(tree);
        json_decref(tree);
        assert_true(ld_json_member_span(doc, strlen(doc), "Value", &s, &l));
        assert_int_equal(l, strlen(vals[i]));
        assert_memory_equal(doc + s, vals[i], l);
    }
}

/* What ld_json_object_valid must match: ld_json_parse accepts the text and finds an object. */
static bool parses_as_object(const char *t, size_t n)
{
    json_error_t err;
    json_t *v = ld_json_parse(t, n, &err);
    bool ok = json_is_object(v);
    json_decref(v);
    return ok;
}

static void expect_same(const char *t, size_t n)
{
    bool want = parses_as_object(t, n), got = ld_json_object_valid(t, n);
    if (want != got)
        fail_msg("jansson says %d, the validator %d, for [%.*s]", want, got, (int)n, t);
}

/* Nested n levels deep: [[[...]]] inside {"a": ...}, with a scalar at the bottom or not. */
static char *nested(int n, bool scalar)
{
    char *t = malloc((size_t)n * 2 + 16);
    assert_non_null(t);
    size_t o = (size_t)sprintf(t, "{\"a\":");
    for (int i = 0; i < n; i++)
        t[o++] = '[';
    if (scalar) t[o++] = '1';
    for (int i = 0; i < n; i++)
        t[o++] = ']';
    t[o++] = '}';
    t[o] = '\0';
    return t;
}

/* The validator against jansson itself: hand-picked edges of the grammar, then thousands of
 * mutations (bytes replaced, inserted, removed, truncated) of documents, deterministic. */
static void object_validator_agrees_with_jansson(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "{}",
        " {} ",
        "{\"a\":1}",
        "[]",
        "1",
        "\"s\"",
        "null",
        "",
        " ",
        "{",
        "}",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{,}",
        "{\"a\":1}x",
        "{\"a\":1} {}",
        "{\"a\":01}",
        "{\"a\":-0}",
        "{\"a\":-}",
        "{\"a\":1.}",
        "{\"a\":.5}",
        "{\"a\":1e}",
        "{\"a\":1e+}",
        "{\"a\":1E-7}",
        "{\"a\":1e400}",
        "{\"a\":-1e400}",
        "{\"a\":1e-400}",
        "{\"a\":123456789012345678901234567890}",
        "{\"a\":tru}",
        "{\"a\":true}",
        "{\"a\":nul}",
        "{\"a\":[1,2,[3,{\"b\":null}]]}",
        "{\"a\":[1,]}",
        "{\"a\":[,1]}",
        "{\"\\u0000\":1}",
        "{\"a\":\"\\u0000\"}",
        "{\"a\":\"\\ud800\"}",
        "{\"a\":\"\\udc00\"}",
        "{\"a\":\"\\ud83d\\ude00\"}",
        "{\"a\":\"\\ud83d\\u0041\"}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u12G4\"}",
        "{\"a\":\"\\/\\b\\f\\n\\r\\t\"}",
        "{\"a\":\"\t\"}",
        "{\"a\":\"\x7f\"}",
        "{\"a\":\"\xc3\xa9\"}",
        "{\"a\":\"\xc0\xaf\"}",
        "{\"a\":\"\xed\xa0\x80\"}",
        "{\"a\":\"\xf4\x90\x80\x80\"}",
        "{\"a\":\"\xf0\x9f\x98\x80\"}",
        "{\"a\":\"\xe2\x82\"}",
        "{\"\xff\":1}",
        "{\"a\" : 1 , \"a\" : 2}",
        "{\"a\":1}\n",
        "\xef\xbb\xbf{}",
        "{\"a\":\f1}",
        "{\"a\":[1 2]}",
        "{\"a\":{\"b\":{}}}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_same(cases[i], strlen(cases[i]));
    const char nul[] = "{\"a\":1}\0";
    expect_same(nul, sizeof nul - 1);
    for (int d = 2045; d <= 2050; d++) {
        for (int scalar = 0; scalar < 2; scalar++) {
            char *t = nested(d, scalar);
            expect_same(t, strlen(t));
            free(t);
        }
    }
    static const char *const seeds[] = {
        "{\"Id\":\"d1\",\"pad\":\"xxxx\",\"n\":[1,-2.5e3,true,false,null],\"o\":{\"k\":"
        "\"\\u00e9\\n\"}}",
        "{\"Id\":\"c\",\"Key\":\"k\",\"Value\":{\"a\":[{},[]]},\"u\":\"\xc3\xa9\xe2\x82\xac\"}",
    };
    static const char alphabet[] =
        "{}[]:,\"\\u0123456789abcdefABCDEF.eE+-tnrfl \t\n\x01\x7f\x80\xc3\xed\xf0\xff";
    uint32_t rng = 12345;
    char buf[256];
    for (int iter = 0; iter < 40000; iter++) {
        const char *seed = seeds[iter % 2];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        int edits = 1 + iter % 3;
        for (int e = 0; e < edits && n > 0; e++) {
            rng = rng * 1103515245u + 12345u;
            size_t at = (rng >> 8) % n;
            rng = rng * 1103515245u + 12345u;
            char c = alphabet[(rng >> 8) % (sizeof alphabet - 1)];
            switch ((rng >> 20) % 4) {
            case 0:
                buf[at] = c;
                break;
            case 1:
                if (n + 1 < sizeof buf) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = c;
                    n++;
                }
                break;
            case 2:
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
                break;
            default:
                n = at;
            }
        }
        expect_same(buf, n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keeps_exact_text),
        cmocka_unit_test(rejects_non_objects),
        cmocka_unit_test(parse_accepts_big_numbers),
        cmocka_unit_test(parse_exact_widens_only_wide_integers),
        cmocka_unit_test(raw_nul_is_not_json),
        cmocka_unit_test(member_span),
        cmocka_unit_test(object_validator_agrees_with_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
