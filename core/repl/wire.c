/* OperationRecord JSON codec (see wire.h). Every field is validated here, once, so the ingest
 * path can trust what it merges. */
#include "wire.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../db/hlc.h"
#include "../db/names.h"
#include "../util/jsonbuf.h"
#include "../util/jsonget.h"
#include "../util/jsontext.h"
#include "../util/strutil.h"
#include "../util/timeutil.h"

void ld_wire_op_clear(ld_wire_op *op)
{
    free(op->origin);
    free(op->collection);
    free(op->doc_id);
    free(op->payload);
    memset(op, 0, sizeof *op);
}

/* A required string member, copied (what it may hold is ld_wire_op_check's business). */
static bool take_str(json_t *v, const char *name, char **out, size_t *len, char *err, size_t errlen)
{
    if (!json_is_string(v)) {
        ld_set_err(err, errlen, "operation field %s is required and must be a string", name);
        return false;
    }
    *len = json_string_length(v);
    *out = malloc(*len + 1);
    if (!*out) {
        ld_set_err(err, errlen, "out of memory");
        return false;
    }
    memcpy(*out, json_string_value(v), *len + 1);
    return true;
}

static bool take_u64(json_t *v, const char *name, bool required, uint64_t *out, char *err,
                     size_t errlen)
{
    if (!v || json_is_null(v)) {
        *out = 0;
        if (!required) return true;
    } else if (ld_json_as_u64(v, out)) {
        return true;
    }
    ld_set_err(err, errlen, "operation field %s %s", name,
               v && !json_is_null(v) ? "must be a non-negative integer" : "is required");
    return false;
}

/* "YYYY-MM-DDTHH:MM:SS[.fff...]Z" to epoch milliseconds (the original's ops carry no Hlc). */
static bool parse_iso_ms(const char *s, uint64_t *out)
{
    struct tm tm = {0};
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p) return false;
    uint64_t ms = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3) ms = ms * 10 + (uint64_t)(*p - '0');
        for (; digits < 3; digits++)
            ms *= 10;
    }
    if (*p != 'Z' && strcmp(p, "+00:00") != 0) return false;
    time_t t = timegm(&tm);
    if (t < 0) return false;
    *out = (uint64_t)t * 1000 + ms;
    return true;
}

/* The members an op is read from, found in one pass (an op has about 15). */
enum {
    F_ID,
    F_NODE,
    F_COLL,
    F_ENTITY,
    F_TYPE,
    F_PAYLOAD,
    F_SEQ,
    F_LOGSEQ,
    F_EXPIRES,
    F_HLC,
    F_TIME,
    F_PARENT,
    F_COUNT
};
static const char *const field_names[F_COUNT] = {
    "Id",       "NodeId",      "Collection",  "EntityId", "OperationType", "Payload",
    "Sequence", "LogSequence", "ExpiresAtMs", "Hlc",      "TimestampUtc",  "ParentVersion"};

/* A string field: no NUL byte (no field of an op may hold one: stored names are C strings). */
static bool no_nul(const char *s, size_t len, const char *name, char *err, size_t errlen)
{
    if (memchr(s, '\0', len)) {
        ld_set_err(err, errlen, "operation field %s must not contain a NUL character", name);
        return false;
    }
    return true;
}

/* Whether s is UTF-8 (control characters allowed): jansson checks it as it copies. */
static bool utf8_valid(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    json_decref(j);
    return j != NULL;
}

/* A long in the contract: larger would not survive our own encoding. */
static bool is_long(uint64_t v, const char *name, char *err, size_t errlen)
{
    if (v <= INT64_MAX) return true;
    ld_set_err(err, errlen, "operation field %s must be a non-negative integer", name);
    return false;
}

/* The rules, one per field, in the order an op's fields are checked (so an op with several bad
 * fields is refused for the same one whatever carried it). */
static bool rule_origin(ld_wire_op *o, char *err, size_t errlen)
{
    if (!no_nul(o->origin, o->rec.origin_len, "NodeId", err, errlen)) return false;
    if (ld_node_id_valid(o->origin)) return true;
    ld_set_err(err, errlen, "operation field NodeId is not a valid node id");
    return false;
}

static bool rule_collection(ld_wire_op *o, char *err, size_t errlen)
{
    if (!no_nul(o->collection, o->rec.collection_len, "Collection", err, errlen)) return false;
    if (ld_collection_name_valid(o->collection, o->rec.collection_len)) return true;
    ld_set_err(err, errlen, "operation field Collection is not a valid collection name");
    return false;
}

