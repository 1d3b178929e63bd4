-- Calls per dimension value, account, UTC hour and status: what a year-wide query
-- grouped by one dimension (integration, source, campaign, publisher or state) reads
-- instead of every call. One row per (dimension, account, hour, value, status);
-- sorted by dimension first so a query reads only its dimension's rows.
-- Written by the same rollup worker, in the same recompute, with the same version as
-- `calls_hourly`, and versioned the same way: each recompute writes every value of
-- the hour, plus a marker row per dimension (value '' and status '') so an hour
-- whose calls all left still gets a newer version; readers keep, per (account, hour),
-- only the rows of the highest version within their dimension.
CREATE TABLE IF NOT EXISTS calls_hourly_dims
(
    dimension String,
    account String,
    hour DateTime('UTC'),
    value String,
    status String,
    version UInt64,
    calls UInt64,
    payout Decimal(38, 4),
    revenue Decimal(38, 4),
    total_duration_s UInt64,
    duration_count UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (dimension, account, hour, value, status);
-- Then rollup_backfill.sql (appended to this migration by schemas::migrations).
