/* Case-insensitive members and lenient numbers (see jsonget.h). */
#include "jsonget.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

json_t *ld_json_get_ci(json_t *obj, const char *name)
{
    const char *k;
    json_t *v;
    json_t *found = NULL;
    if (!json_is_object(obj)) return NULL;
    json_object_foreach(obj, k, v)
    {
        if (strcasecmp(k, name) == 0) found = v;
    }
    return found;
}

void ld_json_get_ci_all(json_t *obj, const char *const *names, size_t n, json_t **out)
{
    assert(n <= LD_JSON_CI_MAX);
    size_t lens[LD_JSON_CI_MAX];
    for (size_t i = 0; i < n; i++) {
        out[i] = NULL;
        lens[i] = strlen(names[i]);
    }
    if (!json_is_object(obj)) return;
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        size_t kl = strlen(k);
        for (size_t i = 0; i < n; i++)
            if (lens[i] == kl && strcasecmp(k, names[i]) == 0) out[i] = v;
    }
}

bool ld_json_as_u64(json_t *v, uint64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x < 0) return false;
        *out = (uint64_t)x;
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(uint64_t)d) return false;
        *out = (uint64_t)d;
        return true;
    }
    const char *s = json_string_value(v);
    if (!s || *s < '0' || *s > '9') return false;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || *end) return false;
    *out = x;
    return true;
}
