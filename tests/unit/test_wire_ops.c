/* Unit tests for the compact op encoding (core/repl/wire_ops.c): round trips of every field, the
 * header, every malformed frame refused with a message, the same rules as the JSON form, and
 * the negotiation headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db/record.h"
#include "repl/wire.h"
#include "repl/wire_ops.h"
#include "util/jsonbuf.h"

static ld_op_rec sample(void)
{
    ld_op_rec o = {.op_type = LD_OP_UPDATE,
                   .hlc = 0x0123456789abcdefull,
                   .origin_seq = 300,
                   .origin = "node-a",
                   .origin_len = 6,
                   .collection = "items",
                   .collection_len = 5,
                   .doc_id = "d\xc3\xa9-1",
                   .doc_id_len = 5,
                   .payload = "{\"n\":\"a\\\"b\\n\",\"u\":\"\xe2\x82\xac\"}",
                   .payload_len = 0};
    o.payload_len = strlen(o.payload);
    for (int i = 0; i < LD_OP_ID_LEN; i++)
        o.id[i] = (uint8_t)(0xf0 + i);
    return o;
}

/* A frame of the ops in ops[0..n), with a header holding a few members, as bytes (malloc'd). */
static uint8_t *frame_of(const ld_op_rec *ops, const uint64_t *seqs, size_t n, size_t *len)
{
    struct evbuffer *body = evbuffer_new(), *out = evbuffer_new();
    for (size_t i = 0; i < n; i++)
        assert_true(ld_wireops_op_write(&ops[i], seqs[i], body));
    json_t *h = json_pack("{s:i, s:s, s:b, s:{s:i}}", "ProtocolVersion", 1, "NodeId", "node-a",
                          "HasMore", 1, "VersionVector", "node-a", 300);
    assert_true(ld_wireops_frame_write(h, n, body, out));
    json_decref(h);
    *len = evbuffer_get_length(out);
    uint8_t *buf = malloc(*len);
    evbuffer_remove(out, buf, *len);
    evbuffer_free(body);
    evbuffer_free(out);
    return buf;
}

static void same_op(const ld_op_rec *a, uint64_t a_seq, const ld_wire_op *b)
{
    assert_int_equal(a->op_type, b->rec.op_type);
    assert_memory_equal(a->id, b->rec.id, LD_OP_ID_LEN);
    assert_int_equal(a->has_parent, b->rec.has_parent);
    if (a->has_parent) assert_memory_equal(a->parent, b->rec.parent, LD_OP_ID_LEN);
    assert_true(a->hlc == b->rec.hlc);
    assert_true(a->origin_seq == b->rec.origin_seq);
    assert_true(a->expires_ms == b->rec.expires_ms);
    assert_true(a_seq == b->log_seq);
    assert_int_equal(b->rec.synced, 1);
    assert_int_equal(a->origin_len, b->rec.origin_len);
    assert_memory_equal(a->origin, b->rec.origin, a->origin_len);
    assert_int_equal(a->collection_len, b->rec.collection_len);
    assert_memory_equal(a->collection, b->rec.collection, a->collection_len);
    assert_int_equal(a->doc_id_len, b->rec.doc_id_len);
    assert_memory_equal(a->doc_id, b->rec.doc_id, a->doc_id_len);
    assert_int_equal(a->payload_len, b->rec.payload_len);
    assert_memory_equal(a->payload, b->rec.payload, a->payload_len);
}

