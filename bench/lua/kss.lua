-- KSS SOAP: one Activate (BENCH_KSS_OP=activate, a fresh TransactionId and SubscriberId per request) or one
-- GetInfo of BENCH_KSS_SUBSCRIBER (BENCH_KSS_OP=getinfo, a fresh TransactionId per request).
local user = os.getenv("BENCH_KSS_USER") or "user"
local password = os.getenv("BENCH_KSS_PASSWORD") or "password"
local run = os.getenv("BENCH_RUN") or "run"
local op = os.getenv("BENCH_KSS_OP") or "activate"
local start = os.getenv("BENCH_KSS_START") or "2026-01-01T00:00:00Z"
local subscriber = os.getenv("BENCH_KSS_SUBSCRIBER") or "bench-subscriber"
local counter = 0

local head = '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" ' ..
  'xmlns:kss="http://schemas.kaspersky.com/services/subscription/2.0/"><soap:Header><kss:AccessInfo>' ..
  '<kss:UserName>' .. user .. '</kss:UserName><kss:Password>' .. password .. '</kss:Password>' ..
  '</kss:AccessInfo></soap:Header><soap:Body><kss:SubscriptionRequestContainer><kss:Timestamp>' .. start ..
  '</kss:Timestamp><kss:TransactionId>'
local tail = '</kss:SubscriptionRequest></kss:SubscriptionRequestContainer></soap:Body></soap:Envelope>'
local headers = {
  ["Content-Type"] = "text/xml; charset=utf-8",
  ["SOAPAction"] = '"http://schemas.kaspersky.com/services/subscription/subscriptionRequest"',
}

function check_body(body)
  return body:find("Error", 1, true) ~= nil
end

request = function()
  counter = counter + 1
  local id = run .. "-" .. tid .. "-" .. counter
  local item
  if op == "getinfo" then
    item = '<kss:GetInfo UnitId="1" SubscriberId="' .. subscriber .. '" InfoSection="Subscription"/>'
  else
    item = '<kss:Activate UnitId="1" SubscriberId="' .. id .. '" StartTime="' .. start ..
      '" EndTime="indefinite" LicenseCount="1" ProductId="KIS"/>'
  end
  return wrk.format("POST", nil, headers, head .. id .. '</kss:TransactionId><kss:SubscriptionRequest>' .. item .. tail)
end
