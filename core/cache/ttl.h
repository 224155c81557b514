/* Parsing the cache's ttl parameter: "30s", "5m", "1.5h", "250ms", "1d" (any case), "hh:mm:ss"
 * with an optional "d." day prefix and fraction, or a bare number of seconds (as in Redis). */
#ifndef LD_TTL_H
#define LD_TTL_H

#include <stdint.h>

#define LD_TTL_DEFAULT_MS 300000ull     /* 5m, when the request gives no ttl */
#define LD_TTL_MAX_MS     2592000000ull /* 30 days */

typedef enum ld_ttl_status {
    LD_TTL_OK,
    LD_TTL_FORMAT, /* not a ttl at all (also empty) */
    LD_TTL_NOT_POSITIVE,
    LD_TTL_TOO_LONG, /* beyond LD_TTL_MAX_MS, including numbers too large to hold */
} ld_ttl_status;

/* Parses s (leading and trailing blanks ignored) into whole milliseconds, rounded up, so any
 * positive ttl is at least 1 ms. *ms is set only on LD_TTL_OK. */
ld_ttl_status ld_ttl_parse(const char *s, uint64_t *ms);

/* The contract's 400 message for a status other than LD_TTL_OK. */
const char *ld_ttl_error(ld_ttl_status st);

#endif
