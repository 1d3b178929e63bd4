-- Retention runs (schemas/src/retention.rs): per account, when the processor's
-- retention worker ran, its cutoffs, and what it changed. Written by the processor,
-- read by the api (GET /api/privacy/retention). Small: on every node of a cluster.
CREATE TABLE IF NOT EXISTS retention_runs
(
    account String,
    started_at DateTime('UTC'),
    finished_at DateTime('UTC'),
    personal_cutoff UInt32,
    dead_letter_cutoff UInt32,
    calls_changed UInt64,
    dead_letters_deleted UInt64,
    outcome String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(started_at)
ORDER BY (account, started_at);
