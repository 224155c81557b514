/* Statement execution over the "docs" key space (see exec.h). Documents are visited in key
 * order (collection \0 id), so results without ORDER BY come in id order and equal ORDER BY
 * keys keep id order: every answer is deterministic. */
#include "exec.h"

#include <stdlib.h>
#include <string.h>

#include "../db/database.h"
#include "../db/record.h"
#include "eval.h"
#include "qbuf.h"

void ld_ql_result_free(ld_ql_result *r)
{
    free(r->rows);
    memset(r, 0, sizeof *r);
}

void ld_ql_ids_free(ld_ql_ids *ids)
{
    for (size_t i = 0; i < ids->n; i++)
        free(ids->ids[i]);
    free(ids->ids);
    free(ids->lens);
    memset(ids, 0, sizeof *ids);
}

static ld_status oom(ld_ql_error *err)
{
    ld_ql_error_set(err, LD_QE_NOMEM, 0, "Out of memory.");
    return LD_NOMEM;
}

/* ---------------------------------------------------------------------------------------------
 * The scan: every live document of a collection. Expressions read the values they need from the
 * stored text (eval.h); a document is parsed whole only when a statement needs all of it.
 * ------------------------------------------------------------------------------------------- */

typedef struct scan_doc {
    ld_ql_doc d;
    const ld_doc_rec *rec;
} scan_doc;

/* Called per live document; returns LD_OK to go on, LD_NOT_FOUND to stop, else a failure. */
typedef ld_status (*visit_fn)(void *ctx, scan_doc *sd);

/* The status for a failed evaluation. */
static ld_status eval_status(const ld_ql_error *err)
{
    return err->code == LD_QE_NOMEM     ? LD_NOMEM
           : err->code == LD_QE_CORRUPT ? LD_CORRUPT
                                        : LD_INVALID;
}

static ld_status scan(ld_txn *t, const char *coll, size_t coll_len, visit_fn visit, void *ctx)
{
    if (!t) return LD_OK;
    size_t plen;
    uint8_t *prefix = ld_doc_key(coll, coll_len, "", 0, &plen);
    if (!prefix) return LD_NOMEM;
    ld_cursor c;
    ld_status st = ld_cursor_open(t, LD_SPACE_DOCS, &c);
    if (st != LD_OK) {
        free(prefix);
        return st;
    }
    const void *k, *v;
    size_t kl, vl;
    st = ld_cursor_seek(&c, prefix, plen, &k, &kl, &v, &vl);
    while (st == LD_OK) {
        if (kl < plen || memcmp(k, prefix, plen) != 0) break;
        ld_doc_rec rec;
        if (!ld_doc_rec_decode(v, vl, &rec)) {
            st = LD_CORRUPT;
            break;
        }
        if (!(rec.flags & LD_REC_TOMBSTONE)) {
            scan_doc sd = {.rec = &rec};
            sd.d.id = (const char *)k + plen;
            sd.d.id_len = kl - plen;
            sd.d.text = rec.json;
            sd.d.text_len = rec.json_len;
            st = visit(ctx, &sd);
            ld_ql_doc_clear(&sd.d);
            if (st != LD_OK) break;
        }
        st = ld_cursor_next(&c, &k, &kl, &v, &vl);
    }
    if (st == LD_NOT_FOUND) st = LD_OK;
    ld_cursor_close(&c);
    free(prefix);
    return st;
}

/* Whether the document matches the WHERE condition. */
static ld_status matches(const ld_ql_stmt *s, scan_doc *sd, bool *m, ld_ql_error *err)
{
    if (!s->where) {
        *m = true;
        return LD_OK;
    }
    return ld_ql_test(s->where, &sd->d, m, err) ? LD_OK : eval_status(err);
}

/* ---------------------------------------------------------------------------------------------
 * SELECT without ORDER BY: rows in id order, straight into the output
 * ------------------------------------------------------------------------------------------- */

typedef struct select_ctx {
    const ld_ql_stmt *s;
    const ld_ql_select_opts *o;
    ld_ql_error *err;
    ld_qbuf *rows;
    uint64_t want;     /* rows to return */
    uint64_t seen;     /* matches so far */
    uint64_t produced; /* matches past OFFSET (capped by LIMIT) */
    uint64_t returned;
    bool full; /* the rows passed o->max_bytes: later matches are counted, not returned */
} select_ctx;

static ld_status add_row(select_ctx *c, scan_doc *sd)
{
    bool strip = !c->o->include_reserved && (sd->rec->flags & LD_REC_RESERVED);
    if (c->returned && !ld_qbuf_addc(c->rows, ',')) return oom(c->err);
    if (!ld_ql_row(c->s, &sd->d, strip, c->rows, c->err)) return eval_status(c->err);
    c->returned++;
    if (c->o->max_bytes && c->rows->len >= c->o->max_bytes) c->full = true;
    return LD_OK;
}

