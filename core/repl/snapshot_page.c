/* Snapshot pages read from storage and checked on arrival (see snapshot_page.h). */
#include "snapshot_page.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "../db/record.h"
#include "../util/jsonbuf.h"
#include "../util/jsonget.h"
#include "../util/strutil.h"
#include "oplog.h"
#include "wire.h"

void ld_snap_hdr_clear(ld_snap_hdr *h)
{
    json_decref(h->vv);
    json_decref(h->collections);
    memset(h, 0, sizeof *h);
}

static void put_be32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

static ld_status read_collections(ld_txn *t, json_t *out)
{
    ld_cursor c;
    ld_status st = ld_cursor_open(t, LD_SPACE_COLLS, &c);
    if (st != LD_OK) return st;
    const void *k, *v;
    size_t kl, vl;
    while ((st = ld_cursor_next(&c, &k, &kl, &v, &vl)) == LD_OK)
        if (json_array_append_new(out, json_stringn(k, kl))) {
            st = LD_NOMEM;
            break;
        }
    ld_cursor_close(&c);
    return st == LD_NOT_FOUND ? LD_OK : st;
}

/* Records in the docs space: the denominator of the receiver's progress. A key-order walk on a
 * worker thread, once per snapshot. */
static ld_status count_records(ld_txn *t, uint64_t *n)
{
    ld_cursor c;
    ld_status st = ld_cursor_open(t, LD_SPACE_DOCS, &c);
    if (st != LD_OK) return st;
    const void *k, *v;
    size_t kl, vl;
    *n = 0;
    while ((st = ld_cursor_next(&c, &k, &kl, &v, &vl)) == LD_OK)
        (*n)++;
    ld_cursor_close(&c);
    return st == LD_NOT_FOUND ? LD_OK : st;
}

/* Appends the records after `after` to recs, about max_bytes of them (at least one). */
static ld_status read_records(ld_txn *t, const uint8_t *after, size_t after_len, size_t max_bytes,
                              struct evbuffer *recs, uint64_t *count, bool *done)
{
    ld_cursor c;
    ld_status st = ld_cursor_open(t, LD_SPACE_DOCS, &c);
    if (st != LD_OK) return st;
    const void *k, *v;
    size_t kl, vl, bytes = 0;
    *count = 0;
    *done = false;
    st = ld_cursor_seek(&c, after, after_len, &k, &kl, &v, &vl);
    /* Seek lands on the first key >= after: the page starts past it. */
    if (st == LD_OK && after_len && kl == after_len && !memcmp(k, after, kl))
        st = ld_cursor_next(&c, &k, &kl, &v, &vl);
    while (st == LD_OK) {
        if (*count > 0 && bytes >= max_bytes) break;
        uint8_t lens[4];
        put_be32(lens, (uint32_t)kl);
        if (evbuffer_add(recs, lens, 4) || evbuffer_add(recs, k, kl)) {
            st = LD_NOMEM;
            break;
        }
        put_be32(lens, (uint32_t)vl);
        if (evbuffer_add(recs, lens, 4) || evbuffer_add(recs, v, vl)) {
            st = LD_NOMEM;
            break;
        }
        (*count)++;
        bytes += 8 + kl + vl;
        st = ld_cursor_next(&c, &k, &kl, &v, &vl);
    }
    ld_cursor_close(&c);
    if (st == LD_NOT_FOUND) {
        *done = true;
        st = LD_OK;
    }
    return st;
}

ld_status ld_snap_read(ld_db *db, const char *node_id, const uint8_t *after, size_t after_len,
                       size_t max_bytes, struct evbuffer *out)
{
    ld_txn t;
    ld_status st = ld_txn_begin(db->env->store, db->st, false, &t);
    if (st != LD_OK) return st;
    bool first = after_len == 0;
    json_t *vv = NULL, *colls = first ? json_array() : NULL;
    char digest[2 * LD_DIGEST_LEN + 1];
    uint64_t last_seq = 0, total = 0, count = 0;
    bool done = false;
    struct evbuffer *recs = evbuffer_new();
    st = recs && (!first || colls) ? ld_oplog_read_state(&t, &vv, digest, &last_seq) : LD_NOMEM;
    if (st == LD_OK && first) st = read_collections(&t, colls);
    if (st == LD_OK && first) st = count_records(&t, &total);
    if (st == LD_OK) st = read_records(&t, after, after_len, max_bytes, recs, &count, &done);
    ld_txn_abort(&t);

    json_t *h = NULL;
    if (st == LD_OK) {
        h = json_pack("{s:i, s:s, s:I, s:O, s:s, s:b, s:I, s:b}", "ProtocolVersion",
                      LD_REPL_PROTOCOL, "NodeId", node_id, "LogSequence", (json_int_t)last_seq,
                      "VersionVector", vv, "Digest", digest, "First", first, "Count",
                      (json_int_t)count, "Done", done);
        if (h && first &&
            (json_object_set(h, "Collections", colls) ||
             json_object_set_new(h, "TotalRecords", json_integer((json_int_t)total)))) {
            json_decref(h);
            h = NULL;
        }
        char *text = h ? json_dumps(h, JSON_COMPACT) : NULL;
        uint8_t len[4];
        if (text) put_be32(len, (uint32_t)strlen(text));
        if (!text || evbuffer_add(out, LD_SNAP_MAGIC, LD_SNAP_MAGIC_LEN) ||
            evbuffer_add(out, len, 4) || evbuffer_add(out, text, strlen(text)) ||
            evbuffer_add_buffer(out, recs))
            st = LD_NOMEM;
        free(text);
    }
    json_decref(h);
    json_decref(vv);
    json_decref(colls);
    if (recs) evbuffer_free(recs);
    return st;
}

