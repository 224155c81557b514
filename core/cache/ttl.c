/* The ttl grammar of the cache routes (see ttl.h). Numbers are read as decimal text into a
 * double only after the whole string is known to match, so "1e3s", "0x10s" or "5 m" are refused
 * instead of being half-read by strtod. */
#include "ttl.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Reads [digits][.digits] (at least one digit) at *p; returns false when there is none. */
static bool take_decimal(const char **p, const char *end, double *out)
{
    const char *s = *p, *q = s;
    size_t digits = 0;
    while (q < end && isdigit((unsigned char)*q)) {
        q++;
        digits++;
    }
    if (q < end && *q == '.') {
        q++;
        while (q < end && isdigit((unsigned char)*q)) {
            q++;
            digits++;
        }
    }
    if (!digits) return false;
    char buf[64];
    size_t n = (size_t)(q - s);
    if (n >= sizeof buf) {
        /* More digits than a double holds: only the magnitude matters, and anything this long
         * before the point is far beyond the maximum (after it, the extra digits are noise). */
        const char *dot = memchr(s, '.', n);
        size_t whole = dot ? (size_t)(dot - s) : n;
        if (whole >= sizeof buf / 2) {
            *out = HUGE_VAL;
            *p = q;
            return true;
        }
        n = sizeof buf - 1;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    *out = strtod(buf, NULL);
    *p = q;
    return true;
}

/* Reads an unsigned integer of at most 9 digits (clock fields). */
static bool take_uint(const char **p, const char *end, double *out)
{
    const char *q = *p;
    double v = 0;
    int n = 0;
    while (q < end && isdigit((unsigned char)*q) && n < 9) {
        v = v * 10 + (*q - '0');
        q++;
        n++;
    }
    if (!n || (q < end && isdigit((unsigned char)*q))) return false;
    *out = v;
    *p = q;
    return true;
}

/* [d.]h:mm[:ss[.fff]] (minutes and seconds below 60, hours below 24 when days are given). */
static bool parse_clock(const char *s, const char *end, double *ms)
{
    const char *p = s;
    double days = 0, h, m, sec = 0;
    const char *colon = memchr(s, ':', (size_t)(end - s));
    const char *dot = memchr(s, '.', (size_t)(end - s));
    if (dot && colon && dot < colon) {
        if (!take_uint(&p, end, &days) || p != dot) return false;
        p++;
    }
    if (!take_uint(&p, end, &h) || p >= end || *p != ':') return false;
    p++;
    if (!take_uint(&p, end, &m) || m >= 60) return false;
    if (p < end) {
        if (*p != ':') return false;
        p++;
        if (!take_decimal(&p, end, &sec) || sec >= 60) return false;
    }
    if (p != end || (days > 0 && h >= 24)) return false;
    *ms = ((days * 24 + h) * 60 + m) * 60000 + sec * 1000;
    return true;
}

ld_ttl_status ld_ttl_parse(const char *s, uint64_t *ms)
{
    if (!s) return LD_TTL_FORMAT;
    const char *end = s + strlen(s);
    while (s < end && isspace((unsigned char)*s))
        s++;
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    bool negative = false;
    if (s < end && (*s == '-' || *s == '+')) negative = *s++ == '-';
    if (s == end) return LD_TTL_FORMAT;

    double v;
    if (memchr(s, ':', (size_t)(end - s))) {
        if (!parse_clock(s, end, &v)) return LD_TTL_FORMAT;
    } else {
        const char *p = s;
        if (!take_decimal(&p, end, &v)) return LD_TTL_FORMAT;
        size_t ulen = (size_t)(end - p);
        double unit;
        if (ulen == 0 || (ulen == 1 && (*p == 's' || *p == 'S')))
            unit = 1000;
        else if (ulen == 2 && strncasecmp(p, "ms", 2) == 0)
            unit = 1;
        else if (ulen == 1 && (*p == 'm' || *p == 'M'))
            unit = 60000;
        else if (ulen == 1 && (*p == 'h' || *p == 'H'))
            unit = 3600000;
        else if (ulen == 1 && (*p == 'd' || *p == 'D'))
            unit = 86400000;
        else
            return LD_TTL_FORMAT;
        v *= unit;
    }
    if (v <= 0 || negative) return LD_TTL_NOT_POSITIVE;
    if (!(v <= (double)LD_TTL_MAX_MS)) return LD_TTL_TOO_LONG; /* also inf */
    *ms = (uint64_t)ceil(v);
    return LD_TTL_OK;
}

const char *ld_ttl_error(ld_ttl_status st)
{
    switch (st) {
    case LD_TTL_NOT_POSITIVE:
        return "ttl must be greater than zero.";
    case LD_TTL_TOO_LONG:
        return "ttl cannot exceed 2592000000ms.";
    case LD_TTL_FORMAT:
    case LD_TTL_OK:
    default:
        return "Invalid ttl format. Use values like '30s', '5m', '2h', or '1d'.";
    }
}
