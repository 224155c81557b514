-- Shared by the bench/run wrk scripts: the document generator and a done() that prints one
-- machine-readable "BENCH_JSON {...}" line with the figures and every error wrk counted.
local common = {}

local ffi = require("ffi")
pcall(ffi.cdef, [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *ts);
int getpid(void);
int kill(int pid, int sig);
]])
local ts = ffi.new("bench_timespec")

-- Monotonic time in seconds (wrk's Lua has no clock finer than os.time()).
function common.now()
   ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
   return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

-- Ends the whole wrk run now, as Ctrl-C does: wrk stops its threads and reports.
function common.end_run()
   ffi.C.kill(ffi.C.getpid(), 2) -- SIGINT
end

-- A document of about 200 bytes with the given id; BENCH_DOC_PAD (default 24) sets the length of
-- its Note, so 850 makes it about 1 KB.
local pad = tonumber(os.getenv("BENCH_DOC_PAD") or "24")
function common.document(id, n)
   local body = string.format(
      '{"Id":"%s","Customer":"customer-%05d","Email":"customer-%05d@example.com",' ..
      '"Status":"shipped","Items":[{"Sku":"sku-%03d","Qty":%d,"Price":19.95},' ..
      '{"Sku":"sku-%03d","Qty":1,"Price":5.5}],"Total":%d.45,"Note":"%s"}',
      id, n % 100000, n % 100000, n % 997, 1 + n % 5, (n * 7) % 997, 20 + n % 300,
      string.rep("x", pad))
   return body
end

common.json_headers = function(database, api_key)
   return { ["Database"] = database, ["ApiKey"] = api_key,
            ["Content-Type"] = "application/json" }
end

local function num(v)
   if v == nil then return "null" end
   return string.format("%.17g", v)
end

-- Prints summary and latency figures (microseconds) plus extra fields as one JSON line, and a
-- BENCH_ERRORS line when wrk counted any error: socket errors, timeouts, or responses with a
-- status above 399 (wrk's "Non-2xx or 3xx responses"); bench/run fails the benchmark on it.
-- extra: table of string -> number|string|table of string -> number.
function common.report(summary, latency, extra)
   local e = summary.errors
   local parts = {
      '"requests":' .. num(summary.requests),
      '"duration_us":' .. num(summary.duration),
      '"bytes":' .. num(summary.bytes),
      '"rps":' .. num(summary.requests / (summary.duration / 1e6)),
      string.format('"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}',
                    e.connect, e.read, e.write, e.status, e.timeout),
      string.format('"latency_us":{"min":%s,"mean":%s,"stdev":%s,"max":%s,"p50":%s,' ..
                    '"p75":%s,"p90":%s,"p99":%s,"p999":%s}',
                    num(latency.min), num(latency.mean), num(latency.stdev), num(latency.max),
                    num(latency:percentile(50)), num(latency:percentile(75)),
                    num(latency:percentile(90)), num(latency:percentile(99)),
                    num(latency:percentile(99.9))),
   }
   for k, v in pairs(extra or {}) do
      if type(v) == "table" then
         local inner = {}
         for ik, iv in pairs(v) do
            inner[#inner + 1] = string.format('"%s":%s', tostring(ik), num(iv))
         end
         parts[#parts + 1] = string.format('"%s":{%s}', k, table.concat(inner, ","))
      elseif type(v) == "number" then
         parts[#parts + 1] = string.format('"%s":%s', k, num(v))
      else
         parts[#parts + 1] = string.format('"%s":"%s"', k, tostring(v))
      end
   end
   local errors = e.connect + e.read + e.write + e.status + e.timeout
   io.write("BENCH_JSON {" .. table.concat(parts, ",") .. "}\n")
   if errors > 0 then
      io.write(string.format("BENCH_ERRORS %d (connect %d, read %d, write %d, " ..
                             "status>399 %d, timeout %d)\n",
                             errors, e.connect, e.read, e.write, e.status, e.timeout))
   end
end

return common
