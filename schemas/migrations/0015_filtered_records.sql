-- Records a mapping's filter dropped on purpose (test calls, pre-call pings): one
-- row per record, so a batch written again after a crash replaces its rows instead
-- of counting them twice; integration health counts them per reason. No payload:
-- a filtered record is not data we keep.
CREATE TABLE IF NOT EXISTS filtered_records
(
    account String,
    client_id String,
    reason String,
    raw_id UUID,
    received_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (account, client_id, reason, raw_id);
