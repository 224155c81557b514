/* Secondary indexes (docs/query.md "Indexes"): their definitions, the entries of the `ix` key
 * space, their maintenance inside every document write and their online build. */
#ifndef LD_INDEX_H
#define LD_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "../db/database.h"
#include "../db/names.h"
#include "../db/record.h"
#include "../query/parser.h"
#include "../query/qbuf.h"
#include "../storage/storage.h"
#include "keyenc.h"

/* Entries: be32 index number || enc(v1) || ... || enc(vk) || document id bytes -> "" (keyenc.h;
 * a document without a path has the MISSING tag there). Every live document of the collection
 * has exactly one entry per READY index; tombstones have none. */
#define LD_SPACE_IX "ix"
/* This node's copy of each definition: collection \0 name -> JSON {"Num", "Paths", "State",
 * "Stamp"} (the local index number, the paths as written, 1 building / 2 ready, the stamp of
 * the definition record it came from). */
#define LD_SPACE_IXDEF "ixdef"
/* be32 index number -> be64 entries, be64 key bytes: an index's size (GET /api/indexes). */
#define LD_SPACE_IXSTAT "ixstat"
/* be32 index number -> "": a dropped (or redefined) index whose entries remain to be deleted. */
#define LD_SPACE_IXDROP "ixdrop"
/* meta "ixcur" be32 number -> the id of the last document an online build indexed. */
#define LD_INDEX_META_CURSOR "ixcur"
/* meta key of the definitions' generation: 8 random bytes rewritten with every change of the
 * ixdef space, so the writer's parsed copy (ld_index_cache) is known current with one read. */
#define LD_INDEX_META_GEN "ix_gen"
/* meta key of the next index number to assign (be32). */
#define LD_INDEX_META_NEXT "ix_next"

/* The internal collection whose records are the definitions: id "<collection>.<name>", body
 * {"Collection", "Name", "Paths"}. Written through the op log, so definitions replicate and
 * converge by stamp like any document. */
#define LD_INDEX_DEFS_COLL     "_sys_indexes"
#define LD_INDEX_DEFS_COLL_LEN 12

#define LD_INDEX_MAX_PATHS 8
#define LD_INDEX_NAME_MAX  64

/* Index states. */
#define LD_INDEX_BUILDING 1
#define LD_INDEX_READY    2

/* One indexed path, parsed (parser.h's segments, as a PATH node holds them). */
typedef struct ld_index_path {
    ld_ql_seg *segs;
    size_t nsegs;
} ld_index_path;

typedef struct ld_index_def {
    uint32_t num; /* the key prefix of its entries (this node's own numbering) */
    char *name;
    char *collection;
    size_t npaths;
    char **paths;          /* "$.a.b" text as written */
    ld_index_path *parsed; /* npaths parsed paths */
    int state;             /* LD_INDEX_BUILDING, LD_INDEX_READY */
    uint64_t stamp;        /* the definition record's stamp: which CREATE won */
} ld_index_def;

/* Frees n definitions read from the ixdef space (an ld_index_set's, the writer's copy's). */
void ld_index_list_free(ld_index_def *defs, size_t n);

/* The readers' parsed definitions (the query worker threads plan every SELECT with them): one
 * immutable set per database, read once per "ix_gen" generation and shared by reference count,
 * so a query does not parse every definition (JSON, then each path) again. */
typedef struct ld_index_set {
    uint8_t gen[8];     /* the meta "ix_gen" it was read under (zeros: none stored) */
    int refs;           /* guarded by the owning ld_index_shared's mutex */
    ld_index_def *defs; /* every definition, building or ready, by collection then name */
    size_t n;
} ld_index_set;

/* A database's current set (ld_db.ix_shared). */
struct ld_index_shared;

struct ld_index_shared *ld_index_shared_new(void);
/* Drops the current set (freed now unless a reader still holds it: then by its release). */
void ld_index_shared_free(struct ld_index_shared *s);

/* The set of every definition as of t's snapshot: the shared one when its generation is t's,
 * else one parsed now (without the lock held) that becomes the shared one. Hold it until
 * ld_index_set_release; it never changes. LD_NOMEM, or the storage's status. */
ld_status ld_index_set_acquire(struct ld_index_shared *s, ld_txn *t, ld_index_set **out);
/* Lets go of a set from ld_index_set_acquire (NULL: a no-op); the last holder frees it. */
void ld_index_set_release(struct ld_index_shared *s, ld_index_set *set);
/* Whether definition d is one a plan may use: READY (its build committed in the snapshot the set
 * was read from, so a plan never uses an incomplete index) and on collection coll (cl bytes). */
bool ld_index_usable(const ld_index_def *d, const char *coll, size_t cl);

/* Whether body (json, len bytes) under id is a definition record CREATE INDEX could have written:
 * id "<collection>.<name>" naming a collection that can be indexed, and {"Collection", "Name",
 * "Paths"} agreeing with it, with 1 to LD_INDEX_MAX_PATHS valid paths (litedistd import checks
 * what it reads with it). LD_INVALID with err set, or LD_NOMEM. */
