/* Cache key pages and the glob they are filtered by (see scan.h). */
#include "scan.h"

#include <stdlib.h>
#include <string.h>

#include "../db/record.h"
#include "entry.h"

/* Whether the one-byte pattern token at p[i] (not `*`) matches c; *next is the index after the
 * token. Follows stringmatchlen's reading of `\` and of sets byte for byte. */
static bool token_matches(const char *p, size_t plen, size_t i, unsigned char c, size_t *next)
{
    unsigned char t = (unsigned char)p[i];
    if (t == '?') {
        *next = i + 1;
        return true;
    }
    if (t == '\\' && plen - i >= 2) {
        *next = i + 2;
        return (unsigned char)p[i + 1] == c;
    }
    if (t != '[') {
        *next = i + 1;
        return t == c;
    }
    i++;
    bool negate = i < plen && p[i] == '^';
    if (negate) i++;
    bool match = false;
    for (;;) {
        if (i >= plen) { /* unterminated: the set is the rest of the pattern */
            *next = plen;
            break;
        }
        unsigned char a = (unsigned char)p[i];
        if (a == '\\' && plen - i >= 2) {
            i++;
            if ((unsigned char)p[i] == c) match = true;
        } else if (a == ']') {
            *next = i + 1;
            break;
        } else if (plen - i >= 3 && p[i + 1] == '-') {
            unsigned char lo = a, hi = (unsigned char)p[i + 2];
            if (lo > hi) {
                unsigned char tmp = lo;
                lo = hi;
                hi = tmp;
            }
            i += 2;
            if (c >= lo && c <= hi) match = true;
        } else if (a == c) {
            match = true;
        }
        i++;
    }
    return negate ? !match : match;
}

bool ld_glob_match(const char *p, size_t plen, const char *s, size_t slen)
{
    /* Every token but `*` consumes exactly one byte, so only the latest `*` ever needs to take
     * one more byte on a mismatch: one backtrack point, no recursion. */
    size_t pi = 0, si = 0, star_p = 0, star_s = 0;
    bool star = false;
    while (si < slen) {
        if (pi < plen && p[pi] == '*') {
            while (pi < plen && p[pi] == '*')
                pi++;
            if (pi == plen) return true;
            star = true;
            star_p = pi;
            star_s = si;
            continue;
        }
        size_t next;
        if (pi < plen && token_matches(p, plen, pi, (unsigned char)s[si], &next)) {
            pi = next;
            si++;
            continue;
        }
        if (!star) return false;
        pi = star_p;
        si = ++star_s;
    }
    while (pi < plen && p[pi] == '*')
        pi++;
    return pi == plen;
}

/* The id part of a document key copied to a growing buffer: the continuation point. */
static bool keep_last(ld_cache_scan *s, const char *id, size_t len)
{
    char *b = realloc(s->next, len + 1);
    if (!b) return false;
    memcpy(b, id, len);
    b[len] = '\0';
    s->next = b;
    s->next_len = len;
    return true;
}

ld_status ld_cache_scan_page(ld_db *db, ld_cache_scan *s, ld_cache_scan_fn cb, void *ctx)
{
    s->next = NULL;
    s->next_len = 0;
    s->read = 0;
    const char *coll = LD_CACHE_COLLECTION;
    size_t plen, slen = 0;
    uint8_t *prefix = ld_doc_key(coll, strlen(coll), "", 0, &plen);
    uint8_t *start =
        prefix && s->after ? ld_doc_key(coll, strlen(coll), s->after, s->after_len, &slen) : NULL;
    if (!prefix || (s->after && !start)) {
        free(prefix);
        return LD_NOMEM;
    }
    ld_txn t;
    ld_status st = ld_txn_begin(db->env->store, db->st, false, &t);
    if (st != LD_OK) {
        free(prefix);
        free(start);
        return st;
    }
    ld_cursor c;
    bool more = false;
    st = ld_cursor_open(&t, LD_SPACE_DOCS, &c);
    if (st == LD_OK) {
        const void *k, *v;
        size_t kl, vl, sent = 0;
        bool stopped = false;
        st = start ? ld_cursor_seek(&c, start, slen, &k, &kl, &v, &vl)
                   : ld_cursor_seek(&c, prefix, plen, &k, &kl, &v, &vl);
        /* Strictly after: the key itself is the previous page's last. */
        if (st == LD_OK && start && kl == slen && memcmp(k, start, slen) == 0)
            st = ld_cursor_next(&c, &k, &kl, &v, &vl);
        while (st == LD_OK) {
            if (kl < plen || memcmp(k, prefix, plen) != 0) break; /* past the cache */
            if (sent == s->take || s->read == s->max_read || stopped) {
                more = true; /* another record follows: continue after the last one read */
                break;
            }
            s->read++;
            ld_doc_rec rec;
            if (!ld_doc_rec_decode(v, vl, &rec)) {
                st = LD_CORRUPT;
                break;
            }
            const char *key = (const char *)k + plen;
            size_t key_len = kl - plen;
            if (!keep_last(s, key, key_len)) {
                st = LD_NOMEM;
                break;
            }
            if (ld_cache_rec_live(&rec, s->now_ms) &&
                (!s->match || ld_glob_match(s->match, s->match_len, key, key_len))) {
                sent++;
                stopped = cb(ctx, key, key_len, &rec) != 0;
            }
            st = ld_cursor_next(&c, &k, &kl, &v, &vl);
        }
        if (st == LD_NOT_FOUND) st = LD_OK;
        ld_cursor_close(&c);
    }
    ld_txn_abort(&t);
    if (st != LD_OK || !more) {
        free(s->next);
        s->next = NULL;
        s->next_len = 0;
    }
    free(prefix);
    free(start);
    return st;
}
