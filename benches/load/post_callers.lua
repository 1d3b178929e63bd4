-- wrk: POST one webhook record (the typical Arroyo call, the record of post.lua) per
-- request, each from the next of 9,000 callers. ingest keys a record by its caller, so
-- the records spread over the raw topic's partitions as live traffic does, and as the
-- raw producer's baseline (benches/src/bin/raw_kafka.rs, the same 9,000 keys) does.
-- With post.lua's one caller every record went to one partition while the baseline's
-- went to all three (found 2026-12-03: ingest 0.73-0.77 of the baseline that way,
-- 0.79-0.80 with the callers spread).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local counter = 0
function request()
  counter = counter + 1
  local body = string.format(
    '{"call":{"id":"load_1","caller":{"number":"415555%04d","zip":"94103"},"tracking_number":"8885550100",' ..
    '"started_at":"2026-11-20T14:03:22-08:00","duration":"4:12","payout":"$45.00","campaign":{"name":"Auto CA"},"tags":["auto"]}}',
    1000 + counter % 9000)
  return wrk.format(nil, nil, nil, body)
end
