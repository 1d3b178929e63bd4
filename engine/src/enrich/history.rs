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
    cache: moka::sync::Cache<String, Held>,
    rebalances_seen: u64,
}

/// A history as the cache holds it. moka hands out clones of its values and drops
/// its own only later (its upkeep), so a `History` taken straight from it would
/// still be shared and `Arc::make_mut` would copy every visit of the caller, every
/// batch. The history sits in a slot instead, and `take` empties the slot: the
/// history it returns is the only reference.
#[derive(Clone)]
struct Held(Arc<std::sync::Mutex<Option<History>>>);

impl Held {
    fn new(history: History) -> Self {
        Self(Arc::new(std::sync::Mutex::new(Some(history))))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<History>> {
        // Nothing panics while holding it; a poisoned slot still holds its history.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Histories {
    /// At most `max_callers` histories and about `max_bytes` of them: a caller who
    /// called thousands of times weighs thousands of visits, so entries alone do not
    /// bound memory. Each history weighs its bytes, and at least
    /// `max_bytes / max_callers`, so one weighted capacity bounds both.
    pub fn new(max_callers: u64, max_bytes: u64) -> Self {
        let floor = max_bytes / max_callers.max(1);
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(move |key: &String, held: &Held| {
                    let weight = held.lock().as_ref().map_or(0, |h| weight(key, h));
                    u32::try_from(weight.max(floor)).unwrap_or(u32::MAX)
                })
                .build(),
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
        let found = self.cache.remove(key).and_then(|held| held.lock().take());
        metrics::counter!(crate::metric_names::PROCESSOR_HISTORY_LOOKUPS_TOTAL,
            "result" => if found.is_some() { "hit" } else { "miss" }
        )
        .increment(1);
        found
    }

    pub fn put(&self, key: String, history: History) {
        self.cache.insert(key, Held::new(history));
    }
}

/// About what a history holds in memory: its key, and per visit the map slot and the
/// visit's strings.
fn weight(key: &str, history: &History) -> u64 {
    const SLOT: usize = std::mem::size_of::<(CallId, Visit)>() + 16;
    let strings: usize = history
        .values()
        .map(|visit| {
            visit.client_id.as_str().len()
                + visit.campaign.as_ref().map_or(0, String::len)
                + visit.buyer.as_ref().map_or(0, String::len)
        })
        .sum();
    (key.len() + 64 + history.len() * SLOT + strings) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use schemas::ClientId;

    fn history(calls: u128) -> History {
        let client = ClientId::parse("arroyo").unwrap();
        Arc::new(
            (0..calls)
                .map(|n| {
                    let id = CallId(uuid::Uuid::from_u128(n + 1));
                    let visit = Visit {
                        id,
                        client_id: client.clone(),
                        started_at: Utc.timestamp_opt(1_790_000_000 + n as i64, 0).unwrap(),
                        campaign: Some("Auto Insurance CA".into()),
                        buyer: None,
                        connected: true,
                        qualified: true,
                        repeat_of: None,
                    };
                    (id, visit)
                })
                .collect(),
        )
    }

    #[test]
    fn a_taken_history_is_changed_in_place_not_copied() {
        let histories = Histories::new(1_000, 2_000_000);
        histories.put("acme|+14155550100".into(), history(5));
        let mut taken = histories.take("acme|+14155550100").unwrap();
        // A second reference (the cache's) would make `make_mut` copy every visit.
        assert_eq!(Arc::strong_count(&taken), 1);
        let before = Arc::as_ptr(&taken);
        Arc::make_mut(&mut taken).clear();
        assert_eq!(Arc::as_ptr(&taken), before, "copied");
        assert!(histories.take("acme|+14155550100").is_none());
    }

    #[test]
    fn callers_with_long_histories_are_bounded_in_bytes() {
        // 1,000 callers allowed, 2 MB: 50 callers of 2,000 calls each would hold
        // about 50 x 2,000 x 150 B = 15 MB if only callers counted.
        let histories = Histories::new(1_000, 2_000_000);
        let long = history(2_000);
        let one = weight("acme|+14155550000", &long);
        assert!(one > 200_000, "a 2,000-call history weighs {one}");
        for n in 0..50 {
            histories.put(format!("acme|+1415555{n:04}"), long.clone());
        }
        histories.cache.run_pending_tasks();
        let held = histories.cache.entry_count() * one;
        assert!(histories.cache.weighted_size() <= 2_000_000);
        assert!(
            held <= 2_000_000,
            "{} histories of {one} bytes",
            histories.cache.entry_count()
        );
        assert!(histories.cache.entry_count() >= 2);
    }

    #[test]
    fn short_histories_are_bounded_in_callers() {
        let histories = Histories::new(100, 256 * 1024 * 1024);
        let short = history(2);
        for n in 0..1_000 {
            histories.put(format!("acme|+1415555{n:04}"), short.clone());
        }
        histories.cache.run_pending_tasks();
        let callers = histories.cache.entry_count();
        assert!((50..=100).contains(&callers), "{callers} callers");
    }
}
