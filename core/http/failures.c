/* Per-address refusal counters in a small fixed table (see failures.h): an address maps to a
 * slot by hash; a collision takes the slot over when the old entry has gone quiet, so a flood
 * of spoofed-looking addresses cannot grow memory. */
#include "failures.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS     1024
#define QUIET_MS  60000u /* a minute without refusals forgets the address */
#define MAX_SHIFT 4      /* at most 16 x base */

typedef struct slot {
    char addr[64];
    uint32_t count;
    uint64_t last_ms;
} slot;

struct ld_failures {
    uint32_t base_ms;
    uint8_t hash_key[crypto_shorthash_KEYBYTES]; /* random: addresses cannot be aimed at a slot */
    slot slots[SLOTS];
};

ld_failures *ld_failures_new(uint32_t base_ms)
{
    ld_failures *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->base_ms = base_ms;
    crypto_shorthash_keygen(f->hash_key);
    return f;
}

void ld_failures_free(ld_failures *f)
{
    free(f);
}

uint32_t ld_failures_note(ld_failures *f, const char *addr, uint64_t now_ms)
{
    if (!f || f->base_ms == 0) return 0;
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const uint8_t *)addr, strlen(addr), f->hash_key);
    uint64_t idx;
    memcpy(&idx, h, sizeof idx);
    slot *s = &f->slots[idx % SLOTS];
    bool quiet = now_ms - s->last_ms > QUIET_MS;
    if (strcmp(s->addr, addr) != 0) {
        /* Another address holds the slot: share it while that one is active (both slow down),
         * take it over once it went quiet. */
        if (!quiet && s->count > 0) {
            s->count++;
            s->last_ms = now_ms;
        } else {
            strncpy(s->addr, addr, sizeof s->addr - 1);
            s->addr[sizeof s->addr - 1] = '\0';
            s->count = 1;
            s->last_ms = now_ms;
        }
    } else {
        s->count = quiet ? 1 : s->count + 1;
        s->last_ms = now_ms;
    }
    uint32_t shift = s->count - 1 < MAX_SHIFT ? s->count - 1 : MAX_SHIFT;
    return f->base_ms << shift;
}
