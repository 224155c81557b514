/* Cache entries on the storage side: the stored document of an entry, whether a record is live
 * (expiry is derived state: every node decides it from the record's expires_at and its own
 * clock, and nothing is written when an entry expires), and the writer-side halves of a PUT and
 * of one sweeper page. Both run inside a writer transaction (LD_W_CUSTOM, see db/writer.h). */
#ifndef LD_CACHE_ENTRY_H
#define LD_CACHE_ENTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../db/database.h"
#include "../db/writer.h"

#define LD_CACHE_COLLECTION "cache"

/* The node's wall clock as its HLC sees it (so tests that move the clock move expiry too). */
uint64_t ld_cache_now_ms(const ld_db *db);

/* Whether rec is a cache entry a read may return at now_ms: not deleted, not swept, not past
 * its expiry (expired means expires_at <= now). */
bool ld_cache_rec_live(const ld_doc_rec *rec, uint64_t now_ms);

/* The GET answer for a live entry: {Key, Value, CreatedUtc, UpdatedUtc, ExpiresAtUtc,
 * RemainingTtl} taken from the stored document (the value byte for byte), RemainingTtl from
 * rec's expiry. Returns malloc'd text, or NULL when out of memory or the document is not an
 * entry (*corrupt set then). */
char *ld_cache_get_json(const ld_doc_rec *rec, uint64_t now_ms, size_t *len, bool *corrupt);

/* What a finished cache write's answer reports as its Durability: "everysec" when its commit did
 * not wait for the fsync (Node.CacheDurability everysec; durable within a second), "full" when
 * it did (always under "full", and under "everysec" when it shared its group commit with a
 * write that needed one). The decision itself is the writer's (ld_wjob_everysec). */
const char *ld_cache_durability(const ld_wjob *job);

/* "<n>ms": how the contract writes Ttl and RemainingTtl. buf holds at least 24 bytes. */
void ld_cache_ms_text(uint64_t ms, char *buf);

/* A PUT's state (the job's ctx). The submitter owns it and value; the job holds the key
 * (job->id) and collection. */
typedef struct ld_cache_put {
    char *value; /* the JSON text of the value, validated; owned by the submitter */
    size_t value_len;
    uint64_t ttl_ms;
    uint64_t expires_ms; /* result: the entry's absolute expiry */
} ld_cache_put;

/* The custom apply of a PUT: reads the current entry (an overwrite of a live entry keeps its
 * CreatedUtc and needs job->may_update; anything else needs job->may_create), stamps the write,
 * sets expires_at = stamp ms + ttl and writes the entry through ld_apply_job. On success
 * job->json holds the stored document (owned by the job) and the job's results are set. */
ld_status ld_cache_put_apply(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job);

/* One sweeper page (the job's ctx): scans at most `batch` cache records after `start` and
 * frees the bodies of expired ones (LD_REC_SWEPT), keeping their stamps and expiry, so the
 * digest does not change and an older op arriving later still loses. Writes no op. */
typedef struct ld_cache_sweep {
    uint8_t *start; /* the last key of the previous page, NULL: from the first entry; owned */
    size_t start_len;
    size_t batch;
    uint64_t budget_ms; /* stop scanning after this long (what is left of the run's budget) */
    /* Results, reset at each run of the job */
    uint8_t *next; /* the last key scanned (malloc'd), NULL when none */
    size_t next_len;
    size_t scanned, freed;
    size_t live, expired; /* of the entries scanned (tombstones aside): unexpired, expired */
    uint64_t elapsed_ms;
    bool at_end; /* no cache record after `next` */
} ld_cache_sweep;

ld_status ld_cache_sweep_apply(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job);

#endif
