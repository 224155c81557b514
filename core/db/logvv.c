/* The op log's version-vector marks (see logvv.h). A mark is a list of (u8 length, origin,
 * be64 seq) sorted by origin as the storage orders keys, so two marks compare in one merge. */
#include "logvv.h"

#include <stdlib.h>
#include <string.h>

#include "../util/jsonget.h"
#include "names.h"
#include "record.h"

#define ENTRY_MAX (1 + LD_NODE_ID_MAX + 8)

typedef struct vv_entry {
    const uint8_t *origin;
    size_t len;
    uint64_t seq;
} vv_entry;

/* Key order (memcmp, then the shorter first): the VV space's cursor order on every plugin. */
static int origin_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

/* One origin's entry while a mark is built (the storage's key pointers do not outlive a step). */
typedef struct own_entry {
    uint8_t origin[LD_NODE_ID_MAX];
    size_t len;
    uint64_t seq;
} own_entry;

static int own_cmp(const void *x, const void *y)
{
    const own_entry *a = x, *b = y;
    return origin_cmp(a->origin, a->len, b->origin, b->len);
}

ld_status ld_logvv_mark(ld_txn *t, const ld_db_state *pending, uint64_t seq, const char *self)
{
    if (seq == 0 || seq % LD_LOGVV_EVERY != 0) return LD_OK;
    size_t self_len = strlen(self), n = 0, cap = 8;
    if (self_len == 0 || self_len > LD_NODE_ID_MAX) return LD_INVALID;
    own_entry *es = malloc(cap * sizeof *es);
    if (!es) return LD_NOMEM;
    /* The VV space holds every origin but this node's own up to date (its seq is written at
     * commit, ld_apply_finish): the mark takes the space, then self from pending. */
    if (pending->self_seq > 0) {
        memcpy(es[0].origin, self, self_len);
        es[0].len = self_len;
        es[0].seq = pending->self_seq;
        n = 1;
    }
    ld_cursor c;
    ld_status st = ld_cursor_open(t, LD_SPACE_VV, &c);
    if (st == LD_OK) {
        const void *k, *v;
        size_t kl, vl;
        while ((st = ld_cursor_next(&c, &k, &kl, &v, &vl)) == LD_OK) {
            if (vl != 8 || kl == 0 || kl > LD_NODE_ID_MAX) {
                st = LD_CORRUPT;
                break;
            }
            if (kl == self_len && memcmp(k, self, kl) == 0) continue;
            if (n == cap) {
                own_entry *g = realloc(es, 2 * cap * sizeof *es);
                if (!g) {
                    st = LD_NOMEM;
                    break;
                }
                es = g;
                cap *= 2;
            }
            memcpy(es[n].origin, k, kl);
            es[n].len = kl;
            es[n].seq = ld_be64_get(v);
            n++;
        }
        ld_cursor_close(&c);
        if (st == LD_NOT_FOUND) st = LD_OK;
    }
    uint8_t *buf = st == LD_OK ? malloc(n ? n * ENTRY_MAX : 1) : NULL;
    if (st == LD_OK && !buf) st = LD_NOMEM;
    if (st == LD_OK) {
        qsort(es, n, sizeof *es, own_cmp);
        size_t used = 0;
        for (size_t i = 0; i < n; i++) {
            buf[used++] = (uint8_t)es[i].len;
            memcpy(buf + used, es[i].origin, es[i].len);
            used += es[i].len;
            ld_be64_put(buf + used, es[i].seq);
            used += 8;
        }
        uint8_t key[8];
        ld_be64_put(key, seq);
        st = ld_txn_put(t, LD_SPACE_LOGVV, key, 8, buf, used);
    }
    free(buf);
    free(es);
    return st;
}

/* Decodes a mark into *es (grown as needed; *cap its size). The entries point into v. */
static ld_status decode(const uint8_t *v, size_t vl, vv_entry **es, size_t *cap, size_t *n)
{
    *n = 0;
    size_t off = 0;
    while (off < vl) {
        size_t len = v[off++];
        if (len == 0 || len > LD_NODE_ID_MAX || vl - off < len + 8) return LD_CORRUPT;
        if (*n == *cap) {
            size_t nc = *cap ? 2 * *cap : 8;
            vv_entry *g = realloc(*es, nc * sizeof *g);
            if (!g) return LD_NOMEM;
            *es = g;
            *cap = nc;
        }
        (*es)[*n].origin = v + off;
        (*es)[*n].len = len;
        (*es)[*n].seq = ld_be64_get(v + off + len);
        (*n)++;
        off += len + 8;
    }
    return LD_OK;
}

/* Whether the entries between marks prev and next are all ones the reader skips: an entry of
 * origin O in that stretch has an origin seq s with prev[O] < s <= next[O] (a log holds each
 * origin's ops in order, without gaps), so the stretch has one to send exactly when
 * next[O] > max(prev[O], skip_vv[O]) for some O other than skip_origin. */
static bool stretch_skipped(const vv_entry *prev, size_t np, const vv_entry *next, size_t nn,
                            const char *skip_origin, json_t *skip_vv)
{
    size_t i = 0, so_len = skip_origin ? strlen(skip_origin) : 0;
    for (size_t j = 0; j < nn; j++) {
        const vv_entry *e = &next[j];
        while (i < np && origin_cmp(prev[i].origin, prev[i].len, e->origin, e->len) < 0)
            i++;
        uint64_t had = i < np && origin_cmp(prev[i].origin, prev[i].len, e->origin, e->len) == 0
                           ? prev[i].seq
                           : 0;
        if (e->seq <= had) continue;
        if (skip_origin && e->len == so_len && memcmp(e->origin, skip_origin, so_len) == 0)
            continue;
        char origin[LD_NODE_ID_MAX + 1];
        memcpy(origin, e->origin, e->len);
        origin[e->len] = '\0';
        uint64_t have;
        if (!skip_vv || !ld_json_as_u64(json_object_get(skip_vv, origin), &have) || e->seq > have)
            return false;
    }
    return true;
}

