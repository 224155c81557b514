/* Hybrid logical clock (Kulkarni et al. 2014): 48-bit wall milliseconds | 16-bit counter. Stamps
 * issued by one clock strictly increase, never go back across restarts (the clock is seeded from
 * the largest stamp stored), and follow every stamp received. */
#ifndef LD_HLC_H
#define LD_HLC_H

#include <pthread.h>
#include <stdint.h>

typedef struct ld_hlc {
    pthread_mutex_t mu;
    uint64_t last;
    uint64_t (*wall_ms)(void); /* injectable for tests */
    int64_t offset_ms;         /* Node.TestClockOffsetMilliseconds: a skewed clock, tests only */
} ld_hlc;

static inline uint64_t ld_hlc_ms(uint64_t stamp)
{
    return stamp >> 16;
}

static inline uint64_t ld_hlc_make(uint64_t ms, uint32_t counter)
{
    return (ms << 16) | (counter & 0xffffu);
}

/* The pure step: the next stamp after `last` at wall time `wall_ms`. */
uint64_t ld_hlc_next(uint64_t last, uint64_t wall_ms);

/* wall_ms NULL means the real clock. */
void ld_hlc_init(ld_hlc *c, uint64_t (*wall_ms)(void));
void ld_hlc_destroy(ld_hlc *c);

/* Sets the offset added to every wall-clock reading (the fault test's clock skew). Call before
 * the clock is shared with other threads. */
void ld_hlc_set_offset(ld_hlc *c, int64_t offset_ms);

/* The wall clock as this node sees it: the real clock plus the offset, in milliseconds. */
uint64_t ld_hlc_wall(const ld_hlc *c);

/* Issues a new stamp, strictly greater than every stamp issued or observed before. */
uint64_t ld_hlc_now(ld_hlc *c);

/* Moves the clock to at least `stamp` (a stored high-water mark or a received op's stamp). */
void ld_hlc_observe(ld_hlc *c, uint64_t stamp);

/* The last stamp issued or observed. */
uint64_t ld_hlc_peek(ld_hlc *c);

#endif
