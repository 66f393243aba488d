-- The one wrk script of the benchmark (issue 7). It is configured through environment variables, so
-- that every run uses the same request and reporting code:
--
--   BENCH_MODE    "fixed" (default): every request is the URL and headers given on wrk's command line.
--                 "cycle": each request takes the next path from the file BENCH_PATHS (one per line),
--                 each thread starting at its own place in the list.
--                 "cold": the URL of the command line, with a bearer token never used before on every
--                 request ("<BENCH_TOKEN_PREFIX><thread>-<n>"), so every request is a first request.
--   BENCH_PATHS   the file of paths for "cycle".
--   BENCH_TOKEN_PREFIX  the token prefix for "cold"; make it unique per run.
--
-- Whatever the mode, done() prints one line "WRKJSON {...}" with the totals and latency percentiles,
-- which the benchmark script reads instead of wrk's human-readable summary.

local mode = os.getenv("BENCH_MODE") or "fixed"
local threads = {}

function setup(thread)
   -- Runs in the main Lua state once per thread before it starts: give each thread its number.
   table.insert(threads, thread)
   thread:set("thread_id", #threads)
end

if mode == "cycle" then
   local paths = {}
   local next_path = 0

   function init(args)
      -- Runs in each thread's own Lua state. Every thread loads the list and starts at its own offset,
      -- so that concurrent clients do not ask for the same file at the same moment.
      local file = assert(io.open(assert(os.getenv("BENCH_PATHS"), "BENCH_PATHS is not set"), "r"))
      for line in file:lines() do
         if line ~= "" then
            table.insert(paths, line)
         end
      end
      file:close()
      assert(#paths > 0, "BENCH_PATHS names no path")
      local count = tonumber(os.getenv("BENCH_THREADS") or "1")
      next_path = math.floor((thread_id - 1) * #paths / count)
   end

   function request()
      next_path = next_path % #paths + 1
      return wrk.format(nil, paths[next_path])
   end
elseif mode == "cold" then
   local prefix = os.getenv("BENCH_TOKEN_PREFIX") or "tok-cold-"
   local n = 0

   function request()
      n = n + 1
      wrk.headers["Authorization"] = "Bearer " .. prefix .. thread_id .. "-" .. n
      return wrk.format(nil, nil, wrk.headers)
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRKJSON {"duration_us": %d, "requests": %d, "bytes": %d, "connect_errors": %d, "read_errors": %d, '
         .. '"write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, "p99_us": %d, '
         .. '"mean_us": %.1f, "max_us": %d}\n',
      summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
