/* Levelled, one-line-per-event logging to stderr, shared by every core module and, through the
 * host table, by plugins. */
#ifndef LD_LOG_H
#define LD_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include <litedist/plugin.h>

/* Sets the most verbose level written (LD_LOG_ERROR..LD_LOG_DEBUG). */
void ld_log_set_level(int32_t level);
int32_t ld_log_get_level(void);

/* Text lines (the default) or JSON lines (Node.LogFormat json): one object per line with "time",
 * "level", "scope" (when given) and "msg", plus the access log's own fields. */
void ld_log_set_json(bool json);
bool ld_log_is_json(void);

/* One access-log line at info (http/request.c): the message in text form, and the fields that a
 * JSON line carries as members (key, value pairs, NULL-ended; a value that `numeric` marks, bit i
 * for pair i, is written as a JSON number: an integer, or a real when it has a '.'). */
void ld_log_fields(int32_t level, const char *scope, const char *const *fields, uint32_t numeric,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Parses "error", "warn"/"warning", "info", "debug" (any case). Returns -1 when unknown. */
int32_t ld_log_level_parse(const char *s);

/* Writes one line: "<ISO time> <LEVEL> [<scope>] <message>". scope may be NULL. Thread-safe; each
 * line is written with a single write(2) so lines from several threads never interleave. */
void ld_log(int32_t level, const char *scope, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ld_logv(int32_t level, const char *scope, const char *fmt, va_list ap);

#define ld_log_error(...) ld_log(LD_LOG_ERROR, NULL, __VA_ARGS__)
#define ld_log_warn(...)  ld_log(LD_LOG_WARN, NULL, __VA_ARGS__)
#define ld_log_info(...)  ld_log(LD_LOG_INFO, NULL, __VA_ARGS__)
#define ld_log_debug(...) ld_log(LD_LOG_DEBUG, NULL, __VA_ARGS__)

#endif