static bool rule_entity(ld_wire_op *o, char *err, size_t errlen)
{
    if (!no_nul(o->doc_id, o->rec.doc_id_len, "EntityId", err, errlen)) return false;
    /* Cache keys are counted in characters (up to 500 bytes); document ids in bytes. */
    if (ld_collection_is_cache(o->collection)
            ? ld_cache_key_problem(o->doc_id, o->rec.doc_id_len) == NULL
            : ld_doc_id_valid(o->doc_id, o->rec.doc_id_len))
        return true;
    ld_set_err(err, errlen, "operation field EntityId is not a valid document id");
    return false;
}

static bool rule_type(ld_wire_op *o, char *err, size_t errlen)
{
    if (o->rec.op_type >= LD_OP_INSERT && o->rec.op_type <= LD_OP_DELETE) return true;
    ld_set_err(err, errlen, "operation field OperationType must be 1, 2 or 3");
    return false;
}

static bool rule_payload(ld_wire_op *o, char *err, size_t errlen)
{
    if (!no_nul(o->payload, o->rec.payload_len, "Payload", err, errlen)) return false;
    if (o->rec.op_type != LD_OP_DELETE) {
        /* The document a put carries must be a JSON object: it is stored and served as is, so
         * it is checked in place, without building a tree nobody reads. */
        if (ld_json_object_valid(o->payload, o->rec.payload_len)) return true;
        ld_set_err(err, errlen, "operation field Payload must hold a JSON object");
        return false;
    }
    /* A delete's payload is any string, but it is served again as a JSON string. */
    if (utf8_valid(o->payload, o->rec.payload_len)) return true;
    ld_set_err(err, errlen, "operation field Payload must be UTF-8");
    return false;
}

static bool rule_sequence(ld_wire_op *o, char *err, size_t errlen)
{
    if (!is_long(o->rec.origin_seq, "Sequence", err, errlen)) return false;
    if (o->rec.origin_seq > 0) return true;
    ld_set_err(err, errlen, "operation field Sequence must be at least 1");
    return false;
}

static bool rule_hlc(ld_wire_op *o, char *err, size_t errlen)
{
    if (o->rec.hlc > 0) return true;
    ld_set_err(err, errlen, "operation field Hlc must be a positive integer");
    return false;
}

/* Points rec's strings at the owned ones: the op is ready for the ingest. */
static void finish(ld_wire_op *o)
{
    ld_op_rec *r = &o->rec;
    r->synced = 1;
    r->origin = o->origin;
    r->collection = o->collection;
    r->doc_id = o->doc_id;
    r->payload = o->payload;
}

bool ld_wire_op_check(ld_wire_op *o, char *err, size_t errlen)
{
    if (!rule_origin(o, err, errlen) || !rule_collection(o, err, errlen) ||
        !rule_entity(o, err, errlen) || !rule_type(o, err, errlen) ||
        !rule_payload(o, err, errlen) || !rule_sequence(o, err, errlen) ||
        !is_long(o->log_seq, "LogSequence", err, errlen) ||
        !is_long(o->rec.expires_ms, "ExpiresAtMs", err, errlen) || !rule_hlc(o, err, errlen))
        return false;
    finish(o);
    return true;
}

bool ld_wire_op_decode(json_t *j, ld_wire_op *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    ld_op_rec *r = &out->rec;
    size_t len;
    if (!json_is_object(j)) {
        ld_set_err(err, errlen, "an operation must be a JSON object");
        return false;
    }
    json_t *f[F_COUNT];
    ld_json_get_ci_all(j, field_names, F_COUNT, f);
    json_t *id = f[F_ID];
    if (!json_is_string(id) || !ld_op_id_parse(json_string_value(id), r->id)) {
        ld_set_err(err, errlen, "operation field Id must be 32 hex digits");
        goto fail;
    }
    /* Each field's JSON shape, then the rules every encoding shares (ld_wire_op_check's, in its
     * order), field by field. */
    if (!take_str(f[F_NODE], "NodeId", &out->origin, &r->origin_len, err, errlen) ||
        !rule_origin(out, err, errlen) ||
        !take_str(f[F_COLL], "Collection", &out->collection, &r->collection_len, err, errlen) ||
        !rule_collection(out, err, errlen) ||
        !take_str(f[F_ENTITY], "EntityId", &out->doc_id, &r->doc_id_len, err, errlen) ||
        !rule_entity(out, err, errlen))
        goto fail;
    uint64_t type;
    if (!take_u64(f[F_TYPE], "OperationType", true, &type, err, errlen)) goto fail;
    r->op_type = type > UINT8_MAX ? 0 : (uint8_t)type; /* out of range: refused by the rule */
    if (!rule_type(out, err, errlen) ||
        !take_str(f[F_PAYLOAD], "Payload", &out->payload, &len, err, errlen))
        goto fail;
    r->payload_len = len;
    if (!rule_payload(out, err, errlen) ||
        !take_u64(f[F_SEQ], "Sequence", true, &r->origin_seq, err, errlen) ||
        !rule_sequence(out, err, errlen) ||
        !take_u64(f[F_LOGSEQ], "LogSequence", false, &out->log_seq, err, errlen) ||
        !is_long(out->log_seq, "LogSequence", err, errlen) ||
        !take_u64(f[F_EXPIRES], "ExpiresAtMs", false, &r->expires_ms, err, errlen) ||
        !is_long(r->expires_ms, "ExpiresAtMs", err, errlen))
        goto fail;
    json_t *hlc = f[F_HLC];
    if (hlc && !json_is_null(hlc)) {
        if (!ld_json_as_u64(hlc, &r->hlc) || !rule_hlc(out, err, errlen)) {
            ld_set_err(err, errlen, "operation field Hlc must be a positive integer");
            goto fail;
        }
    } else {
        json_t *ts = f[F_TIME];
        uint64_t ms;
        if (!json_is_string(ts) || !parse_iso_ms(json_string_value(ts), &ms)) {
            ld_set_err(err, errlen, "operation needs Hlc or an ISO-8601 UTC TimestampUtc");
            goto fail;
        }
        r->hlc = ld_hlc_make(ms, 0);
        if (!rule_hlc(out, err, errlen)) goto fail; /* the epoch's first millisecond */
    }
    json_t *parent = f[F_PARENT];
    if (json_is_string(parent) && json_string_length(parent) > 0) {
        if (!ld_op_id_parse(json_string_value(parent), r->parent)) {
            ld_set_err(err, errlen, "operation field ParentVersion must be 32 hex digits");
            goto fail;
        }
        r->has_parent = true;
    }
    finish(out);
    return true;
fail:
    ld_wire_op_clear(out);
    return false;
}

