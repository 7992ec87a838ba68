-- A plain GET of the URL given to wrk, with the bearer token of BENCH_TOKEN (KORM GET /subscriptions/{id}).
local token = os.getenv("BENCH_TOKEN") or ""
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Accept"] = "application/json"
