-- The audit trail (schemas/src/audit.rs): who changed an integration or started a
-- replay, when, from where, and the definition's changed paths. Written only by the
-- processor's audit recorder (from the audit topic); the api reads it as the
-- read-only user, and no route changes or removes an entry. One row per entry id: a
-- redelivered entry replaces itself. Entries of one request's second are told apart
-- by `seq`, their position in the (one-partition) audit topic, which is the order
-- they were written in. Small: on a cluster every node holds all of it.
CREATE TABLE IF NOT EXISTS audit_log
(
    account String,
    at DateTime('UTC'),
    id UUID,
    at_ms UInt64,
    seq UInt64,
    client_id String,
    action String,
    actor String,
    role String,
    source String,
    version UInt32,
    changes String,
    detail String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (account, at, id);
