/* The read memo (see memo.h): a 2-way set-associative table of records keyed by SipHash of the
 * storage key, and a queue of invalidations the writer fills and the loop drains. */
#include "memo.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct memo_ent {
    size_t klen, vlen;
    uint8_t data[]; /* the key, then the record */
} memo_ent;

/* A slot holds its entry's key hash beside the pointer: a lookup reads an entry only when the
 * hashes agree. Reading both entries of a set to compare keys was most of a memo lookup, each
 * a cache miss (a pipelined RESP GET spent 8% of its time there). */
typedef struct memo_slot {
    memo_ent *e;
    uint64_t hash;
} memo_slot;

struct ld_memo {
    /* Loop thread only */
    memo_slot *slots; /* made at the first put */
    size_t nslots;    /* a power of two */
    size_t bytes, budget, max_ent;
    uint64_t hits, misses, drained;
    uint8_t hkey[crypto_shorthash_KEYBYTES];
    /* Shared: the writer's invalidations not drained yet */
    pthread_mutex_t mu;
    ld_keylog pending; /* guarded by mu */
    bool pending_all;  /* guarded by mu */
    _Atomic uint64_t seq;
};

/* Slots per byte of budget: a record and its key are rarely under 256 bytes. */
#define BYTES_PER_SLOT 256u

ld_memo *ld_memo_new(size_t budget)
{
    if (budget == 0) return NULL;
    ld_memo *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->budget = budget;
    m->max_ent = budget / 64;
    size_t want = budget / BYTES_PER_SLOT;
    m->nslots = 64;
    while (m->nslots < want && m->nslots < ((size_t)1 << 24))
        m->nslots *= 2;
    randombytes_buf(m->hkey, sizeof m->hkey);
    pthread_mutex_init(&m->mu, NULL);
    atomic_init(&m->seq, 0);
    return m;
}

static void drop_all(ld_memo *m)
{
    if (!m->slots) return;
    for (size_t i = 0; i < m->nslots; i++) {
        free(m->slots[i].e);
        m->slots[i].e = NULL;
    }
    m->bytes = 0;
}

void ld_memo_free(ld_memo *m)
{
    if (!m) return;
    drop_all(m);
    free(m->slots);
    ld_keylog_free(&m->pending);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void ld_memo_invalidate(ld_memo *m, const ld_keylog *written)
{
    if (!m || (!written->overflow && written->n == 0)) return;
    pthread_mutex_lock(&m->mu);
    if (written->overflow) {
        m->pending_all = true;
    } else if (!m->pending_all) {
        size_t pos = 0, klen;
        const uint8_t *k;
        while (ld_keylog_next(written, &pos, &k, &klen))
            ld_keylog_add(&m->pending, k, klen);
        /* A full queue (the loop has not looked for a while) drops everything instead. */
        if (m->pending.overflow) m->pending_all = true;
    }
    atomic_fetch_add_explicit(&m->seq, 1, memory_order_release);
    pthread_mutex_unlock(&m->mu);
}

/* SipHash of the key under this memo's random key: chosen keys cannot crowd one set. */
static uint64_t hash_of(const ld_memo *m, const uint8_t *key, size_t klen)
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, key, klen, m->hkey);
    uint64_t x;
    memcpy(&x, h, sizeof x);
    return x;
}

/* The first of the key's two slots (its set: i and i + 1, one cache line of the slot array).
 * Direct-mapped, 10,000 hot keys in 32,768 slots missed 15% of reads on collisions alone. */
static size_t set_of(const ld_memo *m, uint64_t hash)
{
    return (size_t)(hash & (m->nslots - 1) & ~(size_t)1);
}

static bool ent_is(const memo_slot *s, uint64_t hash, const uint8_t *key, size_t klen)
{
    return s->e && s->hash == hash && s->e->klen == klen && memcmp(s->e->data, key, klen) == 0;
}

static void drop_slot(ld_memo *m, size_t i)
{
    memo_ent *e = m->slots[i].e;
    if (!e) return;
    m->bytes -= sizeof(memo_ent) + e->klen + e->vlen;
    free(e);
    m->slots[i].e = NULL;
}

/* Applies the invalidations handed over since the last drain. */
static void drain(ld_memo *m)
{
    if (atomic_load_explicit(&m->seq, memory_order_acquire) == m->drained) return;
    pthread_mutex_lock(&m->mu);
    ld_keylog got = m->pending;
    bool all = m->pending_all;
    memset(&m->pending, 0, sizeof m->pending);
    m->pending_all = false;
    m->drained = atomic_load_explicit(&m->seq, memory_order_relaxed);
    pthread_mutex_unlock(&m->mu);
    if (all) {
        drop_all(m);
    } else if (m->slots) {
        size_t pos = 0, klen;
        const uint8_t *k;
        while (ld_keylog_next(&got, &pos, &k, &klen)) {
            uint64_t h = hash_of(m, k, klen);
            size_t i = set_of(m, h);
            if (ent_is(&m->slots[i], h, k, klen)) drop_slot(m, i);
            if (ent_is(&m->slots[i + 1], h, k, klen)) drop_slot(m, i + 1);
        }
    }
    ld_keylog_free(&got);
}

const uint8_t *ld_memo_get(ld_memo *m, const uint8_t *key, size_t klen, size_t *vlen)
{
    drain(m);
    const memo_ent *e = NULL;
    if (m->slots) {
        uint64_t h = hash_of(m, key, klen);
        size_t i = set_of(m, h);
        if (ent_is(&m->slots[i], h, key, klen))
            e = m->slots[i].e;
        else if (ent_is(&m->slots[i + 1], h, key, klen))
            e = m->slots[i + 1].e;
    }
    if (!e) {
        m->misses++;
        return NULL;
    }
    m->hits++;
    *vlen = e->vlen;
    return e->data + e->klen;
}

void ld_memo_put(ld_memo *m, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
    size_t size = sizeof(memo_ent) + klen + vlen;
    if (size > m->max_ent) return;
    if (!m->slots) {
        /* Aligned to the cache line, so a set (two 16-byte slots) never straddles two. */
        size_t bytes = m->nslots * sizeof *m->slots; /* a multiple of 64: nslots >= 64 */
        if (!(m->slots = aligned_alloc(64, bytes))) return;
        memset(m->slots, 0, bytes);
    }
    uint64_t h = hash_of(m, key, klen);
    size_t set = set_of(m, h), i;
    /* The key's own slot if either holds it (never a second copy), else an empty one; a full
     * set drops the entry in its second slot and moves the first's there, so the key put last
     * sits in the first. */
    if (ent_is(&m->slots[set], h, key, klen)) {
        i = set;
    } else if (ent_is(&m->slots[set + 1], h, key, klen)) {
        i = set + 1;
    } else if (!m->slots[set].e) {
        i = set;
    } else if (!m->slots[set + 1].e) {
        i = set + 1;
    } else {
        drop_slot(m, set + 1);
        m->slots[set + 1] = m->slots[set];
        m->slots[set].e = NULL;
        i = set;
    }
    drop_slot(m, i);
    if (m->bytes + size > m->budget) return;
    memo_ent *e = malloc(size);
    if (!e) return;
    e->klen = klen;
    e->vlen = vlen;
    memcpy(e->data, key, klen);
    memcpy(e->data + klen, val, vlen);
    m->slots[i] = (memo_slot){e, h};
    m->bytes += size;
}

void ld_memo_stats(const ld_memo *m, uint64_t *hits, uint64_t *misses, size_t *bytes)
{
    *hits = m ? m->hits : 0;
    *misses = m ? m->misses : 0;
    *bytes = m ? m->bytes : 0;
}
