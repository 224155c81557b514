/* Snapshot pages: a database's document records (live, tombstones, swept cache entries, each
 * with its stamp and expiry) streamed in key order to a node that bootstraps the database instead
 * of replaying its log (docs/replication.md, "Snapshot bootstrap"). The serving side reads each
 * page in a read transaction of its own; the first page also states where the snapshot stands
 * (LogSequence, VersionVector, Digest), and the receiver then pulls the log after it. */
#ifndef LD_SNAPSHOT_PAGE_H
#define LD_SNAPSHOT_PAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "../db/database.h"

/* The page's media type. A page is the 8 magic bytes "LDSNAP1\n", a 4-byte big-endian header
 * length, the header (a JSON object), then `Count` records, each a 4-byte big-endian key length,
 * the docs key (collection \0 id), a 4-byte big-endian value length and the stored record
 * (db/record.h's encoding, version byte first). */
#define LD_SNAP_CONTENT_TYPE "application/vnd.litedist.snapshot"
#define LD_SNAP_MAGIC        "LDSNAP1\n"
#define LD_SNAP_MAGIC_LEN    8
#define LD_SNAP_PAGE_DEFAULT (4u << 20)  /* bytes of records a page carries by default */
#define LD_SNAP_PAGE_MIN     1024u       /* the smallest page a requester may ask for */
#define LD_SNAP_PAGE_MAX     (16u << 20) /* the largest */
#define LD_SNAP_MAX_KEY      511u        /* a storage key's limit (LD_STORAGE_MAX_KEY) */

/* A page's header. */
typedef struct ld_snap_hdr {
    uint64_t log_seq; /* LocalMaxLogSequence in the page's transaction */
    json_t *vv;       /* VersionVector in the page's transaction (owned: ld_snap_hdr_clear) */
    char digest[2 * LD_DIGEST_LEN + 1];
    /* The source's purge floor and the XOR of the terms it purged (kept in Digest, absent from
     * the records): PurgeFloor and PurgedDigest, zero from a source without them. */
    uint64_t purge_floor;
    uint8_t purged[LD_DIGEST_LEN];
    bool first;          /* the first page (no AfterKey): the two fields below are set */
    json_t *collections; /* every collection name (owned; NULL on later pages) */
    uint64_t total;      /* records in the database when the first page was read */
    uint64_t count;      /* records in this page */
    bool done;           /* no record follows this page */
} ld_snap_hdr;

void ld_snap_hdr_clear(ld_snap_hdr *h);

/* Serving (snapshot_read.c): writes the page of db's records after key `after` (the first page
 * when after_len is 0) into out, about max_bytes of records (at least one). Reads in one read
 * transaction of its own; runs on a worker thread. */
ld_status ld_snap_read(ld_db *db, const char *node_id, const uint8_t *after, size_t after_len,
                       size_t max_bytes, struct evbuffer *out);

/* Big-endian u32 of the page's length fields. */
void ld_snap_put_be32(uint8_t *b, uint32_t v);

/* Receiving: checks a page's framing, header and every record (a key that splits into collection
 * and id, a record that decodes) and fills *h; *recs and *recs_len then point at the records
 * inside buf. False with a message in err on any defect (nothing of the page is used then). */
bool ld_snap_parse(const uint8_t *buf, size_t len, ld_snap_hdr *h, const uint8_t **recs,
                   size_t *recs_len, char *err, size_t errlen);

/* Steps through the records of a parsed page: *p starts at recs and moves past each record.
 * False at the end. */
bool ld_snap_next(const uint8_t **p, const uint8_t *end, const uint8_t **key, size_t *klen,
                  const uint8_t **val, size_t *vlen);

#endif
