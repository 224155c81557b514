/* Statement execution over the "docs" key space (see exec.h): the candidates come from the scan
 * or an index's key ranges (plan.h), the WHERE is re-checked on each, and results without ORDER
 * BY come in id order, equal ORDER BY keys in id order: every answer is deterministic and the
 * same whichever path the planner chose. */
#include "exec.h"

#include <stdlib.h>
#include <string.h>

#include "../db/database.h"
#include "../db/record.h"
#include "../index/index.h"
#include "../index/keyenc.h"
#include "eval.h"
#include "plan.h"
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

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a + b < a ? UINT64_MAX : a + b;
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
    const ld_doc_rec *rec; /* NULL when the document was not read (known_match) */
    bool known_match;      /* an exact index range says it matches; nothing else is known */
    /* From an index walk: the encoded value of the index path after the equality prefix
     * (plan->neq), borrowed for the visit. */
    const uint8_t *ixval;
    size_t ixval_len;
    /* ixval is a cut form (a value too long for a key, index.h): it stands for every value with
     * its prefix, so its bytes order it only against other bytes, not against its equals. */
    bool ixcut;
} scan_doc;

/* Called per candidate; returns LD_OK to go on, LD_NOT_FOUND to stop, else a failure. */
typedef ld_status (*visit_fn)(void *ctx, scan_doc *sd);

/* Where the candidates come from, and how much of each the visitor needs. */
typedef struct source {
    ld_txn *t;
    const ld_ql_stmt *s;
    const ld_plan *plan;
    /* Set (by a visitor, only for an exact plan) when the candidates from now on are only
     * counted or their ids kept: the documents are not read. */
    bool lazy;
} source;

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

/* Whether key k[0..kl) is below the range's end. */
static bool before_end(const ld_plan_range *r, const void *k, size_t kl)
{
    if (!r->hi) return true;
    size_t m = kl < r->hi_len ? kl : r->hi_len;
    int c = memcmp(k, r->hi, m);
    return c < 0 || (c == 0 && kl < r->hi_len);
}

/* The candidates of an index plan: each range's entries in key order, the document of each
 * read by its id (the key's tail) unless the visitor made the walk lazy. An entry without a
 * live document is damage (the index is maintained in the documents' transactions). */
static ld_status index_walk(source *src, visit_fn visit, void *ctx)
{
    const ld_ql_stmt *s = src->s;
    const ld_plan *p = src->plan;
    if (!src->t) return LD_OK;
    ld_qbuf dkey; /* collection \0 id: the document's key, rebuilt per entry */
    ld_qbuf_init(&dkey);
    if (!ld_qbuf_add(&dkey, s->collection, s->collection_len) || !ld_qbuf_addc(&dkey, '\0'))
        return LD_NOMEM;
    size_t dprefix = dkey.len;
    ld_cursor c;
    ld_status st = ld_cursor_open(src->t, LD_SPACE_IX, &c);
    if (st != LD_OK) {
        ld_qbuf_free(&dkey);
        return st;
    }
    bool stopped = false; /* the visitor has what it needs */
    for (size_t i = 0; i < p->nranges && st == LD_OK && !stopped; i++) {
        const ld_plan_range *r = &p->ranges[i];
        const void *k, *v;
        size_t kl, vl;
        st = ld_cursor_seek(&c, r->lo, r->lo_len, &k, &kl, &v, &vl);
        while (st == LD_OK && before_end(r, k, kl)) {
            /* the id follows the index number and the encoded values */
            const uint8_t *kb = k;
            size_t off = 4, voff = 0, vlen = 0;
            bool cut_any = false, cut_val = false;
            for (size_t j = 0; j < p->ix->npaths && off <= kl; j++) {
                bool cut;
                size_t n = ld_keyenc_skip_cut(kb + off, kl - off, &cut);
                if (!n) {
                    off = kl + 1;
                    break;
                }
                if (j == p->neq) voff = off, vlen = n, cut_val = cut;
                cut_any |= cut;
                off += n;
            }
            if (kl < 4 || off > kl) {
                st = LD_CORRUPT;
                break;
            }
            /* copied: the entry's bytes are the storage's only until its next call */
            dkey.len = dprefix;
            if (!ld_qbuf_add(&dkey, kb + off, kl - off)) {
                st = LD_NOMEM;
                break;
            }
            /* An entry holding a cut value says only that the document may match: read it. */
            bool lazy = src->lazy && !cut_any;
            scan_doc sd = {
                .known_match = lazy, .ixval = kb + voff, .ixval_len = vlen, .ixcut = cut_val};
            sd.d.id = dkey.data + dprefix;
            sd.d.id_len = dkey.len - dprefix;
            ld_doc_rec rec;
            if (!lazy) {
                const void *dv;
                size_t dvl;
                st = ld_txn_get(src->t, LD_SPACE_DOCS, dkey.data, dkey.len, &dv, &dvl);
                if (st == LD_NOT_FOUND) st = LD_CORRUPT;
                if (st != LD_OK) break;
                if (!ld_doc_rec_decode(dv, dvl, &rec) || (rec.flags & LD_REC_TOMBSTONE)) {
                    st = LD_CORRUPT;
                    break;
                }
                sd.rec = &rec;
                sd.d.text = rec.json;
                sd.d.text_len = rec.json_len;
            }
            st = visit(ctx, &sd);
            ld_ql_doc_clear(&sd.d);
            if (st == LD_NOT_FOUND) stopped = true;
            if (st != LD_OK) break;
            st = ld_cursor_next(&c, &k, &kl, &v, &vl);
        }
        if (st == LD_NOT_FOUND) st = LD_OK; /* the space ended, or the visitor stopped */
    }
    ld_cursor_close(&c);
    ld_qbuf_free(&dkey);
    return st;
}

