/* Small string helpers shared by the core's modules. */
#ifndef LD_STRUTIL_H
#define LD_STRUTIL_H

#include <stddef.h>

/* Formats an error message into a caller's buffer (err may be NULL when errlen is 0). */
void ld_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The name a plugin entry of the configuration goes by (its settings member): the entry itself,
 * or for a path (contains '/') the file's base name without ".so". Writes NUL-terminated into
 * out. */
void ld_plugin_config_name(const char *entry, char *out, size_t outlen);

#endif