static ld_status visit_select(void *ctx, scan_doc *sd)
{
    select_ctx *c = ctx;
    bool m;
    ld_status st = matches(c->s, sd, &m, c->err);
    if (st != LD_OK || !m) return st;
    if (++c->seen <= c->s->offset) return LD_OK;
    c->produced++;
    if (c->returned < c->want && !c->full) {
        st = add_row(c, sd);
        if (st != LD_OK) return st;
    }
    /* Without LIMIT the scan goes on past the rows returned, to count them all. */
    if (c->s->has_limit && c->produced >= c->s->limit) return LD_NOT_FOUND; /* done */
    return LD_OK;
}

static ld_status visit_count(void *ctx, scan_doc *sd)
{
    select_ctx *c = ctx;
    bool m;
    ld_status st = matches(c->s, sd, &m, c->err);
    if (st == LD_OK && m) c->seen++;
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * ORDER BY: the first offset + rows entries by the sort keys, kept in a max-heap; documents
 * are read again by id for the rows returned, so the heap holds keys and ids only.
 * ------------------------------------------------------------------------------------------- */

typedef struct entry {
    json_t **keys;
    char *id;
    size_t id_len;
    uint64_t seq; /* scan order: ties keep id order */
} entry;

typedef struct order_ctx {
    const ld_ql_stmt *s;
    ld_ql_error *err;
    uint64_t k; /* entries kept */
    entry *heap;
    size_t n, cap;
    uint64_t seen;
} order_ctx;

static void entry_free(const ld_ql_stmt *s, entry *e)
{
    for (size_t i = 0; e->keys && i < s->norder; i++)
        json_decref(e->keys[i]);
    free(e->keys);
    free(e->id);
}

static int entry_cmp(const ld_ql_stmt *s, const entry *a, const entry *b)
{
    for (size_t i = 0; i < s->norder; i++) {
        int c = ld_ql_compare(a->keys[i], b->keys[i]);
        if (c) return s->order[i].desc ? -c : c;
    }
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void sift_down(order_ctx *c, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < c->n && entry_cmp(c->s, &c->heap[l], &c->heap[m]) > 0) m = l;
        if (r < c->n && entry_cmp(c->s, &c->heap[r], &c->heap[m]) > 0) m = r;
        if (m == i) return;
        entry t = c->heap[i];
        c->heap[i] = c->heap[m];
        c->heap[m] = t;
        i = m;
    }
}

static void sift_up(order_ctx *c, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (entry_cmp(c->s, &c->heap[i], &c->heap[p]) <= 0) return;
        entry t = c->heap[i];
        c->heap[i] = c->heap[p];
        c->heap[p] = t;
        i = p;
    }
}

static ld_status visit_order(void *ctx, scan_doc *sd)
{
    order_ctx *c = ctx;
    bool m;
    ld_status st = matches(c->s, sd, &m, c->err);
    if (st != LD_OK || !m) return st;
    uint64_t seq = c->seen++;
    if (c->k == 0) return LD_OK;
    entry e = {.seq = seq};
    e.keys = calloc(c->s->norder, sizeof *e.keys);
    if (!e.keys) return oom(c->err);
    for (size_t i = 0; i < c->s->norder; i++)
        if (!ld_ql_eval(c->s->order[i].expr, &sd->d, &e.keys[i], c->err)) {
            entry_free(c->s, &e);
            return eval_status(c->err);
        }
    if (c->n == c->k && entry_cmp(c->s, &e, &c->heap[0]) >= 0) { /* not among the first k */
        entry_free(c->s, &e);
        return LD_OK;
    }
    e.id = malloc(sd->d.id_len + 1);
    if (!e.id) {
        entry_free(c->s, &e);
        return oom(c->err);
    }
    memcpy(e.id, sd->d.id, sd->d.id_len);
    e.id[sd->d.id_len] = '\0';
    e.id_len = sd->d.id_len;
    if (c->n == c->k) {
        entry_free(c->s, &c->heap[0]);
        c->heap[0] = e;
        sift_down(c, 0);
        return LD_OK;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        entry *h = realloc(c->heap, cap * sizeof *h);
        if (!h) {
            entry_free(c->s, &e);
            return oom(c->err);
        }
        c->heap = h;
        c->cap = cap;
    }
    c->heap[c->n++] = e;
    sift_up(c, c->n - 1);
    return LD_OK;
}

/* Sorts the heap ascending, in place (qsort would need the statement as global state). */
static void heap_sort(order_ctx *c)
{
    size_t n = c->n;
    while (c->n > 1) {
        entry t = c->heap[0];
        c->heap[0] = c->heap[c->n - 1];
        c->heap[c->n - 1] = t;
        c->n--;
        sift_down(c, 0);
    }
    c->n = n;
}

