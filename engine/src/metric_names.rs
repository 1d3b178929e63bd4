//! Every metric `engine` emits, by name, with its labels: one place to see them
//! (after PostHog's `metrics_const.rs`). docs/ lists each one; a test checks it.

/// counter; labels: `result`.
pub const PROCESSOR_HISTORY_LOOKUPS_TOTAL: &str = "processor_history_lookups_total";
/// counter; labels: none.
pub const PROCESSOR_HISTORY_RESETS_TOTAL: &str = "processor_history_resets_total";
