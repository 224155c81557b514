/* Unit tests for the cache's pure parts: the ttl grammar and its errors, cache-key rules, which
 * records a read may return (expiry is derived from expires_at and the clock), and the key
 * list's Redis-style glob. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache/entry.h"
#include "cache/scan.h"
#include "cache/ttl.h"
#include "db/names.h"

static uint64_t ttl_ok(const char *s)
{
    uint64_t ms = 0;
    ld_ttl_status st = ld_ttl_parse(s, &ms);
    if (st != LD_TTL_OK) fail_msg("ttl '%s' refused (%d)", s, (int)st);
    return ms;
}

static void ttl_units(void **state)
{
    (void)state;
    assert_int_equal(ttl_ok("30s"), 30000);
    assert_int_equal(ttl_ok("5m"), 300000);
    assert_int_equal(ttl_ok("2h"), 7200000);
    assert_int_equal(ttl_ok("1d"), 86400000);
    assert_int_equal(ttl_ok("250ms"), 250);
    assert_int_equal(ttl_ok("250MS"), 250);
    assert_int_equal(ttl_ok("5M"), 300000);
    assert_int_equal(ttl_ok("1.5h"), 5400000);
    assert_int_equal(ttl_ok(".5s"), 500);
    assert_int_equal(ttl_ok("2."), 2000);
    assert_int_equal(ttl_ok("  30s \t"), 30000);
    assert_int_equal(ttl_ok("+30s"), 30000);
    /* A bare number is seconds, as in Redis (the original read it as days). */
    assert_int_equal(ttl_ok("30"), 30000);
    /* Whole milliseconds, rounded up: a positive ttl is never 0 ms. */
    assert_int_equal(ttl_ok("0.1ms"), 1);
    assert_int_equal(ttl_ok("1.0001s"), 1001);
    assert_int_equal(ttl_ok("30d"), LD_TTL_MAX_MS);
    assert_int_equal(ttl_ok("2592000000ms"), LD_TTL_MAX_MS);
}

static void ttl_clock_form(void **state)
{
    (void)state;
    assert_int_equal(ttl_ok("00:00:30"), 30000);
    assert_int_equal(ttl_ok("01:30:00"), 5400000);
    assert_int_equal(ttl_ok("1:30"), 5400000); /* h:mm */
    assert_int_equal(ttl_ok("00:00:01.5"), 1500);
    assert_int_equal(ttl_ok("1.02:00:00"), 93600000); /* d.hh:mm:ss */
    assert_int_equal(ttl_ok("48:00:00"), 172800000);
}

static ld_ttl_status ttl_st(const char *s)
{
    uint64_t ms = 12345;
    ld_ttl_status st = ld_ttl_parse(s, &ms);
    if (st != LD_TTL_OK) assert_int_equal(ms, 12345); /* untouched on refusal */
    return st;
}

static void ttl_errors(void **state)
{
    (void)state;
    const char *format[] = {"",           "   ",   "5x",  "x",      "s",    "ms",   "5 m",
                            "1e3s",       "0x10s", "5mm", "--5m",   "5m5s", "1:60", "1:00:60",
                            "1.24:00:00", ":30",   "1::", "1.2.3s", "nan",  "inf",  NULL};
    for (int i = 0; format[i]; i++)
        if (ttl_st(format[i]) != LD_TTL_FORMAT) fail_msg("'%s' is not LD_TTL_FORMAT", format[i]);
    const char *zero[] = {"0s", "0", "0.0ms", "-5m", "-0s", "00:00:00", "-1", NULL};
    for (int i = 0; zero[i]; i++)
        if (ttl_st(zero[i]) != LD_TTL_NOT_POSITIVE) fail_msg("'%s' is not NOT_POSITIVE", zero[i]);
    const char *big[] = {
        "31d", "2592000001ms", "2592000000.5ms", "99999999999999999999999999d", "720:00:01", NULL};
    for (int i = 0; big[i]; i++)
        if (ttl_st(big[i]) != LD_TTL_TOO_LONG) fail_msg("'%s' is not TOO_LONG", big[i]);
    char huge[400];
    memset(huge, '9', sizeof huge - 2);
    huge[sizeof huge - 2] = 's';
    huge[sizeof huge - 1] = '\0';
    assert_int_equal(ttl_st(huge), LD_TTL_TOO_LONG);
    assert_int_equal(ld_ttl_parse(NULL, &(uint64_t){0}), LD_TTL_FORMAT);
    assert_string_equal(ld_ttl_error(LD_TTL_FORMAT),
                        "Invalid ttl format. Use values like '30s', '5m', '2h', or '1d'.");
    assert_string_equal(ld_ttl_error(LD_TTL_NOT_POSITIVE), "ttl must be greater than zero.");
    assert_string_equal(ld_ttl_error(LD_TTL_TOO_LONG), "ttl cannot exceed 2592000000ms.");
}

