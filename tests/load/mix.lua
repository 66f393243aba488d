-- wrk script of the load test: a weighted mix of requests (the table written by targets.py), and a count
-- of every response by status. A 503 whose body says "busy" is the server refusing work it has no worker
-- for (intended under overload); any other 5xx is unexpected.
--
-- Usage: wrk ... -s mix.lua BASE_URL -- TARGETS.lua

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local requests = {}
local cumulative = {}
local total_weight = 0

counts = {}
busy = 0
unexpected = 0

function init(args)
  local targets = dofile(args[1])
  math.randomseed(os.time() + tonumber(tostring(targets):match("0x(%x+)") or "0", 16) % 100000)
  for _, t in ipairs(targets) do
    total_weight = total_weight + t.weight
    table.insert(cumulative, total_weight)
    table.insert(requests, wrk.format("GET", t.path, t.headers))
  end
end

function request()
  local r = math.random() * total_weight
  for i, c in ipairs(cumulative) do
    if r <= c then
      return requests[i]
    end
  end
  return requests[#requests]
end

function response(status, headers, body)
  local key = tostring(status)
  counts[key] = (counts[key] or 0) + 1
  if status == 503 and body and body:find("busy", 1, true) then
    busy = busy + 1
  elseif status >= 500 then
    unexpected = unexpected + 1
  end
end

function done(summary, latency, requests)
  local all, all_busy, all_unexpected = {}, 0, 0
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("counts")) do
      all[status] = (all[status] or 0) + n
    end
    all_busy = all_busy + thread:get("busy")
    all_unexpected = all_unexpected + thread:get("unexpected")
  end
  local statuses = {}
  for status in pairs(all) do
    table.insert(statuses, status)
  end
  table.sort(statuses)
  io.write("RESULT requests ", summary.requests, "\n")
  io.write("RESULT duration_s ", string.format("%.1f", summary.duration / 1e6), "\n")
  io.write("RESULT rps ", string.format("%.0f", summary.requests / (summary.duration / 1e6)), "\n")
  for _, status in ipairs(statuses) do
    io.write("RESULT status ", status, " ", all[status], "\n")
  end
  io.write("RESULT busy_503 ", all_busy, "\n")
  io.write("RESULT unexpected_5xx ", all_unexpected, "\n")
  local e = summary.errors
  io.write(string.format("RESULT socket_errors connect=%d read=%d write=%d timeout=%d\n",
    e.connect, e.read, e.write, e.timeout))
  io.write(string.format("RESULT latency_ms p50=%.2f p90=%.2f p99=%.2f max=%.2f\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
