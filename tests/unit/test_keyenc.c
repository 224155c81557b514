/* Unit tests for the index key encoding: thousands of random pairs of JSON values across types
 * (integers near 2^53 and 2^63, reals, -0.0, strings with NUL, nested arrays and objects) whose
 * encodings must compare as ld_ql_compare does, and be self-delimiting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "index/keyenc.h"
#include "query/eval.h"

/* xorshift64*: a fixed seed, so a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

static uint64_t below(uint64_t n)
{
    return rnd() % n;
}

/* Integers where order is easy to get wrong: near 0, 2^53 and 2^63, and anywhere. */
static json_int_t random_int(void)
{
    static const json_int_t bases[] = {
        0, 1, -1, 9007199254740992LL, -9007199254740992LL, INT64_MAX, INT64_MIN, 1000, -1000};
    switch (below(3)) {
    case 0:
        return (json_int_t)rnd();
    case 1: {
        json_int_t b = bases[below(sizeof bases / sizeof bases[0])];
        json_int_t d = (json_int_t)below(5) - 2;
        if ((d > 0 && b > INT64_MAX - d) || (d < 0 && b < INT64_MIN - d)) return b;
        return b + d;
    }
    default:
        return (json_int_t)below(7) - 3;
    }
}

static double random_real(void)
{
    static const double bases[] = {0.0,
                                   -0.0,
                                   0.5,
                                   -0.5,
                                   9007199254740992.0,
                                   -9007199254740992.0,
                                   9223372036854775808.0,
                                   -9223372036854775808.0,
                                   9223372036854774784.0,
                                   -9223372036854774784.0,
                                   1e300,
                                   -1e300,
                                   4.9e-324,
                                   -4.9e-324,
                                   1.0,
                                   -1.0,
                                   2.0};
    switch (below(4)) {
    case 0: {
        double b = bases[below(sizeof bases / sizeof bases[0])];
        return below(2) ? nextafter(b, below(2) ? INFINITY : -INFINITY) : b;
    }
    case 1: {
        uint64_t u = rnd();
        double d;
        memcpy(&d, &u, sizeof d);
        return isfinite(d) ? d : 1.5;
    }
    case 2:
        return (double)random_int() + (below(2) ? 0.0 : 0.25 * (double)below(4));
    default:
        return ((double)below(13) - 6) / 2.0;
    }
}

static json_t *random_value(int depth);

static json_t *random_string(void)
{
    static const char alphabet[] = {'a', 'b', '\0', '\x01', '\xff', 'z'};
    char s[8];
    size_t n = below(6);
    for (size_t i = 0; i < n; i++)
        s[i] = alphabet[below(sizeof alphabet)];
    return json_stringn_nocheck(s, n);
}

