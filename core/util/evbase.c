/* The node's event base with precise timers (see evbase.h). */
#include "evbase.h"

#include <event2/event.h>

struct event_base *ld_evbase_new(void)
{
    struct event_config *cfg = event_config_new();
    if (!cfg) return NULL;
    /* The cost: one timerfd_settime per loop iteration, which B18's RESP GETs (-c 32 and -P 16)
     * did not show against the coarse clock (docs/benchmarks.md, B12). */
    struct event_base *base = NULL;
    if (event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER) == 0)
        base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}
