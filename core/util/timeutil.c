/* Wall-clock helpers: milliseconds since the epoch and ISO-8601 UTC text. */
#include "timeutil.h"

#include <stdio.h>
#include <time.h>

uint64_t ld_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t ld_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t ld_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t ld_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The seconds of `secs` then `frac` (digits wide) and a Z. */
static void iso_time(uint64_t secs, unsigned frac, int digits, char *buf)
{
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    /* strftime bounds every field (the compiler cannot prove tm_year fits a %04d). */
    size_t n = strftime(buf, LD_ISO_TIME_LEN - 9, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, LD_ISO_TIME_LEN - n, ".%0*uZ", digits, frac);
}

void ld_iso_time(uint64_t ms, char *buf)
{
    iso_time(ms / 1000u, (unsigned)(ms % 1000u), 3, buf);
}

void ld_iso_time_us(uint64_t us, char *buf)
{
    iso_time(us / 1000000u, (unsigned)(us % 1000000u), 6, buf);
}
