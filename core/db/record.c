/* Binary codecs for document records and op-log entries (formats described in record.h). */
#include "record.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define DOC_FORMAT 1
#define OP_FORMAT  1

void ld_be64_put(uint8_t *out, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)v;
        v >>= 8;
    }
}

uint64_t ld_be64_get(const uint8_t *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | in[i];
    return v;
}

/* A bounded reader over a byte buffer: every take checks the remaining length. */
typedef struct reader {
    const uint8_t *p;
    size_t left;
} reader;

static bool take(reader *r, size_t n, const uint8_t **out)
{
    if (r->left < n) return false;
    *out = r->p;
    r->p += n;
    r->left -= n;
    return true;
}

static bool take_u8(reader *r, uint8_t *v)
{
    const uint8_t *p;
    if (!take(r, 1, &p)) return false;
    *v = p[0];
    return true;
}

static bool take_u64(reader *r, uint64_t *v)
{
    const uint8_t *p;
    if (!take(r, 8, &p)) return false;
    *v = ld_be64_get(p);
    return true;
}

static bool take_str8(reader *r, const char **s, size_t *len)
{
    uint8_t n;
    const uint8_t *p;
    if (!take_u8(r, &n) || !take(r, n, &p)) return false;
    *s = (const char *)p;
    *len = n;
    return true;
}

static bool take_str16(reader *r, const char **s, size_t *len)
{
    const uint8_t *p;
    if (!take(r, 2, &p)) return false;
    size_t n = ((size_t)p[0] << 8) | p[1];
    if (!take(r, n, &p)) return false;
    *s = (const char *)p;
    *len = n;
    return true;
}

/* A writer into a buffer sized exactly by the encoder beforehand. */
typedef struct writer {
    uint8_t *p;
} writer;

static void put_bytes(writer *w, const void *src, size_t n)
{
    if (n) memcpy(w->p, src, n);
    w->p += n;
}

static void put_u8(writer *w, uint8_t v)
{
    *w->p++ = v;
}

static void put_u64(writer *w, uint64_t v)
{
    ld_be64_put(w->p, v);
    w->p += 8;
}

static void put_str8(writer *w, const char *s, size_t n)
{
    put_u8(w, (uint8_t)n);
    put_bytes(w, s, n);
}

static void put_str16(writer *w, const char *s, size_t n)
{
    put_u8(w, (uint8_t)(n >> 8));
    put_u8(w, (uint8_t)n);
    put_bytes(w, s, n);
}

uint8_t *ld_doc_rec_encode(const ld_doc_rec *r, size_t *len)
{
    if (r->origin_len > 255) return NULL;
    size_t n = 1 + 1 + 8 + 8 + LD_OP_ID_LEN + 1 + r->origin_len + r->json_len;
    uint8_t *buf = malloc(n);
    if (!buf) return NULL;
    writer w = {buf};
    put_u8(&w, DOC_FORMAT);
    put_u8(&w, r->flags);
    put_u64(&w, r->hlc);
    put_u64(&w, r->expires_ms);
    put_bytes(&w, r->version, LD_OP_ID_LEN);
    put_str8(&w, r->origin, r->origin_len);
    put_bytes(&w, r->json, r->json_len);
    *len = n;
    return buf;
}

bool ld_doc_rec_decode(const void *buf, size_t len, ld_doc_rec *out)
{
    reader r = {buf, len};
    uint8_t fmt;
    const uint8_t *ver;
    if (!take_u8(&r, &fmt) || fmt != DOC_FORMAT) return false;
    if (!take_u8(&r, &out->flags) || !take_u64(&r, &out->hlc) || !take_u64(&r, &out->expires_ms) ||
        !take(&r, LD_OP_ID_LEN, &ver) || !take_str8(&r, &out->origin, &out->origin_len))
        return false;
    memcpy(out->version, ver, LD_OP_ID_LEN);
    out->json = (const char *)r.p;
    out->json_len = r.left;
    return true;
}

