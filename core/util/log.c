/* Levelled log lines on stderr. One write(2) per line keeps lines whole across threads. */
#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

static _Atomic int32_t g_level = LD_LOG_INFO;
static _Atomic bool g_json = false;

void ld_log_set_json(bool json)
{
    atomic_store(&g_json, json);
}

bool ld_log_is_json(void)
{
    return atomic_load(&g_json);
}

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

static void write_line(char *line, int n)
{
    ssize_t off = 0;
    while (off < n) {
        ssize_t w = write(STDERR_FILENO, line + off, (size_t)(n - off));
        if (w <= 0) break;
        off += w;
    }
}

/* A JSON string member; text that is not UTF-8 (user input) has its high bytes masked. */
static int set_text(json_t *o, const char *key, char *text)
{
    json_t *v = json_string(text);
    if (!v) {
        for (char *p = text; *p; p++)
            if ((unsigned char)*p >= 0x80) *p = '?';
        v = json_string(text);
    }
    return json_object_set_new(o, key, v);
}

/* {"time", "level", "scope"?, "msg", fields...} on one line. Falls back to the text line when
 * memory fails, so no line is lost. */
static bool write_json(int32_t level, const char *when, const char *scope, char *msg,
                       const char *const *fields, uint32_t numeric)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    json_t *o = json_object();
    bool ok = o && !json_object_set_new(o, "time", json_string(when)) &&
              !json_object_set_new(o, "level",
                                   json_string(names[level < 0   ? 0
                                                     : level > 3 ? 3
                                                                 : level]));
    if (ok && scope && *scope) {
        char *sc = strdup(scope);
        ok = sc && !set_text(o, "scope", sc);
        free(sc);
    }
    ok = ok && !set_text(o, "msg", msg);
    for (size_t i = 0; ok && fields && fields[2 * i] && fields[2 * i + 1]; i++) {
        const char *v = fields[2 * i + 1];
        char *end = NULL;
        long long num = (numeric >> i) & 1 ? strtoll(v, &end, 10) : 0;
        double real = (numeric >> i) & 1 && *v && *end ? strtod(v, &end) : 0;
        if ((numeric >> i) & 1 && *v && !*end) {
            ok = !json_object_set_new(o, fields[2 * i],
                                      strchr(v, '.') ? json_real(real) : json_integer(num));
        } else {
            char *copy = strdup(v);
            ok = copy && !set_text(o, fields[2 * i], copy);
            free(copy);
        }
    }
    char *text = ok ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!text) return false;
    size_t len = strlen(text);
    char *line = realloc(text, len + 2);
    if (!line) {
        free(text);
        return false;
    }
    line[len] = '\n';
    write_line(line, (int)len + 1);
    free(line);
    return true;
}

static void emit(int32_t level, const char *scope, const char *const *fields, uint32_t numeric,
                 const char *fmt, va_list ap)
{
    if (level > atomic_load(&g_level)) return;
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    char when[64];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
    if (atomic_load(&g_json)) {
        char msg[1990];
        vsnprintf(msg, sizeof msg, fmt, ap);
        if (write_json(level, when, scope, msg, fields, numeric)) return;
        snprintf(line, sizeof line, "%.40s %s %.1990s\n", when, level_word(level), msg);
        write_line(line, (int)strnlen(line, sizeof line));
        return;
    }
    int n = snprintf(line, sizeof line, "%s %s ", when, level_word(level));
    if (scope && *scope && n < (int)sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, "[%s] ", scope);
    if (n < (int)sizeof line) n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    if (n >= (int)sizeof line - 1) n = (int)sizeof line - 2; /* truncated: keep one line */
    /* Control characters from user input must not forge extra log lines. */
    for (int i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r') line[i] = ' ';
    line[n++] = '\n';
    write_line(line, n);
}

void ld_logv(int32_t level, const char *scope, const char *fmt, va_list ap)
{
    emit(level, scope, NULL, 0, fmt, ap);
}

void ld_log_fields(int32_t level, const char *scope, const char *const *fields, uint32_t numeric,
                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(level, scope, fields, numeric, fmt, ap);
    va_end(ap);
}

void ld_log(int32_t level, const char *scope, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ld_logv(level, scope, fmt, ap);
    va_end(ap);
}
