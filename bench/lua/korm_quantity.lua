-- KORM POST /subscriptions/{id}/quantity: quantity changes of the subscriptions in BENCH_SUBS (comma-separated
-- ids, taken in turn, each wrk thread from its own place), a fresh Idempotency-Key per request. The quantity
-- walks through the SKU's band (21..48), so each change differs from the subscription's last one.
local token = os.getenv("BENCH_TOKEN") or ""
local run = os.getenv("BENCH_RUN") or "run"
local prefix = os.getenv("BENCH_QTY_PREFIX") or "/korm/v1/subscriptions/"
local subs = {}
for id in string.gmatch(os.getenv("BENCH_SUBS") or "", "[^,]+") do
  table.insert(subs, id)
end
local counter = 0

request = function()
  counter = counter + 1
  local n = counter + tid * 7919
  local id = subs[(n % #subs) + 1]
  local quantity = 21 + (math.floor(n / #subs) + tid) % 28
  return wrk.format("POST", prefix .. id .. "/quantity", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json",
    ["Idempotency-Key"] = run .. "-" .. tid .. "-" .. counter,
  }, '{"quantity":' .. quantity .. '}')
end
