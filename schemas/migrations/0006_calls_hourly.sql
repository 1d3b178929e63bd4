-- Calls per account, hour (UTC) and status: what year-wide aggregates read instead
-- of every call. Rows are recomputed from `calls_by_time FINAL` by the processor's
-- rollup worker whenever an (account, hour) is touched; each recompute writes every
-- status of that hour with a higher `version`, plus a marker row (status '') so an
-- hour whose calls all moved away still gets a newer version. Readers keep, per
-- (account, hour), only the rows of the highest version.
CREATE TABLE IF NOT EXISTS calls_hourly
(
    account String,
    hour DateTime('UTC'),
    status String,
    version UInt64,
    calls UInt64,
    payout Decimal(38, 4),
    revenue Decimal(38, 4),
    total_duration_s UInt64,
    duration_count UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (account, hour, status);