ld_status ld_index_definition_check(const char *id, size_t il, const char *json, size_t len,
                                    char *err, size_t errlen);

/* Parses one index path ("$.a.b", "$.a[0]", "$['x y']", ...: a LiteQL path below the document
 * root, not the id). On failure err gets a message naming the path. */
ld_status ld_index_parse_path(const char *text, size_t len, ld_index_path *out, char *err,
                              size_t errlen);
void ld_index_path_clear(ld_index_path *p);

/* The value of path p in document text json (a new reference), or NULL when the document has no
 * such member (the MISSING key part; the evaluator reads it as null). LD_CORRUPT when the text
 * is not JSON. */
ld_status ld_index_value(const char *json, size_t len, const ld_index_path *p, json_t **out);

/* Appends the be32 key prefix of index num. */
ld_status ld_index_key_prefix(ld_qbuf *out, uint32_t num);
/* Storage keys are at most LD_STORAGE_MAX_KEY (511) bytes: after the 4-byte number and room for
 * the longest id, an entry's values share LD_INDEX_VALUES_MAX bytes. Value i is encoded with
 * ld_keyenc_append_capped in ld_index_value_room(d, i, used) bytes, used being what the values
 * before it took: a value too long for it is cut (keyenc.h), so an entry stands for every value
 * with its prefix and a reader re-checks the document. A range read builds its bounds the same
 * way, so it misses nothing. The room always holds a number whole (LD_INDEX_MAX_PATHS x
 * LD_KEYENC_SCALAR_MAX fit with room to spare). */
#define LD_INDEX_VALUES_MAX (LD_STORAGE_MAX_KEY - 4 - LD_DOC_ID_MAX)
size_t ld_index_value_room(const ld_index_def *d, size_t i, size_t used);

/* Each later value keeps the room of a number whole (the scalars' longest encoding, plus the
 * cut marker room a container needs). */
#define LD_INDEX_ROOM_RESERVE (LD_KEYENC_SCALAR_MAX + 3)

/* The same for an index of npaths paths (the planner's bounds, built without the definition);
 * inline so that LiteQL's planner links without the index module (the fuzz target does). */
static inline size_t ld_index_room(size_t npaths, size_t i, size_t used)
{
    size_t later = npaths > i + 1 ? (npaths - i - 1) * LD_INDEX_ROOM_RESERVE : 0;
    size_t left = LD_INDEX_VALUES_MAX > used ? LD_INDEX_VALUES_MAX - used : 0;
    return left > later ? left - later : 0;
}

/* Appends the key prefix of index d and the first nvals (<= d->npaths) values as an entry holds
 * them (each capped in its room, vals[i] NULL for MISSING): the bound of a range read, exactly
 * what ld_index_entry_key writes before the id for the same values. *cut (may be NULL): a value
 * was cut, so entries past the bound may still hold it. */
ld_status ld_index_bound(ld_qbuf *out, const ld_index_def *d, json_t *const *vals, size_t nvals,
                         bool *cut);

/* Appends the whole entry key of document id (il bytes) with text json under index d. */
ld_status ld_index_entry_key(ld_qbuf *out, const ld_index_def *d, const char *json, size_t len,
                             const char *id, size_t il);

/* The document id at the end of entry key (kl bytes) of index d, pointing into key; false when
 * the key does not hold d's values. */
bool ld_index_entry_id(const ld_index_def *d, const void *key, size_t kl, const char **id,
                       size_t *il);

/* The maintenance hook every change of a document record calls in its storage transaction
 * (writer thread): old and rec are the record before and after (NULL: none). Removes the old
 * entry and adds the new one in each index of the collection that covers the id (READY, or
 * BUILDING with the id at or below its build cursor). For the definitions collection it defines,
 * redefines or drops the index instead. */
ld_status ld_index_on_write(ld_db *db, ld_txn *t, const char *coll, size_t cl, const char *id,
                            size_t il, const ld_doc_rec *old, const ld_doc_rec *rec);

/* Frees the writer's parsed copy of the definitions (ld_db.ix_cache). NULL is a no-op. */
void ld_index_cache_free(struct ld_index_cache *c);

/* One bounded step of background index work in its own transaction (writer thread, between
 * write groups): deletes up to `batch` entries of a dropped index, else indexes up to `batch`
 * documents of a building index (the cursor in meta, so a restart resumes), marking it READY at
 * the collection's end. *more: work remains. */
ld_status ld_index_step(ld_db *db, size_t batch, bool *more);

/* How long the writer waits before retrying a background index step after `failures` (>= 1)
 * consecutive failures: 1 s, doubling, at most 60 s (LD_INDEX_RETRY_MAX_US). */
#define LD_INDEX_RETRY_FIRST_US 1000000u
#define LD_INDEX_RETRY_MAX_US   60000000u
uint64_t ld_index_retry_delay_us(uint32_t failures);

/* The size of index num: entries and the bytes of their keys (what the storage holds besides
 * its own per-entry overhead). */
ld_status ld_index_size(ld_txn *t, uint32_t num, uint64_t *entries, uint64_t *bytes);

#endif
