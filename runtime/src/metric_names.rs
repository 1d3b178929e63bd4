//! Metric names placeholder.
pub const RETRIES_TOTAL: &str = "retries_total";
