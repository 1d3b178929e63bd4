-- Canonical calls: one row per call id once parts merge. Read with FINAL.
--
-- Every version of a call must collapse into one row, so the sorting key and the
-- (absent) partition key use only what is fixed for an id: a partner correction that
-- moves started_at must not leave the old version in another partition where
-- ReplacingMergeTree would never see both.
-- Portable: runs on ClickHouse 18.16 and current releases (checked by tests/).
CREATE TABLE IF NOT EXISTS calls
(
    id UUID,
    version UInt64,
    account String,
    client_id String,
    source Enum8('webhook' = 1, 'poll' = 2, 'csv' = 3),
    external_id String,
    caller String,
    called String,
    started_at DateTime('UTC'),
    local_tz String,
    duration_s Nullable(UInt32),
    payout Nullable(Decimal(18, 4)),
    revenue Nullable(Decimal(18, 4)),
    currency String,
    zip String,
    city String,
    state String,
    campaign String,
    publisher String,
    buyer String,
    tags Array(String),
    status String,
    is_duplicate UInt8,
    cm_call_id String,
    warnings Array(String),
    received_at DateTime('UTC'),
    processed_at DateTime('UTC'),
    raw_id UUID,
    raw_topic String,
    raw_partition Int32,
    raw_offset Int64,
    mapping_version UInt32
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (client_id, id);
