/* The event base every loop of the node runs on, made with precise timers: libevent 2.1 reads
 * CLOCK_MONOTONIC_COARSE by default, which moves in kernel ticks (4 ms at HZ=250), so a 5 ms
 * timer could fire 4 ms late with the loop idle, and deadlines drifted by as much. */
#ifndef LD_EVBASE_H
#define LD_EVBASE_H

struct event_base;

/* A new base on CLOCK_MONOTONIC (with epoll, timeouts through a timerfd, to the microsecond).
 * The caller owns it (event_base_free). NULL when it cannot be made. */
struct event_base *ld_evbase_new(void);

#endif