/* Reads the document id back and appends its row. */
static ld_status row_by_id(ld_txn *t, select_ctx *sc, const entry *e)
{
    const ld_ql_stmt *s = sc->s;
    size_t klen;
    uint8_t *key = ld_doc_key(s->collection, s->collection_len, e->id, e->id_len, &klen);
    if (!key) return oom(sc->err);
    const void *v;
    size_t vl;
    ld_status st = ld_txn_get(t, LD_SPACE_DOCS, key, klen, &v, &vl);
    free(key);
    if (st != LD_OK) return st == LD_NOT_FOUND ? LD_CORRUPT : st; /* it was there a moment ago */
    ld_doc_rec rec;
    if (!ld_doc_rec_decode(v, vl, &rec)) return LD_CORRUPT;
    scan_doc sd = {.rec = &rec};
    sd.d.id = e->id;
    sd.d.id_len = e->id_len;
    sd.d.text = rec.json;
    sd.d.text_len = rec.json_len;
    st = add_row(sc, &sd);
    ld_ql_doc_clear(&sd.d);
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------------------------------- */

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a + b < a ? UINT64_MAX : a + b;
}

ld_status ld_ql_select(ld_txn *t, const ld_ql_stmt *s, const ld_ql_select_opts *o,
                       ld_ql_result *out, ld_ql_error *err)
{
    memset(out, 0, sizeof *out);
    ld_qbuf rows;
    ld_qbuf_init(&rows);
    if (!ld_qbuf_addc(&rows, '[')) return oom(err);
    select_ctx sc = {.s = s, .o = o, .err = err, .rows = &rows};
    sc.want = o->row_limit;
    if (s->has_limit && s->limit < sc.want) sc.want = s->limit;
    ld_status st;
    order_ctx oc = {.s = s, .err = err};
    if (s->count) {
        st = scan(t, s->collection, s->collection_len, visit_count, &sc);
        out->matched = sc.seen;
        /* One row, unless LIMIT 0 or an OFFSET skips it. */
        if (st == LD_OK && sc.want > 0 && s->offset == 0) {
            if (!ld_qbuf_addc(&rows, '{') ||
                !ld_qbuf_json_string(&rows, s->cols[0].name, s->cols[0].name_len) ||
                !ld_qbuf_addf(&rows, ":%llu}", (unsigned long long)sc.seen))
                st = oom(err);
            sc.returned = 1;
        }
    } else if (s->has_limit && s->limit == 0) {
        st = LD_OK; /* LIMIT 0: nothing to read */
    } else if (s->norder == 0) {
        st = scan(t, s->collection, s->collection_len, visit_select, &sc);
        out->matched = sc.produced;
    } else {
        oc.k = sat_add(s->offset, sc.want);
        st = scan(t, s->collection, s->collection_len, visit_order, &oc);
        uint64_t past = oc.seen > s->offset ? oc.seen - s->offset : 0;
        out->matched = s->has_limit && s->limit < past ? s->limit : past;
        if (st == LD_OK) {
            heap_sort(&oc);
            for (size_t i = (size_t)s->offset; i < oc.n && st == LD_OK && !sc.full; i++)
                st = row_by_id(t, &sc, &oc.heap[i]);
        }
    }
    for (size_t i = 0; i < oc.n; i++)
        entry_free(s, &oc.heap[i]);
    free(oc.heap);
    if (st == LD_OK && !ld_qbuf_addc(&rows, ']')) st = oom(err);
    if (st != LD_OK) {
        ld_qbuf_free(&rows);
        out->matched = 0;
        return st;
    }
    out->returned = sc.returned;
    out->rows = ld_qbuf_take(&rows, &out->rows_len);
    return out->rows ? LD_OK : oom(err);
}

typedef struct match_ctx {
    const ld_ql_stmt *s;
    ld_ql_error *err;
    uint64_t cap;
    ld_ql_ids *ids;
    uint64_t matched;
} match_ctx;

static ld_status visit_match(void *ctx, scan_doc *sd)
{
    match_ctx *c = ctx;
    bool m;
    ld_status st = matches(c->s, sd, &m, c->err);
    if (st != LD_OK || !m) return st;
    c->matched++;
    if (c->ids->n >= c->cap) return LD_OK;
    ld_ql_ids *ids = c->ids;
    char **a = realloc(ids->ids, (ids->n + 1) * sizeof *a);
    if (!a) return oom(c->err);
    ids->ids = a;
    size_t *l = realloc(ids->lens, (ids->n + 1) * sizeof *l);
    if (!l) return oom(c->err);
    ids->lens = l;
    char *id = malloc(sd->d.id_len + 1);
    if (!id) return oom(c->err);
    memcpy(id, sd->d.id, sd->d.id_len);
    id[sd->d.id_len] = '\0';
    ids->ids[ids->n] = id;
    ids->lens[ids->n++] = sd->d.id_len;
    return LD_OK;
}

ld_status ld_ql_match(ld_txn *t, const ld_ql_stmt *s, uint64_t cap, ld_ql_ids *ids,
                      uint64_t *matched, ld_ql_error *err)
{
    memset(ids, 0, sizeof *ids);
    match_ctx c = {.s = s, .err = err, .cap = cap, .ids = ids};
    ld_status st = scan(t, s->collection, s->collection_len, visit_match, &c);
    if (st != LD_OK) {
        ld_ql_ids_free(ids);
        *matched = 0;
        return st;
    }
    *matched = c.matched;
    return LD_OK;
}
