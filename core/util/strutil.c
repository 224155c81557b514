/* Small string helpers shared by the core's modules. */
#include "strutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void ld_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void ld_plugin_config_name(const char *entry, char *out, size_t outlen)
{
    const char *slash = strrchr(entry, '/');
    snprintf(out, outlen, "%s", slash ? slash + 1 : entry);
    size_t n = strlen(out);
    if (slash && n > 3 && strcmp(out + n - 3, ".so") == 0) out[n - 3] = '\0';
}