/* Every candidate of the plan, to visit. */
static ld_status walk(source *src, visit_fn visit, void *ctx)
{
    if (src->plan->kind == LD_PLAN_SCAN)
        return scan(src->t, src->s->collection, src->s->collection_len, visit, ctx);
    return index_walk(src, visit, ctx);
}

/* Whether the document matches the WHERE condition. */
static ld_status matches(const ld_ql_stmt *s, scan_doc *sd, bool *m, ld_ql_error *err)
{
    if (!s->where || sd->known_match) {
        *m = true;
        return LD_OK;
    }
    return ld_ql_test(s->where, &sd->d, m, err) ? LD_OK : eval_status(err);
}

/* ---------------------------------------------------------------------------------------------
 * SELECT without ORDER BY, candidates in id order: rows straight into the output
 * ------------------------------------------------------------------------------------------- */

typedef struct select_ctx {
    const ld_ql_stmt *s;
    const ld_ql_select_opts *o;
    ld_ql_error *err;
    source *src;
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
    /* Without LIMIT the walk goes on past the rows returned, to count them all: by the keys
     * alone when the index answers the whole WHERE. */
    if (c->s->has_limit && c->produced >= c->s->limit) return LD_NOT_FOUND; /* done */
    if ((c->returned >= c->want || c->full) && c->src->plan->exact &&
        c->src->plan->kind != LD_PLAN_SCAN)
        c->src->lazy = true;
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
 * ORDER BY, and candidates not in id order: the first offset + rows entries by the sort keys
 * (none: by id alone), kept in a max-heap; documents are read again by id for the rows
 * returned, so the heap holds keys and ids only. Equal keys go by id, as the scan yields them.
 * ------------------------------------------------------------------------------------------- */

typedef struct entry {
    json_t **keys; /* norder keys; NULL when norder is 0 */
    uint8_t *kb;   /* by_key: the encoded ORDER BY value from the index key */
    size_t kbl;
    char *id;
    size_t id_len;
} entry;

typedef struct order_ctx {
    const ld_ql_stmt *s;
    size_t norder; /* s->norder, or 0 for the id order */
    ld_ql_error *err;
    source *src;
    uint64_t k; /* entries kept */
    entry *heap;
    size_t n, cap;
    uint64_t seen;
    /* The candidates come with the first key non-decreasing (plan->ordered): once one is past
     * the k-th, so is every later one, and they are only counted. */
    bool ordered;
    bool beyond;
    /* plan->desc_keys: entries ranked by the index's value bytes, descending, then id */
    bool by_key;
} order_ctx;

static void entry_free(const order_ctx *c, entry *e)
{
    for (size_t i = 0; e->keys && i < c->norder; i++)
        json_decref(e->keys[i]);
    free(e->keys);
    free(e->kb);
    free(e->id);
}

static int id_cmp(const entry *a, const entry *b)
{
    int c = memcmp(a->id, b->id, a->id_len < b->id_len ? a->id_len : b->id_len);
    if (c) return c < 0 ? -1 : 1;
    return a->id_len < b->id_len ? -1 : a->id_len > b->id_len;
}

/* Encoded values in the evaluator's order: MISSING and null (one byte each) are one class. */
static int value_bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    bool na = an == 1 && (a[0] == LD_KE_MISSING || a[0] == LD_KE_NULL);
    bool nb = bn == 1 && (b[0] == LD_KE_MISSING || b[0] == LD_KE_NULL);
    if (na || nb) return na && nb ? 0 : na ? -1 : 1;
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c) return c < 0 ? -1 : 1;
    return an < bn ? -1 : an > bn;
}

