/* libFuzzer target for the replication payload decoder (core/repl/wire.c): parses the input as a
 * push or pull body the way the server does (ld_json_parse), checks its ProtocolVersion and
 * decodes every OperationRecord in it (Operations[], or the body itself when it is one op).
 * Invariants: a refusal carries a message; an accepted op satisfies what ingest trusts (valid
 * names, type 1-3, Sequence >= 1, Hlc > 0, a put's Payload a JSON object), encodes to the
 * op-log record and back unchanged, and its OperationRecord decodes to the same op, as does its
 * compact form (wire_ops.c). An input that starts with the snapshot page magic is parsed as a
 * snapshot page instead; one that starts with "LDOP" as a compact frame (application/
 * x-litedist-ops): refused with a message and nothing held, or every op in it obeys the same
 * invariants and the frame written again from them decodes to the same ops and header. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/names.h"
#include "db/record.h"
#include "repl/snapshot_page.h"
#include "repl/wire.h"
#include "repl/wire_ops.h"
#include "util/jsonget.h"
#include "util/jsontext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what, const uint8_t *data, size_t size)
{
    if (ok) return;
    fprintf(stderr, "invariant broken: %s\ninput: %.*s\n", what, (int)size, (const char *)data);
    abort();
}

static bool same_str(const char *a, size_t al, const char *b, size_t bl)
{
    return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

static bool same_op(const ld_op_rec *a, const ld_op_rec *b)
{
    return a->op_type == b->op_type && memcmp(a->id, b->id, LD_OP_ID_LEN) == 0 &&
           a->hlc == b->hlc && a->origin_seq == b->origin_seq && a->expires_ms == b->expires_ms &&
           a->has_parent == b->has_parent &&
           (!a->has_parent || memcmp(a->parent, b->parent, LD_OP_ID_LEN) == 0) &&
           same_str(a->origin, a->origin_len, b->origin, b->origin_len) &&
           same_str(a->collection, a->collection_len, b->collection, b->collection_len) &&
           same_str(a->doc_id, a->doc_id_len, b->doc_id, b->doc_id_len) &&
           same_str(a->payload, a->payload_len, b->payload, b->payload_len);
}

/* What every accepted op satisfies, whichever encoding carried it; op is the caller's. */
static void accepted_op(ld_wire_op *opp, const uint8_t *data, size_t size)
{
    ld_wire_op op = *opp;
    const ld_op_rec *r = &op.rec;
    check(ld_node_id_valid(op.origin), "an accepted op with an invalid NodeId", data, size);
    check(ld_collection_name_valid(r->collection, r->collection_len),
          "an accepted op with an invalid Collection", data, size);
    check(ld_doc_id_valid(r->doc_id, r->doc_id_len), "an accepted op with an invalid EntityId",
          data, size);
    check(r->op_type >= LD_OP_INSERT && r->op_type <= LD_OP_DELETE, "a bad OperationType", data,
          size);
    check(r->origin_seq >= 1 && r->hlc > 0, "Sequence or Hlc of 0 accepted", data, size);
    if (r->op_type != LD_OP_DELETE) {
        json_error_t je;
        json_t *doc = ld_json_parse(r->payload, r->payload_len, &je);
        check(json_is_object(doc), "a put's Payload is not an object", data, size);
        json_decref(doc);
    }

    /* The op-log record: what ingest stores. */
    size_t len;
    uint8_t *buf = ld_op_rec_encode(r, &len);
    if (buf) {
        ld_op_rec back;
        check(ld_op_rec_decode(buf, len, &back), "an encoded op-log record does not decode", data,
              size);
        check(same_op(r, &back) && back.synced == r->synced, "the op-log record differs", data,
              size);
        free(buf);
    }

    /* The OperationRecord this node would serve in a pull. */
    struct evbuffer *text = evbuffer_new();
    check(text && ld_wire_op_write(r, op.log_seq, text), "an accepted op does not encode", data,
          size);
    json_error_t je;
    json_t *enc =
        json_loadb((const char *)evbuffer_pullup(text, -1), evbuffer_get_length(text), 0, &je);
    check(enc != NULL, "an encoded op is not JSON", data, size);
    evbuffer_free(text);
    ld_wire_op again;
    char err2[256] = "";
    check(ld_wire_op_decode(enc, &again, err2, sizeof err2), "an encoded op does not decode", data,
          size);
    check(same_op(r, &again.rec) && again.log_seq == op.log_seq, "the encoded op differs", data,
          size);
    ld_wire_op_clear(&again);
    json_decref(enc);

    /* Its compact form decodes to the same op: the two encodings share one set of rules. */
    struct evbuffer *one = evbuffer_new(), *frame = evbuffer_new();
    json_t *h = json_object();
    check(one && frame && h && ld_wireops_op_write(r, op.log_seq, one) &&
              ld_wireops_frame_write(h, 1, one, frame),
          "an accepted op does not encode compact", data, size);
    ld_wireops_frame f;
    char err3[300] = "";
    check(ld_wireops_decode(evbuffer_pullup(frame, -1), evbuffer_get_length(frame), &f, err3,
                            sizeof err3) &&
              f.n == 1,
          "an op's compact form does not decode", data, size);
    check(same_op(r, &f.ops[0].rec) && f.ops[0].log_seq == op.log_seq,
          "the op's compact form differs", data, size);
    ld_wireops_frame_clear(&f);
    json_decref(h);
    evbuffer_free(one);
    evbuffer_free(frame);
}

