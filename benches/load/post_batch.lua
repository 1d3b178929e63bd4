-- wrk: POST 100 webhook records (the typical Arroyo call) per request, as NDJSON,
-- each from its own caller: ingest keys records by caller, so they spread over the
-- raw topic's partitions as the raw producer's baseline batches do (post_callers.lua).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-ndjson"
local lines = {}
for i = 1, 100 do
  lines[i] = '{"call":{"id":"load_' .. i .. '","caller":{"number":"415555' .. (1000 + i) .. '","zip":"94103"},"tracking_number":"8885550100","started_at":"2026-11-20T14:03:22-08:00","duration":"4:12","payout":"$45.00","campaign":{"name":"Auto CA"},"tags":["auto"]}}'
end
wrk.body = table.concat(lines, "\n")
