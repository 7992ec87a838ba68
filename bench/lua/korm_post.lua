-- KORM POST /subscriptions: a real order, a fresh Idempotency-Key on every request.
local token = os.getenv("BENCH_TOKEN") or ""
local run = os.getenv("BENCH_RUN") or "run"
local counter = 0
local body = '{"customer_id":"bench-customer","sku":"KESB-SELECT-PAYG-20-49","quantity":25}'

request = function()
  counter = counter + 1
  return wrk.format("POST", nil, {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json",
    ["Idempotency-Key"] = run .. "-" .. tid .. "-" .. counter,
  }, body)
end