static const char *key_problem(const char *s)
{
    return ld_cache_key_problem(s, strlen(s));
}

static void cache_keys(void **state)
{
    (void)state;
    assert_null(key_problem("user:42"));
    assert_null(key_problem("a b"));
    assert_null(key_problem("ключ"));
    assert_string_equal(key_problem(""), "Cache key is required.");
    /* 256 characters are allowed, 257 are not; and at most 500 bytes (storage keys). */
    char k[4 * 300 + 1] = "";
    memset(k, 'x', 256);
    assert_null(key_problem(k));
    strcat(k, "x");
    assert_string_equal(key_problem(k), "Cache key cannot exceed 256 characters.");
    k[0] = '\0';
    for (int i = 0; i < 250; i++)
        strcat(k, "\xc3\xa9");
    assert_null(key_problem(k)); /* 250 characters, 500 bytes */
    strcat(k, "e");
    assert_string_equal(key_problem(k), "Cache key cannot exceed 500 bytes of UTF-8.");
    k[0] = '\0';
    for (int i = 0; i < 257; i++)
        strcat(k, "\xe2\x82\xac");
    assert_string_equal(key_problem(k), "Cache key cannot exceed 256 characters.");
    const char *bad[] = {"a\x01", "a\x7f", "\xff", "\xc3", " a", "a ", NULL};
    for (int i = 0; bad[i]; i++)
        assert_string_equal(key_problem(bad[i]),
                            "Cache key must be UTF-8 text without control characters.");
    assert_non_null(ld_cache_key_problem("a\0b", 3));
}

static void liveness(void **state)
{
    (void)state;
    ld_doc_rec rec = {.expires_ms = 1000, .json = "{}", .json_len = 2};
    assert_true(ld_cache_rec_live(&rec, 999));
    assert_false(ld_cache_rec_live(&rec, 1000)); /* expired means expires_at <= now */
    assert_false(ld_cache_rec_live(&rec, 5000));
    rec.flags = LD_REC_TOMBSTONE;
    assert_false(ld_cache_rec_live(&rec, 0));
    rec.flags = LD_REC_SWEPT;
    assert_false(ld_cache_rec_live(&rec, 0));
    rec.flags = 0;
    rec.expires_ms = 0; /* no expiry */
    assert_true(ld_cache_rec_live(&rec, UINT64_MAX));
}

static void get_answer(void **state)
{
    (void)state;
    static const char doc[] = "{\"Id\":\"k\",\"Key\":\"k\",\"Value\":{\"a\": 1.10},"
                              "\"CreatedUtc\":\"2026-01-01T00:00:00.000Z\","
                              "\"UpdatedUtc\":\"2026-01-01T00:00:01.000Z\","
                              "\"ExpiresAtUtc\":\"2026-01-01T00:00:31.000Z\"}";
    ld_doc_rec rec = {.expires_ms = 31000, .json = doc, .json_len = sizeof doc - 1};
    size_t len;
    bool corrupt;
    char *out = ld_cache_get_json(&rec, 1000, &len, &corrupt);
    assert_non_null(out);
    assert_string_equal(out, "{\"Key\":\"k\",\"Value\":{\"a\": 1.10},"
                             "\"CreatedUtc\":\"2026-01-01T00:00:00.000Z\","
                             "\"UpdatedUtc\":\"2026-01-01T00:00:01.000Z\","
                             "\"ExpiresAtUtc\":\"2026-01-01T00:00:31.000Z\","
                             "\"RemainingTtl\":\"30000ms\"}");
    assert_int_equal(len, strlen(out));
    free(out);
    ld_doc_rec other = {.expires_ms = 1, .json = "{\"Id\":\"x\"}", .json_len = 10};
    assert_null(ld_cache_get_json(&other, 0, &len, &corrupt));
    assert_true(corrupt);
}

static bool glob(const char *p, const char *s)
{
    return ld_glob_match(p, strlen(p), s, strlen(s));
}

