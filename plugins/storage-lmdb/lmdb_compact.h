/* LMDB storage plugin: hands a large free list back to the file system at a clean close by
 * replacing data.mdb with a compacted copy (docs/storage.md, "Free pages at a clean stop"). */
#ifndef LD_LMDB_COMPACT_H
#define LD_LMDB_COMPACT_H

#include <litedist/plugin.h>

#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>

/* The compacted copy is written beside data.mdb under this name, then renamed over it. */
#define LM_COMPACT_TMP "data.mdb.compact"

/* What an open environment's file holds, counted in pages. */
typedef struct lm_pages {
    uint64_t psize; /* bytes per page */
    uint64_t file;  /* pages up to the highest one ever used (the extent of data.mdb) */
    uint64_t free; /* of those, pages on LMDB's free list: reused by later writes, never returned */
    uint64_t packed; /* about how many pages a packed copy takes (0: not estimated) */
} lm_pages;

/* Counts env's pages in a read txn (no write txn may be open in this process's thread). When
 * the pages in use are at most scan_max_bytes, also estimates the packed copy's size from every
 * record's size (one read of the live data). Returns 0 or an LMDB error. */
int lm_pages_count(MDB_env *env, uint64_t scan_max_bytes, lm_pages *out);

/* Whether a compacted copy pays at close: the copy would give back at least 1 MiB and an eighth
 * of the file (free pages, and the slack of leaves that deletes and shrunk values left sparse:
 * LMDB merges a leaf only once it is under a quarter full), and no more than max_bytes of pages
 * are in use (what the copy reads; 0: never). */
bool lm_compact_pays(const lm_pages *p, uint64_t max_bytes);

/* Replaces <path>/data.mdb with a compacted copy: every key space rewritten in key order, so
 * that free pages go and the pages are full. `path` is an environment no handle of this process
 * has open; maxdbs is at least the number of key spaces in it. Crash-safe: the copy is fsynced
 * before it is renamed over data.mdb and the directory is fsynced after; a crash leaves the old or
 * the new file, and at most a leftover LM_COMPACT_TMP that lm_compact_leftover removes. Does
 * nothing (and logs why) while another process has the environment open. Failures are logged; the
 * old file then stays as it was. */
void lm_compact(const ld_host *host, const char *path, unsigned maxdbs);

/* Removes a LM_COMPACT_TMP an interrupted lm_compact left in <path>, unless another process has
 * the environment open (it could be that process's copy in progress). Returns 0 or an errno. */
int lm_compact_leftover(const ld_host *host, const char *path);

#endif