static json_t *random_value(int depth)
{
    switch (below(depth > 2 ? 6 : 8)) {
    case 0:
        return json_null();
    case 1:
        return json_boolean(below(2));
    case 2:
        return json_integer(random_int());
    case 3:
        return json_real(random_real());
    case 4:
    case 5:
        return random_string();
    case 6: {
        json_t *a = json_array();
        for (size_t i = below(4); i > 0; i--)
            json_array_append_new(a, random_value(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (size_t i = below(4); i > 0; i--) {
            char k[2] = {(char)('a' + below(3)), 0};
            json_object_set_new(o, k, random_value(depth + 1));
        }
        return o;
    }
    }
}

/* JSON text with NULs in strings allowed (the evaluator's parser is for documents). */
static json_t *J(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!v) fail_msg("bad JSON in test: %s: %s", text, e.text);
    return v;
}

static int sign(int c)
{
    return c < 0 ? -1 : c > 0;
}

static int memcmp_shorter_first(const ld_qbuf *a, const ld_qbuf *b)
{
    int c = memcmp(a->data, b->data, a->len < b->len ? a->len : b->len);
    if (c) return sign(c);
    return a->len < b->len ? -1 : a->len > b->len;
}

static void encode(const json_t *v, ld_qbuf *out)
{
    ld_qbuf_init(out);
    assert_int_equal(ld_keyenc_append(out, v), LD_OK);
    /* Self-delimiting: the reader finds exactly the value's end. */
    assert_int_equal(ld_keyenc_skip((const uint8_t *)out->data, out->len), out->len);
}

static void check_pair(json_t *a, json_t *b)
{
    ld_qbuf ea, eb;
    encode(a, &ea);
    encode(b, &eb);
    int want = sign(ld_ql_compare(a, b)), got = memcmp_shorter_first(&ea, &eb);
    if (want != got) {
        char *ta = json_dumps(a, JSON_ENCODE_ANY), *tb = json_dumps(b, JSON_ENCODE_ANY);
        fail_msg("%s vs %s: compare %d, encoding %d", ta, tb, want, got);
    }
    /* Compound keys: (a, x) against (b, y) orders by a first, then by x. */
    json_t *x = random_value(2), *y = random_value(2);
    assert_int_equal(ld_keyenc_append(&ea, x), LD_OK);
    assert_int_equal(ld_keyenc_append(&eb, y), LD_OK);
    int want2 = want ? want : sign(ld_ql_compare(x, y));
    assert_int_equal(memcmp_shorter_first(&ea, &eb), want2);
    json_decref(x);
    json_decref(y);
    ld_qbuf_free(&ea);
    ld_qbuf_free(&eb);
}

static void random_pairs_order_as_compare(void **state)
{
    (void)state;
    for (int i = 0; i < 20000; i++) {
        json_t *a = random_value(0), *b = random_value(0);
        check_pair(a, b);
        json_decref(a);
        json_decref(b);
    }
}

/* Pairs of the same type only (random pairs mostly differ in type). */
static void random_numbers_order_as_compare(void **state)
{
    (void)state;
    for (int i = 0; i < 20000; i++) {
        json_t *a = below(2) ? json_integer(random_int()) : json_real(random_real());
        json_t *b = below(2) ? json_integer(random_int()) : json_real(random_real());
        check_pair(a, b);
        json_decref(a);
        json_decref(b);
    }
}

static void edge_cases(void **state)
{
    (void)state;
    const char *pairs[][2] = {
        {"0", "-0.0"},
        {"0.0", "-0.0"},
        {"9007199254740993", "9007199254740992.0"},
        {"9223372036854775807", "9223372036854775808.0"},
        {"-9223372036854775808", "-9223372036854775808.0"},
        {"-9223372036854775808", "-9223372036854777856.0"},
        {"-1", "-0.5"},
        {"-1", "-1.5"},
        {"-1e-108", "-2.9e-80"},
        {"-1e-108", "0"},
        {"-1e-108", "-1"},
        {"1e-300", "0"},
        {"\"a\"", "\"a\\u0000\""},
        {"\"a\\u0000\"", "\"a\\u0001\""},
        {"[]", "[null]"},
        {"[1]", "[1, 2]"},
        {"{}", "{\"a\": null}"},
        {"{\"a\": 1}", "{\"a\": 1, \"b\": 0}"},
        {"{\"a\": 1, \"c\": 0}", "{\"a\": 1, \"b\": 0}"},
        {"{\"a\\u0001\": 1}", "{\"a\": 2}"},
        {"null", "false"},
        {"true", "[]"},
        {"\"\"", "0"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        json_t *a = J(pairs[i][0]), *b = J(pairs[i][1]);
        check_pair(a, b);
        check_pair(b, a);
        json_decref(a);
        json_decref(b);
    }
}

static void missing_sorts_first(void **state)
{
    (void)state;
    ld_qbuf m, n;
    ld_qbuf_init(&m);
    assert_int_equal(ld_keyenc_append_missing(&m), LD_OK);
    assert_int_equal(ld_keyenc_skip((const uint8_t *)m.data, m.len), 1);
    for (int i = 0; i < 1000; i++) {
        json_t *v = random_value(0);
        encode(v, &n);
        assert_int_equal(memcmp_shorter_first(&m, &n), -1);
        ld_qbuf_free(&n);
        json_decref(v);
    }
    ld_qbuf_free(&m);
}

static void rejects_and_truncation(void **state)
{
    (void)state;
    ld_qbuf b;
    ld_qbuf_init(&b);
    /* jansson refuses to make a NaN real, so check the reader: every proper prefix of an
     * encoding is incomplete. */
    json_t *v = J("[1, \"x\\u0000y\", {\"k\": [-2.5, null]}, true]");
    assert_int_equal(ld_keyenc_append(&b, v), LD_OK);
    for (size_t i = 0; i < b.len; i++)
        assert_int_equal(ld_keyenc_skip((const uint8_t *)b.data, i), 0);
    assert_int_equal(ld_keyenc_skip((const uint8_t *)"\x07", 1), 0);
    json_decref(v);
    ld_qbuf_free(&b);
}

/* Values long enough to be cut: strings up to 40 bytes over a small alphabet (so prefixes are
 * shared), arrays and objects of several of them. */
static json_t *long_value(int depth)
{
    switch (below(depth > 1 ? 3 : 5)) {
    case 0:
        return json_integer((json_int_t)below(5));
    case 1:
    case 2: {
        static const char alphabet[] = {'a', 'b', '\0'};
        char s[40];
        size_t n = below(40);
        for (size_t i = 0; i < n; i++)
            s[i] = alphabet[below(sizeof alphabet)];
        return json_stringn_nocheck(s, n);
    }
    case 3: {
        json_t *a = json_array();
        for (size_t i = below(5); i > 0; i--)
            json_array_append_new(a, long_value(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (size_t i = below(4); i > 0; i--) {
            char k[12];
            size_t kl = 1 + below(10);
            for (size_t j = 0; j < kl; j++)
                k[j] = (char)('a' + below(2));
            k[kl] = 0;
            json_object_set_new(o, k, long_value(depth + 1));
        }
        return o;
    }
    }
}

static void capped(const json_t *v, size_t cap, ld_qbuf *out, bool *cut)
{
    ld_qbuf_init(out);
    assert_int_equal(ld_keyenc_append_capped(out, v, cap, cut), LD_OK);
    assert_true(out->len <= cap);
    bool c2;
    assert_int_equal(ld_keyenc_skip_cut((const uint8_t *)out->data, out->len, &c2), out->len);
    assert_int_equal(c2, *cut);
    ld_qbuf full;
    encode(v, &full);
    /* Whole when it fits (a container may be cut a little earlier: its cut depends only on
     * the room), and then the encoding itself. */
    if (full.len <= cap && !json_is_array(v) && !json_is_object(v)) assert_false(*cut);
    if (full.len > cap) assert_true(*cut);
    if (!*cut) {
        assert_int_equal(full.len, out->len);
        assert_memory_equal(full.data, out->data, out->len);
    }
    ld_qbuf_free(&full);
}

/* The capped form is monotone: a <= b gives capped(a) <= capped(b) for the same cap. */
static void capped_is_monotone(void **state)
{
    (void)state;
    for (int i = 0; i < 20000; i++) {
        json_t *a = long_value(0), *b = long_value(0);
        size_t cap = LD_KEYENC_SCALAR_MAX + below(40);
        ld_qbuf ea, eb;
        bool ca, cb;
        capped(a, cap, &ea, &ca);
        capped(b, cap, &eb, &cb);
        int want = sign(ld_ql_compare(a, b)), got = memcmp_shorter_first(&ea, &eb);
        if (want * got < 0 || (want == 0 && got != 0)) {
            char *ta = json_dumps(a, JSON_ENCODE_ANY), *tb = json_dumps(b, JSON_ENCODE_ANY);
            fail_msg("cap %zu: %s vs %s: compare %d, capped %d", cap, ta, tb, want, got);
        }
        ld_qbuf_free(&ea);
        ld_qbuf_free(&eb);
        json_decref(a);
        json_decref(b);
    }
    ld_qbuf b;
    bool cut;
    ld_qbuf_init(&b);
    assert_int_equal(ld_keyenc_append_capped(&b, json_null(), 18, &cut), LD_INVALID);
    ld_qbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(edge_cases),
        cmocka_unit_test(random_pairs_order_as_compare),
        cmocka_unit_test(random_numbers_order_as_compare),
        cmocka_unit_test(missing_sorts_first),
        cmocka_unit_test(rejects_and_truncation),
        cmocka_unit_test(capped_is_monotone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