static void glob_basics(void **state)
{
    (void)state;
    assert_true(glob("*", "anything"));
    assert_true(glob("user:*", "user:42"));
    assert_true(glob("user:*", "user:"));
    assert_false(glob("user:*", "use"));
    assert_true(glob("*:42", "user:42"));
    assert_true(glob("h?llo", "hello"));
    assert_false(glob("h?llo", "hllo"));
    assert_true(glob("h*llo", "hllo"));
    assert_true(glob("h*llo", "heeeello"));
    assert_true(glob("a**b", "ab"));
    assert_true(glob("abc", "abc"));
    assert_false(glob("abc", "abcd"));
    assert_false(glob("abcd", "abc"));
    assert_true(glob("*a*b*", "xxaxxbxx"));
    assert_false(glob("*a*b*", "xxbxxaxx"));
    /* Backtracking past several candidate positions. */
    assert_true(glob("*ab*cd", "aabxabcabcd"));
    assert_false(glob("*ab*cd", "aabxabcabce"));
}

static void glob_sets(void **state)
{
    (void)state;
    assert_true(glob("h[ae]llo", "hello"));
    assert_true(glob("h[ae]llo", "hallo"));
    assert_false(glob("h[ae]llo", "hillo"));
    assert_true(glob("h[^e]llo", "hallo"));
    assert_false(glob("h[^e]llo", "hello"));
    assert_true(glob("h[a-b]llo", "hbllo"));
    assert_false(glob("h[a-b]llo", "hcllo"));
    assert_true(glob("h[b-a]llo", "hallo")); /* a reversed range is swapped */
    assert_true(glob("[0-9][0-9]", "42"));
    assert_false(glob("[0-9][0-9]", "4x"));
    assert_true(glob("[a-cx]", "x"));
    assert_false(glob("[\\]", "\\")); /* \] escapes the ], leaving the set open */
    assert_true(glob("[\\]", "]"));
    assert_true(glob("[\\]]", "]")); /* \] inside a set is a literal ] */
    assert_false(glob("[]a]", "a")); /* ] first closes an empty set: matches nothing */
    assert_true(glob("[^]", "q"));   /* ...so its negation matches any byte */
    /* An unterminated set runs to the end of the pattern. */
    assert_true(glob("a[bc", "ab"));
    assert_true(glob("a[bc", "ac"));
    assert_false(glob("a[bc", "abc"));
    assert_true(glob("a[^", "az"));
    assert_true(glob("a[", "ab") == false);
    /* Redis reads "x-]" as a range x..] when 3 bytes are left. */
    assert_true(glob("[a-]", "]"));
    assert_true(glob("[a-]", "^")); /* the range ]..a, swapped */
    assert_false(glob("[a-]", "b"));
}

static void glob_escapes(void **state)
{
    (void)state;
    assert_true(glob("a\\*b", "a*b"));
    assert_false(glob("a\\*b", "axb"));
    assert_true(glob("\\?", "?"));
    assert_false(glob("\\?", "x"));
    assert_true(glob("a\\", "a\\")); /* a trailing backslash is itself */
    assert_true(glob("\\[a]", "[a]"));
    /* Lengths, not NULs, bound pattern and key. */
    assert_true(ld_glob_match("a\0b", 3, "a\0b", 3));
    assert_false(ld_glob_match("a\0b", 3, "a\0c", 3));
    /* Case sensitive, bytes unsigned (UTF-8 keys). */
    assert_false(glob("A*", "abc"));
    assert_true(glob("caf[\xc3][\xa9]", "caf\xc3\xa9"));
    assert_true(glob("[\x80-\xff]", "\xc3"));
}

static void glob_no_blowup(void **state)
{
    (void)state;
    /* The pattern that makes naive recursive matchers exponential. */
    char key[201];
    memset(key, 'a', 200);
    key[200] = '\0';
    assert_false(glob("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", key));
    assert_true(glob("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*", key));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ttl_units),    cmocka_unit_test(ttl_clock_form),
        cmocka_unit_test(ttl_errors),   cmocka_unit_test(cache_keys),
        cmocka_unit_test(liveness),     cmocka_unit_test(get_answer),
        cmocka_unit_test(glob_basics),  cmocka_unit_test(glob_sets),
        cmocka_unit_test(glob_escapes), cmocka_unit_test(glob_no_blowup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