static void round_trip_every_field(void **state)
{
    (void)state;
    ld_op_rec ops[4];
    uint64_t seqs[4] = {1, 128, (uint64_t)INT64_MAX, 0};
    ops[0] = sample();
    ops[1] = sample(); /* a parent and an expiry; a cache key */
    ops[1].has_parent = true;
    for (int i = 0; i < LD_OP_ID_LEN; i++)
        ops[1].parent[i] = (uint8_t)i;
    ops[1].expires_ms = 1764800000123ull;
    ops[1].collection = "cache";
    ops[1].collection_len = 5;
    ops[1].doc_id = "k:1";
    ops[1].doc_id_len = 3;
    ops[2] = sample(); /* a delete whose payload is not JSON, the widest numbers */
    ops[2].op_type = LD_OP_DELETE;
    ops[2].payload = "line\nnext";
    ops[2].payload_len = 9;
    ops[2].origin_seq = (uint64_t)INT64_MAX;
    ops[2].hlc = UINT64_MAX;
    ops[3] = sample(); /* an insert with an empty object */
    ops[3].op_type = LD_OP_INSERT;
    ops[3].payload = "{}";
    ops[3].payload_len = 2;
    size_t len;
    uint8_t *buf = frame_of(ops, seqs, 4, &len);
    ld_wireops_frame f;
    char err[300] = "";
    assert_true(ld_wireops_decode(buf, len, &f, err, sizeof err));
    assert_int_equal(f.n, 4);
    for (size_t i = 0; i < 4; i++)
        same_op(&ops[i], seqs[i], &f.ops[i]);
    assert_string_equal(json_string_value(json_object_get(f.header, "NodeId")), "node-a");
    assert_true(json_is_true(json_object_get(f.header, "HasMore")));
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(f.header, "VersionVector"), "node-a")),
        300);
    ld_wireops_frame_clear(&f);
    ld_wireops_frame_clear(&f); /* safe on a cleared frame */
    free(buf);

    /* An empty batch is a frame too. */
    buf = frame_of(NULL, NULL, 0, &len);
    assert_true(ld_wireops_decode(buf, len, &f, err, sizeof err));
    assert_int_equal(f.n, 0);
    assert_null(f.ops);
    ld_wireops_frame_clear(&f);
    free(buf);
}

/* The same op through the JSON writer and decoder gives what the compact form gives. */
static void json_and_compact_agree(void **state)
{
    (void)state;
    ld_op_rec o = sample();
    o.expires_ms = 99;
    struct evbuffer *j = evbuffer_new();
    assert_true(ld_wire_op_write(&o, 7, j));
    json_error_t je;
    json_t *doc = json_loadb((const char *)evbuffer_pullup(j, -1), evbuffer_get_length(j), 0, &je);
    ld_wire_op from_json;
    char err[300];
    assert_true(ld_wire_op_decode(doc, &from_json, err, sizeof err));
    uint64_t seq = 7;
    size_t len;
    uint8_t *buf = frame_of(&o, &seq, 1, &len);
    ld_wireops_frame f;
    assert_true(ld_wireops_decode(buf, len, &f, err, sizeof err));
    same_op(&from_json.rec, from_json.log_seq, &f.ops[0]);
    ld_wireops_frame_clear(&f);
    ld_wire_op_clear(&from_json);
    json_decref(doc);
    evbuffer_free(j);
    free(buf);
}

/* Decodes buf and expects a refusal whose message contains `want`. */
static void refused(const uint8_t *buf, size_t len, const char *want)
{
    ld_wireops_frame f;
    char err[300] = "";
    bool ok = ld_wireops_decode(buf, len, &f, err, sizeof err);
    if (ok || !strstr(err, want)) fail_msg("expected a refusal with '%s', got '%s'", want, err);
    assert_null(f.header);
    assert_null(f.ops);
    assert_int_equal(f.n, 0);
}

/* Every prefix of a valid frame is refused (truncated anywhere), with a message. */
static void truncated_anywhere(void **state)
{
    (void)state;
    ld_op_rec ops[2] = {sample(), sample()};
    ops[1].has_parent = true;
    ops[1].expires_ms = 5;
    uint64_t seqs[2] = {1, 2};
    size_t len;
    uint8_t *buf = frame_of(ops, seqs, 2, &len);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1); /* its own allocation: ASan sees any over-read */
        memcpy(copy, buf, cut);
        refused(copy, cut, "");
        ld_wireops_frame f;
        char err[300] = "";
        assert_false(ld_wireops_decode(copy, cut, &f, err, sizeof err));
        assert_true(err[0] != '\0');
        free(copy);
    }
    free(buf);
}

