/* A bounded list of byte-string keys, for a transaction to note the keys it wrote (db/memo.h):
 * past its bound it only remembers that it overflowed. */
#ifndef LD_KEYLOG_H
#define LD_KEYLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Keys beyond this many bytes in all (or this many keys) make the log overflow. */
#define LD_KEYLOG_MAX_BYTES (256u * 1024u)
#define LD_KEYLOG_MAX_KEYS  4096u

typedef struct ld_keylog {
    uint8_t *buf; /* each key: a 4-byte length (host order), then its bytes; owned */
    size_t len, cap;
    size_t n;
    bool overflow; /* a key was not noted: treat every key as written */
} ld_keylog;

/* Notes key; past the bounds, or when memory runs out, sets overflow instead. */
void ld_keylog_add(ld_keylog *l, const void *key, size_t klen);

/* Empties the log (keeps its buffer). */
void ld_keylog_reset(ld_keylog *l);

/* Frees the buffer; the log is empty and usable again. */
void ld_keylog_free(ld_keylog *l);

/* Walks the keys: *pos starts at 0; returns false at the end. */
bool ld_keylog_next(const ld_keylog *l, size_t *pos, const uint8_t **key, size_t *klen);

#endif
