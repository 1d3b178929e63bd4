-- wrk: POST 100 webhook records (the typical Arroyo call) per request, as NDJSON.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-ndjson"
local lines = {}
for i = 1, 100 do
  lines[i] = '{"call":{"id":"load_' .. i .. '","caller":{"number":"4155552671","zip":"94103"},"tracking_number":"8885550100","started_at":"2026-11-20T14:03:22-08:00","duration":"4:12","payout":"$45.00","campaign":{"name":"Auto CA"},"tags":["auto"]}}'
end
wrk.body = table.concat(lines, "\n")
