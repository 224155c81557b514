/* Reading the changes feed (GET /api/changes, /ws/changes): op-log entries after a cursor turned
 * into change objects, bounded in entries and bytes, in their own read transaction (a worker
 * thread runs it). Kept apart from oplog.c, which serves peers. */
#ifndef LD_CHANGES_READ_H
#define LD_CHANGES_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "../db/database.h"

/* Entries one read looks at (returned or filtered out) per change asked for, and at least: a
 * filter matching little walks the log in bounded steps. */
#define LD_CHANGES_SCAN_PER_CHANGE 8
#define LD_CHANGES_MIN_SCAN        1000

typedef struct ld_changes_query {
    uint64_t after;     /* the cursor: LogSequence of the last change the client has */
    size_t max_changes; /* at least 1 */
    size_t max_bytes;   /* about this many bytes of output (at least one change) */
    char **collections; /* only these (NULL: every user collection) */
    size_t n_collections;
    bool include_docs;  /* add "Doc": the document's current JSON (null when deleted) */
    bool include_cache; /* the cache collection too (cache keys) */
    bool comma;         /* a ',' before each change but the batch's first (a JSON array) */
} ld_changes_query;

typedef struct ld_changes_batch {
    struct evbuffer *out; /* change objects, each ending with '\n' unless q->comma (caller-owned,
                           * given in) */
    size_t n;             /* change objects written */
    uint64_t last;        /* the cursor after this batch: the last entry looked at */
    uint64_t local_max;   /* the log's last LogSequence in this read */
    bool more;            /* entries remain after `last` */
    /* `after` is below the oldest entry kept, or past the log's end: nothing was read */
    bool gone;
    uint64_t oldest; /* the oldest LogSequence the log still holds (pruned_through + 1) */
} ld_changes_batch;

/* Reads the changes after q->after into b->out (b->out set by the caller, the rest zeroed
 * here). LD_OK also when b->gone. */
ld_status ld_changes_read(ld_db *db, const ld_changes_query *q, ld_changes_batch *b);

/* The cursor text of a LogSequence (decimal; clients treat it as opaque). out: 21 bytes. */
void ld_changes_cursor_str(uint64_t seq, char out[21]);

/* Parses a cursor; false when it is not one. */
bool ld_changes_cursor_parse(const char *s, uint64_t *seq);

#endif
