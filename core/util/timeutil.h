/* Wall-clock helpers: milliseconds since the epoch and ISO-8601 UTC text. */
#ifndef LD_TIMEUTIL_H
#define LD_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

#define LD_ISO_TIME_LEN 32

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
uint64_t ld_wall_ms(void);

/* Microseconds since the Unix epoch (CLOCK_REALTIME), for events another process lines up. */
uint64_t ld_wall_us(void);

/* Monotonic milliseconds, for timeouts and durations. */
uint64_t ld_mono_ms(void);

/* Monotonic microseconds, for latencies. */
uint64_t ld_mono_us(void);

/* Formats `ms` as "YYYY-MM-DDTHH:MM:SS.mmmZ" into buf (at least LD_ISO_TIME_LEN bytes). */
void ld_iso_time(uint64_t ms, char *buf);

/* Formats `us` as "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" into buf (at least LD_ISO_TIME_LEN bytes). */
void ld_iso_time_us(uint64_t us, char *buf);

#endif
