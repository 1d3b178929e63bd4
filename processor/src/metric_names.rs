//! Every metric `processor` emits, by name, with its labels: one place to see them
//! (after PostHog's `metrics_const.rs`). docs/ lists each one; a test checks it.

/// counter; labels: `table`.
pub const CLICKHOUSE_ROWS_WRITTEN_TOTAL: &str = "clickhouse_rows_written_total";
/// counter; labels: none.
pub const DEADLETTER_UNREADABLE_TOTAL: &str = "deadletter_unreadable_total";
/// counter; labels: none.
pub const AUDIT_UNREADABLE_TOTAL: &str = "audit_unreadable_total";
/// counter; labels: `outcome`.
pub const PROCESSOR_ERASURE_ORDERS_TOTAL: &str = "processor_erasure_orders_total";
/// counter; labels: `outcome` (`done`, `failed`).
pub const RETENTION_RUNS_TOTAL: &str = "retention_runs_total";
/// counter; labels: `table`.
pub const RETENTION_ROWS_CHANGED_TOTAL: &str = "retention_rows_changed_total";
/// histogram; labels: none.
pub const PROCESSOR_BATCH_SECONDS: &str = "processor_batch_seconds";
/// counter; labels: none.
pub const PROCESSOR_CM_INVALID_TOTAL: &str = "processor_cm_invalid_total";
/// counter; labels: `when`.
pub const PROCESSOR_CM_LINKS_TOTAL: &str = "processor_cm_links_total";
/// counter; labels: none.
pub const PROCESSOR_INTEGRATION_WAIT_TIMEOUTS_TOTAL: &str =
    "processor_integration_wait_timeouts_total";
/// gauge; labels: none.
pub const PROCESSOR_PARKED_IN_HAND: &str = "processor_parked_in_hand";
/// counter; labels: none.
pub const PROCESSOR_PARKED_RELEASED_TOTAL: &str = "processor_parked_released_total";
/// counter; labels: none.
pub const PROCESSOR_PARKED_TOTAL: &str = "processor_parked_total";
/// counter; labels: none.
pub const PROCESSOR_SUPPRESSED_CALLS_TOTAL: &str = "processor_suppressed_calls_total";
/// counter; labels: `outcome`.
pub const PROCESSOR_SUPPRESSION_LIFTS_TOTAL: &str = "processor_suppression_lifts_total";
/// histogram; labels: `at`.
pub const PROCESSOR_RECORD_AGE_SECONDS: &str = "processor_record_age_seconds";
/// counter; labels: `outcome`.
pub const PROCESSOR_RECORDS_TOTAL: &str = "processor_records_total";
/// counter; labels: none.
pub const PROCESSOR_ROLLUP_HOURS_TOTAL: &str = "processor_rollup_hours_total";
/// histogram; labels: `step`.
pub const PROCESSOR_STEP_SECONDS: &str = "processor_step_seconds";
/// gauge; labels: none. Bytes the keyed state takes on this instance.
pub const PROCESSOR_STATE_BYTES: &str = "processor_state_bytes";
/// gauge; labels: none. Bytes of the keyed state's memtables (writes not yet flushed
/// to disk; the on-disk store only): with its 128 MiB block cache, the state's share
/// of the processor's memory.
pub const PROCESSOR_STATE_WRITE_BUFFER_BYTES: &str = "processor_state_write_buffer_bytes";
/// gauge; labels: `partition`. Entries of a raw partition's keyed state (approximate).
pub const PROCESSOR_STATE_ENTRIES: &str = "processor_state_entries";
/// counter; labels: none. Calls that left the keyed state (older than its retention).
pub const PROCESSOR_STATE_EXPIRED_TOTAL: &str = "processor_state_expired_total";
/// counter; labels: none. Changelog entries applied while catching a partition up.
pub const PROCESSOR_STATE_RESTORED_ENTRIES_TOTAL: &str = "processor_state_restored_entries_total";
/// counter; labels: none. Changelog entries a standby (`state.standby_interval_ms`)
/// applied to its copy of partitions another instance owns.
pub const PROCESSOR_STATE_STANDBY_ENTRIES_TOTAL: &str = "processor_state_standby_entries_total";
/// counter; labels: `why` (`too_old`: caught up longer ago than the changelog keeps
/// tombstones; `ahead`: past the changelog's end, made from another). A partition's
/// local copy dropped and restored from the start.
pub const PROCESSOR_STATE_COPIES_DROPPED_TOTAL: &str = "processor_state_copies_dropped_total";
/// histogram; labels: none. One partition caught up with its changelog.
pub const PROCESSOR_STATE_RESTORE_SECONDS: &str = "processor_state_restore_seconds";
/// counter; labels: `what` (`calls`, `histories`). What a batch still asked of
/// ClickHouse: calls the keyed state does not hold (records without a caller or a
/// start, or older than the state keeps), histories of callers with such a record.
pub const PROCESSOR_STATE_CLICKHOUSE_LOOKUPS_TOTAL: &str =
    "processor_state_clickhouse_lookups_total";
/// gauge; labels: `account`. Receive time (Unix seconds) of the newest call stored for the account by this instance.
pub const PROCESSOR_NEWEST_RECEIVED_TIMESTAMP_SECONDS: &str =
    "processor_newest_received_timestamp_seconds";
/// counter; labels: `client_id`.
pub const PROCESSOR_DEAD_LETTERS_TOTAL: &str = "processor_dead_letters_total";
/// counter; labels: `client_id`. Calls of each integration stored (a version each).
pub const PROCESSOR_CALLS_TOTAL: &str = "processor_calls_total";
/// counter; labels: `client_id`, `reason`. Records a mapping's filter dropped on purpose (the reasons are the integration's own, at most 20).
pub const PROCESSOR_FILTERED_TOTAL: &str = "processor_filtered_total";
/// counter. Source keys not recorded for drift detection because an integration sent more than 512 distinct keys in an hour (crate::source_keys).
pub const PROCESSOR_SOURCE_KEYS_SKIPPED_TOTAL: &str = "processor_source_keys_skipped_total";
