/* Secondary indexes (index.h): definitions read from the ixdef space, entry keys, maintenance
 * in the writer's transaction and the online build, all through the key-space ABI. */
#include "index.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "../db/names.h"
#include "../query/eval.h"
#include "../util/log.h"
#include "keyenc.h"

/* ---------------------------------------------------------------------------------------------
 * Paths and entry keys
 * ------------------------------------------------------------------------------------------- */

void ld_index_path_clear(ld_index_path *p)
{
    for (size_t i = 0; i < p->nsegs; i++)
        free(p->segs[i].name);
    free(p->segs);
    p->segs = NULL;
    p->nsegs = 0;
}

/* The path is parsed by the LiteQL parser itself (as the column of a SELECT), so an index path
 * means exactly what the same path means in a query. */
ld_status ld_index_parse_path(const char *text, size_t len, ld_index_path *out, char *err,
                              size_t errlen)
{
    out->segs = NULL;
    out->nsegs = 0;
    /* The newline ends a "--" comment the text might hold, so nothing of it reaches past. */
    static const char pre[] = "SELECT ", post[] = "\nFROM c";
    size_t qlen = sizeof pre - 1 + len + sizeof post - 1;
    char *q = malloc(qlen + 1);
    if (!q) return LD_NOMEM;
    memcpy(q, pre, sizeof pre - 1);
    memcpy(q + sizeof pre - 1, text, len);
    memcpy(q + sizeof pre - 1 + len, post, sizeof post);
    ld_ql_error qe;
    ld_ql_stmt *s = ld_ql_parse(q, qlen, NULL, &qe);
    free(q);
    ld_ql_node *e = s && s->ncols == 1 && !s->select_doc && !s->count ? s->cols[0].expr : NULL;
    if (!e || e->kind != LD_QN_PATH || e->nsegs == 0) {
        snprintf(err, errlen,
                 e && e->kind == LD_QN_ID
                     ? "Index path '%.*s' names the document id: documents are already in id "
                       "order."
                     : "Invalid index path '%.*s': expected a path below the document such as "
                       "$.a.b.",
                 (int)(len > 100 ? 100 : len), text);
        ld_ql_stmt_free(s);
        return s || qe.code != LD_QE_NOMEM ? LD_INVALID : LD_NOMEM;
    }
    out->segs = e->segs;
    out->nsegs = e->nsegs;
    e->segs = NULL;
    e->nsegs = 0;
    ld_ql_stmt_free(s);
    return LD_OK;
}

ld_status ld_index_value(const char *json, size_t len, const ld_index_path *p, json_t **out)
{
    size_t start, vlen;
    *out = NULL;
    if (!ld_ql_path_span(json, len, p->segs, p->nsegs, &start, &vlen)) return LD_OK;
    *out = ld_ql_parse_doc(json + start, vlen);
    return *out ? LD_OK : LD_CORRUPT;
}

ld_status ld_index_key_prefix(ld_qbuf *out, uint32_t num)
{
    uint8_t b[4] = {(uint8_t)(num >> 24), (uint8_t)(num >> 16), (uint8_t)(num >> 8), (uint8_t)num};
    return ld_qbuf_add(out, b, 4) ? LD_OK : LD_NOMEM;
}

size_t ld_index_value_room(const ld_index_def *d, size_t i, size_t used)
{
    return ld_index_room(d->npaths, i, used);
}

ld_status ld_index_bound(ld_qbuf *out, const ld_index_def *d, json_t *const *vals, size_t nvals,
                         bool *cut)
{
    if (cut) *cut = false;
    if (nvals > d->npaths) return LD_INVALID;
    ld_status st = ld_index_key_prefix(out, d->num);
    size_t start = out->len;
    for (size_t i = 0; i < nvals && st == LD_OK; i++) {
        bool c = false;
        st = vals[i] ? ld_keyenc_append_capped(out, vals[i],
                                               ld_index_value_room(d, i, out->len - start), &c)
                     : ld_keyenc_append_missing(out);
        if (c && cut) *cut = true;
    }
    return st;
}

ld_status ld_index_entry_key(ld_qbuf *out, const ld_index_def *d, const char *json, size_t len,
                             const char *id, size_t il)
{
    ld_status st = ld_index_key_prefix(out, d->num);
    size_t start = out->len;
    for (size_t i = 0; i < d->npaths && st == LD_OK; i++) {
        json_t *v;
        st = ld_index_value(json, len, &d->parsed[i], &v);
        if (st != LD_OK) break;
        bool cut;
        st = v ? ld_keyenc_append_capped(out, v, ld_index_value_room(d, i, out->len - start), &cut)
               : ld_keyenc_append_missing(out);
        json_decref(v);
    }
    if (st == LD_OK && !ld_qbuf_add(out, id, il)) st = LD_NOMEM;
    return st;
}

