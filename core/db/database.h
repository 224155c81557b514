/* One open logical database: its storage handle, its committed replication state (last log
 * sequence, stamp high-water mark, digest) and the document operations the writer applies.
 * Key spaces: docs (collection \0 id -> record), log (be64 seq -> op), meta, vv, colls. */
#ifndef LD_DATABASE_H
#define LD_DATABASE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../metrics/metrics.h"
#include "../storage/storage.h"
#include "../util/keylog.h"
#include "hlc.h"
#include "names.h"
#include "record.h"

#define LD_SPACE_DOCS  "docs"
#define LD_SPACE_LOG   "log"
#define LD_SPACE_META  "meta"
#define LD_SPACE_VV    "vv"
#define LD_SPACE_COLLS "colls"
#define LD_SPACE_CKPT  "ckpt" /* peer node id \0 "push"|"pull" -> be64 LogSequence */
/* origin -> be64: this log may lack origin's ops up to there (they came by a snapshot) */
#define LD_SPACE_FLOOR "floor"
/* origin -> be64 stamp of the op (origin, VV[origin]): what any later op of origin is above */
#define LD_SPACE_LSTAMP "lstamp"
/* origin \0 be64 origin seq -> op record: an op refused below the purge floor (purge.h) */
#define LD_SPACE_CONFLICTS "conflicts"

#define LD_DIGEST_LEN 16

struct ld_writer;
struct ld_db;
struct ld_index_cache;
struct ld_wjob;

/* What every database of a node shares. Owned by the node; outlives every database. */
typedef struct ld_db_env {
    ld_store *store;
    ld_hlc *clock;
    const char *node_id;
    /* The name this node's own writes are stamped with, its key in version vectors: the node id,
     * or in a restored data directory the node id with a suffix of the restore's incarnation
     * (datadir.h), so the op sequences the node used before the backup was taken, and after it
     * until the restore, are never used again under the same name. NULL: node_id. */
    const char *origin;
    /* A restored data directory's previous incarnation: a database that records it came from the
     * backup and is re-stamped with `incarnation` when opened. NULL otherwise. */
    const char *restored_from;
    const char *dir; /* where the storage plugin keeps database files */
    /* The data directory's incarnation (datadir.h), recorded in each database's meta; NULL: not
     * checked (tools and tests without a data directory). adopt: a database holding data but no
     * record is stamped (a directory from before the record) instead of refused, and the first
     * database's record, if any, becomes the incarnation (the directory lost its file). */
    char *incarnation;
    bool adopt;
    bool adopt_taken; /* adopting: a database's record became the incarnation (a lost file) */
    int writer_batch_max;
    int index_build_batch; /* documents per online index build step; 0: 1000 */
    size_t read_cache_bytes; /* each database's read memo (memo.h); 0: none */
    /* Node.CacheDurability "everysec": cache writes commit lazily, made durable within a second
     * by the writer (writer.h). false: "full", every write's commit waits for its fsync. */
    bool cache_everysec;
    /* Called on a writer thread with finished jobs (see writer.h); posts them to the loop. */
    void (*complete)(void *ctx, struct ld_wjob *jobs);
    void *complete_ctx;
    /* Called on a writer thread after a commit that appended to the log (replication's
     * trigger); may be NULL. */
    void (*committed)(void *ctx, struct ld_db *db);
    void *committed_ctx;
} ld_db_env;

/* The origin this node's own writes carry (env->origin, else the node id). */
static inline const char *ld_env_origin(const ld_db_env *env)
{
    return env->origin ? env->origin : env->node_id;
}

/* Where a restored database's log continues (database.c): the restore's time in seconds times
 * 2^20. A life (first, or itself restored earlier) would have to append over a million entries
 * a second on average to reach it; it stays below 2^53, so JSON clients read it exactly. */
static inline uint64_t ld_restored_log_base(uint64_t unix_s)
{
    return unix_s << 20;
}

/* The replication state as of the last commit. */
typedef struct ld_db_state {
    uint64_t last_seq; /* LogSequence of the last op in this database's log (local or relayed) */
    uint64_t self_seq; /* origin sequence of the last LOCAL write: VV[self], contiguous from 1 */
    uint64_t hlc_hw;
    uint8_t digest[LD_DIGEST_LEN];
    uint64_t commits; /* commits since the database opened (db/snapshot.h's freshness test) */
    uint64_t pruned_through; /* the last op-log entry pruned (repl/prune.h); 0: none */
    /* LogSequences (skip_from, skip_to] hold no entry: the jump of a restored database
     * (database.c), left out when entries are counted from positions. 0, 0: none. */
    uint64_t skip_from, skip_to;
    /* Every own op after promise_seq is stamped above promise_hlc (the clock as of the last
     * commit): what this node promises its peers for the purge frontier (repl/frontier.h). */
    uint64_t promise_seq, promise_hlc;
    uint64_t self_hlc;    /* stamp of the last local op (VV[self]'s last stamp); 0: none */
    uint64_t purge_floor; /* tombstones below it are purged, ops below it refused; never lower */
    uint64_t refused;     /* ops refused below the purge floor (conflict records written) */
    uint64_t log_bytes;   /* bytes of the op-log entries held (keys and values) */
    uint64_t conflicts;   /* conflict records written (the conflicts space's size) */
    uint8_t purged_digest[LD_DIGEST_LEN]; /* XOR of the terms of purged records (kept in digest) */
    /* The last prune pass that completed here (meta "last_prune"): when (wall ms; 0: none),
     * op-log entries it removed, dead records it purged and dead records it left. */
    uint64_t last_prune_ms, last_prune_entries, last_prune_purged, dead_records;
} ld_db_state;

