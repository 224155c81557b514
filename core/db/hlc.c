/* Hybrid logical clock: stamps that strictly increase and track wall time when it moves on. */
#include "hlc.h"

#include "../util/timeutil.h"

uint64_t ld_hlc_next(uint64_t last, uint64_t wall_ms)
{
    /* The 48|16 packing makes "counter + 1" and "counter overflows into the next millisecond"
     * the same integer increment, so max(last + 1, wall << 16) is the whole algorithm. */
    uint64_t wall = ld_hlc_make(wall_ms & 0xffffffffffffull, 0);
    return wall > last ? wall : last + 1;
}

void ld_hlc_init(ld_hlc *c, uint64_t (*wall_ms)(void))
{
    pthread_mutex_init(&c->mu, NULL);
    c->last = 0;
    c->wall_ms = wall_ms ? wall_ms : ld_wall_ms;
    c->offset_ms = 0;
}

void ld_hlc_set_offset(ld_hlc *c, int64_t offset_ms)
{
    c->offset_ms = offset_ms;
}

uint64_t ld_hlc_wall(const ld_hlc *c)
{
    uint64_t wall = c->wall_ms();
    /* A negative offset larger than the clock itself would wrap: the epoch is as far as it goes. */
    if (c->offset_ms < 0 && (uint64_t)(-c->offset_ms) > wall) return 0;
    return wall + (uint64_t)c->offset_ms;
}

void ld_hlc_destroy(ld_hlc *c)
{
    pthread_mutex_destroy(&c->mu);
}

uint64_t ld_hlc_now(ld_hlc *c)
{
    uint64_t wall = ld_hlc_wall(c);
    pthread_mutex_lock(&c->mu);
    c->last = ld_hlc_next(c->last, wall);
    uint64_t v = c->last;
    pthread_mutex_unlock(&c->mu);
    return v;
}

void ld_hlc_observe(ld_hlc *c, uint64_t stamp)
{
    pthread_mutex_lock(&c->mu);
    if (stamp > c->last) c->last = stamp;
    pthread_mutex_unlock(&c->mu);
}

uint64_t ld_hlc_peek(ld_hlc *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t v = c->last;
    pthread_mutex_unlock(&c->mu);
    return v;
}
