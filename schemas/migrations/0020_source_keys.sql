-- The keys partners' records carry, with the JSON type of each value
-- (schemas/src/source_keys.rs), for drift detection: the processor writes a row the
-- first time in an hour it sees a key of that type for an integration, with the
-- first record that had it; the api compares the last window with the day before
-- it (api/src/drift.rs). Rows a crash makes the processor write again replace each
-- other (same key and hour). Small: keys x hours, a few thousand rows a day per
-- integration at most.
CREATE TABLE IF NOT EXISTS source_keys
(
    account String,
    client_id String,
    path String,
    kind String,
    hour DateTime('UTC'),
    first_seen DateTime('UTC'),
    raw_id UUID
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (account, client_id, path, kind, hour);
