-- Calls sorted by account and start time, for aggregates over a time range: `calls`
-- is sorted by (client_id, id), so a range query with FINAL reads the whole table.
-- Filled by the view below on every insert into `calls`. A correction that moves a
-- call's start (or account) would leave its old version under the old key, so the
-- processor then also writes a `deleted = 1` version under the old key; read with
-- FINAL and `deleted = 0`.
CREATE TABLE IF NOT EXISTS calls_by_time
(
    account String,
    started_at DateTime('UTC'),
    client_id String,
    id UUID,
    version UInt64,
    deleted UInt8,
    source Enum8('webhook' = 1, 'poll' = 2, 'csv' = 3),
    duration_s Nullable(UInt32),
    payout Nullable(Decimal(18, 4)),
    revenue Nullable(Decimal(18, 4)),
    campaign String,
    publisher String,
    state String,
    status String
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(started_at)
ORDER BY (account, started_at, client_id, id);
CREATE MATERIALIZED VIEW IF NOT EXISTS calls_by_time_feed TO calls_by_time AS
SELECT account, started_at, client_id, id, version, toUInt8(0) AS deleted, source, duration_s,
       payout, revenue, campaign, publisher, state, status
FROM calls;
INSERT INTO calls_by_time
SELECT account, started_at, client_id, id, version, toUInt8(0) AS deleted, source, duration_s,
       payout, revenue, campaign, publisher, state, status
FROM calls;