static int entry_cmp(const order_ctx *c, const entry *a, const entry *b)
{
    if (c->by_key) {
        int r = value_bytes_cmp(a->kb, a->kbl, b->kb, b->kbl);
        /* Equal cut bytes (only cut forms equal cut forms): the values read from the documents.
         * Unequal bytes order the values the same way, cut or not (keyenc.h: monotone). */
        if (!r && a->keys && b->keys) r = ld_ql_compare(a->keys[0], b->keys[0]);
        if (r) return -r; /* DESC */
        return id_cmp(a, b);
    }
    for (size_t i = 0; i < c->norder; i++) {
        int r = ld_ql_compare(a->keys[i], b->keys[i]);
        if (r) return c->s->order[i].desc ? -r : r;
    }
    return id_cmp(a, b);
}

static void sift_down(order_ctx *c, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < c->n && entry_cmp(c, &c->heap[l], &c->heap[m]) > 0) m = l;
        if (r < c->n && entry_cmp(c, &c->heap[r], &c->heap[m]) > 0) m = r;
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
        if (entry_cmp(c, &c->heap[i], &c->heap[p]) <= 0) return;
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
    c->seen++;
    if (c->k == 0 || c->beyond) return LD_OK;
    /* the id (and key bytes) borrowed until the entry is kept */
    entry e = {.id = (char *)sd->d.id, .id_len = sd->d.id_len};
    if (c->by_key) {
        e.kb = (uint8_t *)sd->ixval;
        e.kbl = sd->ixval_len;
        if (sd->ixcut) { /* ranked among its equals by the value itself (the walk read it) */
            e.keys = calloc(1, sizeof *e.keys);
            if (!e.keys) return oom(c->err);
            if (!ld_ql_eval(c->s->order[0].expr, &sd->d, &e.keys[0], c->err)) {
                free(e.keys);
                return eval_status(c->err);
            }
        }
        if (c->n == c->k && entry_cmp(c, &e, &c->heap[0]) >= 0) {
            if (e.keys) json_decref(e.keys[0]);
            free(e.keys);
            return LD_OK;
        }
        e.kb = malloc(e.kbl ? e.kbl : 1);
        if (!e.kb) {
            if (e.keys) json_decref(e.keys[0]);
            free(e.keys);
            return oom(c->err);
        }
        memcpy(e.kb, sd->ixval, e.kbl);
    } else if (c->norder) {
        e.keys = calloc(c->norder, sizeof *e.keys);
        if (!e.keys) return oom(c->err);
        for (size_t i = 0; i < c->norder; i++)
            if (!ld_ql_eval(c->s->order[i].expr, &sd->d, &e.keys[i], c->err)) {
                e.id = NULL;
                entry_free(c, &e);
                return eval_status(c->err);
            }
    }
    if (c->n == c->k && entry_cmp(c, &e, &c->heap[0]) >= 0) { /* not among the first k */
        /* Past the k-th only by a value whole in its key: a later entry's key is then bigger
         * (its value too) or holds the same value; after a cut one, a later entry sharing the
         * cut bytes may still hold a smaller value. */
        bool past = c->ordered && !sd->ixcut && ld_ql_compare(e.keys[0], c->heap[0].keys[0]) > 0;
        e.id = NULL;
        entry_free(c, &e);
        if (past) {
            c->beyond = true;
            /* LIMIT caps the count: once reached, nothing later changes the answer */
            if (c->s->has_limit && c->seen >= sat_add(c->s->offset, c->s->limit))
                return LD_NOT_FOUND;
            if (c->src->plan->exact) c->src->lazy = true;
        }
        return LD_OK;
    }
    e.id = malloc(sd->d.id_len + 1);
    if (!e.id) {
        entry_free(c, &e);
        return oom(c->err);
    }
    memcpy(e.id, sd->d.id, sd->d.id_len);
    e.id[sd->d.id_len] = '\0';
    if (c->n == c->k) {
        entry_free(c, &c->heap[0]);
        c->heap[0] = e;
        sift_down(c, 0);
        return LD_OK;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        entry *h = realloc(c->heap, cap * sizeof *h);
        if (!h) {
            entry_free(c, &e);
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

static void order_free(order_ctx *c)
{
    for (size_t i = 0; i < c->n; i++)
        entry_free(c, &c->heap[i]);
    free(c->heap);
    c->heap = NULL;
    c->n = c->cap = 0;
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
 * Plans: the READY indexes of the statement's collection, as the planner sees them
 * ------------------------------------------------------------------------------------------- */

typedef struct planned {
    struct ld_index_shared *sh;
    ld_index_set *set;  /* held until planned_free; the plan borrows its definitions */
    size_t ndefs;       /* usable definitions (ixs) */
    ld_plan_index *ixs; /* one per usable definition, borrowing from it */
    ld_ql_seg **segs;   /* every definition's paths' segments, then their counts */
    size_t *nsegs;
    ld_plan plan;
} planned;

static void planned_free(planned *p)
{
    ld_plan_free(&p->plan);
    free(p->ixs);
    free(p->segs);
    free(p->nsegs);
    if (p->set) ld_index_set_release(p->sh, p->set);
    memset(p, 0, sizeof *p);
}

static ld_status make_plan(ld_txn *t, struct ld_index_shared *ix, const ld_ql_stmt *s, planned *p,
                           ld_ql_error *err)
{
    memset(p, 0, sizeof *p);
    ld_status st = LD_OK;
    p->sh = ix;
    if (t) st = ld_index_set_acquire(ix, t, &p->set);
    if (st != LD_OK) return st == LD_NOMEM ? oom(err) : st;
    size_t total = 0, nall = p->set ? p->set->n : 0;
    const ld_index_def *all = p->set ? p->set->defs : NULL;
    for (size_t i = 0; i < nall; i++) {
        if (!ld_index_usable(&all[i], s->collection, s->collection_len)) continue;
        total += all[i].npaths;
        p->ndefs++;
    }
    if (p->ndefs) {
        p->ixs = calloc(p->ndefs, sizeof *p->ixs);
        p->segs = calloc(total ? total : 1, sizeof *p->segs);
        p->nsegs = calloc(total ? total : 1, sizeof *p->nsegs);
        if (!p->ixs || !p->segs || !p->nsegs) {
            planned_free(p);
            return oom(err);
        }
    }
    size_t at = 0, k = 0;
    for (size_t i = 0; i < nall; i++) {
        const ld_index_def *d = &all[i];
        if (!ld_index_usable(d, s->collection, s->collection_len)) continue;
        for (size_t j = 0; j < d->npaths; j++) {
            p->segs[at + j] = d->parsed[j].segs;
            p->nsegs[at + j] = d->parsed[j].nsegs;
        }
        p->ixs[k++] = (ld_plan_index){.num = d->num,
                                      .name = d->name,
                                      .npaths = d->npaths,
                                      .paths = d->paths,
                                      .segs = p->segs + at,
                                      .nsegs = p->nsegs + at};
        at += d->npaths;
    }
    st = ld_plan_choose(s, p->ixs, p->ndefs, &p->plan);
    if (st != LD_OK) {
        planned_free(p);
        return oom(err);
    }
    return LD_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------------------------------- */

ld_status ld_ql_select(ld_txn *t, struct ld_index_shared *ix, const ld_ql_stmt *s,
                       const ld_ql_select_opts *o, ld_ql_result *out, ld_ql_error *err)
{
    memset(out, 0, sizeof *out);
    planned pl;
    ld_status st = make_plan(t, ix, s, &pl, err);
    if (st != LD_OK) return st;
    source src = {.t = t, .s = s, .plan = &pl.plan};
    ld_qbuf rows;
    ld_qbuf_init(&rows);
    if (!ld_qbuf_addc(&rows, '[')) {
        planned_free(&pl);
        return oom(err);
    }
    select_ctx sc = {.s = s, .o = o, .err = err, .src = &src, .rows = &rows};
    sc.want = o->row_limit;
    if (s->has_limit && s->limit < sc.want) sc.want = s->limit;
    order_ctx oc = {.s = s, .norder = s->norder, .err = err, .src = &src};
    if (s->count) {
        src.lazy = pl.plan.exact && pl.plan.kind != LD_PLAN_SCAN; /* the keys suffice */
        st = walk(&src, visit_count, &sc);
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
    } else if (s->norder == 0 && (pl.plan.kind == LD_PLAN_SCAN || pl.plan.id_order)) {
        st = walk(&src, visit_select, &sc);
        out->matched = sc.produced;
    } else {
        /* ORDER BY, or index candidates out of id order: the bounded heap */
        oc.k = sat_add(s->offset, sc.want);
        oc.ordered = pl.plan.ordered;
        oc.by_key = pl.plan.desc_keys;
        /* without ORDER BY, or ranked by the keys, an exact plan's heap needs no document */
        if ((s->norder == 0 || oc.by_key) && pl.plan.exact) src.lazy = true;
        st = walk(&src, visit_order, &oc);
        uint64_t past = oc.seen > s->offset ? oc.seen - s->offset : 0;
        out->matched = s->has_limit && s->limit < past ? s->limit : past;
        if (st == LD_OK) {
            heap_sort(&oc);
            for (size_t i = (size_t)s->offset; i < oc.n && st == LD_OK && !sc.full; i++)
                st = row_by_id(t, &sc, &oc.heap[i]);
        }
    }
    order_free(&oc);
    planned_free(&pl);
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

static ld_status push_id(ld_ql_ids *ids, const char *s, size_t n, ld_ql_error *err)
{
    char **a = realloc(ids->ids, (ids->n + 1) * sizeof *a);
    if (!a) return oom(err);
    ids->ids = a;
    size_t *l = realloc(ids->lens, (ids->n + 1) * sizeof *l);
    if (!l) return oom(err);
    ids->lens = l;
    char *id = malloc(n + 1);
    if (!id) return oom(err);
    memcpy(id, s, n);
    id[n] = '\0';
    ids->ids[ids->n] = id;
    ids->lens[ids->n++] = n;
    return LD_OK;
}

static ld_status visit_match(void *ctx, scan_doc *sd)
{
    match_ctx *c = ctx;
    bool m;
    ld_status st = matches(c->s, sd, &m, c->err);
    if (st != LD_OK || !m) return st;
    c->matched++;
    if (c->ids->n >= c->cap) return LD_OK;
    return push_id(c->ids, sd->d.id, sd->d.id_len, c->err);
}

ld_status ld_ql_match(ld_txn *t, struct ld_index_shared *ix, const ld_ql_stmt *s, uint64_t cap,
                      ld_ql_ids *ids, uint64_t *matched, ld_ql_error *err)
{
    memset(ids, 0, sizeof *ids);
    *matched = 0;
    planned pl;
    ld_status st = make_plan(t, ix, s, &pl, err);
    if (st != LD_OK) return st;
    source src = {.t = t, .s = s, .plan = &pl.plan};
    if (pl.plan.kind == LD_PLAN_SCAN || pl.plan.id_order) {
        match_ctx c = {.s = s, .err = err, .cap = cap, .ids = ids};
        st = walk(&src, visit_match, &c);
        *matched = c.matched;
    } else {
        /* candidates out of id order: the first cap ids by id in the heap */
        order_ctx oc = {.s = s, .norder = 0, .err = err, .src = &src, .k = cap};
        src.lazy = pl.plan.exact;
        st = walk(&src, visit_order, &oc);
        *matched = oc.seen;
        if (st == LD_OK) {
            heap_sort(&oc);
            for (size_t i = 0; i < oc.n && st == LD_OK; i++)
                st = push_id(ids, oc.heap[i].id, oc.heap[i].id_len, err);
        }
        order_free(&oc);
    }
    planned_free(&pl);
    if (st != LD_OK) {
        ld_ql_ids_free(ids);
        *matched = 0;
    }
    return st;
}

ld_status ld_ql_explain(ld_txn *t, struct ld_index_shared *ix, const ld_ql_stmt *s,
                        ld_ql_result *out, ld_ql_error *err)
{
    memset(out, 0, sizeof *out);
    planned pl;
    ld_status st = make_plan(t, ix, s, &pl, err);
    if (st != LD_OK) return st;
    ld_qbuf rows;
    ld_qbuf_init(&rows);
    ld_qbuf_addc(&rows, '[');
    size_t n = ld_plan_explain(s, &pl.plan, &rows);
    ld_qbuf_addc(&rows, ']');
    planned_free(&pl);
    if (!n || rows.oom) {
        ld_qbuf_free(&rows);
        return oom(err);
    }
    out->matched = out->returned = n;
    out->rows = ld_qbuf_take(&rows, &out->rows_len);
    return out->rows ? LD_OK : oom(err);
}