/* The first mark at or after LogSequence `from`: its position in *seq and its entries in *es
 * (pointing into the storage's value, valid until the cursor's next call). */
static ld_status mark_from(ld_cursor *c, uint64_t from, uint64_t *seq, vv_entry **es, size_t *cap,
                           size_t *n)
{
    uint8_t key[8];
    ld_be64_put(key, from);
    const void *k, *v;
    size_t kl, vl;
    ld_status st = ld_cursor_seek(c, key, 8, &k, &kl, &v, &vl);
    if (st != LD_OK) return st;
    if (kl != 8) return LD_CORRUPT;
    *seq = ld_be64_get(k);
    return decode(v, vl, es, cap, n);
}

ld_status ld_logvv_skip(ld_txn *t, uint64_t at, const char *skip_origin, json_t *skip_vv,
                        size_t budget, uint64_t *to, size_t *used)
{
    *to = at;
    *used = 0;
    uint8_t key[8];
    ld_be64_put(key, at);
    const void *v;
    size_t vl;
    ld_status st = ld_txn_get(t, LD_SPACE_LOGVV, key, 8, &v, &vl);
    if (st == LD_NOT_FOUND) return LD_OK;
    if (st != LD_OK) return st;
    /* The first mark is copied: the storage's pointers last until its next call. */
    uint8_t *base = malloc(vl ? vl : 1);
    if (!base) return LD_NOMEM;
    memcpy(base, v, vl);
    vv_entry *be = NULL, *ne = NULL;
    size_t bcap = 0, ncap = 0, nb = 0, nn = 0;
    st = decode(base, vl, &be, &bcap, &nb);
    ld_cursor c;
    bool open = false;
    if (st == LD_OK) {
        st = ld_cursor_open(t, LD_SPACE_LOGVV, &c);
        open = st == LD_OK;
    }
    /* Every stretch from `at` to a later mark m is skipped exactly when the single stretch
     * (at, m) is (marks only grow: see stretch_skipped), and once that fails it fails for every
     * later mark. So the last mark reachable is found by galloping then bisecting: a covered
     * 1,000,000-entry log costs about 40 reads, not 3,906. lo: a mark reachable; hi: no mark at
     * or after it is. */
    uint64_t lo = at, hi = UINT64_MAX, step = LD_LOGVV_EVERY;
    bool bounded = false;
    while (st == LD_OK && !bounded && *used < budget) {
        uint64_t probe = lo <= UINT64_MAX - step ? lo + step : UINT64_MAX, m;
        (*used)++;
        st = mark_from(&c, probe, &m, &ne, &ncap, &nn);
        if (st == LD_NOT_FOUND) {
            st = LD_OK;
            hi = probe;
            bounded = true;
        } else if (st == LD_OK) {
            if (stretch_skipped(be, nb, ne, nn, skip_origin, skip_vv)) {
                lo = m;
                if (step <= UINT64_MAX / 2) step *= 2;
            } else {
                hi = m;
                bounded = true;
            }
        }
    }
    while (st == LD_OK && bounded && hi - lo > 1 && *used < budget) {
        uint64_t mid = lo + (hi - lo) / 2, m;
        (*used)++;
        st = mark_from(&c, mid, &m, &ne, &ncap, &nn);
        if (st == LD_NOT_FOUND || (st == LD_OK && m >= hi)) { /* no mark in [mid, hi) */
            st = LD_OK;
            hi = mid;
        } else if (st == LD_OK) {
            if (stretch_skipped(be, nb, ne, nn, skip_origin, skip_vv))
                lo = m;
            else
                hi = m;
        }
    }
    if (st == LD_OK) *to = lo;
    if (open) ld_cursor_close(&c);
    free(base);
    free(be);
    free(ne);
    return st;
}

ld_status ld_logvv_prune(ld_txn *t, uint64_t through)
{
    uint64_t marks[64];
    ld_status st = LD_OK;
    /* A pruned batch spans few marks; more than a handful is caught up 64 at a time. */
    for (;;) {
        size_t n = 0;
        ld_cursor c;
        st = ld_cursor_open(t, LD_SPACE_LOGVV, &c);
        if (st != LD_OK) return st;
        const void *k, *v;
        size_t kl, vl;
        while (n < 64 && (st = ld_cursor_next(&c, &k, &kl, &v, &vl)) == LD_OK) {
            if (kl != 8) {
                st = LD_CORRUPT;
                break;
            }
            uint64_t s = ld_be64_get(k);
            if (s > through) break;
            marks[n++] = s;
        }
        ld_cursor_close(&c);
        if (st == LD_NOT_FOUND) st = LD_OK;
        /* Deleted after the cursor closed: a transaction does not write to a space it reads. */
        for (size_t i = 0; i < n && st == LD_OK; i++) {
            uint8_t key[8];
            ld_be64_put(key, marks[i]);
            st = ld_txn_del(t, LD_SPACE_LOGVV, key, 8);
        }
        if (st != LD_OK || n < 64) return st;
    }
}
