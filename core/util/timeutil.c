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

void ld_iso_time(uint64_t ms, char *buf)
{
    time_t secs = (time_t)(ms / 1000u);
    struct tm tm;
    gmtime_r(&secs, &tm);
    /* strftime bounds every field (the compiler cannot prove tm_year fits a %04d). */
    size_t n = strftime(buf, LD_ISO_TIME_LEN - 6, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, 6, ".%03uZ", (unsigned)(ms % 1000u));
}
