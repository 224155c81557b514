/* Validation of the names users choose: logical databases, collections, document ids. These
 * rules keep names safe as file names and storage keys, and give the contract's errors. */
#ifndef LD_NAMES_H
#define LD_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define LD_DB_NAME_MAX         63  /* ^[a-z0-9][a-z0-9_-]{0,62}$ */
#define LD_COLL_NAME_MAX       64  /* ^[A-Za-z_][A-Za-z0-9_$]{0,63}$ */
#define LD_DOC_ID_MAX          256 /* bytes of UTF-8, no control characters */
#define LD_NODE_ID_MAX         128
#define LD_CACHE_KEY_MAX       256 /* characters (code points) */
#define LD_CACHE_KEY_MAX_BYTES 500 /* and bytes: "cache\0" + key fits a 511-byte storage key */

/* Trims ASCII whitespace, lowercases, and checks the database-name rule. On success writes the
 * normalized name (NUL-terminated) into out (LD_DB_NAME_MAX + 1 bytes) and returns true. */
bool ld_db_name_normalize(const char *in, char *out);

/* True when s[0..len) is a valid collection name. */
bool ld_collection_name_valid(const char *s, size_t len);

/* True for the reserved cache collection ("cache", any case). */
bool ld_collection_is_cache(const char *s);

/* True for internal names (prefix "_sys_"). */
bool ld_collection_is_internal(const char *s);

/* True when s[0..len) is valid UTF-8 with no NUL or other control characters. */
bool ld_utf8_text_valid(const char *s, size_t len);

/* True when s[0..len) is a valid document id: 1..LD_DOC_ID_MAX bytes of text, not blank. */
bool ld_doc_id_valid(const char *s, size_t len);

/* Checks a cache key: 1..LD_CACHE_KEY_MAX characters (at most LD_CACHE_KEY_MAX_BYTES bytes) of
 * UTF-8 text without control characters,
 * and no leading or trailing blank (the routes trim keys, so a stored key never has one).
 * Returns NULL when valid, else the contract's 400 message. */
const char *ld_cache_key_problem(const char *s, size_t len);

/* True when s is a valid node id: 1..LD_NODE_ID_MAX bytes of [A-Za-z0-9._:-]. */
bool ld_node_id_valid(const char *s);

#endif
