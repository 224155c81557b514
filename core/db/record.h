/* Binary codecs for what the core stores in key spaces: document records, op-log entries and
 * their keys. Formats are versioned by their first byte so later releases can read old data. */
#ifndef LD_RECORD_H
#define LD_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LD_OP_ID_LEN 16 /* an op id / document version: 16 random bytes, 32 hex digits */

/* OperationType values of the contract. */
#define LD_OP_INSERT 1
#define LD_OP_UPDATE 2
#define LD_OP_DELETE 3

#define LD_REC_TOMBSTONE 0x01u /* the document is deleted; the record keeps its stamp */
#define LD_REC_RESERVED  0x02u /* the JSON holds top-level _id or _sys_* fields (peer data) */
#define LD_REC_SWEPT     0x04u /* an expired cache entry whose body the sweeper freed (stamp kept) */

/* A document's current state. Pointers borrow from the buffer it was decoded from. */
typedef struct ld_doc_rec {
    uint8_t flags;
    uint64_t hlc;
    uint64_t expires_ms; /* 0: never (cache entries only) */
    uint8_t version[LD_OP_ID_LEN];
    const char *origin; /* node id, not NUL-terminated */
    size_t origin_len;
    const char *json; /* the document's JSON text, not NUL-terminated */
    size_t json_len;
} ld_doc_rec;

/* A dead record: a tombstone, or a cache entry whose body the sweeper freed after it expired.
 * Only dead records are purged (repl/purge.h). */
static inline bool ld_rec_dead(const ld_doc_rec *r)
{
    return (r->flags & (LD_REC_TOMBSTONE | LD_REC_SWEPT)) != 0;
}

/* One op-log entry. Pointers borrow from the buffer it was decoded from. */
typedef struct ld_op_rec {
    uint8_t op_type; /* LD_OP_* */
    uint8_t synced;  /* 1 when received from a peer (IsSynced) */
    uint8_t id[LD_OP_ID_LEN];
    uint64_t hlc;
    uint64_t origin_seq;
    uint64_t expires_ms;
    const char *origin;
    size_t origin_len;
    const char *collection;
    size_t collection_len;
    const char *doc_id;
    size_t doc_id_len;
    bool has_parent;
    uint8_t parent[LD_OP_ID_LEN];
    const char *payload; /* JSON text of the document after the write (before, for a delete) */
    size_t payload_len;
} ld_op_rec;

/* Encoders return a malloc'd buffer the caller frees, or NULL when out of memory or a field is
 * too long (origin > 255 bytes, collection > 255, id > 65535). */
uint8_t *ld_doc_rec_encode(const ld_doc_rec *r, size_t *len);
uint8_t *ld_op_rec_encode(const ld_op_rec *r, size_t *len);

/* Decoders return false on a malformed buffer (CORRUPT to the caller). */
bool ld_doc_rec_decode(const void *buf, size_t len, ld_doc_rec *out);
bool ld_op_rec_decode(const void *buf, size_t len, ld_op_rec *out);

/* Document key: collection \0 id. Returns a malloc'd buffer, or NULL. */
uint8_t *ld_doc_key(const char *coll, size_t coll_len, const char *id, size_t id_len, size_t *len);
/* Splits a document key; false when it has no separator. */
bool ld_doc_key_split(const void *key, size_t len, const char **coll, size_t *coll_len,
                      const char **id, size_t *id_len);

/* Big-endian u64, used for log sequence keys so byte order is numeric order. */
void ld_be64_put(uint8_t *out, uint64_t v);
uint64_t ld_be64_get(const uint8_t *in);

/* Lowercase hex of an op id (33 bytes with the NUL); parse returns false on bad input. */
void ld_op_id_hex(const uint8_t id[LD_OP_ID_LEN], char *out);
bool ld_op_id_parse(const char *hex, uint8_t id[LD_OP_ID_LEN]);

#endif
