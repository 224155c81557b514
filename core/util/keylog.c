/* The bounded key list (see keylog.h). */
#include "keylog.h"

#include <stdlib.h>
#include <string.h>

void ld_keylog_add(ld_keylog *l, const void *key, size_t klen)
{
    if (l->overflow) return;
    size_t need = l->len + 4 + klen;
    if (l->n >= LD_KEYLOG_MAX_KEYS || need > LD_KEYLOG_MAX_BYTES) {
        l->overflow = true;
        return;
    }
    if (need > l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 1024;
        while (cap < need)
            cap *= 2;
        uint8_t *b = realloc(l->buf, cap);
        if (!b) {
            l->overflow = true;
            return;
        }
        l->buf = b;
        l->cap = cap;
    }
    uint32_t n = (uint32_t)klen;
    memcpy(l->buf + l->len, &n, 4);
    memcpy(l->buf + l->len + 4, key, klen);
    l->len = need;
    l->n++;
}

void ld_keylog_reset(ld_keylog *l)
{
    l->len = l->n = 0;
    l->overflow = false;
}

void ld_keylog_free(ld_keylog *l)
{
    free(l->buf);
    memset(l, 0, sizeof *l);
}

bool ld_keylog_next(const ld_keylog *l, size_t *pos, const uint8_t **key, size_t *klen)
{
    if (*pos + 4 > l->len) return false;
    uint32_t n;
    memcpy(&n, l->buf + *pos, 4);
    *key = l->buf + *pos + 4;
    *klen = n;
    *pos += 4 + n;
    return true;
}
