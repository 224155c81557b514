/* Node-level routes that need no key: GET /health and GET /node. */
#include "api.h"

#include "../util/looplag.h"
#include "../util/timeutil.h"

void ld_api_health(ld_req *r)
{
    ld_reply_json(r, 200, json_pack("{s:s, s:s}", "Status", "Healthy", "NodeId", r->node->node_id));
}

void ld_api_node(ld_req *r)
{
    char now[LD_ISO_TIME_LEN];
    ld_iso_time(ld_wall_ms(), now);
    /* litedist's addition: how late the event loop ran its callbacks since start, with the
     * histogram (Counts[i] counts lags up to BoundsMs[i]; the last count, those above). */
    ld_looplag_stats lag;
    ld_looplag_get(r->node->looplag, &lag);
    json_t *bounds = json_array(), *counts = json_array(), *stalls = json_array();
    bool ok = bounds && counts && stalls;
    for (size_t i = 0; ok && i < LD_LOOPLAG_BUCKETS; i++) {
        if (i < LD_LOOPLAG_BUCKETS - 1)
            ok = json_array_append_new(bounds,
                                       json_real((double)LD_LOOPLAG_BOUNDS_US[i] / 1000.0)) == 0;
        ok = ok && json_array_append_new(counts, json_integer((json_int_t)lag.buckets[i])) == 0;
    }
    /* The latest stalls with the time each ended (microseconds: to line them up with other
     * events on the machine), oldest first. */
    ld_looplag_stall recent[LD_LOOPLAG_RECENT];
    size_t nrecent = ld_looplag_recent(r->node->looplag, recent, LD_LOOPLAG_RECENT);
    for (size_t i = 0; ok && i < nrecent; i++) {
        char at[LD_ISO_TIME_LEN];
        ld_iso_time_us(recent[i].at_us, at);
        ok = json_array_append_new(stalls, json_pack("{s:s, s:f}", "AtUtc", at, "LagMs",
                                                     (double)recent[i].lag_us / 1000.0)) == 0;
    }
    json_t *out = NULL;
    if (ok)
        out = json_pack("{s:s, s:s, s:I, s:s, s:{s:f, s:f, s:I, s:{s:O, s:O}, s:O}}", "NodeId",
                        r->node->node_id, "TimestampUtc", now, "LogicalDatabaseCount",
                        (json_int_t)ld_registry_count(&r->node->reg), "CacheDurability",
                        r->node->cfg.cache_everysec ? "everysec" : "full", "EventLoop", "MaxLagMs",
                        (double)lag.max_us / 1000.0, "P99LagMs", (double)lag.p99_us / 1000.0,
                        "LagSamples", (json_int_t)lag.samples, "LagHistogram", "BoundsMs", bounds,
                        "Counts", counts, "RecentStalls", stalls);
    json_decref(bounds);
    json_decref(counts);
    json_decref(stalls);
    if (!out) {
        ld_reply_error(r, 500, "Out of memory.");
        return;
    }
    ld_reply_json(r, 200, out);
}
