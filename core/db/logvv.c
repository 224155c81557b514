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

ld_status ld_logvv_skip(ld_txn *t, uint64_t at, const char *skip_origin, json_t *skip_vv,
                        size_t budget, uint64_t *to, size_t *used)
{
    *to = at;
    *used = 0;
    uint8_t key[8];
    ld_be64_put(key, at);
    const void *k, *v;
    size_t kl, vl;
    ld_status st = ld_txn_get(t, LD_SPACE_LOGVV, key, 8, &v, &vl);
    if (st == LD_NOT_FOUND) return LD_OK;
    if (st != LD_OK) return st;
    /* The previous mark is copied: the storage's pointers last until its next call. */
    uint8_t *prev = malloc(vl ? vl : 1);
    if (!prev) return LD_NOMEM;
    memcpy(prev, v, vl);
    size_t prev_len = vl, prev_cap = vl;
    vv_entry *pe = NULL, *ne = NULL;
    size_t pcap = 0, ncap = 0, np = 0, nn = 0;
    st = decode(prev, prev_len, &pe, &pcap, &np);
    ld_cursor c;
    bool open = false;
    if (st == LD_OK) {
        ld_be64_put(key, at + 1);
        st = ld_cursor_open(t, LD_SPACE_LOGVV, &c);
        open = st == LD_OK;
        if (open) st = ld_cursor_seek(&c, key, 8, &k, &kl, &v, &vl);
    }
    while (st == LD_OK && *used < budget) {
        if (kl != 8) {
            st = LD_CORRUPT;
            break;
        }
        (*used)++;
        if ((st = decode(v, vl, &ne, &ncap, &nn)) != LD_OK) break;
        if (!stretch_skipped(pe, np, ne, nn, skip_origin, skip_vv)) break;
        *to = ld_be64_get(k);
        if (vl > prev_cap) {
            uint8_t *g = realloc(prev, vl);
            if (!g) {
                st = LD_NOMEM;
                break;
            }
            prev = g;
            prev_cap = vl;
        }
        memcpy(prev, v, vl);
        prev_len = vl;
        if ((st = decode(prev, prev_len, &pe, &pcap, &np)) != LD_OK) break;
        st = ld_cursor_next(&c, &k, &kl, &v, &vl);
    }
    if (open) ld_cursor_close(&c);
    free(prev);
    free(pe);
    free(ne);
    return st == LD_NOT_FOUND ? LD_OK : st;
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
