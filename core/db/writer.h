/* The writer of one logical database: a thread that takes every write queued since its last
 * commit, applies them in ONE storage transaction (document + op-log entry + version vector +
 * digest), commits once and completes each request: group commit, so durable throughput is not
 * one fsync per request. A 2xx is sent only after the commit returned. */
#ifndef LD_WRITER_H
#define LD_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../storage/storage.h"
#include "record.h"

struct ld_db;
struct ld_db_state;
struct ld_wjob;

/* A job that runs its own code inside the writer's transaction (LD_W_CUSTOM): a query statement
 * touching many documents, a batch of replicated ops. It changes documents only through
 * ld_apply_job (apply.h) so every change gets its op-log entry, digest and bookkeeping.
 * Returns LD_OK with job->result set, having written nothing when it refuses, or a storage
 * status to abort the transaction. It may run more than once (a failed group is retried job
 * by job): it must reset whatever it set on an earlier run before it starts. */
typedef ld_status (*ld_wapply_fn)(struct ld_db *db, ld_txn *t, struct ld_db_state *pending,
                                  struct ld_wjob *job);

typedef enum ld_wkind {
    LD_W_PUT,      /* upsert a document with the given JSON */
    LD_W_DELETE,   /* tombstone a document */
    LD_W_REGISTER, /* create an (empty) collection */
    LD_W_CUSTOM,   /* job->apply runs in the transaction (see ld_wapply_fn) */
} ld_wkind;

/* Outcome of a job, set by the writer. */
typedef enum ld_wresult {
    LD_WR_OK,
    LD_WR_CONFLICT,    /* parentVersion did not match: 409, nothing written */
    LD_WR_NEED_CREATE, /* the id is new and the key may not create: 403 */
    LD_WR_NEED_UPDATE, /* the id is live and the key may not update: 403 */
    LD_WR_STORAGE,     /* the storage failed: 5xx, nothing written */
} ld_wresult;

/* A write request. The submitter allocates it and owns it again when `done` runs; every
 * malloc'd field is freed by ld_wjob_free. */
typedef struct ld_wjob {
    ld_wkind kind;
    char *collection; /* malloc'd */
    char *id;         /* malloc'd (NULL for REGISTER) */
    char *json;       /* malloc'd document text (PUT) */
    size_t json_len;
    uint8_t rec_flags;   /* LD_REC_RESERVED when the JSON carries reserved fields */
    bool has_pv;         /* parentVersion given */
    char pv[64];         /* as given (compared case-insensitively to the version hex) */
    bool may_create;     /* the key may write a new id (WRITE_DOCUMENT) */
    bool may_update;     /* the key may replace a live id (UPDATE_DOCUMENT) */
    ld_wapply_fn apply;  /* LD_W_CUSTOM only */
    bool lazy;           /* bookkeeping that may wait for the next durable commit (LD_TXN_LAZY);
                            a batch commits lazily only when every job in it is lazy */
    bool background;     /* maintenance (a prune, purge or sweep batch): committed in a group
                            of its own, so a client's write never carries its work; its apply
                            keeps to LD_WRITER_BACKGROUND_BUDGET_US */
    void *ctx;           /* apply's state: owned by the submitter, not freed by ld_wjob_free */
    uint64_t stamp;      /* PUT/DELETE applied by a custom job: the stamp it took with ld_hlc_now
                            in this transaction (0: the writer takes a new one) */
    uint64_t expires_ms; /* PUT: the record's absolute expiry (cache entries), 0: never */

    /* Results */
    ld_wresult result;
    uint64_t seq;        /* LogSequence: its position in this database's log */
    uint64_t origin_seq; /* Sequence: this node's own counter of local writes (VV[self]) */
    uint64_t hlc;
    uint8_t op_id[LD_OP_ID_LEN];
    uint8_t op_type;
    bool committed_lazy; /* its commit did not wait for the fsync (LD_TXN_LAZY): an everysec
                            cache write becomes durable within LD_CACHE_FLUSH_INTERVAL_US */
    bool had_version;    /* a record existed (live or tombstone) */
    uint8_t prev_version[LD_OP_ID_LEN];
    char *payload; /* malloc'd: the document before a delete ("{}" when absent) */
    size_t payload_len;

    /* Completion: called on the event loop thread (see ld_db_env.complete). */
    void (*done)(struct ld_wjob *job);
    void *arg;
    struct ld_wjob *next;
    struct ld_db *later_db; /* ld_node_submit_later: the database whose writer it goes to */
} ld_wjob;

typedef struct ld_writer ld_writer;

/* How long one background job's apply may work before it stops and asks for another batch: a
 * write that arrives meanwhile waits at most about this long (plus the job's commit, which is
 * lazy for all of them) behind it. */
#define LD_WRITER_BACKGROUND_BUDGET_US 2000u

/* Node.CacheDurability "everysec": the longest an acknowledged cache write commits lazily before
 * a durable commit (its own flush, or any durable group) makes it survive a power loss. */
#define LD_CACHE_FLUSH_INTERVAL_US 1000000u

/* Whether job is a cache write (PUT or DELETE of the reserved cache collection, whatever door it
 * came in by) that commits without waiting for the fsync: the node runs Node.CacheDurability
 * "everysec". A group commits lazily only when every job in it may (job->lazy or this); every
 * other write, documents above all, keeps the durable commit. Any thread. */
bool ld_wjob_everysec(const struct ld_db *db, const ld_wjob *job);

/* Starts the writer thread of db. NULL when the thread or its state cannot be made. */
ld_writer *ld_writer_new(struct ld_db *db);

/* ld_writer_new with the allocator of the group array (tests make it fail). When it fails the
 * writer commits the jobs one at a time and asks again for the next group. */
ld_writer *ld_writer_new_with(struct ld_db *db, void *(*alloc)(size_t));

/* How many jobs were committed alone because the group array could not be allocated. */
unsigned ld_writer_degraded(ld_writer *w);

/* Queues a job; the writer owns it until it hands it to env->complete. Never blocks on I/O. */
void ld_writer_submit(ld_writer *w, ld_wjob *job);

/* Queues the jobs first..last (linked by ->next, in order) at once: one lock and one wake-up
 * for the lot, so the writer takes them into one group rather than waking on the first. */
void ld_writer_submit_chain(ld_writer *w, ld_wjob *first, ld_wjob *last);

/* Lets the writer finish every queued job, then joins its thread and frees it. */
void ld_writer_free(ld_writer *w);

/* The one constructor of a job: zeroed, with its kind and its completion (done(job) on the loop
 * thread, arg for it). NULL when memory runs out. Submit it with ld_node_submit
 * (db/completions.h), which counts it in node->inflight until done runs. */
ld_wjob *ld_wjob_new(ld_wkind kind, void (*done)(ld_wjob *job), void *arg);

/* ld_wjob_new for an LD_W_CUSTOM job running apply (job->ctx is set by the caller). */
ld_wjob *ld_wjob_custom(ld_wapply_fn apply, void (*done)(ld_wjob *job), void *arg);

void ld_wjob_free(ld_wjob *job);

#endif
