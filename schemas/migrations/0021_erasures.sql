-- Erasure receipts (schemas/src/erasure.rs): one row per run of an erasure of one
-- caller of one account, with who asked, when, and the rows changed per place;
-- never the number. Written by `cmctl privacy erase` (processor::erasure), read by
-- the api (GET /api/privacy/erasures). Small: on every node of a cluster.
CREATE TABLE IF NOT EXISTS erasures
(
    id UUID,
    account String,
    requested_by String,
    started_at DateTime('UTC'),
    finished_at DateTime('UTC'),
    places Array(String),
    rows Array(UInt64),
    outcome String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(started_at)
ORDER BY (account, started_at, id);
