-- Run by `cmctl rollup-backfill` after calls were loaded straight into ClickHouse (so
-- no writer marked their hours). Migration 7 ran the form of then
-- (0007_rollup_backfill.sql, before buyer and linked).
-- Rolls every stored call up at version 0, below every version the worker writes (its
-- versions are topic offsets + 1), so any later recompute of an hour replaces these
-- rows. Column order is the tables' (linked last).
INSERT INTO calls_hourly
SELECT account, toStartOfHour(started_at) AS hour, status, 0 AS version, count() AS calls,
       sum(ifNull(payout, toDecimal64(0, 4))) AS payout, sum(ifNull(revenue, toDecimal64(0, 4))) AS revenue,
       sum(ifNull(duration_s, 0)) AS total_duration_s, count(duration_s) AS duration_count, sum(linked) AS linked
FROM calls_by_time FINAL
WHERE deleted = 0
GROUP BY account, hour, status;
INSERT INTO calls_hourly_dims
SELECT tupleElement(dv, 1) AS dimension, account, toStartOfHour(started_at) AS hour, tupleElement(dv, 2) AS value,
       status, 0 AS version, count() AS calls,
       sum(ifNull(payout, toDecimal64(0, 4))) AS payout, sum(ifNull(revenue, toDecimal64(0, 4))) AS revenue,
       sum(ifNull(duration_s, 0)) AS total_duration_s, count(duration_s) AS duration_count, sum(linked) AS linked
FROM calls_by_time FINAL
ARRAY JOIN [('client_id', client_id), ('source', toString(source)), ('campaign', campaign), ('publisher', publisher), ('state', state), ('buyer', buyer)] AS dv
WHERE deleted = 0
GROUP BY dimension, account, hour, value, status;
