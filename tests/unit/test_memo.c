/* Unit tests of the read memo (core/db/memo.h) and the key log it is fed with
 * (core/util/keylog.h): hits return what was put, a commit's keys drop exactly those records,
 * an overflowed log drops everything, and the byte budget holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db/memo.h"
#include "util/keylog.h"

static void put_s(ld_memo *m, const char *k, const char *v)
{
    ld_memo_put(m, (const uint8_t *)k, strlen(k), (const uint8_t *)v, strlen(v));
}

/* The record under k as a string ("" when absent). */
static const char *get_s(ld_memo *m, const char *k)
{
    static char out[256];
    size_t vl;
    const uint8_t *v = ld_memo_get(m, (const uint8_t *)k, strlen(k), &vl);
    if (!v) return "";
    memcpy(out, v, vl);
    out[vl] = '\0';
    return out;
}

static void hits_return_what_was_put(void **state)
{
    (void)state;
    assert_null(ld_memo_new(0));
    ld_memo *m = ld_memo_new(64 * 1024);
    assert_non_null(m);
    assert_string_equal(get_s(m, "c\0a"), "");
    /* Each key is read right after its put: two keys may share a slot (the hash key is random),
     * and then the later put replaces the earlier record. */
    put_s(m, "a", "one");
    assert_string_equal(get_s(m, "a"), "one");
    put_s(m, "b", "two");
    assert_string_equal(get_s(m, "b"), "two");
    assert_string_equal(get_s(m, "ab"), "");
    put_s(m, "a", "uno"); /* a newer read replaces the record */
    assert_string_equal(get_s(m, "a"), "uno");
    uint64_t hits, misses;
    size_t bytes;
    ld_memo_stats(m, &hits, &misses, &bytes);
    assert_int_equal(hits, 3);
    assert_int_equal(misses, 2);
    assert_true(bytes > 0);
    ld_memo_free(m);
    ld_memo_free(NULL);
}

static void a_commits_keys_drop_exactly_those(void **state)
{
    (void)state;
    /* 4,096 slots for 50 keys: a collision (the hash key is random) is rare, and each costs
     * one held key at most. */
    ld_memo *m = ld_memo_new(1024 * 1024);
    char k[16];
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof k, "k%d", i);
        put_s(m, k, "v");
    }
    ld_keylog w = {0};
    ld_keylog_add(&w, "k3", 2);
    ld_keylog_add(&w, "k7", 2);
    ld_keylog_add(&w, "zz", 2); /* not held: nothing happens */
    ld_memo_invalidate(m, &w);
    /* Two commits before the loop looks: both apply. */
    ld_keylog_reset(&w);
    ld_keylog_add(&w, "k9", 2);
    ld_memo_invalidate(m, &w);
    int held = 0;
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof k, "k%d", i);
        bool want = i != 3 && i != 7 && i != 9;
        /* A key may have lost its slot to others of its set; none of the three is back. */
        if (!want) assert_string_equal(get_s(m, k), "");
        held += strcmp(get_s(m, k), "v") == 0;
    }
    assert_true(held >= 40 && held <= 47);
    /* An empty log hands nothing over; an overflowed one drops everything. */
    ld_keylog_reset(&w);
    ld_memo_invalidate(m, &w);
    int still = 0;
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof k, "k%d", i);
        still += strcmp(get_s(m, k), "v") == 0;
    }
    assert_int_equal(still, held);
    for (unsigned i = 0; i <= LD_KEYLOG_MAX_KEYS; i++)
        ld_keylog_add(&w, "x", 1);
    assert_true(w.overflow);
    ld_memo_invalidate(m, &w);
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof k, "k%d", i);
        assert_string_equal(get_s(m, k), "");
    }
    uint64_t hits, misses;
    size_t bytes;
    ld_memo_stats(m, &hits, &misses, &bytes);
    assert_int_equal(bytes, 0);
    ld_keylog_free(&w);
    ld_memo_free(m);
}

/* How many of "key:0".."key:9999" a lookup finds holding v; *bytes (when asked) what the memo
 * should count for them. */
