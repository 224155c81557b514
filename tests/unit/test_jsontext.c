/* Unit tests for JSON text splicing: members dropped and prepended without touching the exact
 * text of the others (numbers, escapes, nesting). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
