/* A database's memo of recently read records, for the point reads the event loop serves
 * (GET of a document or a cache entry, RESP GET): a hit costs a hash and a copy instead of a
 * storage lookup. Correct by invalidation, never by time: the writer hands over the keys each
 * commit wrote (after the commit is published, before its writes are answered), and the loop
 * drops them before it serves the next hit. A record read from a snapshot older than a commit
 * may be kept after that commit's keys were handed over; it is dropped at the next lookup, so
 * no read that starts after a write was answered sees the record before it. */
#ifndef LD_MEMO_H
#define LD_MEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/keylog.h"

typedef struct ld_memo ld_memo;

/* A memo holding at most budget bytes of keys and records (records of at most budget/64 bytes
 * each). NULL when budget is 0 (no memo) or memory runs out. */
ld_memo *ld_memo_new(size_t budget);

void ld_memo_free(ld_memo *m);

/* Writer thread, after a commit is published: the keys it wrote (an overflowed log drops every
 * record). NULL m is a no-op. */
void ld_memo_invalidate(ld_memo *m, const ld_keylog *written);

/* Loop thread. The record under key, or NULL (*vlen unset); the pointer is valid until the next
 * call on m. */
const uint8_t *ld_memo_get(ld_memo *m, const uint8_t *key, size_t klen, size_t *vlen);

/* Loop thread: keeps a copy of the record just read under key (skipped when it is too large). */
void ld_memo_put(ld_memo *m, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen);

/* Loop thread: lookups that hit and missed since the memo was made, and the bytes it holds. */
void ld_memo_stats(const ld_memo *m, uint64_t *hits, uint64_t *misses, size_t *bytes);

#endif
