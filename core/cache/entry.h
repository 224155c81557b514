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

/* Which live state a write requires of its key (Redis's NX and XX). */
typedef enum ld_cache_cond {
    LD_CACHE_ANY,
    LD_CACHE_IF_ABSENT, /* only when no live entry: SET NX */
    LD_CACHE_IF_LIVE,   /* only over a live entry: SET XX, EXPIRE */
} ld_cache_cond;

/* A write's state (the job's ctx): the HTTP PUT, and the RESP SET and EXPIRE families. The
 * submitter owns it, value and old_value; the job holds the key (job->id) and collection. */
typedef struct ld_cache_put {
    char *value; /* the JSON text of the value, validated; NULL with keep_value */
    size_t value_len;
    uint64_t ttl_ms;        /* expiry = the write's stamp + ttl_ms ... */
    bool at;                /* ... or, when set, expiry = expires_at_ms (EXAT, PXAT, EXPIRE <= 0) */
    uint64_t expires_at_ms; /*     (in the past: the write leaves the key expired, so hidden) */
    bool keep_ttl;          /* a live entry keeps its expiry (SET KEEPTTL) */
    bool keep_value;        /* a live entry keeps its value, only the expiry changes (EXPIRE) */
    ld_cache_cond cond;
    int expire_cmp; /* EXPIRE GT (1) / LT (-1): only when the new expiry is later / earlier */
    bool want_old;  /* copy the live entry's value to old_value (SET GET) */
    /* Results, reset at each run of the job */
    uint64_t expires_ms; /* the entry's absolute expiry */
    bool skipped;        /* cond or expire_cmp not met: nothing written, job->result LD_WR_OK */
    bool had_live;       /* a live entry was there */
    char *old_value;     /* malloc'd JSON text of that entry's value, when want_old */
    size_t old_value_len;
} ld_cache_put;

/* The custom apply of a write: reads the current entry, skips when cond is not met (before the
 * role check, as Redis answers nil), then needs job->may_update to overwrite a live entry
 * (keeping its CreatedUtc) and job->may_create for anything else, stamps the write, sets the
 * expiry and writes the entry through ld_apply_job. On success job->json holds the stored
 * document (owned by the job) and the job's results are set. */
ld_status ld_cache_put_apply(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job);

/* A delete that writes only when the key is live (RESP DEL; the HTTP DELETE writes a tombstone
 * in any case, as the contract says): the job's ctx is a bool set to whether it deleted. */
ld_status ld_cache_delete_live_apply(ld_db *db, ld_txn *t, ld_db_state *pending, ld_wjob *job);

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
