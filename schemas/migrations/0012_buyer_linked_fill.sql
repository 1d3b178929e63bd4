-- Fills what migration 11 added; every statement can run again.
-- The feed view writes buyer and linked from now on. Between the drop and the create
-- an insert into `calls` would not reach `calls_by_time`: run migrations before the
-- processor starts, as `deploy/stack.sh` does (the copy below catches rows stored
-- before it anyway).
DROP TABLE IF EXISTS calls_by_time_feed;
CREATE MATERIALIZED VIEW IF NOT EXISTS calls_by_time_feed TO calls_by_time AS
SELECT account, started_at, client_id, id, version, toUInt8(0) AS deleted, source, duration_s,
       payout, revenue, campaign, publisher, state, status, buyer, toUInt8(cm_call_id != '') AS linked
FROM calls;
-- Every stored version again, now with buyer and linked. Same key and version as the
-- row it copies, and inserted later, so it is the one `FINAL` and merges keep; a
-- moved call's tombstone has a higher version than the old position it retires.
INSERT INTO calls_by_time
SELECT account, started_at, client_id, id, version, toUInt8(0) AS deleted, source, duration_s,
       payout, revenue, campaign, publisher, state, status, buyer, toUInt8(cm_call_id != '') AS linked
FROM calls;
-- Each rolled-up hour again at its newest version (so readers, who keep only an
-- hour's newest version, see linked counts at once, and a later recompute by the
-- worker still replaces these rows), and the buyer dimension at version 0.
INSERT INTO calls_hourly
SELECT account, hour, status, v.version, calls, payout, revenue, total_duration_s, duration_count, linked
FROM
(
    SELECT account, toStartOfHour(started_at) AS hour, status, count() AS calls,
           sum(ifNull(payout, toDecimal64(0, 4))) AS payout, sum(ifNull(revenue, toDecimal64(0, 4))) AS revenue,
           sum(ifNull(duration_s, 0)) AS total_duration_s, count(duration_s) AS duration_count, sum(linked) AS linked
    FROM calls_by_time FINAL
    WHERE deleted = 0
    GROUP BY account, hour, status
) AS r
ANY LEFT JOIN
(
    SELECT account, hour, max(version) AS version FROM calls_hourly GROUP BY account, hour
) AS v USING (account, hour);
INSERT INTO calls_hourly_dims
SELECT dimension, account, hour, value, status, v.version, calls, payout, revenue, total_duration_s, duration_count, linked
FROM
(
    SELECT tupleElement(dv, 1) AS dimension, account, toStartOfHour(started_at) AS hour, tupleElement(dv, 2) AS value,
           status, count() AS calls,
           sum(ifNull(payout, toDecimal64(0, 4))) AS payout, sum(ifNull(revenue, toDecimal64(0, 4))) AS revenue,
           sum(ifNull(duration_s, 0)) AS total_duration_s, count(duration_s) AS duration_count, sum(linked) AS linked
    FROM calls_by_time FINAL
    ARRAY JOIN [('client_id', client_id), ('source', toString(source)), ('campaign', campaign), ('publisher', publisher), ('state', state), ('buyer', buyer)] AS dv
    WHERE deleted = 0
    GROUP BY dimension, account, hour, value, status
) AS r
ANY LEFT JOIN
(
    SELECT dimension, account, hour, max(version) AS version FROM calls_hourly_dims GROUP BY dimension, account, hour
) AS v USING (dimension, account, hour);
