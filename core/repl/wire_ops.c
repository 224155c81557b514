/* The compact batch encoding (see wire_ops.h): writing ops and frames, and decoding a frame with
 * every length checked against the bytes left and every op validated by ld_wire_op_check. */
#include "wire_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../util/jsonbuf.h"
#include "../util/jsontext.h"
#include "../util/strutil.h"

#define MAGIC     "LDOP"
#define MAGIC_LEN 4
enum { FLAG_PARENT = 1, FLAG_EXPIRES = 2, FLAGS_ALL = 3 };
/* The fewest bytes an op takes (type, flags, Id, three one-byte varints, four empty strings):
 * a count above what the frame could hold is refused before anything is allocated. */
#define OP_MIN_BYTES (2 + LD_OP_ID_LEN + 3 + 4)

static size_t varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

bool ld_wireops_op_write(const ld_op_rec *op, uint64_t log_seq, struct evbuffer *out)
{
    /* The fixed part and the four lengths in one add; the strings after it, as they are. */
    uint8_t head[2 + 2 * LD_OP_ID_LEN + 8 * 10];
    size_t n = 0;
    head[n++] = op->op_type;
    head[n++] = (uint8_t)((op->has_parent ? FLAG_PARENT : 0) | (op->expires_ms ? FLAG_EXPIRES : 0));
    memcpy(head + n, op->id, LD_OP_ID_LEN);
    n += LD_OP_ID_LEN;
    if (op->has_parent) {
        memcpy(head + n, op->parent, LD_OP_ID_LEN);
        n += LD_OP_ID_LEN;
    }
    n += varint_put(head + n, op->origin_seq);
    n += varint_put(head + n, log_seq);
    n += varint_put(head + n, op->hlc);
    if (op->expires_ms) n += varint_put(head + n, op->expires_ms);
    uint8_t len[10];
    return evbuffer_add(out, head, n) == 0 &&
           evbuffer_add(out, len, varint_put(len, op->origin_len)) == 0 &&
           evbuffer_add(out, op->origin, op->origin_len) == 0 &&
           evbuffer_add(out, len, varint_put(len, op->collection_len)) == 0 &&
           evbuffer_add(out, op->collection, op->collection_len) == 0 &&
           evbuffer_add(out, len, varint_put(len, op->doc_id_len)) == 0 &&
           evbuffer_add(out, op->doc_id, op->doc_id_len) == 0 &&
           evbuffer_add(out, len, varint_put(len, op->payload_len)) == 0 &&
           evbuffer_add(out, op->payload, op->payload_len) == 0;
}

bool ld_wireops_frame_write(json_t *header, size_t n, struct evbuffer *ops, struct evbuffer *out)
{
    char *text = json_dumps(header, JSON_COMPACT);
    if (!text) return false;
    size_t tl = strlen(text);
    uint8_t head[MAGIC_LEN + 1 + 10], count[10];
    memcpy(head, MAGIC, MAGIC_LEN);
    head[MAGIC_LEN] = LD_WIREOPS_VERSION;
    size_t hl = MAGIC_LEN + 1 + varint_put(head + MAGIC_LEN + 1, tl);
    bool ok = evbuffer_add(out, head, hl) == 0 && evbuffer_add(out, text, tl) == 0 &&
              evbuffer_add(out, count, varint_put(count, n)) == 0 &&
              evbuffer_add_buffer(out, ops) == 0;
    free(text);
    return ok;
}

/* A cursor over the frame: every read checks the bytes left. */
typedef struct rd {
    const uint8_t *p;
    size_t left;
} rd;

