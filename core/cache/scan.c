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

/* The page's records through ld_db_scan_docs, which passes over deleted ones: this filter
 * takes the unexpired keys matching the glob and hands them to the caller's callback. */
typedef struct scan_filter {
    const ld_cache_scan *s;
    ld_cache_scan_fn cb;
    void *ctx;
} scan_filter;

static int filter_one(void *ctx, const char *key, size_t key_len, const ld_doc_rec *rec)
{
    const scan_filter *f = ctx;
    if (!ld_cache_rec_live(rec, f->s->now_ms) ||
        (f->s->match && !ld_glob_match(f->s->match, f->s->match_len, key, key_len)))
        return -1;
    return f->cb(f->ctx, key, key_len, rec) != 0;
}

ld_status ld_cache_scan_page(ld_db *db, ld_cache_scan *s, ld_cache_scan_fn cb, void *ctx)
{
    ld_doc_page page = {
        .after = s->after, .after_len = s->after_len, .take = s->take, .max_read = s->max_read};
    scan_filter f = {.s = s, .cb = cb, .ctx = ctx};
    const char *coll = LD_CACHE_COLLECTION;
    ld_status st = ld_db_scan_docs(db, coll, strlen(coll), &page, filter_one, &f);
    s->next = st == LD_OK && page.more ? page.next_after : NULL; /* handed over */
    s->next_len = s->next ? page.next_after_len : 0;
    if (!s->next) free(page.next_after);
    return st;
}
