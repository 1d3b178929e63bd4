-- Views for analysts (docs/analysts.md): one current row per call, with versions,
-- tombstones and rollup marker rows hidden. The tables stay the pipeline's; the
-- read-only user reads both. Each view's cost is in its comment and in the doc.
--
-- calls_current: every column an analyst needs, one row per call (`calls FINAL`).
-- Reads the whole `calls` table: ClickHouse does not push an outer WHERE into a
-- view that reads FINAL, so a filter still reads every call.
CREATE VIEW IF NOT EXISTS calls_current AS
SELECT id, account, client_id, source, external_id, caller, caller_withheld, called,
       started_at, local_tz, tz_source, duration_s, connected, connected_duration_s,
       payout, revenue, currency, zip, city, state, campaign, publisher, buyer, tags,
       status, partner_status, qualified, is_duplicate, cm_call_id, match_method,
       match_start_delta_s, match_duration_delta_s, repeat_of, repeat_of_started_at,
       warnings, mapping_version, received_at, processed_at, raw_id
FROM calls FINAL;
-- calls_by_start: one row per call where it starts now, for time ranges: the newest
-- version of each (account, started_at, client_id, id) key of `calls_by_time`,
-- without the keys a moved call left (their newest version is a tombstone).
-- GROUP BY instead of FINAL so a WHERE on account, started_at, client_id or id is
-- pushed into the scan (enable_optimize_predicate_expression, on in the reader's
-- profile and by default on current ClickHouse): a range reads only its months and
-- accounts. Measured on 10M calls (benches/README.md): a month of one account 0.2 s;
-- a whole year of every account several times `calls_by_time FINAL`.
-- `tuple()` keeps a NULL of the newest version (argMax skips NULLs).
CREATE VIEW IF NOT EXISTS calls_by_start AS
SELECT account, started_at, client_id, id,
       argMax(source, version) AS source,
       tupleElement(argMax(tuple(duration_s), version), 1) AS duration_s,
       tupleElement(argMax(tuple(payout), version), 1) AS payout,
       tupleElement(argMax(tuple(revenue), version), 1) AS revenue,
       argMax(campaign, version) AS campaign,
       argMax(publisher, version) AS publisher,
       argMax(state, version) AS state,
       argMax(status, version) AS status
FROM calls_by_time
GROUP BY account, started_at, client_id, id
HAVING argMax(deleted, version) = 0;
-- hourly_totals: calls, money and durations per account, UTC hour and status, from
-- the rollup: per (account, hour) only the rows of the newest recompute, without its
-- marker row. Reads the whole rollup (about accounts x hours x statuses rows), not
-- the calls; follows the calls by one rollup batch (seconds).
CREATE VIEW IF NOT EXISTS hourly_totals AS
SELECT account, hour, status, calls, payout, revenue, total_duration_s, duration_count
FROM calls_hourly FINAL
WHERE status != ''
  AND (account, hour, version) IN
      (SELECT account, hour, max(version) FROM calls_hourly GROUP BY account, hour);
-- hourly_totals_by_dimension: the same per value of one dimension (client_id,
-- source, campaign, publisher or state). Filter on `dimension`, or every call is
-- counted once per dimension.
CREATE VIEW IF NOT EXISTS hourly_totals_by_dimension AS
SELECT dimension, account, hour, value, status, calls, payout, revenue,
       total_duration_s, duration_count
FROM calls_hourly_dims FINAL
WHERE status != ''
  AND (dimension, account, hour, version) IN
      (SELECT dimension, account, hour, max(version) FROM calls_hourly_dims
       GROUP BY dimension, account, hour);
-- dead_letters_current: the latest failure of each refused record (`dead_letters
-- FINAL`). Reads the whole table.
CREATE VIEW IF NOT EXISTS dead_letters_current AS
SELECT raw_id, account, client_id, source, stage, reason, errors, received_at,
       failed_at, payload
FROM dead_letters FINAL;