/* A frame of one op whose fields are set by hand, for the malformed cases. */
static size_t hand_frame(uint8_t *b, const char *header, uint8_t type, uint8_t flags,
                         const uint8_t *nums, size_t nums_len, const char *const strs[4],
                         const size_t lens[4])
{
    size_t n = 0;
    memcpy(b, "LDOP\x01", 5);
    n = 5;
    b[n++] = (uint8_t)strlen(header);
    memcpy(b + n, header, strlen(header));
    n += strlen(header);
    b[n++] = 1; /* one op */
    b[n++] = type;
    b[n++] = flags;
    memset(b + n, 0xab, LD_OP_ID_LEN);
    n += LD_OP_ID_LEN;
    memcpy(b + n, nums, nums_len);
    n += nums_len;
    for (int i = 0; i < 4; i++) {
        b[n++] = (uint8_t)lens[i];
        memcpy(b + n, strs[i], lens[i]);
        n += lens[i];
    }
    return n;
}

static void malformed_frames(void **state)
{
    (void)state;
    uint8_t b[512];
    const char *good[4] = {"n1", "items", "d1", "{}"};
    size_t gl[4] = {2, 5, 2, 2};
    const uint8_t nums[] = {1, 1, 1}; /* Sequence, LogSequence, Hlc */
    size_t n = hand_frame(b, "{}", 1, 0, nums, 3, good, gl);
    ld_wireops_frame f;
    char err[300];
    assert_true(ld_wireops_decode(b, n, &f, err, sizeof err)); /* the baseline decodes */
    ld_wireops_frame_clear(&f);

    refused((const uint8_t *)"JSON{", 5, "not a litedist ops frame");
    memcpy(b, "LDOP\x02", 5);
    refused(b, n, "version 2");
    n = hand_frame(b, "[1]", 1, 0, nums, 3, good, gl);
    refused(b, n, "header is not a JSON object");
    n = hand_frame(b, "{\"a\"", 1, 0, nums, 3, good, gl);
    refused(b, n, "header is not a JSON object");
    /* A header length past the end. */
    memcpy(b, "LDOP\x01\x7f{}", 8);
    refused(b, 8, "header is truncated");
    /* A count above what the bytes could hold, and one over 64 bits. */
    memcpy(b, "LDOP\x01\x02{}\xff\xff\xff\x0f", 12);
    refused(b, 12, "count does not fit");
    memcpy(b, "LDOP\x01\x02{}\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 17);
    refused(b, 17, "count does not fit");
    /* Bytes after the last op. */
    n = hand_frame(b, "{}", 1, 0, nums, 3, good, gl);
    b[n++] = 0;
    refused(b, n, "1 bytes after the last operation");
    /* Unknown flags; an expiry flag with a zero expiry; a varint over 64 bits. */
    n = hand_frame(b, "{}", 1, 4, nums, 3, good, gl);
    refused(b, n, "Operations[0]: unknown flags 0x04");
    const uint8_t with_zero_expiry[] = {1, 1, 1, 0};
    n = hand_frame(b, "{}", 1, 2, with_zero_expiry, 4, good, gl);
    refused(b, n, "ExpiresAtMs must be positive when present");
    const uint8_t wide[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 1, 1};
    n = hand_frame(b, "{}", 1, 0, wide, sizeof wide, good, gl);
    refused(b, n, "too long");
    /* Numbers beyond the contract's long; a Sequence or Hlc of 0. */
    const uint8_t big_seq[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 1, 1};
    n = hand_frame(b, "{}", 1, 0, big_seq, sizeof big_seq, good, gl);
    refused(b, n, "Operations[0]: operation field Sequence must be a non-negative integer");
    const uint8_t zero_seq[] = {0, 1, 1}, zero_hlc[] = {1, 1, 0};
    n = hand_frame(b, "{}", 1, 0, zero_seq, 3, good, gl);
    refused(b, n, "operation field Sequence must be at least 1");
    n = hand_frame(b, "{}", 1, 0, zero_hlc, 3, good, gl);
    refused(b, n, "operation field Hlc must be a positive integer");
    /* The field rules, shared with the JSON form. */
    n = hand_frame(b, "{}", 0, 0, nums, 3, good, gl);
    refused(b, n, "OperationType must be 1, 2 or 3");
    n = hand_frame(b, "{}", 4, 0, nums, 3, good, gl);
    refused(b, n, "OperationType must be 1, 2 or 3");
    struct {
        int field;
        const char *value;
        size_t len;
        const char *want;
    } cases[] = {
        {0,
         "n\0"
         "1",
         3, "NodeId must not contain a NUL character"},
        {0, "n 1", 3, "NodeId is not a valid node id"},
        {0, "", 0, "NodeId is not a valid node id"},
        {1, "1tems", 5, "Collection is not a valid collection name"},
        {1, "it\0ms", 5, "Collection must not contain a NUL character"},
        {2, "", 0, "EntityId is not a valid document id"},
        {2, "d\xff", 2, "EntityId is not a valid document id"},
        {3, "[1]", 3, "Payload must hold a JSON object"},
        {3, "{\"a\":1", 6, "Payload must hold a JSON object"},
        {3, "{\"a\":\"\xc0\x80\"}", 10, "Payload must hold a JSON object"},
        {3, "{}\0", 3, "Payload must not contain a NUL character"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *s[4] = {good[0], good[1], good[2], good[3]};
        size_t l[4] = {gl[0], gl[1], gl[2], gl[3]};
        s[cases[i].field] = cases[i].value;
        l[cases[i].field] = cases[i].len;
        n = hand_frame(b, "{}", 1, 0, nums, 3, s, l);
        refused(b, n, cases[i].want);
    }
    /* A delete's payload may be any text, but UTF-8. */
    const char *del[4] = {"n1", "items", "d1", "\xff"};
    size_t dl[4] = {2, 5, 2, 1};
    n = hand_frame(b, "{}", 3, 0, nums, 3, del, dl);
    refused(b, n, "Payload must be UTF-8");
    /* A string length past the end of the frame. */
    n = hand_frame(b, "{}", 1, 0, nums, 3, good, gl);
    b[n - 3] = 0x7f;
    refused(b, n, "Payload is truncated");
}

static void negotiation_headers(void **state)
{
    (void)state;
    assert_true(ld_wireops_accepted(LD_WIREOPS_ACCEPT));
    assert_true(ld_wireops_accepted("application/json;q=0.5, Application/X-Litedist-Ops ;q=1"));
    assert_false(ld_wireops_accepted("application/json"));
    assert_false(ld_wireops_accepted("application/x-litedist-opsx"));
    assert_false(ld_wireops_accepted("*/*"));
    assert_false(ld_wireops_accepted(NULL));
    assert_true(ld_wireops_is_type("application/x-litedist-ops"));
    assert_true(ld_wireops_is_type("application/x-litedist-ops; charset=binary"));
    assert_false(ld_wireops_is_type("application/json"));
    assert_false(ld_wireops_is_type(NULL));
    assert_true(ld_wireops_announced("ops1"));
    assert_true(ld_wireops_announced("ops2, ops1"));
    assert_false(ld_wireops_announced("ops10"));
    assert_false(ld_wireops_announced(""));
    assert_false(ld_wireops_announced(NULL));
    /* A pull answer's: the compact form and CommittedLogSequence, each read on its own. */
    assert_true(ld_wireops_announced("ops1, committed1"));
    assert_true(ld_wire_committed_announced("ops1, committed1"));
    assert_true(ld_wire_committed_announced("Committed1"));
    assert_false(ld_wire_committed_announced("ops1"));
    assert_false(ld_wire_committed_announced("committed10, ops1"));
    assert_false(ld_wire_committed_announced(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_every_field), cmocka_unit_test(json_and_compact_agree),
        cmocka_unit_test(truncated_anywhere),     cmocka_unit_test(malformed_frames),
        cmocka_unit_test(negotiation_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