bool ld_index_entry_id(const ld_index_def *d, const void *key, size_t kl, const char **id,
                       size_t *il)
{
    const uint8_t *p = key;
    size_t at = 4;
    if (kl < at) return false;
    for (size_t i = 0; i < d->npaths; i++) {
        size_t k = ld_keyenc_skip(p + at, kl - at);
        if (!k) return false;
        at += k;
    }
    *id = (const char *)p + at;
    *il = kl - at;
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Definitions (the ixdef space)
 * ------------------------------------------------------------------------------------------- */

static void def_clear(ld_index_def *d)
{
    free(d->name);
    free(d->collection);
    for (size_t i = 0; i < d->npaths; i++) {
        free(d->paths[i]);
        if (d->parsed) ld_index_path_clear(&d->parsed[i]);
    }
    free(d->paths);
    free(d->parsed);
    memset(d, 0, sizeof *d);
}

void ld_index_list_free(ld_index_def *defs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        def_clear(&defs[i]);
    free(defs);
}

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* Fills d from an ixdef entry (key collection \0 name, value JSON). */
static ld_status def_decode(const void *key, size_t kl, const void *val, size_t vl, ld_index_def *d)
{
    memset(d, 0, sizeof *d);
    const char *k = key, *sep = memchr(k, '\0', kl);
    if (!sep) return LD_CORRUPT;
    json_error_t je;
    json_t *v = json_loadb(val, vl, 0, &je);
    json_t *paths = json_object_get(v, "Paths");
    if (!json_is_integer(json_object_get(v, "Num")) || !json_is_array(paths) ||
        !json_array_size(paths) || json_array_size(paths) > LD_INDEX_MAX_PATHS) {
        json_decref(v);
        return LD_CORRUPT;
    }
    ld_status st = LD_NOMEM;
    d->num = (uint32_t)json_integer_value(json_object_get(v, "Num"));
    d->state = (int)json_integer_value(json_object_get(v, "State"));
    d->stamp = (uint64_t)json_integer_value(json_object_get(v, "Stamp"));
    d->collection = dupn(k, (size_t)(sep - k));
    d->name = dupn(sep + 1, kl - (size_t)(sep - k) - 1);
    size_t n = json_array_size(paths);
    d->paths = calloc(n, sizeof *d->paths);
    d->parsed = calloc(n, sizeof *d->parsed);
    if (!d->collection || !d->name || !d->paths || !d->parsed) goto fail;
    for (size_t i = 0; i < n; i++, d->npaths++) {
        const char *p = json_string_value(json_array_get(paths, i));
        if (!p) {
            st = LD_CORRUPT;
            goto fail;
        }
        char err[200];
        if (!(d->paths[i] = strdup(p))) goto fail;
        st = ld_index_parse_path(p, strlen(p), &d->parsed[i], err, sizeof err);
        if (st != LD_OK) {
            d->npaths++;
            if (st == LD_INVALID) st = LD_CORRUPT;
            goto fail;
        }
    }
    json_decref(v);
    return LD_OK;
fail:
    json_decref(v);
    def_clear(d);
    return st;
}

/* Lists the ixdef entries under prefix (coll \0, or everything when plen is 0), those in `state`
 * only when state is non-zero. */
static ld_status list_defs(ld_txn *t, const char *prefix, size_t plen, int state,
                           ld_index_def **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    ld_cursor c;
    ld_status st = ld_cursor_open(t, LD_SPACE_IXDEF, &c);
    if (st != LD_OK) return st;
    const void *k, *v;
    size_t kl, vl, cap = 0;
    ld_index_def *defs = NULL;
    for (st = ld_cursor_seek(&c, prefix, plen, &k, &kl, &v, &vl); st == LD_OK;
         st = ld_cursor_next(&c, &k, &kl, &v, &vl)) {
        if (plen && (kl < plen || memcmp(k, prefix, plen) != 0)) break;
        if (*n == cap) {
            size_t nc = cap ? 2 * cap : 4;
            ld_index_def *nd = realloc(defs, nc * sizeof *nd);
            if (!nd) {
                st = LD_NOMEM;
                break;
            }
            defs = nd;
            cap = nc;
        }
        st = def_decode(k, kl, v, vl, &defs[*n]);
        if (st != LD_OK) break;
        if (state && defs[*n].state != state)
            def_clear(&defs[*n]);
        else
            (*n)++;
    }
    ld_cursor_close(&c);
    if (st != LD_OK && st != LD_NOT_FOUND) {
        ld_index_list_free(defs, *n);
        *n = 0;
        return st;
    }
    if (!*n) {
        free(defs);
        defs = NULL;
    }
    *out = defs;
    return LD_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Sizes, cursors, numbers
 * ------------------------------------------------------------------------------------------- */

static void be32_put(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

static uint32_t be32_get(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

ld_status ld_index_size(ld_txn *t, uint32_t num, uint64_t *entries, uint64_t *bytes)
{
    uint8_t k[4];
    be32_put(k, num);
    const void *v;
    size_t vl;
    *entries = *bytes = 0;
    ld_status st = ld_txn_get(t, LD_SPACE_IXSTAT, k, 4, &v, &vl);
    if (st == LD_NOT_FOUND) return LD_OK;
    if (st != LD_OK) return st;
    if (vl != 16) return LD_CORRUPT;
    *entries = ld_be64_get(v);
    *bytes = ld_be64_get((const uint8_t *)v + 8);
    return LD_OK;
}

/* Changes index num's size by entries added (de -1, 0, +1) and their key bytes: added ones
 * (add_bytes) less removed ones (sub_bytes). */
static ld_status size_add(ld_txn *t, uint32_t num, int de, size_t add_bytes, size_t sub_bytes)
{
    uint64_t e, b;
    ld_status st = ld_index_size(t, num, &e, &b);
    if (st != LD_OK) return st;
    if (de > 0) e++;
    if (de < 0) e = e ? e - 1 : 0;
    b += add_bytes;
    b = b >= sub_bytes ? b - sub_bytes : 0;
    uint8_t k[4], v[16];
    be32_put(k, num);
    ld_be64_put(v, e);
    ld_be64_put(v + 8, b);
    return ld_txn_put(t, LD_SPACE_IXSTAT, k, 4, v, 16);
}

static void cursor_key(uint8_t *k, uint32_t num)
{
    memcpy(k, LD_INDEX_META_CURSOR, 5);
    be32_put(k + 5, num);
}

/* The build cursor of index num into *buf (malloc'd; NULL with *len 0 when nothing is built). */
static ld_status cursor_get(ld_txn *t, uint32_t num, char **buf, size_t *len)
{
    uint8_t k[9];
    cursor_key(k, num);
    const void *v;
    size_t vl;
    *buf = NULL;
    *len = 0;
    ld_status st = ld_txn_get(t, LD_SPACE_META, k, 9, &v, &vl);
    if (st == LD_NOT_FOUND) return LD_OK;
    if (st != LD_OK) return st;
    if (!(*buf = dupn(v, vl))) return LD_NOMEM;
    *len = vl;
    return LD_OK;
}

/* ---------------------------------------------------------------------------------------------
 * The writer's parsed copy of the definitions: parsing them (JSON, then each path through the
 * LiteQL parser) for every document write would cost more than the entries themselves.
 * ------------------------------------------------------------------------------------------- */

struct ld_index_cache {
    uint8_t gen[8]; /* the meta "ix_gen" it was read under (zeros: none stored) */
    ld_index_def *defs;
    size_t n;
};

void ld_index_cache_free(struct ld_index_cache *c)
{
    if (!c) return;
    ld_index_list_free(c->defs, c->n);
    free(c);
}

/* A new generation: called in the transaction of every ixdef change. Random, not counted, so a
 * copy read in a transaction that aborted never matches a later one. */
static ld_status bump_gen(ld_txn *t)
{
    uint8_t gen[8];
    randombytes_buf(gen, sizeof gen);
    return ld_txn_put(t, LD_SPACE_META, LD_INDEX_META_GEN, 6, gen, sizeof gen);
}

/* The definitions' generation as of t into gen (zeros when none is stored). */
static ld_status read_gen(ld_txn *t, uint8_t gen[8])
{
    const void *v;
    size_t vl;
    memset(gen, 0, 8);
    ld_status st = ld_txn_get(t, LD_SPACE_META, LD_INDEX_META_GEN, 6, &v, &vl);
    if (st == LD_OK && vl == 8) memcpy(gen, v, 8);
    return st == LD_NOT_FOUND ? LD_OK : st;
}

/* Every definition as of t, from db's copy when its generation is t's. Borrowed until the next
 * call on the writer thread. */
static ld_status current_defs(ld_db *db, ld_txn *t, const ld_index_def **defs, size_t *n)
{
    uint8_t gen[8];
    ld_status st = read_gen(t, gen);
    if (st != LD_OK) return st;
    struct ld_index_cache *c = db->ix_cache;
    if (!c || memcmp(c->gen, gen, sizeof gen)) {
        ld_index_def *d;
        size_t dn;
        if ((st = list_defs(t, NULL, 0, 0, &d, &dn)) != LD_OK) return st;
        if (!c && !(c = calloc(1, sizeof *c))) {
            ld_index_list_free(d, dn);
            return LD_NOMEM;
        }
        ld_index_list_free(c->defs, c->n);
        memcpy(c->gen, gen, sizeof gen);
        c->defs = d;
        c->n = dn;
        db->ix_cache = c;
    }
    *defs = c->defs;
    *n = c->n;
    return LD_OK;
}

/* ---------------------------------------------------------------------------------------------
 * The readers' shared set: the same idea as the writer's copy for threads that plan queries
 * concurrently. The mutex guards only the pointer and the counts; parsing happens outside it.
 * ------------------------------------------------------------------------------------------- */

struct ld_index_shared {
    pthread_mutex_t mu;
    ld_index_set *cur; /* holds one reference; NULL until the first reader */
};

struct ld_index_shared *ld_index_shared_new(void)
{
    struct ld_index_shared *s = calloc(1, sizeof *s);
    if (s && pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

static void set_free(ld_index_set *set)
{
    ld_index_list_free(set->defs, set->n);
    free(set);
}

void ld_index_shared_free(struct ld_index_shared *s)
{
    if (!s) return;
    ld_index_set_release(s, s->cur);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

ld_status ld_index_set_acquire(struct ld_index_shared *s, ld_txn *t, ld_index_set **out)
{
    *out = NULL;
    uint8_t gen[8];
    ld_status st = read_gen(t, gen);
    if (st != LD_OK) return st;
    pthread_mutex_lock(&s->mu);
    if (s->cur && !memcmp(s->cur->gen, gen, sizeof gen)) {
        s->cur->refs++;
        *out = s->cur;
    }
    pthread_mutex_unlock(&s->mu);
    if (*out) return LD_OK;

    ld_index_set *set = calloc(1, sizeof *set);
    if (!set) return LD_NOMEM;
    if ((st = list_defs(t, NULL, 0, 0, &set->defs, &set->n)) != LD_OK) {
        free(set);
        return st;
    }
    memcpy(set->gen, gen, sizeof gen);
    /* Ours becomes the shared one (a reader of an older snapshot may put an older generation
     * back: each set is right for its generation, so that costs a parse, never a wrong plan).
     * When another reader installed this generation meanwhile, take theirs and drop ours. */
    ld_index_set *drop = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->cur && !memcmp(s->cur->gen, gen, sizeof gen)) {
        drop = set;
        set = s->cur;
        set->refs++;
    } else {
        if (s->cur && --s->cur->refs == 0) drop = s->cur;
        set->refs = 2; /* the shared pointer's and the caller's */
        s->cur = set;
    }
    pthread_mutex_unlock(&s->mu);
    if (drop) set_free(drop);
    *out = set;
    return LD_OK;
}

void ld_index_set_release(struct ld_index_shared *s, ld_index_set *set)
{
    if (!set) return;
    pthread_mutex_lock(&s->mu);
    bool last = --set->refs == 0;
    if (last && s->cur == set) s->cur = NULL;
    pthread_mutex_unlock(&s->mu);
    if (last) set_free(set);
}

bool ld_index_usable(const ld_index_def *d, const char *coll, size_t cl)
{
    return d->state == LD_INDEX_READY && strlen(d->collection) == cl &&
           !memcmp(d->collection, coll, cl);
}

/* ---------------------------------------------------------------------------------------------
 * Maintenance
 * ------------------------------------------------------------------------------------------- */

static bool rec_live(const ld_doc_rec *r)
{
    return r && !ld_rec_dead(r);
}

/* Whether document id (il bytes) is covered by index d: always when READY; while BUILDING only
 * at or below the build cursor (the build indexes what is above it). */
static ld_status covers(ld_txn *t, const ld_index_def *d, const char *id, size_t il, bool *yes)
{
    *yes = d->state == LD_INDEX_READY;
    if (*yes) return LD_OK;
    char *cur;
    size_t cl;
    ld_status st = cursor_get(t, d->num, &cur, &cl);
    if (st != LD_OK) return st;
    if (cur) {
        int c = memcmp(id, cur, il < cl ? il : cl);
        *yes = c < 0 || (c == 0 && il <= cl);
    }
    free(cur);
    return LD_OK;
}

/* Puts (add) or deletes the entry of the document with text json in index d. */
/* Moves document id's entry in index d from the key of text `from` to the key of text `to`
 * (either NULL: no entry there). Equal keys (a write that left the indexed values alone) change
 * nothing. */
static ld_status entry_move(ld_txn *t, const ld_index_def *d, const ld_doc_rec *from,
                            const ld_doc_rec *to, const char *id, size_t il)
{
    ld_qbuf ok, nk;
    ld_qbuf_init(&ok);
    ld_qbuf_init(&nk);
    ld_status st = LD_OK;
    if (from) st = ld_index_entry_key(&ok, d, from->json, from->json_len, id, il);
    if (st == LD_OK && to) st = ld_index_entry_key(&nk, d, to->json, to->json_len, id, il);
    if (st != LD_OK || (from && to && ok.len == nk.len && !memcmp(ok.data, nk.data, ok.len)))
        goto out;
    int de = 0;
    size_t sub = 0, add = 0;
    if (from) {
        /* An entry already gone leaves the size alone: it counts the entries held. */
        st = ld_txn_del(t, LD_SPACE_IX, ok.data, ok.len);
        if (st == LD_OK) {
            de--;
            sub = ok.len;
        } else if (st == LD_NOT_FOUND) {
            st = LD_OK;
        }
    }
    if (st == LD_OK && to && (st = ld_txn_put(t, LD_SPACE_IX, nk.data, nk.len, "", 0)) == LD_OK) {
        de++;
        add = nk.len;
    }
    if (st == LD_OK && (de || add || sub)) st = size_add(t, d->num, de, add, sub);
out:
    ld_qbuf_free(&ok);
    ld_qbuf_free(&nk);
    return st;
}

static ld_status define(ld_db *db, ld_txn *t, const char *id, size_t il, const ld_doc_rec *rec);
static ld_status undefine(ld_db *db, ld_txn *t, const char *id, size_t il);

ld_status ld_index_on_write(ld_db *db, ld_txn *t, const char *coll, size_t cl, const char *id,
                            size_t il, const ld_doc_rec *old, const ld_doc_rec *rec)
{
    bool was = rec_live(old), is = rec_live(rec);
    if (!was && !is) return LD_OK;
    if (cl == LD_INDEX_DEFS_COLL_LEN && !memcmp(coll, LD_INDEX_DEFS_COLL, cl))
        return is ? define(db, t, id, il, rec) : undefine(db, t, id, il);
    if (db->ix_known == LD_IX_NONE) return LD_OK;
    const ld_index_def *defs;
    size_t n;
    ld_status st = current_defs(db, t, &defs, &n);
    if (st != LD_OK) return st;
    if (db->ix_known == LD_IX_UNKNOWN) db->ix_known = n ? LD_IX_SOME : LD_IX_NONE;
    for (size_t i = 0; i < n && st == LD_OK; i++) {
        if (strlen(defs[i].collection) != cl || memcmp(defs[i].collection, coll, cl)) continue;
        bool yes;
        st = covers(t, &defs[i], id, il, &yes);
        if (st != LD_OK || !yes) continue;
        if (was && is && old->json_len == rec->json_len &&
            !memcmp(old->json, rec->json, rec->json_len))
            continue; /* the same text: the same key */
        st = entry_move(t, &defs[i], was ? old : NULL, is ? rec : NULL, id, il);
    }
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * Definitions arriving (local, ingested, snapshot) and leaving
 * ------------------------------------------------------------------------------------------- */

/* Splits a definition record's id "<collection>.<name>" into the ixdef key collection \0 name;
 * false when it is not one a CREATE INDEX could have written (a peer's record is checked as a
 * client's statement is: no index on cache or an internal collection). */
static bool def_key(const char *id, size_t il, char *key, size_t *kl)
{
    const char *dot = memchr(id, '.', il);
    if (!dot || dot == id || dot == id + il - 1 || il > LD_COLL_NAME_MAX + 1 + LD_INDEX_NAME_MAX)
        return false;
    size_t cl = (size_t)(dot - id);
    memcpy(key, id, il);
    key[cl] = '\0';
    *kl = il;
    return ld_collection_name_valid(key, cl) && !ld_collection_is_cache(key) &&
           !ld_collection_is_internal(key) && il - cl - 1 <= LD_INDEX_NAME_MAX;
}

ld_status ld_index_definition_check(const char *id, size_t il, const char *json, size_t len,
                                    char *err, size_t errlen)
{
    char key[LD_COLL_NAME_MAX + 2 + LD_INDEX_NAME_MAX];
    size_t kl;
    if (!def_key(id, il, key, &kl)) {
        snprintf(err, errlen,
                 "index definition id '%.*s' is not <collection>.<name> of a collection that "
                 "can be indexed",
                 (int)(il > 100 ? 100 : il), id);
        return LD_INVALID;
    }
    size_t cl = strlen(key);
    json_error_t je;
    json_t *body = json_loadb(json, len, 0, &je);
    const char *coll = json_string_value(json_object_get(body, "Collection"));
    const char *name = json_string_value(json_object_get(body, "Name"));
    json_t *paths = json_object_get(body, "Paths");
    ld_status st = LD_OK;
    if (!coll || !name || strlen(coll) != cl || memcmp(coll, key, cl) ||
        strlen(name) != kl - cl - 1 || memcmp(name, key + cl + 1, kl - cl - 1)) {
        snprintf(err, errlen,
                 "index definition '%.*s' needs \"Collection\" and \"Name\" as its id "
                 "names them",
                 (int)il, id);
        st = LD_INVALID;
    } else if (!json_is_array(paths) || !json_array_size(paths) ||
               json_array_size(paths) > LD_INDEX_MAX_PATHS) {
        snprintf(err, errlen, "index definition '%.*s' needs \"Paths\": 1 to %d path strings",
                 (int)il, id, LD_INDEX_MAX_PATHS);
        st = LD_INVALID;
    }
    for (size_t i = 0; st == LD_OK && i < json_array_size(paths); i++) {
        const char *p = json_string_value(json_array_get(paths, i));
        ld_index_path parsed;
        if (!p) {
            snprintf(err, errlen, "index definition '%.*s': a path is not a string", (int)il, id);
            st = LD_INVALID;
        } else if ((st = ld_index_parse_path(p, strlen(p), &parsed, err, errlen)) == LD_OK) {
            ld_index_path_clear(&parsed);
        }
    }
    json_decref(body);
    return st;
}

/* Queues index num's entries for deletion by the background step and forgets its size and
 * cursor. */
static ld_status retire(ld_db *db, ld_txn *t, uint32_t num)
{
    uint8_t k[4], ck[9];
    be32_put(k, num);
    cursor_key(ck, num);
    ld_status st = ld_txn_put(t, LD_SPACE_IXDROP, k, 4, "", 0);
    if (st == LD_OK) st = ld_txn_del(t, LD_SPACE_IXSTAT, k, 4);
    if (st == LD_NOT_FOUND) st = LD_OK;
    if (st == LD_OK) st = ld_txn_del(t, LD_SPACE_META, ck, 9);
    if (st == LD_NOT_FOUND) st = LD_OK;
    db->ix_work = true;
    return st;
}

/* The ixdef entry under key into *d; LD_NOT_FOUND when there is none. */
static ld_status def_get(ld_txn *t, const char *key, size_t kl, ld_index_def *d)
{
    const void *v;
    size_t vl;
    ld_status st = ld_txn_get(t, LD_SPACE_IXDEF, key, kl, &v, &vl);
    if (st != LD_OK) return st;
    char *copy = dupn(v, vl);
    if (!copy) return LD_NOMEM;
    st = def_decode(key, kl, copy, vl, d);
    free(copy);
    return st;
}

static ld_status undefine(ld_db *db, ld_txn *t, const char *id, size_t il)
{
    char key[LD_COLL_NAME_MAX + 2 + LD_INDEX_NAME_MAX];
    size_t kl;
    if (!def_key(id, il, key, &kl)) return LD_OK; /* never defined anything */
    ld_index_def d;
    ld_status st = def_get(t, key, kl, &d);
    if (st == LD_NOT_FOUND) return LD_OK;
    if (st != LD_OK) return st;
    st = ld_txn_del(t, LD_SPACE_IXDEF, key, kl);
    if (st == LD_OK) st = retire(db, t, d.num);
    if (st == LD_OK) st = bump_gen(t);
    def_clear(&d);
    return st;
}

/* The paths of a definition record's body, checked; NULL (logged) when the record is not a
 * definition this node can build. */
static json_t *record_paths(ld_db *db, const char *id, size_t il, const ld_doc_rec *rec)
{
    json_error_t je;
    json_t *body = json_loadb(rec->json, rec->json_len, 0, &je);
    json_t *paths = json_incref(json_object_get(body, "Paths"));
    json_decref(body);
    bool ok = json_is_array(paths) && json_array_size(paths) > 0 &&
              json_array_size(paths) <= LD_INDEX_MAX_PATHS;
    for (size_t i = 0; ok && i < json_array_size(paths); i++) {
        const char *p = json_string_value(json_array_get(paths, i));
        ld_index_path parsed;
        char err[200];
        ok = p && ld_index_parse_path(p, strlen(p), &parsed, err, sizeof err) == LD_OK;
        if (ok) ld_index_path_clear(&parsed);
    }
    if (!ok) {
        ld_log(LD_LOG_WARN, db->name, "index definition '%.*s' is not one this node can build",
               (int)il, id);
        json_decref(paths);
        return NULL;
    }
    return paths;
}

static ld_status next_number(ld_txn *t, uint32_t *num)
{
    const void *v;
    size_t vl;
    ld_status st = ld_txn_get(t, LD_SPACE_META, LD_INDEX_META_NEXT, 7, &v, &vl);
    *num = 1;
    if (st == LD_OK && vl == 4) *num = be32_get(v);
    if (st != LD_OK && st != LD_NOT_FOUND) return st;
    uint8_t b[4];
    be32_put(b, *num + 1);
    return ld_txn_put(t, LD_SPACE_META, LD_INDEX_META_NEXT, 7, b, 4);
}

static ld_status define(ld_db *db, ld_txn *t, const char *id, size_t il, const ld_doc_rec *rec)
{
    char key[LD_COLL_NAME_MAX + 2 + LD_INDEX_NAME_MAX];
    size_t kl;
    if (!def_key(id, il, key, &kl)) {
        ld_log(LD_LOG_WARN, db->name, "index definition id '%.*s' is not <collection>.<name>",
               (int)il, id);
        return LD_OK;
    }
    json_t *paths = record_paths(db, id, il, rec);
    ld_index_def d;
    ld_status st = def_get(t, key, kl, &d);
    if (st != LD_OK && st != LD_NOT_FOUND) {
        json_decref(paths);
        return st;
    }
    if (st == LD_OK) {
        /* The same paths (a repeated CREATE, or the record coming back by replication): the
         * index stands. Other paths: a concurrent CREATE with a higher stamp won; the loser's
         * entries go and the winner is built. */
        bool same = paths && json_array_size(paths) == d.npaths;
        for (size_t i = 0; same && i < d.npaths; i++)
            same = !strcmp(d.paths[i], json_string_value(json_array_get(paths, i)));
        uint32_t old = d.num;
        def_clear(&d);
        if (same) {
            json_decref(paths);
            return LD_OK;
        }
        st = ld_txn_del(t, LD_SPACE_IXDEF, key, kl);
        if (st == LD_OK) st = retire(db, t, old);
        if (st == LD_OK) st = bump_gen(t);
        if (st != LD_OK) {
            json_decref(paths);
            return st;
        }
    }
    if (!paths) return LD_OK;
    uint32_t num;
    st = next_number(t, &num);
    json_t *v = json_pack("{sIsOsisI}", "Num", (json_int_t)num, "Paths", paths, "State",
                          LD_INDEX_BUILDING, "Stamp", (json_int_t)rec->hlc);
    json_decref(paths);
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (st == LD_OK && !text) st = LD_NOMEM;
    if (st == LD_OK) st = ld_txn_put(t, LD_SPACE_IXDEF, key, kl, text, strlen(text));
    if (st == LD_OK) st = bump_gen(t);
    free(text);
    if (st == LD_OK) {
        db->ix_known = LD_IX_SOME;
        db->ix_work = true;
    }
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * Background work: deleting a dropped index's entries, building a new one
 * ------------------------------------------------------------------------------------------- */

/* Deletes up to batch entries of the first dropped index; *did: there was one. */
static ld_status drop_step(ld_txn *t, size_t batch, bool *did)
{
    ld_cursor c;
    const void *k, *v;
    size_t kl, vl;
    *did = false;
    ld_status st = ld_cursor_open(t, LD_SPACE_IXDROP, &c);
    if (st != LD_OK) return st;
    st = ld_cursor_seek(&c, NULL, 0, &k, &kl, &v, &vl);
    uint8_t num[4];
    if (st == LD_OK && kl != 4) st = LD_CORRUPT;
    if (st == LD_OK) memcpy(num, k, 4);
    ld_cursor_close(&c);
    if (st == LD_NOT_FOUND) return LD_OK;
    if (st != LD_OK) return st;
    *did = true;

    /* Keys first, deleted after the walk: a transaction does not write to a space its open
     * cursor reads. */
    ld_qbuf keys;
    ld_qbuf_init(&keys);
    size_t n = 0;
    if ((st = ld_cursor_open(t, LD_SPACE_IX, &c)) != LD_OK) return st;
    for (st = ld_cursor_seek(&c, num, 4, &k, &kl, &v, &vl); st == LD_OK && n < batch;
         st = ld_cursor_next(&c, &k, &kl, &v, &vl), n++) {
        if (kl < 4 || memcmp(k, num, 4)) break;
        uint32_t l = (uint32_t)kl;
        if (!ld_qbuf_add(&keys, &l, sizeof l) || !ld_qbuf_add(&keys, k, kl)) {
            st = LD_NOMEM;
            break;
        }
    }
    ld_cursor_close(&c);
    bool more = st == LD_OK && n == batch;
    if (st == LD_NOT_FOUND || st == LD_OK) st = LD_OK;
    for (size_t at = 0; st == LD_OK && at < keys.len;) {
        uint32_t l;
        memcpy(&l, keys.data + at, sizeof l);
        st = ld_txn_del(t, LD_SPACE_IX, keys.data + at + sizeof l, l);
        at += sizeof l + l;
    }
    ld_qbuf_free(&keys);
    if (st == LD_OK && !more) st = ld_txn_del(t, LD_SPACE_IXDROP, num, 4);
    return st;
}

/* Indexes up to batch documents of the first building index after its cursor; at the
 * collection's end it becomes READY. *did: there was one. */
static ld_status build_step(ld_txn *t, size_t batch, bool *did)
{
    ld_index_def *defs;
    size_t n;
    *did = false;
    ld_status st = list_defs(t, NULL, 0, LD_INDEX_BUILDING, &defs, &n);
    if (st != LD_OK || !n) return st;
    *did = true;
    ld_index_def *d = &defs[0];
    char *cur = NULL;
    size_t curl = 0;
    if ((st = cursor_get(t, d->num, &cur, &curl)) != LD_OK) goto out;

    /* Read the batch, then write it (no writes under an open cursor). */
    size_t cl = strlen(d->collection), n_docs = 0;
    uint8_t *start = ld_doc_key(d->collection, cl, cur ? cur : "", curl, &(size_t){0});
    size_t startl = cl + 1 + curl;
    ld_qbuf docs; /* per document: u32 id length, id, u32 text length, text */
    ld_qbuf_init(&docs);
    char *last = NULL;
    size_t lastl = 0;
    bool end = true;
    ld_cursor c;
    if (!start) {
        st = LD_NOMEM;
        goto out;
    }
    if ((st = ld_cursor_open(t, LD_SPACE_DOCS, &c)) != LD_OK) {
        free(start);
        goto out;
    }
    const void *k, *v;
    size_t kl, vl;
    for (st = ld_cursor_seek(&c, start, startl, &k, &kl, &v, &vl); st == LD_OK;
         st = ld_cursor_next(&c, &k, &kl, &v, &vl)) {
        const char *kc, *id;
        size_t kcl, il;
        if (!ld_doc_key_split(k, kl, &kc, &kcl, &id, &il) || kcl != cl ||
            memcmp(kc, d->collection, cl))
            break;
        if (cur && il == curl && !memcmp(id, cur, il)) continue; /* done already */
        if (n_docs == batch) {
            end = false;
            break;
        }
        n_docs++;
        free(last);
        if (!(last = dupn(id, il))) {
            st = LD_NOMEM;
            break;
        }
        lastl = il;
        ld_doc_rec rec;
        if (!ld_doc_rec_decode(v, vl, &rec)) {
            st = LD_CORRUPT;
            break;
        }
        if (ld_rec_dead(&rec)) continue;
        uint32_t a = (uint32_t)il, b = (uint32_t)rec.json_len;
        ld_qbuf_add(&docs, &a, 4);
        ld_qbuf_add(&docs, id, il);
        ld_qbuf_add(&docs, &b, 4);
        ld_qbuf_add(&docs, rec.json, rec.json_len);
        if (docs.oom) {
            st = LD_NOMEM;
            break;
        }
    }
    ld_cursor_close(&c);
    free(start);
    if (st == LD_NOT_FOUND) st = LD_OK;
    for (size_t at = 0; st == LD_OK && at < docs.len;) {
        uint32_t a, b;
        memcpy(&a, docs.data + at, 4);
        const char *id = docs.data + at + 4;
        memcpy(&b, docs.data + at + 4 + a, 4);
        const char *json = docs.data + at + 8 + a;
        at += 8 + (size_t)a + b;
        ld_doc_rec r = {.json = json, .json_len = b};
        st = entry_move(t, d, NULL, &r, id, a);
    }
    ld_qbuf_free(&docs);
    uint8_t ck[9];
    cursor_key(ck, d->num);
    if (st == LD_OK && last) st = ld_txn_put(t, LD_SPACE_META, ck, 9, last, lastl);
    if (st == LD_OK && end) {
        /* Every document up to the end is indexed, and writes have kept them so: ready. */
        st = ld_txn_del(t, LD_SPACE_META, ck, 9);
        if (st == LD_NOT_FOUND) st = LD_OK;
        json_t *paths = json_array();
        for (size_t i = 0; paths && i < d->npaths; i++)
            json_array_append_new(paths, json_string(d->paths[i]));
        json_t *val = json_pack("{sIsOsisI}", "Num", (json_int_t)d->num, "Paths", paths, "State",
                                LD_INDEX_READY, "Stamp", (json_int_t)d->stamp);
        json_decref(paths);
        char *text = val ? json_dumps(val, JSON_COMPACT) : NULL;
        json_decref(val);
        size_t kl2 = cl + 1 + strlen(d->name);
        char *key = malloc(kl2);
        if (st == LD_OK && (!text || !key)) st = LD_NOMEM;
        if (st == LD_OK) {
            memcpy(key, d->collection, cl);
            key[cl] = '\0';
            memcpy(key + cl + 1, d->name, kl2 - cl - 1);
            st = ld_txn_put(t, LD_SPACE_IXDEF, key, kl2, text, strlen(text));
        }
        if (st == LD_OK) st = bump_gen(t);
        free(key);
        free(text);
    }
    free(last);
out:
    free(cur);
    ld_index_list_free(defs, n);
    return st;
}

uint64_t ld_index_retry_delay_us(uint32_t failures)
{
    uint64_t d = LD_INDEX_RETRY_FIRST_US;
    for (uint32_t i = 1; i < failures && d < LD_INDEX_RETRY_MAX_US; i++)
        d *= 2;
    return d < LD_INDEX_RETRY_MAX_US ? d : LD_INDEX_RETRY_MAX_US;
}

ld_status ld_index_step(ld_db *db, size_t batch, bool *more)
{
    ld_txn t;
    *more = false;
    /* Lazy: a step lost to a power loss is done again from the cursor before it (entries and
     * cursor commit together), so the build need not sync each step. */
    ld_status st = ld_txn_begin_lazy(db->env->store, db->st, &t);
    if (st != LD_OK) return st;
    bool did;
    st = drop_step(&t, batch, &did);
    if (st == LD_OK && !did) st = build_step(&t, batch, &did);
    if (st != LD_OK || !did) {
        ld_txn_abort(&t);
        return st;
    }
    st = ld_txn_commit(&t);
    *more = st == LD_OK;
    return st;
}
