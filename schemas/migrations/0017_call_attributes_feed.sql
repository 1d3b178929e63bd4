-- Attributes reach `calls_by_time` (aggregates by an attribute read it) and the
-- analysts' views; every statement can run again.
-- The feed view writes the attributes from now on. Between the drop and the create
-- an insert into `calls` would not reach `calls_by_time`: run migrations before the
-- processor starts, as `deploy/stack.sh` does. The copy after it catches a row
-- stored in between anyway: no call had attributes before migration 16, so only
-- rows processed in the last day can be missing or lack them, and those are copied
-- again at their own key and version (the same row, so nothing is counted twice;
-- a moved call's tombstone has a higher version than the old row it retires).
DROP TABLE IF EXISTS calls_by_time_feed;
CREATE MATERIALIZED VIEW IF NOT EXISTS calls_by_time_feed TO calls_by_time AS
SELECT account, started_at, client_id, id, version, toUInt8(0) AS deleted, source, duration_s,
       payout, revenue, campaign, publisher, state, status, buyer, toUInt8(cm_call_id != '') AS linked,
       attr_keys, attr_values
FROM calls;
INSERT INTO calls_by_time
SELECT account, started_at, client_id, id, version, toUInt8(0) AS deleted, source, duration_s,
       payout, revenue, campaign, publisher, state, status, buyer, toUInt8(cm_call_id != '') AS linked,
       attr_keys, attr_values
FROM calls
WHERE processed_at >= now() - INTERVAL 1 DAY;
-- The analysts' views with the attributes (see migration 10 for their costs).
DROP TABLE IF EXISTS calls_current;
CREATE VIEW IF NOT EXISTS calls_current AS
SELECT id, account, client_id, source, external_id, caller, caller_withheld, called,
       started_at, local_tz, tz_source, duration_s, connected, connected_duration_s,
       payout, revenue, currency, zip, city, state, campaign, publisher, buyer, tags,
       status, partner_status, qualified, is_duplicate, cm_call_id, match_method,
       match_start_delta_s, match_duration_delta_s, repeat_of, repeat_of_started_at,
       warnings, mapping_version, received_at, processed_at, raw_id,
       attr_keys, attr_types, attr_values
FROM calls FINAL;
DROP TABLE IF EXISTS calls_by_start;
CREATE VIEW IF NOT EXISTS calls_by_start AS
SELECT account, started_at, client_id, id,
       argMax(source, version) AS source,
       tupleElement(argMax(tuple(duration_s), version), 1) AS duration_s,
       tupleElement(argMax(tuple(payout), version), 1) AS payout,
       tupleElement(argMax(tuple(revenue), version), 1) AS revenue,
       argMax(campaign, version) AS campaign,
       argMax(publisher, version) AS publisher,
       argMax(state, version) AS state,
       argMax(status, version) AS status,
       argMax(buyer, version) AS buyer,
       argMax(attr_keys, version) AS attr_keys,
       argMax(attr_values, version) AS attr_values
FROM calls_by_time
GROUP BY account, started_at, client_id, id
HAVING argMax(deleted, version) = 0;
