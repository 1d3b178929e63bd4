-- wrk: POST one webhook record per request, each a different call of account
-- acme-leads (integration arroyo), its caller drawn from a pool of 5M numbers that
-- benches/load/history_scale.sh also fills the store's history from (the same
-- formula: area code by k % 10, exchange 220 + (k / 10) / 10000, line (k / 10) % 10000),
-- so the run meets the callers the store already holds, as a network's next day does.
-- Starts are CM_HS_BASE (epoch seconds) plus up to an hour: after every stored call.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local areas = { 212, 312, 415, 617, 713, 305, 404, 503, 602, 702 }
local base = tonumber(os.getenv("CM_HS_BASE") or "1795000000")
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tag", threads)
end

local counter = 0
function request()
  counter = counter + 1
  local n = tag * 100000000 + counter
  -- A spread over the pool without repeats close together (n * 7919 stays exact).
  local k = (n * 7919) % 5000000
  local m = math.floor(k / 10)
  local number = string.format("%d%03d%04d", areas[k % 10 + 1], 220 + math.floor(m / 10000), m % 10000)
  local body = string.format(
    '{"call":{"id":"hs_%d","caller":{"number":"%s"},"tracking_number":"8885550100",' ..
    '"started_at":"%s","duration":"4:12","payout":"$45.00","campaign":{"name":"Auto CA"},"tags":["auto"]}}',
    n, number, os.date("!%Y-%m-%dT%H:%M:%SZ", base + counter % 3600))
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  io.write(string.format("sent %d non2xx %d\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
