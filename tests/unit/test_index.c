/* Unit tests for index entry keys: paths parsed as query paths (and refused when they are not
 * paths below the document), the values of a document's text, missing members, compound keys
 * ordered value by value then by id, and the id read back from a key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "index/index.h"
#include "index/keyenc.h"

static ld_index_def make_def(uint32_t num, const char *a, const char *b)
{
    ld_index_def d = {.num = num, .npaths = b ? 2 : 1};
    d.parsed = calloc(d.npaths, sizeof *d.parsed);
    assert_non_null(d.parsed);
    char err[200];
    assert_int_equal(ld_index_parse_path(a, strlen(a), &d.parsed[0], err, sizeof err), LD_OK);
    if (b)
        assert_int_equal(ld_index_parse_path(b, strlen(b), &d.parsed[1], err, sizeof err), LD_OK);
    return d;
}

static void drop_def(ld_index_def *d)
{
    for (size_t i = 0; i < d->npaths; i++)
        ld_index_path_clear(&d->parsed[i]);
    free(d->parsed);
}

/* The entry key of doc (JSON text) with id under d, into b (initialized here). */
static void key_of(const ld_index_def *d, const char *doc, const char *id, ld_qbuf *b)
{
    ld_qbuf_init(b);
    assert_int_equal(ld_index_entry_key(b, d, doc, strlen(doc), id, strlen(id)), LD_OK);
}

static int cmp(const ld_qbuf *a, const ld_qbuf *b)
{
    int c = memcmp(a->data, b->data, a->len < b->len ? a->len : b->len);
    if (c) return c < 0 ? -1 : 1;
    return a->len < b->len ? -1 : a->len > b->len;
}

static void paths(void **state)
{
    (void)state;
    const char *good[] = {"$.a", "a.b", "$.a[0].b", "$.\"x y\"", "$['k']", "$.Id"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        ld_index_path p;
        char err[200];
        if (ld_index_parse_path(good[i], strlen(good[i]), &p, err, sizeof err) != LD_OK)
            fail_msg("%s: %s", good[i], err);
        assert_true(p.nsegs > 0);
        ld_index_path_clear(&p);
    }
    const char *bad[] = {"$", "_id", "$._id",         "1",     "$.a + 1", "$.a FROM c WHERE $.b",
                         "",  "a,b", "$.a FROM c --", "$.a /*"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ld_index_path p;
        char err[200] = "";
        assert_int_equal(ld_index_parse_path(bad[i], strlen(bad[i]), &p, err, sizeof err),
                         LD_INVALID);
        assert_true(err[0] != '\0');
        assert_null(p.segs);
    }
}

static void entry_keys(void **state)
{
    (void)state;
    ld_index_def d = make_def(7, "$.a", "$.b.c");
    ld_qbuf k1, k2, k3, k4;
    key_of(&d, "{\"a\": 2, \"b\": {\"c\": \"x\"}}", "id1", &k1);
    key_of(&d, "{\"a\": 2.0, \"b\": {\"c\": \"y\"}}", "id0", &k2);
    key_of(&d, "{\"b\": {\"c\": \"x\"}}", "id9", &k3); /* a missing: first */
    key_of(&d, "{\"a\": 2, \"b\": {\"c\": \"x\"}}", "id2", &k4);
    assert_memory_equal(k1.data, "\0\0\0\7", 4);
    assert_int_equal(cmp(&k1, &k2), -1); /* 2 = 2.0, then "x" < "y" */
    assert_int_equal(cmp(&k3, &k1), -1);
    assert_int_equal(cmp(&k1, &k4), -1); /* equal values: by id */
    const char *id;
    size_t il;
    assert_true(ld_index_entry_id(&d, k2.data, k2.len, &id, &il));
    assert_int_equal(il, 3);
    assert_memory_equal(id, "id0", 3);
    assert_true(ld_index_entry_id(&d, k3.data, k3.len, &id, &il));
    assert_memory_equal(id, "id9", 3);
    assert_false(ld_index_entry_id(&d, k3.data, 5, &id, &il));
    /* Another index number is another range. */
    ld_index_def e = make_def(8, "$.a", NULL);
    ld_qbuf k5;
    key_of(&e, "{}", "a", &k5);
    assert_int_equal(cmp(&k1, &k5), -1);
    ld_qbuf_free(&k1);
    ld_qbuf_free(&k2);
    ld_qbuf_free(&k3);
    ld_qbuf_free(&k4);
    ld_qbuf_free(&k5);
    drop_def(&d);
    drop_def(&e);
}

/* A long value is cut in its entry (the key stays within the storage's 511 bytes), and a bound
 * built from the same values is the entry's key before its id. */
static void long_values_and_bounds(void **state)
{
    (void)state;
    ld_index_def d = make_def(3, "$.s", "$.n");
    char doc[4000], id[257];
    memset(id, 'i', 256);
    id[256] = '\0';
    char *big = malloc(3001);
    assert_non_null(big);
    memset(big, 'x', 3000);
    big[3000] = '\0';
    snprintf(doc, sizeof doc, "{\"s\": \"%s\", \"n\": 12.5}", big);
    ld_qbuf k;
    key_of(&d, doc, id, &k);
    assert_true(k.len <= 511);
    json_t *vals[2] = {json_string(big), json_real(12.5)};
    ld_qbuf b;
    ld_qbuf_init(&b);
    bool cut;
    assert_int_equal(ld_index_bound(&b, &d, vals, 2, &cut), LD_OK);
    assert_true(cut);
    assert_int_equal(b.len + 256, k.len);
    assert_memory_equal(b.data, k.data, b.len);
    const char *got;
    size_t gl;
    assert_true(ld_index_entry_id(&d, k.data, k.len, &got, &gl));
    assert_int_equal(gl, 256);
    /* One value: the prefix of the two-value bound. */
    ld_qbuf b1;
    ld_qbuf_init(&b1);
    assert_int_equal(ld_index_bound(&b1, &d, vals, 1, &cut), LD_OK);
    assert_true(b1.len < b.len);
    assert_memory_equal(b1.data, b.data, b1.len);
    assert_int_equal(ld_index_bound(&b1, &d, vals, 3, &cut), LD_INVALID);
    json_decref(vals[0]);
    json_decref(vals[1]);
    free(big);
    ld_qbuf_free(&k);
    ld_qbuf_free(&b);
    ld_qbuf_free(&b1);
    drop_def(&d);
}

/* A failed background step waits 1 s, then doubling, never past a minute. */
static void retry_backoff(void **state)
{
    (void)state;
    assert_int_equal(ld_index_retry_delay_us(1), 1000000);
    assert_int_equal(ld_index_retry_delay_us(2), 2000000);
    assert_int_equal(ld_index_retry_delay_us(3), 4000000);
    assert_int_equal(ld_index_retry_delay_us(6), 32000000);
    assert_int_equal(ld_index_retry_delay_us(7), LD_INDEX_RETRY_MAX_US);
    assert_int_equal(ld_index_retry_delay_us(1000000), LD_INDEX_RETRY_MAX_US);
    assert_int_equal(ld_index_retry_delay_us(UINT32_MAX), LD_INDEX_RETRY_MAX_US);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(paths),
        cmocka_unit_test(entry_keys),
        cmocka_unit_test(long_values_and_bounds),
        cmocka_unit_test(retry_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
