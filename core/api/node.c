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
    /* litedist's addition: how late the event loop ran its callbacks since start. */
    ld_looplag_stats lag;
    ld_looplag_get(r->node->looplag, &lag);
    ld_reply_json(r, 200,
                  json_pack("{s:s, s:s, s:I, s:{s:f, s:f, s:I}}", "NodeId", r->node->node_id,
                            "TimestampUtc", now, "LogicalDatabaseCount",
                            (json_int_t)ld_registry_count(&r->node->reg), "EventLoop", "MaxLagMs",
                            (double)lag.max_us / 1000.0, "P99LagMs", (double)lag.p99_us / 1000.0,
                            "LagSamples", (json_int_t)lag.samples));
}
