-- wrk: POST one webhook record per request, each a different call (its own id,
-- one of 9,000 callers, its own start time), so every accepted request becomes a
-- stored call: the end-to-end benchmark counts them in ClickHouse.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

-- CM_WRK_TAG_BASE: a second wrk process beside the first (the cluster run, one per
-- ingest instance) numbers its threads after the first's, so the calls stay distinct.
local threads = tonumber(os.getenv("CM_WRK_TAG_BASE") or "0")
function setup(thread)
  threads = threads + 1
  thread:set("tag", threads)
end

-- CM_WRK_STAMP=1: each call's id ends with the wall-clock millisecond it was made
-- (`e2e_<n>_<ms>`): the generator's own log of when it sent what, read back from
-- the enriched topic by the lag check of benches/load/end_to_end.sh.
local stamp = os.getenv("CM_WRK_STAMP") == "1"
local now_ms
if stamp then
  local ffi = require("ffi")
  ffi.cdef[[
    typedef struct { long tv_sec; long tv_usec; } cm_timeval;
    int gettimeofday(cm_timeval *tv, void *tz);
  ]]
  local tv = ffi.new("cm_timeval")
  now_ms = function()
    ffi.C.gettimeofday(tv, nil)
    return tonumber(tv.tv_sec) * 1000 + math.floor(tonumber(tv.tv_usec) / 1000)
  end
end

local counter = 0
function request()
  counter = counter + 1
  local n = tag * 100000000 + counter
  local id = stamp and string.format("e2e_%d_%d", n, now_ms()) or string.format("e2e_%d", n)
  local body = string.format(
    '{"call":{"id":"%s","caller":{"number":"415555%04d","zip":"94103"},"tracking_number":"8885550100",' ..
    '"started_at":"2026-11-%02dT%02d:%02d:%02dZ","duration":"4:12","payout":"$45.00","campaign":{"name":"Auto CA"},"tags":["auto"]}}',
    id, 1000 + n % 9000, 1 + math.floor(n / 86400) % 28, math.floor(n / 3600) % 24, math.floor(n / 60) % 60, n % 60)
  return wrk.format(nil, nil, nil, body)
end

-- Accepted requests (202), printed for the script to compare with what was stored.
function done(summary, latency, requests)
  io.write(string.format("sent %d non2xx %d\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