static bool rd_varint(rd *r, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (!r->left) return false;
        uint8_t b = *r->p++;
        r->left--;
        if (shift == 63 && b > 1) return false; /* past 64 bits */
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

static bool rd_bytes(rd *r, size_t n, const uint8_t **at)
{
    if (n > r->left) return false;
    *at = r->p;
    r->p += n;
    r->left -= n;
    return true;
}

/* A length-prefixed string, copied and NUL-terminated. */
static bool rd_str(rd *r, const char *name, char **out, size_t *len, char *err, size_t errlen)
{
    uint64_t n;
    const uint8_t *at;
    if (!rd_varint(r, &n) || n > r->left || !rd_bytes(r, (size_t)n, &at)) {
        ld_set_err(err, errlen, "operation field %s is truncated", name);
        return false;
    }
    *out = malloc((size_t)n + 1);
    if (!*out) {
        ld_set_err(err, errlen, "out of memory");
        return false;
    }
    memcpy(*out, at, (size_t)n);
    (*out)[n] = '\0';
    *len = (size_t)n;
    return true;
}

/* One op at the cursor, validated. */
static bool op_read(rd *r, ld_wire_op *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    ld_op_rec *o = &out->rec;
    const uint8_t *at;
    if (!rd_bytes(r, 2 + LD_OP_ID_LEN, &at)) {
        ld_set_err(err, errlen, "the operation is truncated");
        return false;
    }
    o->op_type = at[0];
    uint8_t flags = at[1];
    memcpy(o->id, at + 2, LD_OP_ID_LEN);
    if (flags & ~FLAGS_ALL) {
        ld_set_err(err, errlen, "unknown flags 0x%02x", flags);
        return false;
    }
    if (flags & FLAG_PARENT) {
        if (!rd_bytes(r, LD_OP_ID_LEN, &at)) {
            ld_set_err(err, errlen, "operation field ParentVersion is truncated");
            return false;
        }
        memcpy(o->parent, at, LD_OP_ID_LEN);
        o->has_parent = true;
    }
    if (!rd_varint(r, &o->origin_seq) || !rd_varint(r, &out->log_seq) || !rd_varint(r, &o->hlc) ||
        ((flags & FLAG_EXPIRES) && !rd_varint(r, &o->expires_ms))) {
        ld_set_err(err, errlen, "the operation's sequences or stamp are truncated or too long");
        return false;
    }
    if ((flags & FLAG_EXPIRES) && o->expires_ms == 0) {
        /* Absent is how no expiry is said: one form per op, as in the JSON. */
        ld_set_err(err, errlen, "operation field ExpiresAtMs must be positive when present");
        return false;
    }
    size_t len;
    if (!rd_str(r, "NodeId", &out->origin, &o->origin_len, err, errlen) ||
        !rd_str(r, "Collection", &out->collection, &o->collection_len, err, errlen) ||
        !rd_str(r, "EntityId", &out->doc_id, &o->doc_id_len, err, errlen) ||
        !rd_str(r, "Payload", &out->payload, &len, err, errlen))
        goto fail;
    o->payload_len = len;
    if (ld_wire_op_check(out, err, errlen)) return true;
fail:
    ld_wire_op_clear(out);
    return false;
}

void ld_wireops_frame_clear(ld_wireops_frame *f)
{
    json_decref(f->header);
    for (size_t i = 0; i < f->n; i++)
        ld_wire_op_clear(&f->ops[i]);
    free(f->ops);
    memset(f, 0, sizeof *f);
}

bool ld_wireops_decode(const uint8_t *buf, size_t len, ld_wireops_frame *out, char *err,
                       size_t errlen)
{
    memset(out, 0, sizeof *out);
    rd r = {buf, len};
    const uint8_t *at;
    if (!rd_bytes(&r, MAGIC_LEN + 1, &at) || memcmp(at, MAGIC, MAGIC_LEN) != 0) {
        ld_set_err(err, errlen, "not a litedist ops frame");
        return false;
    }
    if (at[MAGIC_LEN] != LD_WIREOPS_VERSION) {
        ld_set_err(err, errlen, "ops frame version %u is not %d", at[MAGIC_LEN],
                   LD_WIREOPS_VERSION);
        return false;
    }
    uint64_t hl, n;
    if (!rd_varint(&r, &hl) || hl > r.left || !rd_bytes(&r, (size_t)hl, &at)) {
        ld_set_err(err, errlen, "the frame's header is truncated");
        return false;
    }
    json_error_t je;
    /* Parsed as the JSON answer is (integers stay integers: the version vectors compare). */
    if (ld_json_nul_free((const char *)at, (size_t)hl, &je))
        out->header = json_loadb((const char *)at, (size_t)hl, 0, &je);
    if (!json_is_object(out->header)) {
        ld_set_err(err, errlen, "the frame's header is not a JSON object");
        goto fail;
    }
    if (!rd_varint(&r, &n) || n > r.left / OP_MIN_BYTES) {
        ld_set_err(err, errlen, "the frame's operation count does not fit its length");
        goto fail;
    }
    if (n && !(out->ops = calloc((size_t)n, sizeof *out->ops))) {
        ld_set_err(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        char why[256];
        if (!op_read(&r, &out->ops[i], why, sizeof why)) {
            ld_set_err(err, errlen, "Operations[%zu]: %s", i, why);
            goto fail;
        }
        out->n++;
    }
    if (r.left) {
        ld_set_err(err, errlen, "%zu bytes after the last operation", r.left);
        goto fail;
    }
    return true;
fail:
    ld_wireops_frame_clear(out);
    return false;
}

/* Whether the comma-separated list `list` holds `token` (before any ";parameters", case and
 * surrounding blanks ignored). */
static bool list_has(const char *list, const char *token)
{
    size_t tl = strlen(token);
    for (const char *p = list; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t n = strcspn(p, ",;");
        size_t m = n;
        while (m && (p[m - 1] == ' ' || p[m - 1] == '\t'))
            m--;
        if (m == tl && strncasecmp(p, token, tl) == 0) return true;
        p += n;
        if (*p == ';') p += strcspn(p, ",");
    }
    return false;
}

bool ld_wireops_accepted(const char *accept)
{
    return accept && list_has(accept, LD_WIREOPS_CONTENT_TYPE);
}

bool ld_wireops_is_type(const char *content_type)
{
    if (!content_type) return false;
    size_t n = strcspn(content_type, ";");
    while (n && (content_type[n - 1] == ' ' || content_type[n - 1] == '\t'))
        n--;
    return n == strlen(LD_WIREOPS_CONTENT_TYPE) &&
           strncasecmp(content_type, LD_WIREOPS_CONTENT_TYPE, n) == 0;
}

bool ld_wireops_announced(const char *value)
{
    return value && list_has(value, LD_WIREOPS_TOKEN);
}

bool ld_wire_committed_announced(const char *value)
{
    return value && list_has(value, LD_WIRE_COMMITTED_TOKEN);
}
