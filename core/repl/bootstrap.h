/* The receiving side of a snapshot bootstrap: the writer job that merges one page of a peer's
 * records, and the progress that makes a cut snapshot resume where it stopped. The progress
 * lives in the meta space (key "snapshot") and moves in the same transaction as each page, so a
 * kill -9 resumes after the last page committed; the last page's transaction also takes the
 * snapshot's version vector, sets the log floor and the pull checkpoint, and ends it. */
#ifndef LD_BOOTSTRAP_H
#define LD_BOOTSTRAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "../config/config.h"
#include "../db/database.h"
#include "../db/writer.h"
#include "snapshot_page.h"

/* A snapshot in progress, as stored. */
typedef struct ld_boot_progress {
    char peer[LD_NODE_ID_MAX + 1]; /* the node it comes from */
    uint64_t log_seq;              /* the source's LogSequence it stands at */
    json_t *vv;                    /* the source's version vector there (owned) */
    char digest[2 * LD_DIGEST_LEN + 1];
    uint64_t total, done;              /* records: in the source at the start / merged so far */
    uint8_t xor_terms[LD_DIGEST_LEN];  /* XOR of the digest terms of the records received */
    uint8_t src_purged[LD_DIGEST_LEN]; /* the source's purged-digest at the first page */
    uint8_t own_purged[LD_DIGEST_LEN]; /* this database's purged-digest before the snapshot */
    uint64_t own_floor;                /* this database's purge floor before the snapshot */
    bool quiescent; /* every page so far was read at log_seq with the same digest */
    uint8_t next_key[LD_SNAP_MAX_KEY];
    size_t next_key_len; /* the key of the last record merged (0: none yet) */
    uint64_t started_ms; /* wall clock */
} ld_boot_progress;

void ld_boot_progress_clear(ld_boot_progress *p);

/* Loads the stored progress of db in a read transaction of its own; *found false when no
 * snapshot is in progress. */
ld_status ld_boot_progress_load(ld_db *db, ld_boot_progress *p, bool *found);

typedef enum ld_boot_outcome {
    LD_BOOT_APPLIED,  /* merged; more pages follow */
    LD_BOOT_FINISHED, /* the last page: the snapshot is complete */
    LD_BOOT_STALE,    /* the page does not continue the stored progress: nothing written */
    LD_BOOT_MISMATCH, /* the last page: the records do not add up to the source's digest although
                       * the source did not change; the progress is dropped, so it starts over */
} ld_boot_outcome;

/* One received page: the writer job's ctx (job->apply = ld_boot_apply). */
typedef struct ld_boot_page {
    /* Input, owned by the page (ld_boot_page_free) */
    char peer[LD_NODE_ID_MAX + 1];
    uint8_t *buf; /* the page as received */
    size_t len;
    ld_snap_hdr hdr;
    const uint8_t *recs; /* into buf */
    size_t recs_len;
    uint8_t after[LD_SNAP_MAX_KEY]; /* the key the page was asked after (after_len 0: first) */
    size_t after_len;
    ld_conflict_policy policy;

    /* Results, reset on every run */
    ld_boot_outcome outcome;
    uint64_t done, total, log_seq; /* the progress after this page */
} ld_boot_page;

/* The LD_W_CUSTOM apply function of a page (see ld_boot_outcome). */
ld_status ld_boot_apply(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job);

void ld_boot_page_free(ld_boot_page *p);

#endif