static void one_op(json_t *j, const uint8_t *data, size_t size)
{
    ld_wire_op op;
    char err[256] = "";
    if (!ld_wire_op_decode(j, &op, err, sizeof err)) {
        check(err[0] != '\0', "a refused op without a message", data, size);
        ld_wire_op_clear(&op); /* documented as safe on the cleared op */
        return;
    }
    accepted_op(&op, data, size);
    ld_wire_op_clear(&op);
}

/* A compact frame (wire_ops.h). */
static void compact_frame(const uint8_t *data, size_t size)
{
    ld_wireops_frame f;
    char err[300] = "";
    if (!ld_wireops_decode(data, size, &f, err, sizeof err)) {
        check(err[0] != '\0' && f.header == NULL && f.ops == NULL && f.n == 0,
              "a refused frame without a message, or holding something", data, size);
        return;
    }
    check(json_is_object(f.header), "an accepted frame without a header object", data, size);
    struct evbuffer *ops = evbuffer_new(), *out = evbuffer_new();
    check(ops && out, "out of memory", data, size);
    for (size_t i = 0; i < f.n; i++) {
        accepted_op(&f.ops[i], data, size);
        check(ld_wireops_op_write(&f.ops[i].rec, f.ops[i].log_seq, ops),
              "an accepted op does not encode again", data, size);
    }
    check(ld_wireops_frame_write(f.header, f.n, ops, out), "an accepted frame does not encode",
          data, size);
    ld_wireops_frame g;
    check(ld_wireops_decode(evbuffer_pullup(out, -1), evbuffer_get_length(out), &g, err,
                            sizeof err) &&
              g.n == f.n && json_equal(g.header, f.header),
          "a frame written again does not decode to the same", data, size);
    for (size_t i = 0; i < f.n; i++)
        check(same_op(&f.ops[i].rec, &g.ops[i].rec) && f.ops[i].log_seq == g.ops[i].log_seq,
              "an op of a frame written again differs", data, size);
    ld_wireops_frame_clear(&g);
    ld_wireops_frame_clear(&f);
    evbuffer_free(ops);
    evbuffer_free(out);
}

/* A snapshot page (repl/snapshot_page.h): accepted only whole, and then every record it announced
 * walks out of it and decodes. */
static void snapshot_page(const uint8_t *data, size_t size)
{
    ld_snap_hdr h;
    const uint8_t *recs;
    size_t recs_len;
    char err[200] = "";
    if (!ld_snap_parse(data, size, &h, &recs, &recs_len, err, sizeof err)) {
        check(err[0] != '\0' && h.vv == NULL, "a refused page without a message, or holding a VV",
              data, size);
        return;
    }
    check(json_is_object(h.vv) && (!h.first || json_is_array(h.collections)),
          "an accepted page without its header fields", data, size);
    const uint8_t *p = recs, *key, *val;
    size_t kl, vl;
    uint64_t n = 0;
    while (ld_snap_next(&p, recs + recs_len, &key, &kl, &val, &vl)) {
        ld_doc_rec rec;
        check(kl > 0 && ld_doc_rec_decode(val, vl, &rec), "an accepted record does not decode",
              data, size);
        n++;
    }
    check(n == h.count && p == recs + recs_len, "an accepted page's count is wrong", data, size);
    ld_snap_hdr_clear(&h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= LD_SNAP_MAGIC_LEN && !memcmp(data, LD_SNAP_MAGIC, LD_SNAP_MAGIC_LEN)) {
        snapshot_page(data, size);
        return 0;
    }
    if (size >= 4 && !memcmp(data, "LDOP", 4)) {
        compact_frame(data, size);
        return 0;
    }
    json_error_t je;
    json_t *body = ld_json_parse((const char *)data, size, &je);
    if (!body) return 0;
    char err[256] = "";
    if (!ld_wire_protocol_ok(body, err, sizeof err))
        check(err[0] != '\0', "a protocol refusal without a message", data, size);
    json_t *ops = json_is_object(body) ? ld_json_get_ci(body, "Operations") : NULL;
    if (json_is_array(ops)) {
        size_t i;
        json_t *op;
        json_array_foreach(ops, i, op)
        {
            if (i >= 64) break; /* the decoder is per op; more adds nothing but time */
            one_op(op, data, size);
        }
    } else {
        one_op(body, data, size);
    }
    json_decref(body);
    return 0;
}