uint8_t *ld_op_rec_encode(const ld_op_rec *r, size_t *len)
{
    if (r->origin_len > 255 || r->collection_len > 255 || r->doc_id_len > 65535) return NULL;
    size_t n = 1 + 1 + 1 + LD_OP_ID_LEN + 8 + 8 + 8 + 1 + r->origin_len + 1 + r->collection_len +
               2 + r->doc_id_len + 1 + (r->has_parent ? LD_OP_ID_LEN : 0) + r->payload_len;
    uint8_t *buf = malloc(n);
    if (!buf) return NULL;
    writer w = {buf};
    put_u8(&w, OP_FORMAT);
    put_u8(&w, r->op_type);
    put_u8(&w, r->synced);
    put_bytes(&w, r->id, LD_OP_ID_LEN);
    put_u64(&w, r->hlc);
    put_u64(&w, r->origin_seq);
    put_u64(&w, r->expires_ms);
    put_str8(&w, r->origin, r->origin_len);
    put_str8(&w, r->collection, r->collection_len);
    put_str16(&w, r->doc_id, r->doc_id_len);
    put_u8(&w, r->has_parent ? 1 : 0);
    if (r->has_parent) put_bytes(&w, r->parent, LD_OP_ID_LEN);
    put_bytes(&w, r->payload, r->payload_len);
    *len = n;
    return buf;
}

bool ld_op_rec_decode(const void *buf, size_t len, ld_op_rec *out)
{
    reader r = {buf, len};
    uint8_t fmt, has_parent;
    const uint8_t *p;
    if (!take_u8(&r, &fmt) || fmt != OP_FORMAT) return false;
    if (!take_u8(&r, &out->op_type) || !take_u8(&r, &out->synced) || !take(&r, LD_OP_ID_LEN, &p))
        return false;
    memcpy(out->id, p, LD_OP_ID_LEN);
    if (!take_u64(&r, &out->hlc) || !take_u64(&r, &out->origin_seq) ||
        !take_u64(&r, &out->expires_ms) || !take_str8(&r, &out->origin, &out->origin_len) ||
        !take_str8(&r, &out->collection, &out->collection_len) ||
        !take_str16(&r, &out->doc_id, &out->doc_id_len) || !take_u8(&r, &has_parent))
        return false;
    if (out->op_type < LD_OP_INSERT || out->op_type > LD_OP_DELETE || has_parent > 1) return false;
    out->has_parent = has_parent != 0;
    if (out->has_parent) {
        if (!take(&r, LD_OP_ID_LEN, &p)) return false;
        memcpy(out->parent, p, LD_OP_ID_LEN);
    }
    out->payload = (const char *)r.p;
    out->payload_len = r.left;
    return true;
}

uint8_t *ld_doc_key(const char *coll, size_t coll_len, const char *id, size_t id_len, size_t *len)
{
    size_t n = coll_len + 1 + id_len;
    uint8_t *k = malloc(n ? n : 1);
    if (!k) return NULL;
    memcpy(k, coll, coll_len);
    k[coll_len] = 0;
    memcpy(k + coll_len + 1, id, id_len);
    *len = n;
    return k;
}

bool ld_doc_key_split(const void *key, size_t len, const char **coll, size_t *coll_len,
                      const char **id, size_t *id_len)
{
    const char *k = key;
    const char *sep = memchr(k, 0, len);
    if (!sep) return false;
    *coll = k;
    *coll_len = (size_t)(sep - k);
    *id = sep + 1;
    *id_len = len - *coll_len - 1;
    return true;
}

void ld_op_id_hex(const uint8_t id[LD_OP_ID_LEN], char *out)
{
    sodium_bin2hex(out, 2 * LD_OP_ID_LEN + 1, id, LD_OP_ID_LEN);
}

bool ld_op_id_parse(const char *hex, uint8_t id[LD_OP_ID_LEN])
{
    size_t n = 0;
    const char *end = NULL;
    if (strlen(hex) != 2 * LD_OP_ID_LEN) return false;
    return sodium_hex2bin(id, LD_OP_ID_LEN, hex, 2 * LD_OP_ID_LEN, NULL, &n, &end) == 0 &&
           n == LD_OP_ID_LEN && end == hex + 2 * LD_OP_ID_LEN;
}
