-- wrk script for bench/run B0: GET /health (no key), reporting through common.lua.
-- Usage: wrk -t1 -c32 -d10s --latency -s health.lua http://127.0.0.1:PORT
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

wrk.method = "GET"
wrk.path = "/health"

function done(summary, latency, requests)
   common.report(summary, latency, { workload = "health" })
end
