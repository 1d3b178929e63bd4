//! The suppression list as the pipeline uses it (`schemas::suppression`): every
//! processor reads the compacted suppressions topic; the pipeline that meets an
//! erasure asked with `suppress` adds the caller at once (its partition decides
//! that caller's later records, in order after the order) and publishes the entry
//! once the batch is stored, for the instances that hold the partition later.

use std::collections::HashMap;

use chrono::Utc;
use runtime::table::CompactedTable;
use schemas::erasure::ErasureOrder;
use schemas::suppression::{caller_hash, key, Suppression};
use schemas::CallRecord;
use uuid::Uuid;

#[derive(Clone)]
pub struct Suppressions {
    table: CompactedTable<Suppression>,
    /// Added by this pipeline and perhaps not read back from the topic yet.
    added: HashMap<String, Uuid>,
    hash_key: String,
}

impl Suppressions {
    pub fn new(table: CompactedTable<Suppression>, hash_key: String) -> Self {
        Self {
            table,
            added: HashMap::new(),
            hash_key,
        }
    }

    /// The erasure that suppressed `e164` of `account`, if one did.
    fn erasure_of(&self, account: &str, e164: &str) -> Option<Uuid> {
        if self.added.is_empty() && self.table.is_empty() {
            return None;
        }
        let key = key(account, &caller_hash(&self.hash_key, account, e164));
        self.added
            .get(&key)
            .copied()
            .or_else(|| self.table.get(&key).map(|s| s.erasure))
    }

    /// Adds `order`'s caller; the entry to publish once the batch is stored.
    pub fn add(&mut self, order: &ErasureOrder) -> Suppression {
        let entry = Suppression {
            account: order.account.clone(),
            caller_hash: caller_hash(&self.hash_key, &order.account, &order.number),
            erasure: order.id,
            requested_by: order.requested_by.clone(),
            requested_at: Utc::now(),
        };
        self.added.insert(entry.key(), entry.erasure);
        entry
    }

    /// Stores each call of a suppressed caller erased (`schemas::erasure::erase_call`),
    /// before any decision reads its caller: it keeps no window, and its number is
    /// never written. Returns how many calls it changed.
    pub fn apply(&self, calls: &mut [CallRecord]) -> usize {
        let mut changed = 0;
        for call in calls {
            let Some(caller) = call.caller.as_ref() else {
                continue;
            };
            let Some(erasure) = self.erasure_of(&call.account, caller.as_str()) else {
                continue;
            };
            let Some(spellings) = schemas::erasure::spellings(caller.as_str()) else {
                continue;
            };
            schemas::erasure::erase_call(call, erasure, &spellings);
            changed += 1;
        }
        changed
    }
}

/// A suppression entry from the topic.
#[cfg(test)]
mod tests {
    use super::*;

    fn order(account: &str, number: &str) -> ErasureOrder {
        ErasureOrder {
            id: Uuid::from_u128(7),
            account: account.into(),
            number: number.into(),
            requested_by: "test".into(),
            requested_at: Utc::now(),
            clickhouse: true,
            suppress: true,
        }
    }

    fn call() -> CallRecord {
        engine::enrich::test_call("ar_1", Utc::now())
    }

    #[test]
    fn a_suppressed_callers_calls_are_stored_erased_and_others_are_not() {
        let mut list = Suppressions::new(CompactedTable::fixed([]), "a-deployment-key".into());
        let entry = list.add(&order("acme", "+14155552671"));
        assert!(!entry.caller_hash.contains("4155552671"));
        let mut calls = vec![call(), call()];
        calls[0].account = "acme".into();
        calls[0].caller =
            Some(schemas::E164::parse("+14155552671", phonenumber::country::Id::US).unwrap());
        calls[0].warnings = vec!["caller 415-555-2671 looked odd".into()];
        // The same number at another account is not suppressed.
        calls[1].account = "globex".into();
        calls[1].caller =
            Some(schemas::E164::parse("+14155552671", phonenumber::country::Id::US).unwrap());
        assert_eq!(list.apply(&mut calls), 1);
        assert_eq!(calls[0].caller, None);
        assert_eq!(
            calls[0].caller_hash.as_deref(),
            Some(schemas::erasure::erased_caller(Uuid::from_u128(7)).as_str())
        );
        assert!(
            !calls[0].warnings[0].contains("2671"),
            "{:?}",
            calls[0].warnings
        );
        assert!(calls[1].caller.is_some(), "another account's caller kept");
    }

    #[test]
    fn entries_read_from_the_topic_suppress_too() {
        let entry = Suppression {
            account: "acme".into(),
            caller_hash: caller_hash("k-0123456789abcdef", "acme", "+14155552671"),
            erasure: Uuid::from_u128(9),
            requested_by: "test".into(),
            requested_at: Utc::now(),
        };
        let list = Suppressions::new(
            CompactedTable::fixed([(entry.key(), entry)]),
            "k-0123456789abcdef".into(),
        );
        let mut calls = vec![call()];
        calls[0].account = "acme".into();
        calls[0].caller =
            Some(schemas::E164::parse("+14155552671", phonenumber::country::Id::US).unwrap());
        assert_eq!(list.apply(&mut calls), 1);
        assert!(calls[0].caller.is_none());
    }
}
