-- Records refused at the edge or by the mapping, with the reason and the original
-- payload. A record that fails again on replay replaces its earlier row.
CREATE TABLE IF NOT EXISTS dead_letters
(
    raw_id UUID,
    client_id String,
    source Enum8('webhook' = 1, 'poll' = 2, 'csv' = 3),
    stage String,
    reason String,
    errors Array(String),
    received_at DateTime('UTC'),
    failed_at DateTime('UTC'),
    raw_partition Int32,
    raw_offset Int64,
    payload String
)
ENGINE = ReplacingMergeTree(failed_at)
ORDER BY (client_id, raw_id);
