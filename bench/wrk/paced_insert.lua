-- wrk script for bench/run B8: inserts at a fixed rate (RATE per second over all connections of
-- the thread; use -t1), ids unique per run. Usage: wrk -t1 ... -- TAG RATE [collection] [db]
-- wrk's delay() holds each connection until its request's slot in the schedule t0 + k / RATE.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local prefix, path, headers, rate
local n, scheduled = 0, 0
local t0 = nil

function init(args)
   prefix = (args[1] or tostring(os.time())) .. "-"
   rate = tonumber(args[2] or "1000")
   path = "/api/documents/" .. (args[3] or "paced")
   headers = common.json_headers(args[4] or "bench", "root")
end

function delay()
   local now = common.now()
   if not t0 then t0 = now end
   scheduled = scheduled + 1
   local ms = (t0 + scheduled / rate - now) * 1000
   return ms > 0 and ms or 0
end

function request()
   n = n + 1
   return wrk.format("POST", path, headers, common.document(prefix .. n, n))
end

function done(summary, latency, requests)
   common.report(summary, latency, { workload = "paced_insert", rate = rate })
end
