//! Retention per account (issue 36): how long callers' personal fields and dead
//! letters (partners' records as sent) are kept. Past it, the processor's retention
//! worker hashes (or empties) the caller's number and empties the ZIP and city of the
//! account's older calls, and deletes its older dead letters; counts, money, times
//! and statuses stay, so aggregates do not change. A hashed number is the same for
//! the same caller (a keyed SHA-256), so an old call still matches its caller's other
//! old calls.
//!
//! Policies travel on a compacted topic keyed by account (set through
//! `PUT /api/privacy/retention`); an account without one keeps everything (the
//! default). Runs are rows of `retention_runs`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What happens to a caller's number past the retention.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerAction {
    /// Replaced by `h:` and a keyed SHA-256 of it: the same caller, the same hash.
    #[default]
    Hash,
    /// Emptied.
    Nullify,
}

/// One account's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    pub account: String,
    /// Days a call keeps its caller's number, ZIP and city (by start time); `None`:
    /// forever.
    #[serde(default)]
    pub personal_days: Option<u32>,
    /// Days a dead letter (a record as sent) is kept (by when it failed); `None`:
    /// forever.
    #[serde(default)]
    pub dead_letter_days: Option<u32>,
    #[serde(default)]
    pub caller: CallerAction,
    /// Set by the api when it publishes the policy.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// Fewest days `personal_days` may be: the processor keeps calls in its own state
/// for `state.retention_days` (45 by default) and a late record of a call merges with
/// that copy, so a shorter retention would write the number back.
pub const MIN_PERSONAL_DAYS: u32 = 60;
/// Most days either setting may be (ten years).
pub const MAX_DAYS: u32 = 3650;
/// Fewest days dead letters are kept: time to read and replay them.
pub const MIN_DEAD_LETTER_DAYS: u32 = 7;

impl RetentionPolicy {
    /// The first setting out of bounds, as (field, problem).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if self.account.trim().is_empty() {
            return Some(("account", "must not be empty".into()));
        }
        if let Some(days) = self.personal_days {
            if !(MIN_PERSONAL_DAYS..=MAX_DAYS).contains(&days) {
                return Some((
                    "personal_days",
                    format!(
                        "must be between {MIN_PERSONAL_DAYS} (the processor keeps calls of the last 45 days to merge late records into) and {MAX_DAYS}"
                    ),
                ));
            }
        }
        if let Some(days) = self.dead_letter_days {
            if !(MIN_DEAD_LETTER_DAYS..=MAX_DAYS).contains(&days) {
                return Some((
                    "dead_letter_days",
                    format!("must be between {MIN_DEAD_LETTER_DAYS} and {MAX_DAYS}"),
                ));
            }
        }
        None
    }
}

/// Hashed numbers start with this, so a run never hashes a hash.
pub const HASH_PREFIX: &str = "h:";

/// ClickHouse SQL of a number's replacement: `h:` and the hex SHA-256 of the
/// deployment's key and the number (`salt` must be an escaped literal).
pub fn hashed_sql(column: &str, salt_literal: &str) -> String {
    format!(
        "if({column} = '', '', concat('{HASH_PREFIX}', lower(hex(SHA256(concat({salt_literal}, {column}))))))"
    )
}

/// One run for one account: what it changed, as `retention_runs` keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clickhouse", derive(clickhouse::Row))]
pub struct RetentionRun {
    pub account: String,
    #[cfg_attr(
        feature = "clickhouse",
        serde(with = "clickhouse::serde::chrono::datetime")
    )]
    pub started_at: DateTime<Utc>,
    #[cfg_attr(
        feature = "clickhouse",
        serde(with = "clickhouse::serde::chrono::datetime")
    )]
    pub finished_at: DateTime<Utc>,
    /// Calls that started before this had their personal fields removed (0: none).
    pub personal_cutoff: u32,
    /// Dead letters that failed before this were deleted (0: none).
    pub dead_letter_cutoff: u32,
    pub calls_changed: u64,
    pub dead_letters_deleted: u64,
    /// `done`, or what went wrong.
    pub outcome: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(personal: Option<u32>, dead: Option<u32>) -> RetentionPolicy {
        RetentionPolicy {
            account: "acme".into(),
            personal_days: personal,
            dead_letter_days: dead,
            caller: CallerAction::Hash,
            updated_at: None,
        }
    }

    #[test]
    fn settings_out_of_bounds_are_named() {
        assert_eq!(policy(Some(365), Some(30)).problem(), None);
        assert_eq!(policy(None, None).problem(), None);
        assert_eq!(policy(Some(30), None).problem().unwrap().0, "personal_days");
        assert_eq!(
            policy(None, Some(1)).problem().unwrap().0,
            "dead_letter_days"
        );
        assert_eq!(
            policy(Some(4000), None).problem().unwrap().0,
            "personal_days"
        );
    }

    #[test]
    fn the_hash_expression_skips_empty_numbers_and_marks_its_output() {
        let sql = hashed_sql("caller", "'k'");
        assert_eq!(
            sql,
            "if(caller = '', '', concat('h:', lower(hex(SHA256(concat('k', caller))))))"
        );
    }
}
