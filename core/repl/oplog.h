/* Reading a database's replication state for the wire: the version vector, the digest, and
 * batches of op-log entries after a LogSequence (bounded by count and bytes, skipping what the
 * other side already has). Runs in its own read transaction. */
#ifndef LD_OPLOG_H
#define LD_OPLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "../db/database.h"

/* The most entries one read looks at, sent or skipped (this many per op asked for, at least the
 * minimum): it then answers `more` with `scanned` where it stopped, so a walk over a long log
 * the other side already holds takes bounded steps on the loop. */
#define LD_OPLOG_SCAN_PER_OP 4
#define LD_OPLOG_MIN_SCAN    1000

typedef struct ld_oplog_batch {
    struct evbuffer *ops; /* the OperationRecords' JSON, comma-separated, without the brackets,
                           * or with `compact` the ops in wire_ops.h's form, one after the other
                           * (owned by the caller: ld_oplog_batch_free) */
    uint64_t *seqs;       /* LogSequence of each op in ops (malloc'd; caller frees) */
    size_t n;
    uint64_t scanned;   /* the last LogSequence looked at (sent or skipped); `after` if none */
    uint64_t local_max; /* the database's last LogSequence in this snapshot */
    bool more;          /* entries remain after `scanned` */
    json_t *vv;         /* the database's version vector {origin: seq} (owned by the caller) */
    char digest[2 * LD_DIGEST_LEN + 1]; /* hex */
    json_t *floor;       /* the log floor (see ld_oplog_floor; owned by the caller) */
    bool needs_snapshot; /* skip_vv does not cover the floor: nothing was read (n is 0) */
} ld_oplog_batch;

/* The log floor of the database as of t: {origin: seq} such that this log may lack origin's ops
 * up to seq (they came by a snapshot, or were pruned), while it holds every later one it has.
 * A peer whose version vector does not cover the floor cannot catch up from this log. */
ld_status ld_oplog_floor(ld_txn *t, json_t **floor);

/* Whether version vector vv (may be NULL: nothing) covers floor. */
bool ld_vv_covers(json_t *vv, json_t *floor);

/* Reads entries after `after`: at most max_ops and about max_bytes of payload (at least one
 * entry), skipping entries whose origin is `skip_origin` (may be NULL) or whose origin seq is
 * at most skip_vv[origin] (may be NULL). Fills *out (zeroed first). With check_floor, when
 * skip_vv does not cover the log floor, reads no entry and sets out->needs_snapshot. With
 * compact, the ops are written in the compact encoding (wire_ops.h) instead of JSON. */
ld_status ld_oplog_read(ld_db *db, uint64_t after, size_t max_ops, size_t max_bytes,
                        const char *skip_origin, json_t *skip_vv, bool check_floor, bool compact,
                        ld_oplog_batch *out);

void ld_oplog_batch_free(ld_oplog_batch *b);

/* Walks the op log of a transaction in LogSequence order, each entry decoded: the loop every
 * reader of the log shares (the batches above, the changes feed, pruning). */
typedef struct ld_oplog_iter {
    ld_cursor c;
    bool open;
    uint64_t seq; /* the current entry's LogSequence */
    ld_op_rec op; /* the current entry; points into the row, valid until the next call */
    size_t bytes; /* the current entry's key and value bytes as stored */
} ld_oplog_iter;

/* Opens it on t at the first entry whose LogSequence is at least `from`. LD_OK: an entry is
 * current; LD_NOT_FOUND: none; LD_CORRUPT: an entry that does not decode (or a key that is not
 * a LogSequence); another status: storage failed. Close it whatever this returned. */
ld_status ld_oplog_iter_seek(ld_txn *t, uint64_t from, ld_oplog_iter *it);

/* Moves to the next entry; returns as ld_oplog_iter_seek does. */
ld_status ld_oplog_iter_next(ld_oplog_iter *it);

void ld_oplog_iter_close(ld_oplog_iter *it);

/* The version vector, digest and last LogSequence as of transaction t. On failure *vv is NULL. */
ld_status ld_oplog_read_state(ld_txn *t, json_t **vv, char digest_hex[2 * LD_DIGEST_LEN + 1],
                              uint64_t *last_seq);

/* The version vector and digest only (a read transaction of their own). */
ld_status ld_oplog_state(ld_db *db, json_t **vv, char digest_hex[2 * LD_DIGEST_LEN + 1]);

/* The version vector, digest and log floor read in one read transaction (the status route), so
 * the three describe the same commit. */
ld_status ld_oplog_status(ld_db *db, json_t **vv, char digest_hex[2 * LD_DIGEST_LEN + 1],
                          json_t **floor);

#endif
