//! Every metric `runtime` emits, by name, with its labels: one place to see them
//! (after PostHog's `metrics_const.rs`). docs/ lists each one; a test checks it.

/// counter; labels: none.
pub const KAFKA_COMMIT_ERRORS_TOTAL: &str = "kafka_commit_errors_total";
/// counter; labels: none.
pub const KAFKA_COMMITS_TOTAL: &str = "kafka_commits_total";
/// counter; labels: `limit` (the configuration key of the per-account limit hit).
pub const FAIR_SHARE_REFUSALS_TOTAL: &str = "fair_share_refusals_total";
/// counter; labels: `group`.
pub const KAFKA_GROUP_REJOINS_TOTAL: &str = "kafka_group_rejoins_total";
/// gauge; labels: `group`, `topic`, `partition`. Records between the group's committed offset and the partition's end.
pub const KAFKA_GROUP_LAG_RECORDS: &str = "kafka_group_lag_records";
/// gauge; labels: `group`, `topic`, `partition`. Age of the oldest record read and not yet committed, at the scrape.
pub const KAFKA_GROUP_LAG_SECONDS: &str = "kafka_group_lag_seconds";
/// gauge; labels: `group`, `topic`, `partition`.
pub const KAFKA_GROUP_COMMITTED_OFFSET: &str = "kafka_group_committed_offset";
/// gauge; labels: `group`. Partitions this instance holds.
pub const KAFKA_GROUP_PARTITIONS_HELD: &str = "kafka_group_partitions_held";
/// counter; labels: `reader`.
pub const KAFKA_CONSUME_ERRORS_TOTAL: &str = "kafka_consume_errors_total";
/// counter; labels: none.
pub const KAFKA_GROUP_POLL_TIMEOUTS_TOTAL: &str = "kafka_group_poll_timeouts_total";
/// histogram; labels: none.
pub const KAFKA_PRODUCE_BATCH_SECONDS: &str = "kafka_produce_batch_seconds";
/// counter; labels: none.
pub const KAFKA_PRODUCE_ERRORS_TOTAL: &str = "kafka_produce_errors_total";
/// counter; labels: none.
pub const KAFKA_PRODUCED_TOTAL: &str = "kafka_produced_total";
/// counter; labels: none.
pub const KAFKA_PRODUCER_RESETS_TOTAL: &str = "kafka_producer_resets_total";
/// counter; labels: `what`.
pub const RETRIES_TOTAL: &str = "retries_total";
/// gauge; labels: `table`.
pub const TABLE_ENTRIES: &str = "table_entries";
/// counter; labels: `table`.
pub const TABLE_INVALID_TOTAL: &str = "table_invalid_total";
/// counter; labels: `worker`.
pub const WORKER_RESTARTS_TOTAL: &str = "worker_restarts_total";
/// gauge; labels: `worker`.
pub const WORKER_UP: &str = "worker_up";
