/* Unit tests for the storage codecs: document records, op-log entries, keys, op ids, and the
 * digest term. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "db/database.h"
#include "db/record.h"

static void doc_record_round_trip(void **state)
{
    (void)state;
    ld_doc_rec r = {.flags = LD_REC_TOMBSTONE | LD_REC_RESERVED,
                    .hlc = 0x0123456789abcdefull,
                    .expires_ms = 42,
                    .origin = "node-1",
                    .origin_len = 6,
                    .json = "{\"a\":1}",
                    .json_len = 7};
    for (int i = 0; i < LD_OP_ID_LEN; i++)
        r.version[i] = (uint8_t)(i * 7);
    size_t len;
    uint8_t *buf = ld_doc_rec_encode(&r, &len);
    assert_non_null(buf);
    ld_doc_rec d;
    assert_true(ld_doc_rec_decode(buf, len, &d));
    assert_int_equal(d.flags, r.flags);
    assert_int_equal(d.hlc, r.hlc);
    assert_int_equal(d.expires_ms, 42);
    assert_memory_equal(d.version, r.version, LD_OP_ID_LEN);
    assert_int_equal(d.origin_len, 6);
    assert_memory_equal(d.origin, "node-1", 6);
    assert_int_equal(d.json_len, 7);
    assert_memory_equal(d.json, "{\"a\":1}", 7);
    /* Every truncation is rejected, never read past the end. */
    for (size_t n = 0; n < len - r.json_len; n++)
        assert_false(ld_doc_rec_decode(buf, n, &d));
    buf[0] = 99; /* unknown format version */
    assert_false(ld_doc_rec_decode(buf, len, &d));
    free(buf);
    /* An empty JSON body (a purged tombstone) is valid. */
    r.json_len = 0;
    buf = ld_doc_rec_encode(&r, &len);
    assert_true(ld_doc_rec_decode(buf, len, &d));
    assert_int_equal(d.json_len, 0);
    free(buf);
}

static void op_record_round_trip(void **state)
{
    (void)state;
    ld_op_rec r = {.op_type = LD_OP_DELETE,
                   .synced = 1,
                   .hlc = 77,
                   .origin_seq = 1234567890123ull,
                   .expires_ms = 9,
                   .origin = "n2",
                   .origin_len = 2,
                   .collection = "orders",
                   .collection_len = 6,
                   .doc_id = "id\0x",
                   .doc_id_len = 4,
                   .has_parent = true,
                   .payload = "{}",
                   .payload_len = 2};
    memset(r.id, 0xab, LD_OP_ID_LEN);
    memset(r.parent, 0xcd, LD_OP_ID_LEN);
    size_t len;
    uint8_t *buf = ld_op_rec_encode(&r, &len);
    assert_non_null(buf);
    ld_op_rec d;
    assert_true(ld_op_rec_decode(buf, len, &d));
    assert_int_equal(d.op_type, LD_OP_DELETE);
    assert_int_equal(d.synced, 1);
    assert_int_equal(d.hlc, 77);
    assert_int_equal(d.origin_seq, 1234567890123ull);
    assert_int_equal(d.expires_ms, 9);
    assert_memory_equal(d.origin, "n2", 2);
    assert_memory_equal(d.collection, "orders", 6);
    assert_int_equal(d.doc_id_len, 4);
    assert_memory_equal(d.doc_id, "id\0x", 4);
    assert_true(d.has_parent);
    assert_memory_equal(d.parent, r.parent, LD_OP_ID_LEN);
    assert_memory_equal(d.id, r.id, LD_OP_ID_LEN);
    assert_memory_equal(d.payload, "{}", 2);
    for (size_t n = 0; n < len - r.payload_len; n++)
        assert_false(ld_op_rec_decode(buf, n, &d));
    free(buf);

    r.has_parent = false;
    r.op_type = 4; /* not an operation type */
    buf = ld_op_rec_encode(&r, &len);
    assert_false(ld_op_rec_decode(buf, len, &d));
    free(buf);
    r.origin_len = 300; /* too long to encode */
    assert_null(ld_op_rec_encode(&r, &len));
}

