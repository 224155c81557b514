-- wrk script for bench/run B2: durable inserts, POST /api/documents/{collection} of ~200-byte
-- documents with ids unique per run, thread and request. Usage: wrk ... -- TAG [collection] [db]
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local counter = 0

function setup(thread)
   counter = counter + 1
   -- Each wrk thread gets its own prefix; the connections of a thread share its counter.
   thread:set("tindex", counter)
end

local prefix, path, headers
local n = 0

function init(args)
   local tag = args[1] or tostring(os.time())
   local collection = args[2] or "inserts"
   local database = args[3] or "bench"
   prefix = string.format("%s-t%d-", tag, tindex or 1)
   path = "/api/documents/" .. collection
   headers = common.json_headers(database, "root")
end

function request()
   n = n + 1
   return wrk.format("POST", path, headers, common.document(prefix .. n, n))
end

function done(summary, latency, requests)
   common.report(summary, latency, { workload = "insert" })
end
