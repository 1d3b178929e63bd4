-- wrk: POST one webhook record (the typical Arroyo call) per request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"call":{"id":"load_1","caller":{"number":"4155552671","zip":"94103"},"tracking_number":"8885550100","started_at":"2026-11-20T14:03:22-08:00","duration":"4:12","payout":"$45.00","campaign":{"name":"Auto CA"},"tags":["auto"]}}'
