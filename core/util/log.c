/* Levelled log lines on stderr. One write(2) per line keeps lines whole across threads. */
#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static _Atomic int32_t g_level = LD_LOG_INFO;

void ld_log_set_level(int32_t level)
{
    atomic_store(&g_level, level);
}

int32_t ld_log_get_level(void)
{
    return atomic_load(&g_level);
}

int32_t ld_log_level_parse(const char *s)
{
    if (!strcasecmp(s, "error")) return LD_LOG_ERROR;
    if (!strcasecmp(s, "warn") || !strcasecmp(s, "warning")) return LD_LOG_WARN;
    if (!strcasecmp(s, "info") || !strcasecmp(s, "information")) return LD_LOG_INFO;
    if (!strcasecmp(s, "debug") || !strcasecmp(s, "trace")) return LD_LOG_DEBUG;
    return -1;
}

static const char *level_word(int32_t level)
{
    switch (level) {
    case LD_LOG_ERROR:
        return "ERROR";
    case LD_LOG_WARN:
        return "WARN ";
    case LD_LOG_INFO:
        return "INFO ";
    default:
        return "DEBUG";
    }
}

void ld_logv(int32_t level, const char *scope, const char *fmt, va_list ap)
{
    if (level > atomic_load(&g_level)) return;
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), level_word(level));
    if (scope && *scope && n < (int)sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, "[%s] ", scope);
    if (n < (int)sizeof line) n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    if (n >= (int)sizeof line - 1) n = (int)sizeof line - 2; /* truncated: keep one line */
    /* Control characters from user input must not forge extra log lines. */
    for (int i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r') line[i] = ' ';
    line[n++] = '\n';
    ssize_t off = 0;
    while (off < n) {
        ssize_t w = write(STDERR_FILENO, line + off, (size_t)(n - off));
        if (w <= 0) break;
        off += w;
    }
}

void ld_log(int32_t level, const char *scope, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ld_logv(level, scope, fmt, ap);
    va_end(ap);
}