bool ld_wire_op_write(const ld_op_rec *op, uint64_t log_seq, struct evbuffer *out)
{
    char id[2 * LD_OP_ID_LEN + 1], parent[2 * LD_OP_ID_LEN + 3] = "null";
    char when[LD_ISO_TIME_LEN];
    ld_op_id_hex(op->id, id);
    if (op->has_parent) {
        parent[0] = '"';
        ld_op_id_hex(op->parent, parent + 1);
        memcpy(parent + 1 + 2 * LD_OP_ID_LEN, "\"", 2);
    }
    ld_iso_time(ld_hlc_ms(op->hlc), when);
    /* Only the strings that come from users go through jansson's escaping. */
    bool ok = evbuffer_add_printf(out, "{\"Id\":\"%s\",\"NodeId\":", id) > 0 &&
              ld_json_string_evbuffer(op->origin, op->origin_len, out) &&
              evbuffer_add_printf(out, ",\"TimestampUtc\":\"%s\",\"Collection\":", when) > 0 &&
              ld_json_string_evbuffer(op->collection, op->collection_len, out) &&
              evbuffer_add(out, ",\"EntityId\":", 12) == 0 &&
              ld_json_string_evbuffer(op->doc_id, op->doc_id_len, out) &&
              evbuffer_add_printf(out, ",\"OperationType\":%u,\"Payload\":", op->op_type) > 0 &&
              ld_json_string_evbuffer(op->payload, op->payload_len, out) &&
              evbuffer_add_printf(
                  out,
                  ",\"Sequence\":%" PRIu64 ",\"LogSequence\":%" PRIu64
                  ",\"GlobalSequence\":null,\"ParentVersion\":%s,\"IsTombstone\":%s,"
                  "\"IsSynced\":%s,\"Hlc\":\"%" PRIu64 "\"",
                  op->origin_seq, log_seq, parent, op->op_type == LD_OP_DELETE ? "true" : "false",
                  op->synced ? "true" : "false", op->hlc) > 0;
    if (ok && op->expires_ms)
        ok = evbuffer_add_printf(out, ",\"ExpiresAtMs\":%" PRIu64, op->expires_ms) > 0;
    return ok && evbuffer_add(out, "}", 1) == 0;
}

bool ld_wire_protocol_ok(json_t *body, char *err, size_t errlen)
{
    json_t *v = ld_json_get_ci(body, "ProtocolVersion");
    if (!v || json_is_null(v)) return true;
    uint64_t got;
    if (!ld_json_as_u64(v, &got) || got != LD_REPL_PROTOCOL) {
        char shown[32];
        if (json_is_integer(v) || json_is_string(v))
            snprintf(shown, sizeof shown, "%s", json_is_string(v) ? json_string_value(v) : "");
        if (json_is_integer(v))
            snprintf(shown, sizeof shown, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        ld_set_err(err, errlen,
                   "Replication protocol version mismatch: this node speaks %d, the request %s.",
                   LD_REPL_PROTOCOL,
                   json_is_integer(v) || json_is_string(v) ? shown : "sent an invalid value");
        return false;
    }
    return true;
}
