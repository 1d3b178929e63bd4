-- The migration ledger, created before any numbered migration runs. One row per
-- applied migration; re-inserts of the same version collapse.
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY version;
