/* Reading a snapshot page from storage on the serving node (see snapshot_page.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "oplog.h"
#include "snapshot_page.h"
#include "wire.h"

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

/* The purge floor and purged-digest accumulator in t (purge.h): a receiver's digest check and its
 * own digest need the terms the records no longer carry. */
static ld_status read_purge(ld_txn *t, uint64_t *floor, char hex[2 * LD_DIGEST_LEN + 1])
{
    const void *v;
    size_t vl;
    uint8_t d[LD_DIGEST_LEN] = {0};
    *floor = 0;
    ld_status st = ld_txn_get(t, LD_SPACE_META, "purge_floor", 11, &v, &vl);
    if (st == LD_OK && vl != 8) return LD_CORRUPT;
    if (st == LD_OK) *floor = ld_be64_get(v);
    if (st != LD_OK && st != LD_NOT_FOUND) return st;
    st = ld_txn_get(t, LD_SPACE_META, "purged_digest", 13, &v, &vl);
    if (st == LD_OK && vl != LD_DIGEST_LEN) return LD_CORRUPT;
    if (st == LD_OK) memcpy(d, v, LD_DIGEST_LEN);
    if (st != LD_OK && st != LD_NOT_FOUND) return st;
    sodium_bin2hex(hex, 2 * LD_DIGEST_LEN + 1, d, LD_DIGEST_LEN);
    return LD_OK;
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
        ld_snap_put_be32(lens, (uint32_t)kl);
        if (evbuffer_add(recs, lens, 4) || evbuffer_add(recs, k, kl)) {
            st = LD_NOMEM;
            break;
        }
        ld_snap_put_be32(lens, (uint32_t)vl);
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
    uint64_t purge_floor = 0;
    char purged_hex[2 * LD_DIGEST_LEN + 1];
    if (st == LD_OK) st = read_purge(&t, &purge_floor, purged_hex);
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
        char floor_text[24];
        snprintf(floor_text, sizeof floor_text, "%" PRIu64, purge_floor);
        if (h && (json_object_set_new(h, "PurgeFloor", json_string(floor_text)) ||
                  json_object_set_new(h, "PurgedDigest", json_string(purged_hex)))) {
            json_decref(h);
            h = NULL;
        }
        char *text = h ? json_dumps(h, JSON_COMPACT) : NULL;
        uint8_t len[4];
        if (text) ld_snap_put_be32(len, (uint32_t)strlen(text));
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