static void keys_and_ids(void **state)
{
    (void)state;
    size_t len;
    uint8_t *k = ld_doc_key("orders", 6, "o1", 2, &len);
    assert_int_equal(len, 9);
    assert_memory_equal(k, "orders\0o1", 9);
    const char *c, *i;
    size_t cl, il;
    assert_true(ld_doc_key_split(k, len, &c, &cl, &i, &il));
    assert_int_equal(cl, 6);
    assert_int_equal(il, 2);
    assert_memory_equal(i, "o1", 2);
    free(k);
    /* Collection "a" sorts before "ab" for any ids: its prefix ends in 0x00. */
    uint8_t *k1 = ld_doc_key("a", 1, "zzz", 3, &len);
    uint8_t *k2 = ld_doc_key("ab", 2, "", 0, &len);
    assert_true(memcmp(k1, k2, 2) < 0);
    free(k1);
    free(k2);

    uint8_t b[8];
    ld_be64_put(b, 0x0102030405060708ull);
    assert_int_equal(b[0], 1);
    assert_int_equal(b[7], 8);
    assert_int_equal(ld_be64_get(b), 0x0102030405060708ull);

    uint8_t id[LD_OP_ID_LEN], back[LD_OP_ID_LEN];
    for (int n = 0; n < LD_OP_ID_LEN; n++)
        id[n] = (uint8_t)(0xf0 + n);
    char hex[2 * LD_OP_ID_LEN + 1];
    ld_op_id_hex(id, hex);
    assert_string_equal(hex, "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
    assert_true(ld_op_id_parse(hex, back));
    assert_memory_equal(id, back, LD_OP_ID_LEN);
    assert_true(ld_op_id_parse("F0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF", back));
    assert_false(ld_op_id_parse("f0f1", back));
    assert_false(ld_op_id_parse("g0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", back));
    assert_false(ld_op_id_parse("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff00", back));
}

static void digest_terms_differ_by_every_field(void **state)
{
    (void)state;
    ld_doc_rec r = {.hlc = 5, .origin = "a", .origin_len = 1};
    uint8_t base[LD_DIGEST_LEN], t[LD_DIGEST_LEN];
    ld_digest_term("c", 1, "i", 1, &r, base);
    ld_digest_term("c", 1, "i", 1, &r, t);
    assert_memory_equal(base, t, LD_DIGEST_LEN); /* deterministic */
    ld_digest_term("ci", 2, "", 0, &r, t);       /* same bytes, other split */
    assert_memory_not_equal(base, t, LD_DIGEST_LEN);
    ld_doc_rec r2 = r;
    r2.hlc = 6;
    ld_digest_term("c", 1, "i", 1, &r2, t);
    assert_memory_not_equal(base, t, LD_DIGEST_LEN);
    r2 = r;
    r2.flags = LD_REC_TOMBSTONE;
    ld_digest_term("c", 1, "i", 1, &r2, t);
    assert_memory_not_equal(base, t, LD_DIGEST_LEN);
    r2 = r;
    r2.expires_ms = 1;
    ld_digest_term("c", 1, "i", 1, &r2, t);
    assert_memory_not_equal(base, t, LD_DIGEST_LEN);
    r2 = r;
    r2.origin = "b";
    ld_digest_term("c", 1, "i", 1, &r2, t);
    assert_memory_not_equal(base, t, LD_DIGEST_LEN);
    /* The JSON body is not part of the term: the stamp identifies the version. */
    r2 = r;
    r2.json = "{}";
    r2.json_len = 2;
    ld_digest_term("c", 1, "i", 1, &r2, t);
    assert_memory_equal(base, t, LD_DIGEST_LEN);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(doc_record_round_trip),
        cmocka_unit_test(op_record_round_trip),
        cmocka_unit_test(keys_and_ids),
        cmocka_unit_test(digest_terms_differ_by_every_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
