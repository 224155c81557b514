-- wrk script for bench/run B4: the cache routes with 100-byte values over N keys.
-- Usage: wrk ... -s cache.lua URL -- MODE N [database] [ttl]
-- MODE "put": PUT /api/cache/key-<i>?ttl=TTL with a 100-byte JSON string (98 characters and the
-- quotes), i cycling over the keys; "get": GET /api/cache/key-<random i> (all written by a put run).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

local reqs = {}
local nreqs, next_i = 0, 0
mode = nil -- global: done() runs in another Lua state and reads it through the thread

function init(args)
   mode = args[1] or "get"
   local n = tonumber(args[2] or "10000")
   local database = args[3] or "bench"
   local ttl = args[4] or "10m"
   local headers = common.json_headers(database, "root")
   local value = '"' .. string.rep("v", 98) .. '"'
   for i = 0, n - 1 do
      if mode == "put" then
         reqs[i + 1] = wrk.format("PUT", string.format("/api/cache/key-%d?ttl=%s", i, ttl),
                                  headers, value)
      else
         reqs[i + 1] = wrk.format("GET", string.format("/api/cache/key-%d", i), headers, nil)
      end
   end
   nreqs = n
   math.randomseed(os.time())
end

function request()
   if mode == "put" then
      next_i = next_i % nreqs + 1
      return reqs[next_i]
   end
   return reqs[math.random(nreqs)]
end

function done(summary, latency, requests)
   common.report(summary, latency, { workload = "cache_" .. tostring(threads[1]:get("mode")) })
end
