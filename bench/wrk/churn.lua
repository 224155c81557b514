-- wrk script for bench/run B15's churn: N requests, then the run ends at the N-th 2xx answer.
-- Usage: wrk -t1 ... -s churn.lua URL -- MODE N MODULUS [database]
-- MODE "docs": POST /api/documents/items, document doc-<i % MODULUS> with "Round": i // MODULUS;
-- "cache": PUT /api/cache/c-<i % MODULUS>?ttl=10s with {"Round": i // MODULUS, "Data": 80 x "v"}.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

local next_i = 0
local modulus, headers
mode = nil
wanted = 0
nok = 0
nfailed = 0
t_first = nil
t_last = nil

function init(args)
   mode = args[1] or "docs"
   wanted = tonumber(args[2] or "10000")
   modulus = tonumber(args[3] or "1000")
   headers = common.json_headers(args[4] or "bench", "root")
end

function request()
   if not t_first then t_first = common.now() end
   -- Connections still waiting when the N-th request was sent keep writing the last round's
   -- values again (at most one per connection) until the N-th answer ends the run.
   local i = next_i
   if i >= wanted then i = wanted - 1 - (i - wanted) % modulus end
   next_i = next_i + 1
   local k, round = i % modulus, math.floor(i / modulus)
   if mode == "cache" then
      return wrk.format("PUT", string.format("/api/cache/c-%d?ttl=10s", k), headers,
                        string.format('{"Round":%d,"Data":"%s"}', round, string.rep("v", 80)))
   end
   local body = common.document("doc-" .. k, k)
   return wrk.format("POST", "/api/documents/items", headers,
                     body:sub(1, -2) .. string.format(',"Round":%d}', round))
end

function response(status, hdrs, body)
   if status < 200 or status > 299 then
      nfailed = nfailed + 1
      return
   end
   nok = nok + 1
   if nok == wanted then
      t_last = common.now()
      wrk.thread:stop()
      common.end_run()
   end
end

function done(summary, latency, requests)
   local t = threads[1]
   local first, last = t:get("t_first"), t:get("t_last")
   local secs = (first and last) and (last - first) or (summary.duration / 1e6)
   common.report(summary, latency, {
      workload = "churn-" .. tostring(t:get("mode")), answered_2xx = t:get("nok"),
      wanted = t:get("wanted"), failed_responses = t:get("nfailed"), load_seconds = secs })
end