bool ld_snap_next(const uint8_t **p, const uint8_t *end, const uint8_t **key, size_t *klen,
                  const uint8_t **val, size_t *vlen)
{
    const uint8_t *q = *p;
    if ((size_t)(end - q) < 4) return false;
    *klen = get_be32(q);
    q += 4;
    if ((size_t)(end - q) < *klen + 4) return false;
    *key = q;
    q += *klen;
    *vlen = get_be32(q);
    q += 4;
    if ((size_t)(end - q) < *vlen) return false;
    *val = q;
    *p = q + *vlen;
    return true;
}

bool ld_snap_parse(const uint8_t *buf, size_t len, ld_snap_hdr *h, const uint8_t **recs,
                   size_t *recs_len, char *err, size_t errlen)
{
    memset(h, 0, sizeof *h);
    if (len < LD_SNAP_MAGIC_LEN + 4 || memcmp(buf, LD_SNAP_MAGIC, LD_SNAP_MAGIC_LEN) != 0) {
        ld_set_err(err, errlen, "the answer is not a snapshot page");
        return false;
    }
    size_t hl = get_be32(buf + LD_SNAP_MAGIC_LEN);
    const uint8_t *p = buf + LD_SNAP_MAGIC_LEN + 4, *end = buf + len;
    if (hl > (size_t)(end - p)) {
        ld_set_err(err, errlen, "the page's header is cut short");
        return false;
    }
    json_error_t je;
    json_t *j = json_loadb((const char *)p, hl, 0, &je);
    p += hl;
    const char *dg = json_string_value(ld_json_get_ci(j, "Digest"));
    json_t *vv = ld_json_get_ci(j, "VersionVector");
    json_t *colls = ld_json_get_ci(j, "Collections");
    bool ok = json_is_object(j) && ld_wire_protocol_ok(j, err, errlen);
    if (ok &&
        (!ld_json_as_u64(ld_json_get_ci(j, "LogSequence"), &h->log_seq) ||
         !ld_json_as_u64(ld_json_get_ci(j, "Count"), &h->count) || !json_is_object(vv) || !dg ||
         strlen(dg) != 2 * LD_DIGEST_LEN || !json_is_boolean(ld_json_get_ci(j, "Done")))) {
        ld_set_err(err, errlen,
                   "the page's header lacks LogSequence, Count, VersionVector, "
                   "Digest or Done");
        ok = false;
    }
    if (ok) {
        h->done = json_is_true(ld_json_get_ci(j, "Done"));
        h->first = json_is_true(ld_json_get_ci(j, "First"));
        snprintf(h->digest, sizeof h->digest, "%s", dg);
        h->vv = json_incref(vv);
        const char *k;
        json_t *v;
        json_object_foreach(vv, k, v)
        {
            uint64_t seq;
            if (!ld_node_id_valid(k) || !ld_json_as_u64(v, &seq)) {
                ld_set_err(err, errlen, "the page's VersionVector is not {node id: sequence}");
                ok = false;
                break;
            }
        }
    }
    if (ok && h->first) {
        size_t i;
        json_t *c;
        if (!json_is_array(colls) ||
            !ld_json_as_u64(ld_json_get_ci(j, "TotalRecords"), &h->total)) {
            ld_set_err(err, errlen, "the first page lacks Collections or TotalRecords");
            ok = false;
        }
        json_array_foreach(ok ? colls : NULL, i, c)
        {
            /* Internal collections (the cache's) are not client names: only the framing is
             * checked, as the docs keys' collections are. */
            size_t cl = json_string_length(c);
            if (!json_is_string(c) || cl == 0 || cl > 255 || memchr(json_string_value(c), 0, cl)) {
                ld_set_err(err, errlen, "the first page names an invalid collection");
                ok = false;
                break;
            }
        }
        if (ok) h->collections = json_incref(colls);
    }
    json_decref(j);
    if (!ok) {
        if (err[0] == '\0') ld_set_err(err, errlen, "the page's header is not valid JSON");
        ld_snap_hdr_clear(h);
        return false;
    }
    /* Every record is checked before any is applied: a bad page changes nothing. */
    *recs = p;
    *recs_len = (size_t)(end - p);
    uint64_t n = 0;
    const uint8_t *key, *val;
    size_t kl, vl;
    while (ld_snap_next(&p, end, &key, &kl, &val, &vl)) {
        const char *coll, *id;
        size_t cl, il;
        ld_doc_rec rec;
        if (kl == 0 || kl > LD_SNAP_MAX_KEY || !ld_doc_key_split(key, kl, &coll, &cl, &id, &il) ||
            cl == 0 || il == 0 || !ld_doc_rec_decode(val, vl, &rec) || rec.origin_len == 0 ||
            rec.origin_len > LD_NODE_ID_MAX) {
            ld_set_err(err, errlen, "record %" PRIu64 " of the page is malformed", n + 1);
            ld_snap_hdr_clear(h);
            return false;
        }
        n++;
    }
    if (p != end || n != h->count) {
        ld_set_err(err, errlen,
                   "the page holds %" PRIu64 " whole records where it announced %" PRIu64, n,
                   h->count);
        ld_snap_hdr_clear(h);
        return false;
    }
    return true;
}
