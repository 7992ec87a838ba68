-- Shared by every bench script (bench/run.py prepends it): counts wrong answers and prints one JSON line.
-- A "bad" answer is a status other than 200/201, or a body check_body() rejects (a SOAP error item).
local threads = {}
local nthreads = 0
bad = 0
tid = 0

function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
  table.insert(threads, thread)
end

function response(status, headers, body)
  if status ~= 200 and status ~= 201 then
    bad = bad + 1
  elseif check_body ~= nil and check_body(body) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do b = b + (t:get("bad") or 0) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"mean_us":%d,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d,"bad":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout, b))
end
