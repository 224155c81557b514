-- wrk script for bench/run B1: GET doc-<i> for a random i among the N documents the preload wrote.
-- Usage: wrk ... -s get_doc.lua URL -- N [collection] [database] [api]
-- api "litedist" (default): /api/documents/{collection}/doc-<i> with Database and ApiKey headers;
-- api "couch": /{database}/doc-<i> (pouchdb-server, the CouchDB API).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("tindex", counter)
   table.insert(threads, thread)
end

local reqs = {}
nreqs = 0

function init(args)
   local n = tonumber(args[1] or "10000")
   local collection = args[2] or "items"
   local database = args[3] or "bench"
   local api = args[4] or "litedist"
   local headers = { ["Database"] = database, ["ApiKey"] = "root" }
   -- Pre-built requests: request() is then a table lookup, so wrk stays cheap.
   for i = 0, n - 1 do
      if api == "couch" then
         reqs[i + 1] = wrk.format("GET", string.format("/%s/doc-%d", database, i), {}, nil)
      else
         reqs[i + 1] = wrk.format("GET", string.format("/api/documents/%s/doc-%d", collection, i),
                                  headers, nil)
      end
   end
   nreqs = n
   math.randomseed(os.time() * 1000 + (tindex or 0))
end

function request()
   return reqs[math.random(nreqs)]
end

function done(summary, latency, requests)
   common.report(summary, latency, { workload = "get_doc", documents = threads[1]:get("nreqs") })
end
