//! Every read the processor makes of ClickHouse, behind one trait: the pipeline's
//! (stored calls, callers' histories, CmCalls), and the linker's (duplicates to
//! link again). [`ClickHouseStore`] is the real one; [`MemoryStore`] is its
//! in-memory twin for unit tests, so the batch step runs against stored data
//! without a database.

mod clickhouse;
mod memory;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;

use engine::enrich::duplicates::Candidate;
use engine::enrich::repeat::Visit;
use schemas::callmatrix::MatchMethod;
use schemas::{CallId, CallRecord, ClientId};

pub use self::clickhouse::ClickHouseStore;
pub use self::memory::MemoryStore;

/// A read that failed (the ClickHouse client's error; whether it is worth another
/// try is its to say, see `runtime::retry`).
pub type StoreError = ::clickhouse::error::Error;

/// The histories of callers, by caller key, each a map of the caller's calls.
pub type StoredHistories = HashMap<String, HashMap<CallId, Visit>>;

/// Which stored duplicates a relink looks at (see `linker`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Duplicates {
    /// Those of `accounts` on `called` numbers starting in [from, to] (Unix
    /// seconds), except the ones linked by an echoed id (certain already): what a
    /// batch of CmCalls may complete.
    Around {
        accounts: BTreeSet<String>,
        called: BTreeSet<String>,
        from: i64,
        to: i64,
    },
    /// Those still pending, processed in the last day: the periodic sweep.
    Pending,
}

impl Duplicates {
    /// Whether a call's newest version is one of them (the stores' id lookups are a
    /// superset, checked again with this).
    pub fn holds(&self, call: &CallRecord, now_s: i64) -> bool {
        if !call.is_duplicate {
            return false;
        }
        match self {
            Duplicates::Around {
                accounts,
                called,
                from,
                to,
            } => {
                accounts.contains(&call.account)
                    && call.match_method != Some(MatchMethod::EchoedId)
                    && call
                        .called
                        .as_ref()
                        .is_some_and(|n| called.contains(n.as_str()))
                    && (*from..=*to).contains(&call.started_at.timestamp())
            }
            Duplicates::Pending => {
                call.match_method == Some(MatchMethod::Pending)
                    && call.processed_at.timestamp() >= now_s - 86_400
            }
        }
    }
}

/// A read of the store, retried while it fails and the process runs.
pub async fn read<T, F, Fut>(
    what: &'static str,
    shutdown: &runtime::shutdown::Shutdown,
    max_backoff: std::time::Duration,
    attempt: F,
) -> Result<T, crate::sink::Interrupted>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    crate::sink::retry_until_stopped(what, shutdown, max_backoff, attempt).await
}

pub trait Store: Send + Sync + 'static {
    /// The stored calls among `ids`, each at its newest version.
    fn calls(
        &self,
        ids: &[(ClientId, CallId)],
    ) -> impl Future<Output = Result<HashMap<CallId, CallRecord>, StoreError>> + Send;

    /// The stored calls among `ids` that may well be new (a batch's records): the
    /// same answer as [`Store::calls`], which a store may reach by first asking which
    /// of them are stored at all.
    fn known_calls(
        &self,
        ids: &[(ClientId, CallId)],
    ) -> impl Future<Output = Result<HashMap<CallId, CallRecord>, StoreError>> + Send {
        self.calls(ids)
    }

    /// The stored histories of `keys` (`(account, caller)`); a key with no stored
    /// call gets an empty history.
    fn histories(
        &self,
        keys: &[(String, String)],
    ) -> impl Future<Output = Result<StoredHistories, StoreError>> + Send;

    /// The CmCalls of `accounts` on `called` numbers starting in [from, to] (Unix
    /// seconds).
    fn cm_calls(
        &self,
        accounts: &BTreeSet<String>,
        called: &BTreeSet<String>,
        from: i64,
        to: i64,
    ) -> impl Future<Output = Result<Vec<Candidate>, StoreError>> + Send;

    /// The stored duplicates `which` names, each at its newest version.
    fn duplicates(
        &self,
        which: &Duplicates,
    ) -> impl Future<Output = Result<Vec<CallRecord>, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use phonenumber::country::Id;

    #[test]
    fn a_relink_checks_each_calls_newest_version() {
        let at = Utc::now();
        let number = schemas::E164::parse("+18885550100", Id::US).unwrap();
        let mut call = engine::enrich::test_call("a", at);
        call.called = Some(number);
        call.is_duplicate = true;
        call.match_method = Some(MatchMethod::Pending);
        let around = Duplicates::Around {
            accounts: ["acme".to_owned()].into(),
            called: ["+18885550100".to_owned()].into(),
            from: at.timestamp() - 60,
            to: at.timestamp() + 60,
        };
        let now = at.timestamp();
        assert!(around.holds(&call, now) && Duplicates::Pending.holds(&call, now));
        // Linked by an echoed id: certain, never relinked.
        let echoed = CallRecord {
            match_method: Some(MatchMethod::EchoedId),
            ..call.clone()
        };
        assert!(!around.holds(&echoed, now) && !Duplicates::Pending.holds(&echoed, now));
        // Another number, another time, or no longer a duplicate.
        let elsewhere = CallRecord {
            called: Some(schemas::E164::parse("+18885550199", Id::US).unwrap()),
            ..call.clone()
        };
        let later = CallRecord {
            started_at: at + chrono::Duration::seconds(61),
            ..call.clone()
        };
        let plain = CallRecord {
            is_duplicate: false,
            ..call.clone()
        };
        for other in [&elsewhere, &later, &plain] {
            assert!(!around.holds(other, now), "{other:?}");
        }
        // Pending for more than a day: the sweep has given up on it.
        let old = CallRecord {
            processed_at: at - chrono::Duration::days(2),
            ..call
        };
        assert!(!Duplicates::Pending.holds(&old, now));
    }
}
