//! The reads of ClickHouse the processor still makes, behind one trait; everything
//! else a batch needs is in its keyed state (`crate::state`). Bounded by the batch,
//! never by the table:
//! - the stored versions of calls named by records without a caller whose call
//!   lives in a partition this instance does not hold (one lookup per such id);
//! - the histories of callers with a record older than the state keeps (a late
//!   record beyond the retention window), bounded by those callers;
//! - whether ClickHouse holds any call at all (once per partition, when its state
//!   was never built: a new deployment builds it empty).
//!
//! [`ClickHouseStore`] is the real one; [`MemoryStore`] is its in-memory twin for
//! unit tests.

mod clickhouse;
pub mod history;
mod memory;

use std::collections::HashMap;
use std::future::Future;

use schemas::{CallId, CallRecord, ClientId};

pub use self::clickhouse::ClickHouseStore;
pub use self::history::StoredHistories;
pub use self::memory::MemoryStore;

/// A read that failed (the ClickHouse client's error; whether it is worth another
/// try is its to say, see `runtime::retry`).
pub type StoreError = ::clickhouse::error::Error;

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

    /// The stored histories of `keys` (`(account, caller)`); a key with no stored
    /// call gets an empty history.
    fn histories(
        &self,
        keys: &[(String, String)],
    ) -> impl Future<Output = Result<StoredHistories, StoreError>> + Send;

    /// Whether any call is stored.
    fn has_calls(&self) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
