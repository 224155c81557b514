/* Listing cache keys: a page of live entries (not deleted, not swept, not expired) in key order
 * after a given key, filtered by a Redis-style glob and bounded by the records read, for
 * GET /api/cache and the RESP SCAN command. */
#ifndef LD_CACHE_SCAN_H
#define LD_CACHE_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../db/database.h"

/* Whether string s matches glob pattern p with Redis's stringmatchlen semantics (case
 * sensitive): `*` any run of bytes, `?` one byte, `[abc]`, `[^abc]`, `[a-z]` (reversed ranges
 * swapped) one byte of a set, `\x` the byte x (also inside a set). An unterminated set runs to
 * the pattern's end, a trailing `\` is a literal backslash. Bytes compare unsigned. Runs in
 * O(len(p) * len(s)) at worst: no exponential backtracking on patterns like `*a*a*a*b`. */
bool ld_glob_match(const char *p, size_t plen, const char *s, size_t slen);

/* Called for each live key of the page, in key order; rec is valid for the call only. A
 * non-zero return stops the scan after that key. */
typedef int (*ld_cache_scan_fn)(void *ctx, const char *key, size_t key_len, const ld_doc_rec *rec);

typedef struct ld_cache_scan {
    const char *match; /* glob the keys must match; NULL: every key */
    size_t match_len;
    const char *after; /* start strictly after this key; NULL: at the first */
    size_t after_len;
    size_t take;     /* most keys given to the callback (at least 1) */
    size_t max_read; /* most records read, dead and unmatched ones included (at least 1) */
    uint64_t now_ms; /* expiry is judged at this time (ld_cache_now_ms) */
    /* Out: the key to continue after (malloc'd, the caller frees) when the page stopped before
     * the last cache record, NULL when the scan reached the end. */
    char *next;
    size_t next_len;
} ld_cache_scan;

/* Reads one page in a read transaction of its own. The caller bounds the work with take and
 * max_read, so a call stays short enough for the event loop. */
ld_status ld_cache_scan_page(ld_db *db, ld_cache_scan *s, ld_cache_scan_fn cb, void *ctx);

#endif
