//! Callers' histories for the repeat decision: a moka cache in front of the stored
//! histories (ClickHouse's `calls_by_caller`, read by the processor's store). The cache is only a cache: this instance is the only writer of
//! the callers in its partitions (records are keyed by caller), it updates an entry
//! after writing, and it drops everything when the group rebalances, so a reload
//! from ClickHouse always gives the same answer the cache would have.

use std::collections::HashMap;
use std::sync::Arc;

use schemas::CallId;

use super::repeat::Visit;

/// One caller's calls, by id.
pub type History = Arc<HashMap<CallId, Visit>>;

pub struct Histories {
    cache: moka::sync::Cache<String, History>,
    rebalances_seen: u64,
}

impl Histories {
    pub fn new(max_callers: u64) -> Self {
        Self {
            cache: moka::sync::Cache::new(max_callers),
            rebalances_seen: 0,
        }
    }

    /// Drops every history when the group has rebalanced since the last call.
    pub fn observe_rebalances(&mut self, count: u64) {
        if count != self.rebalances_seen {
            self.cache.invalidate_all();
            self.rebalances_seen = count;
            metrics::counter!(crate::metric_names::PROCESSOR_HISTORY_RESETS_TOTAL).increment(1);
        }
    }

    /// Removes and returns a caller's history, so the caller can change it in place
    /// (`Arc::make_mut` without a copy) and `put` it back.
    pub fn take(&self, key: &str) -> Option<History> {
        let found = self.cache.remove(key);
        metrics::counter!(crate::metric_names::PROCESSOR_HISTORY_LOOKUPS_TOTAL,
            "result" => if found.is_some() { "hit" } else { "miss" }
        )
        .increment(1);
        found
    }

    pub fn put(&self, key: String, history: History) {
        self.cache.insert(key, history);
    }
}
