-- wrk script for bench/run's B1 preload: POSTs doc-0 .. doc-<N-1> once each and ends the run as
-- soon as every id was acknowledged. Usage: wrk -t1 ... -s preload.lua URL -- N [coll] [db]
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

-- The running thread's state (wrk runs a copy of the script per thread; use -t1).
local next_i = 0
local acked = {}
local path, headers
wanted = 0
nacked = 0
nfailed = 0
t_first = nil
t_last = nil

function init(args)
   wanted = tonumber(args[1] or "10000")
   local collection = args[2] or "items"
   local database = args[3] or "bench"
   path = "/api/documents/" .. collection
   headers = common.json_headers(database, "root")
end

function request()
   if not t_first then t_first = common.now() end
   -- Once every id was sent, connections still waiting re-send ids (an idempotent upsert)
   -- until the last acknowledgement ends the run.
   local i = next_i % wanted
   next_i = next_i + 1
   return wrk.format("POST", path, headers, common.document("doc-" .. i, i))
end

function response(status, hdrs, body)
   if status < 200 or status > 299 then
      nfailed = nfailed + 1
      return
   end
   local id = body:match('"EntityId":"doc%-(%d+)"')
   if id and not acked[id] then
      acked[id] = true
      nacked = nacked + 1
      if nacked >= wanted then
         t_last = common.now()
         wrk.thread:stop()
         common.end_run()
      end
   end
end

function done(summary, latency, requests)
   local t = threads[1]
   local first, last = t:get("t_first"), t:get("t_last")
   local ok = t:get("nacked")
   local secs = (first and last) and (last - first) or (summary.duration / 1e6)
   common.report(summary, latency, {
      workload = "preload", documents_acked = ok, documents_wanted = t:get("wanted"),
      failed_responses = t:get("nfailed"), load_seconds = secs, docs_per_s = ok / secs })
end