/* How many log positions in (from, to] can hold an entry: the span less the restore's jump. */
static inline uint64_t ld_log_span(const ld_db_state *s, uint64_t from, uint64_t to)
{
    if (to <= from) return 0;
    uint64_t n = to - from;
    uint64_t lo = s->skip_from > from ? s->skip_from : from;
    uint64_t hi = s->skip_to < to ? s->skip_to : to;
    return hi > lo ? n - (hi - lo) : n;
}

/* ld_db.ix_known */
#define LD_IX_UNKNOWN 0
#define LD_IX_NONE    1
#define LD_IX_SOME    2

typedef struct ld_db {
    char name[LD_DB_NAME_MAX + 1];
    ld_db_env *env;
    ld_stdb *st;
    struct ld_writer *writer;
    pthread_mutex_t mu; /* guards `committed` */
    ld_db_state committed;
    int refs;     /* registry-managed; see registry.h */
    bool dropped; /* deleted: close and remove files when the last reference goes */
    /* No incarnation recorded yet (a new, empty database): the writer's first commit records
     * it, in the same transaction as the first data (apply.c). Writer thread only after open. */
    bool unstamped;
    /* Indexes (index/index.h), writer thread only: whether any index is defined (LD_IX_*: a
     * write to a collection skips the index lookup while there is none), and whether background
     * index work (a build, a drop's deletions) may remain: set at open and when a definition
     * changes, cleared by the step that finds nothing. */
    int ix_known;
    bool ix_work;
    struct ld_index_cache *ix_cache; /* the definitions as of a generation (index.c); owned */
    /* The query threads' parsed definitions (index.h ld_index_set_acquire); owned, thread-safe. */
    struct ld_index_shared *ix_shared;
    /* A failed background index step (ld_index_step) is retried by the writer after a backoff
     * (index.h ld_index_retry_delay_us), guarded by mu: consecutive failures, when the retry is
     * due (monotonic us; 0: none waits), failures in all (a metric) and the last one's text. */
    uint32_t ix_failures;
    uint64_t ix_retry_us;
    uint64_t ix_step_failures;
    char ix_error[96];
    /* Group commits (writer thread adds, GET /metrics reads): writes per commit, commit time. */
    ld_hist commit_ops, commit_seconds;
    /* The everysec flush (writer.h), written by the writer, guarded by mu: how many times lazily
     * committed cache writes were made durable, when last (wall ms; 0: never), and whether some
     * wait for it now. */
    uint64_t cache_flushes, cache_flush_ms;
    bool cache_unflushed;
    /* The loop's memo of records read (memo.h; NULL: Node.ReadCacheKiB 0), and the keys of the
     * docs space the writer's current transaction wrote (writer thread), handed to it after
     * each commit. */
    struct ld_memo *memo;
    ld_keylog written;
} ld_db;

/* Opens (creating when absent) database `name`, loads its state, observes its stamp high-water
 * mark on the node clock and starts its writer. */
ld_status ld_db_open(ld_db_env *env, const char *name, ld_db **out);

/* Stops the writer (after it finished every queued job), closes storage, frees. When `drop`,
 * also deletes the database's files. */
ld_status ld_db_close(ld_db *db, bool drop);

void ld_db_state_get(ld_db *db, ld_db_state *out);

struct ld_snapshots;

/* Reads the current record of coll/id: through the loop pass's snapshot when `snaps` is given
 * (loop thread only; see snapshot.h), else in its own read transaction. On LD_OK *buf is a
 * malloc'd copy of the stored record (free it) and rec points into it. */
ld_status ld_db_get_doc(ld_db *db, struct ld_snapshots *snaps, const char *coll, size_t coll_len,
                        const char *id, size_t id_len, uint8_t **buf, ld_doc_rec *rec);

/* One page of a collection's live documents in id order (GET /api/documents/{c}). */
typedef struct ld_doc_page {
    const char *after; /* start strictly after this id; NULL: at the first */
    size_t after_len;
    uint64_t skip; /* live documents passed over first */
    uint64_t take; /* most documents given to cb */
    /* Most entries read, tombstones included (the work done on the calling thread); 0: no
     * limit. */
    uint64_t max_read;
    /* Out: the page stopped before the collection's end (take or max_read reached, or cb
     * stopped it) and next_after (malloc'd, the caller frees) is the id to continue after. */
    bool more;
    char *next_after;
    size_t next_after_len;
} ld_doc_page;

/* Calls cb for the live documents of `coll` that page selects; cb's rec is valid for the call
 * only. cb returns 0 to go on, > 0 to stop after that document, < 0 to pass over it (it does not
 * count against take: a caller's own filter, e.g. the cache's expiry and glob). */
ld_status ld_db_scan_docs(ld_db *db, const char *coll, size_t coll_len, ld_doc_page *page,
                          int (*cb)(void *ctx, const char *id, size_t id_len,
                                    const ld_doc_rec *rec),
                          void *ctx);

/* Calls cb for every collection name (registered or written), in byte order. */
ld_status ld_db_scan_collections(ld_db *db, int (*cb)(void *ctx, const char *name, size_t len),
                                 void *ctx);

/* The stamp digest term H(collection, id, stamp, deleted, expires_at) of docs/architecture.md §5,
 * XORed into the database digest. Exposed for unit tests and the replication checks. */
void ld_digest_term(const char *coll, size_t coll_len, const char *id, size_t id_len,
                    const ld_doc_rec *rec, uint8_t out[LD_DIGEST_LEN]);

#endif
