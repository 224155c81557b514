/* The cache sweeper: every Node.CacheCleanupIntervalSeconds it walks the cache entries of each
 * open database in pages of Node.CacheCleanupBatchSize records (at most
 * Node.CacheCleanupMaxScanPages pages and Node.CacheCleanupTimeBudgetMilliseconds per database
 * and run), freeing the bodies of expired entries. Reads already hide expired entries; the
 * sweeper only reclaims space, writes no op and replicates nothing. A database larger than one
 * run resumes where the previous run stopped. Loop thread only. */
#ifndef LD_CACHE_SWEEPER_H
#define LD_CACHE_SWEEPER_H

#include <stdbool.h>
#include <stdint.h>

struct ld_node;
typedef struct ld_sweeper ld_sweeper;

/* Starts the periodic runs (none when the interval is 0). NULL when out of memory. */
ld_sweeper *ld_sweeper_new(struct ld_node *node);

/* The cache keys of db as of the sweeper's last complete pass over it: unexpired (*live) and
 * expired (*expired; bodies freed or about to be). False before a pass completed. */
bool ld_sweeper_counts(ld_sweeper *s, const char *db, uint64_t *live, uint64_t *expired);

/* Stops scheduling new pages; a page already queued finishes (shutdown waits for it, as for
 * any write in flight). */
void ld_sweeper_stop(ld_sweeper *s);

/* Frees the sweeper; call after the loop has stopped (no page in flight). */
void ld_sweeper_free(ld_sweeper *s);

#endif
