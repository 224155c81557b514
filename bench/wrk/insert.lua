-- wrk script for bench/run B2/B3: durable inserts of ~200-byte documents with ids unique per run,
-- thread and request. Usage: wrk ... -- TAG [collection] [database] [api]
-- api "litedist" (default): POST /api/documents/{collection}; "couch": POST /{database} with the
-- id as _id (pouchdb-server, the CouchDB API).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local counter = 0

function setup(thread)
   counter = counter + 1
   -- Each wrk thread gets its own prefix; the connections of a thread share its counter.
   thread:set("tindex", counter)
end

local prefix, path, headers, couch
local n = 0

function init(args)
   local tag = args[1] or tostring(os.time())
   local collection = args[2] or "inserts"
   local database = args[3] or "bench"
   couch = (args[4] == "couch")
   prefix = string.format("%s-t%d-", tag, tindex or 1)
   if couch then
      path = "/" .. database
      headers = { ["Content-Type"] = "application/json" }
   else
      path = "/api/documents/" .. collection
      headers = common.json_headers(database, "root")
   end
end

function request()
   n = n + 1
   local body = common.document(prefix .. n, n)
   if couch then body = '{"_id"' .. body:sub(6) end -- {"Id":... -> {"_id":...
   return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
   common.report(summary, latency, { workload = "insert" })
end
