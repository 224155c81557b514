/* Per-address delays for refused credentials: each wrong ApiKey or ReplicationApiKey from an
 * address makes that address's next refusal wait longer (base x 2^(n-1), at most 16 x base),
 * so a key-guessing client slows itself down while good requests, which never wait, do not.
 * Loop thread only. */
#ifndef LD_FAILURES_H
#define LD_FAILURES_H

#include <stdint.h>

typedef struct ld_failures ld_failures;

/* base_ms 0 turns the delays off. NULL when memory fails. */
ld_failures *ld_failures_new(uint32_t base_ms);
void ld_failures_free(ld_failures *f);

/* Records a refusal from addr at now_ms (monotonic) and returns how long to hold its answer.
 * An address with no refusal for a minute starts again from base. */
uint32_t ld_failures_note(ld_failures *f, const char *addr, uint64_t now_ms);

#endif
