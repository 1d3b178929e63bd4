//! What the hourly rollups hold (migrations 6 and 7): the processor's rollup worker
//! writes them, the api reads them, both from these names.

/// The dimensions `calls_hourly_dims` has rows for, each a column of `calls_by_time`
/// (its value is the column as text). Status is not among them: every rollup row is
/// per status already.
pub const DIMENSIONS: &[&str] = &[
    "client_id",
    "source",
    "campaign",
    "publisher",
    "state",
    "buyer",
];

/// A touched (account, UTC hour start in Unix seconds): what writers publish on the
/// `rollup.dirty` topic after their rows are stored, and the rollup worker reads.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Dirty {
    pub account: String,
    pub hour: i64,
}

impl Dirty {
    pub fn of(account: &str, at: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            account: account.to_owned(),
            hour: at.timestamp().div_euclid(3600) * 3600,
        }
    }
}
