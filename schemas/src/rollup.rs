//! What the hourly rollups hold (migrations 6 and 7): the processor's rollup worker
//! writes them, the api reads them, both from these names.

/// The dimensions `calls_hourly_dims` has rows for, each a column of `calls_by_time`
/// (its value is the column as text). Status is not among them: every rollup row is
/// per status already.
pub const DIMENSIONS: &[&str] = &["client_id", "source", "campaign", "publisher", "state"];
