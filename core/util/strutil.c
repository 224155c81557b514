/* Small string helpers shared by the core's modules. */
#include "strutil.h"

#include <stdarg.h>
#include <stdio.h>

void ld_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
