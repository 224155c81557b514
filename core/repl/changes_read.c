/* The changes feed's log reader (see changes_read.h). */
#include "changes_read.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../db/names.h"
#include "../util/jsonbuf.h"
#include "../util/jsontext.h"
#include "oplog.h"

void ld_changes_cursor_str(uint64_t seq, char out[21])
{
    snprintf(out, 21, "%" PRIu64, seq);
}

bool ld_changes_cursor_parse(const char *s, uint64_t *seq)
{
    if (!s || *s < '0' || *s > '9' || strlen(s) > 20) return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return false;
    *seq = (uint64_t)v;
    return true;
}

static ld_status meta_u64(ld_txn *t, const char *key, uint64_t *out)
{
    const void *v;
    size_t vl;
    *out = 0;
    ld_status g = ld_txn_get(t, LD_SPACE_META, key, strlen(key), &v, &vl);
    if (g == LD_NOT_FOUND) return LD_OK;
    if (g != LD_OK) return g;
    if (vl != 8) return LD_CORRUPT;
    *out = ld_be64_get(v);
    return LD_OK;
}

/* Whether the entry's collection is one the query asks for. Internal collections never are:
 * they are the node's own bookkeeping. */
static bool wanted(const ld_changes_query *q, const ld_op_rec *op)
{
    char name[256];
    if (op->collection_len >= sizeof name) return false;
    memcpy(name, op->collection, op->collection_len);
    name[op->collection_len] = '\0';
    if (ld_collection_is_internal(name)) return false;
    if (ld_collection_is_cache(name) && !q->include_cache) return false;
    if (!q->collections) return true;
    for (size_t i = 0; i < q->n_collections; i++)
        if (!strcmp(q->collections[i], name)) return true;
    return false;
}

static bool is_reserved_field(const char *key, void *ctx)
{
    (void)ctx;
    return !strcmp(key, "_id") || !strncmp(key, "_sys_", 5);
}

/* Appends ,"Doc":<current JSON or null> for the entry's document, as the API shows it. */
static ld_status append_doc(ld_txn *t, const ld_op_rec *op, struct evbuffer *out)
{
    size_t klen;
    uint8_t *key =
        ld_doc_key(op->collection, op->collection_len, op->doc_id, op->doc_id_len, &klen);
    if (!key) return LD_NOMEM;
    const void *v;
    size_t vl;
    ld_status st = ld_txn_get(t, LD_SPACE_DOCS, key, klen, &v, &vl);
    free(key);
    if (evbuffer_add(out, ",\"Doc\":", 7) != 0) return LD_NOMEM;
    ld_doc_rec rec;
    if (st == LD_NOT_FOUND) return evbuffer_add(out, "null", 4) == 0 ? LD_OK : LD_NOMEM;
    if (st != LD_OK) return st;
    if (!ld_doc_rec_decode(v, vl, &rec)) return LD_CORRUPT;
    if (rec.flags & (LD_REC_TOMBSTONE | LD_REC_SWEPT))
        return evbuffer_add(out, "null", 4) == 0 ? LD_OK : LD_NOMEM;
    size_t n = rec.json_len;
    char *text =
        (rec.flags & LD_REC_RESERVED)
            ? ld_json_rewrite_object(rec.json, rec.json_len, NULL, is_reserved_field, NULL, &n)
            : malloc(n ? n : 1);
    if (!text) return LD_NOMEM;
    if (!(rec.flags & LD_REC_RESERVED)) memcpy(text, rec.json, n);
    /* Documents are kept as sent, line breaks included. In valid JSON a raw CR or LF can only be
     * whitespace (inside strings they are escaped), so blanking them keeps the document and
     * keeps one change per line. */
    for (size_t i = 0; i < n; i++)
        if (text[i] == '\n' || text[i] == '\r') text[i] = ' ';
    int rc = evbuffer_add(out, text, n);
    free(text);
    return rc == 0 ? LD_OK : LD_NOMEM;
}

/* One change object and its newline. */
static ld_status write_change(ld_txn *t, const ld_changes_query *q, const ld_op_rec *op,
                              uint64_t seq, bool first, struct evbuffer *out)
{
    bool ok = (first || !q->comma || evbuffer_add(out, ",", 1) == 0) &&
              evbuffer_add(out, "{\"Collection\":", 14) == 0 &&
              ld_json_string_evbuffer(op->collection, op->collection_len, out) &&
              evbuffer_add(out, ",\"Id\":", 6) == 0 &&
              ld_json_string_evbuffer(op->doc_id, op->doc_id_len, out) &&
              evbuffer_add_printf(
                  out, ",\"Stamp\":\"%" PRIu64 "\",\"Deleted\":%s,\"Cursor\":\"%" PRIu64 "\"",
                  op->hlc, op->op_type == LD_OP_DELETE ? "true" : "false", seq) > 0;
    if (!ok) return LD_NOMEM;
    if (q->include_docs) {
        ld_status st = append_doc(t, op, out);
        if (st != LD_OK) return st;
    }
    /* A stream's changes are lines; an array's are separated by commas instead. */
    return evbuffer_add(out, "}\n", q->comma ? 1 : 2) == 0 ? LD_OK : LD_NOMEM;
}

ld_status ld_changes_read(ld_db *db, const ld_changes_query *q, ld_changes_batch *b)
{
    struct evbuffer *out = b->out;
    memset(b, 0, sizeof *b);
    b->out = out;
    b->last = q->after;
    ld_txn t;
    ld_status st = ld_txn_begin(db->env->store, db->st, false, &t);
    if (st != LD_OK) return st;
    uint64_t pruned = 0;
    st = meta_u64(&t, "last_seq", &b->local_max);
    if (st == LD_OK) st = meta_u64(&t, "pruned_through", &pruned);
    b->oldest = pruned + 1;
    if (st == LD_OK && (q->after < pruned || q->after > b->local_max)) {
        /* Entries after the cursor were pruned, or the cursor is past this log's end (a cursor
         * of a database since deleted and created again): answering from here would skip
         * changes silently. */
        b->gone = true;
        ld_txn_abort(&t);
        return LD_OK;
    }
    if (st == LD_OK && b->local_max > q->after) {
        ld_oplog_iter it;
        size_t looked = 0, start = evbuffer_get_length(out);
        size_t max_scan = q->max_changes * LD_CHANGES_SCAN_PER_CHANGE;
        if (max_scan < LD_CHANGES_MIN_SCAN) max_scan = LD_CHANGES_MIN_SCAN;
        st = ld_oplog_iter_seek(&t, q->after + 1, &it);
        while (st == LD_OK) {
            if (b->n >= q->max_changes ||
                (b->n > 0 && evbuffer_get_length(out) - start >= q->max_bytes) ||
                looked >= max_scan) {
                b->more = true;
                break;
            }
            if (wanted(q, &it.op)) {
                if ((st = write_change(&t, q, &it.op, it.seq, b->n == 0, out)) != LD_OK) break;
                b->n++;
            }
            b->last = it.seq;
            looked++;
            st = ld_oplog_iter_next(&it);
        }
        if (st == LD_NOT_FOUND) st = LD_OK;
        ld_oplog_iter_close(&it);
    }
    ld_txn_abort(&t);
    return st;
}