static int held_as(ld_memo *m, const char *v, size_t *bytes)
{
    char k[16];
    int held = 0;
    size_t sum = 0;
    for (int i = 0; i < 10000; i++) {
        snprintf(k, sizeof k, "key:%d", i);
        if (strcmp(get_s(m, k), v) != 0) continue;
        held++;
        sum += 2 * sizeof(size_t) + strlen(k) + strlen(v); /* memo_ent's header, key, record */
    }
    if (bytes) *bytes = sum;
    return held;
}

static void a_set_of_two_keeps_colliding_keys(void **state)
{
    (void)state;
    /* 10,000 keys in 32,768 slots (8 MiB): direct-mapped, about 13% of them would share a slot
     * and push each other out; in sets of two, a key is lost only to two others of its set
     * (about 2%). */
    ld_memo *m = ld_memo_new(8 * 1024 * 1024);
    char k[16];
    for (int i = 0; i < 10000; i++) {
        snprintf(k, sizeof k, "key:%d", i);
        put_s(m, k, "v");
    }
    assert_true(held_as(m, "v", NULL) >= 9500);
    /* A key put again takes its own slot back, never a second one, even when the other slot
     * of its set was emptied meanwhile: drop the even keys, then put the odd ones again. */
    ld_keylog w = {0};
    for (int i = 0; i < 10000; i += 2) {
        snprintf(k, sizeof k, "key:%d", i);
        ld_keylog_add(&w, k, strlen(k));
        if (w.n == LD_KEYLOG_MAX_KEYS / 2 || i == 9998) {
            ld_memo_invalidate(m, &w);
            assert_string_equal(get_s(m, "key:0"), ""); /* the loop drains at a lookup */
            ld_keylog_reset(&w);
        }
    }
    ld_keylog_free(&w);
    for (int i = 1; i < 10000; i += 2) {
        snprintf(k, sizeof k, "key:%d", i);
        put_s(m, k, "w");
    }
    size_t want;
    assert_true(held_as(m, "w", &want) >= 4750);
    uint64_t hits, misses;
    size_t bytes;
    ld_memo_stats(m, &hits, &misses, &bytes);
    assert_int_equal(bytes, want); /* exactly the keys a lookup finds: no stale copy beside them */
    ld_memo_free(m);
}

static void the_budget_holds(void **state)
{
    (void)state;
    ld_memo *m = ld_memo_new(64 * 64); /* records up to 64 bytes, 4 KiB in all */
    char big[100];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    put_s(m, "big", big);
    assert_string_equal(get_s(m, "big"), ""); /* over 1/64 of the budget: not kept */
    char k[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "k%d", i);
        put_s(m, k, "0123456789");
    }
    uint64_t hits, misses;
    size_t bytes;
    ld_memo_stats(m, &hits, &misses, &bytes);
    assert_true(bytes <= 64 * 64);
    assert_true(bytes > 0);
    ld_memo_free(m);
}

static void the_key_log_walks_what_it_noted(void **state)
{
    (void)state;
    ld_keylog l = {0};
    ld_keylog_add(&l, "ab", 2);
    ld_keylog_add(&l, "", 0);
    ld_keylog_add(&l, "c\0d", 3);
    size_t pos = 0, kl;
    const uint8_t *k;
    assert_true(ld_keylog_next(&l, &pos, &k, &kl));
    assert_int_equal(kl, 2);
    assert_memory_equal(k, "ab", 2);
    assert_true(ld_keylog_next(&l, &pos, &k, &kl));
    assert_int_equal(kl, 0);
    assert_true(ld_keylog_next(&l, &pos, &k, &kl));
    assert_int_equal(kl, 3);
    assert_memory_equal(k, "c\0d", 3);
    assert_false(ld_keylog_next(&l, &pos, &k, &kl));
    assert_int_equal(l.n, 3);
    ld_keylog_reset(&l);
    pos = 0;
    assert_false(ld_keylog_next(&l, &pos, &k, &kl));
    ld_keylog_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hits_return_what_was_put),
        cmocka_unit_test(a_commits_keys_drop_exactly_those),
        cmocka_unit_test(a_set_of_two_keeps_colliding_keys),
        cmocka_unit_test(the_budget_holds),
        cmocka_unit_test(the_key_log_walks_what_it_noted),
    };
    return cmocka_run_group_tests_name("read memo", tests, NULL, NULL);
}
