//! The suppression list as the pipeline uses it (`schemas::suppression`): every
//! processor reads the compacted suppressions topic; the pipeline that meets an
//! erasure asked with `suppress` adds the caller at once (its partition decides
//! that caller's later records, in order after the order) and publishes the entry
//! once the batch is stored, for the instances that hold the partition later. A
//! lift (`SuppressionLift`) takes the caller off the same way, from the record
//! after it in the caller's partition, and is published as the entry's tombstone.

use std::collections::HashMap;

use chrono::Utc;
use runtime::table::CompactedTable;
use schemas::erasure::ErasureOrder;
use schemas::suppression::{caller_hash, key, Suppression, SuppressionLift};
use schemas::CallRecord;
use uuid::Uuid;

/// Where an order sits in the raw topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl At {
    pub fn of(record: &engine::batch::RawRecord<'_>) -> Self {
        Self {
            topic: record.topic.to_owned(),
            partition: record.partition,
            offset: record.offset,
        }
    }

    /// Whether this position comes after a call read from `raw`: the same topic
    /// and partition, an earlier offset. A record from elsewhere (a parked record
    /// back from the parking topic) counts as after.
    fn is_after(&self, raw: &schemas::call::RawPosition) -> bool {
        raw.topic == self.topic && raw.partition == self.partition && raw.offset < self.offset
    }
}

/// A change to the list a batch made, published in order once it is stored.
#[derive(Debug, Clone, PartialEq)]
pub enum ListChange {
    Add(Suppression),
    /// The key of a lifted entry: a tombstone.
    Lift(String),
}

/// A lift this pipeline met: its position, and the erasure that suppressed the
/// caller until then (for the caller's records before it in the same batch, also
/// when the batch is decided again).
#[derive(Debug, Clone)]
struct Lifted {
    at: At,
    erasure: Option<Uuid>,
}

#[derive(Clone)]
pub struct Suppressions {
    table: CompactedTable<Suppression>,
    /// Added by this pipeline and not read back from the topic yet.
    added: HashMap<String, Uuid>,
    /// Lifted by this pipeline and still on the topic as read.
    lifted: HashMap<String, Lifted>,
    hash_key: String,
}

impl Suppressions {
    pub fn new(table: CompactedTable<Suppression>, hash_key: String) -> Self {
        Self {
            table,
            added: HashMap::new(),
            lifted: HashMap::new(),
            hash_key,
        }
    }

    fn key_of(&self, account: &str, e164: &str) -> String {
        key(account, &caller_hash(&self.hash_key, account, e164))
    }

    /// The erasure that suppresses `e164` of `account` for a record read at `raw`
    /// (`None`: stored as sent).
    fn erasure_of(
        &self,
        account: &str,
        e164: &str,
        raw: &schemas::call::RawPosition,
    ) -> Option<Uuid> {
        if self.added.is_empty() && self.lifted.is_empty() && self.table.is_empty() {
            return None;
        }
        let key = self.key_of(account, e164);
        if let Some(erasure) = self.added.get(&key) {
            return Some(*erasure);
        }
        if let Some(lifted) = self.lifted.get(&key) {
            return lifted.erasure.filter(|_| lifted.at.is_after(raw));
        }
        self.table.get(&key).map(|s| s.erasure)
    }

    /// Forgets what the topic now says as well: entries added and read back, lifts
    /// whose tombstone was read back. Call before a batch's orders.
    pub fn settle(&mut self) {
        let table = &self.table;
        self.added
            .retain(|key, erasure| table.get(key).is_none_or(|s| s.erasure != *erasure));
        self.lifted.retain(|key, _| table.get(key).is_some());
    }

    /// Adds `order`'s caller (the order read at `at`); the entry to publish once
    /// the batch is stored. `None` when a lift later in the same batch took the
    /// caller off again.
    pub fn add(&mut self, order: &ErasureOrder, at: &At) -> Option<Suppression> {
        let entry = Suppression {
            account: order.account.clone(),
            caller_hash: caller_hash(&self.hash_key, &order.account, &order.number),
            erasure: order.id,
            requested_by: order.requested_by.clone(),
            requested_at: Utc::now(),
        };
        let key = entry.key();
        if let Some(lifted) = self.lifted.get(&key) {
            if lifted.at.topic == at.topic
                && lifted.at.partition == at.partition
                && lifted.at.offset > at.offset
            {
                return None;
            }
        }
        self.lifted.remove(&key);
        self.added.insert(key, entry.erasure);
        Some(entry)
    }

    /// Lifts `lift`'s caller (read at `at`): records after it are stored as sent.
    /// Call before [`apply`](Self::apply) of the batch that holds it. Returns the
    /// entry's key (to tombstone once the batch is stored) and whether the caller
    /// was suppressed.
    pub fn lift(&mut self, lift: &SuppressionLift, at: At) -> (String, bool) {
        let key = self.key_of(&lift.account, &lift.number);
        let erasure = match self.lifted.get(&key) {
            // Met again (the batch decided again): what suppressed it before.
            Some(earlier) if earlier.at == at => earlier.erasure,
            _ => self
                .added
                .get(&key)
                .copied()
                .or_else(|| self.table.get(&key).map(|s| s.erasure)),
        };
        self.added.remove(&key);
        self.lifted.insert(key.clone(), Lifted { at, erasure });
        (key, erasure.is_some())
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
            let Some(erasure) = self.erasure_of(&call.account, caller.as_str(), &call.raw) else {
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

    fn at(offset: i64) -> At {
        At {
            topic: "calls.raw".into(),
            partition: 3,
            offset,
        }
    }

    fn lift(account: &str, number: &str) -> SuppressionLift {
        SuppressionLift {
            id: Uuid::from_u128(8),
            account: account.into(),
            number: number.into(),
            requested_by: "test".into(),
            requested_at: Utc::now(),
        }
    }

    /// A call of acme's +14155552671 read at `offset` of partition 3.
    fn call_at(offset: i64) -> CallRecord {
        let mut call = call();
        call.account = "acme".into();
        call.caller =
            Some(schemas::E164::parse("+14155552671", phonenumber::country::Id::US).unwrap());
        call.raw.topic = "calls.raw".into();
        call.raw.partition = 3;
        call.raw.offset = offset;
        call
    }

    fn suppressed(list: &Suppressions, offsets: &[i64]) -> Vec<bool> {
        let mut calls: Vec<CallRecord> = offsets.iter().map(|o| call_at(*o)).collect();
        list.apply(&mut calls);
        calls.iter().map(|c| c.caller.is_none()).collect()
    }

    #[test]
    fn a_lift_frees_the_records_after_it_and_not_those_before() {
        let mut list = Suppressions::new(CompactedTable::fixed([]), "a-deployment-key".into());
        list.add(&order("acme", "+14155552671"), &at(10)).unwrap();
        assert_eq!(suppressed(&list, &[11, 12]), [true, true]);
        let (key, was) = list.lift(&lift("acme", "+14155552671"), at(20));
        assert!(was);
        assert!(!key.contains("4155552671"), "{key}");
        assert_eq!(suppressed(&list, &[19, 21]), [true, false]);
        // A parked record back after the lift is stored as sent.
        let mut parked = vec![call_at(5)];
        parked[0].raw.topic = "calls.parked".into();
        assert_eq!(list.apply(&mut parked), 0);
        // The batch decided again meets the lift again: the same answer.
        assert!(list.lift(&lift("acme", "+14155552671"), at(20)).1);
        assert_eq!(suppressed(&list, &[19, 21]), [true, false]);
        // Another account's caller, and a caller never suppressed: nothing to lift.
        assert!(!list.lift(&lift("globex", "+14155552671"), at(22)).1);
    }

    #[test]
    fn an_order_and_a_lift_in_one_batch_end_as_the_later_says() {
        // Lifts are met before the batch's calls, erasure orders after them.
        let mut list = Suppressions::new(CompactedTable::fixed([]), "k".into());
        list.lift(&lift("acme", "+14155552671"), at(20));
        assert!(
            list.add(&order("acme", "+14155552671"), &at(10)).is_none(),
            "the lift at 20 came after the order at 10"
        );
        assert_eq!(suppressed(&list, &[30]), [false]);
        let mut list = Suppressions::new(CompactedTable::fixed([]), "k".into());
        list.lift(&lift("acme", "+14155552671"), at(10));
        assert!(list.add(&order("acme", "+14155552671"), &at(20)).is_some());
        assert_eq!(suppressed(&list, &[30]), [true]);
    }

    #[test]
    fn what_the_topic_says_is_forgotten_by_the_pipeline() {
        let entry = Suppression {
            account: "acme".into(),
            caller_hash: caller_hash("k", "acme", "+14155552671"),
            erasure: Uuid::from_u128(7),
            requested_by: "test".into(),
            requested_at: Utc::now(),
        };
        // Added and read back: forgotten, the topic's entry suppresses.
        let table = CompactedTable::fixed([(entry.key(), entry.clone())]);
        let mut list = Suppressions::new(table, "k".into());
        list.add(&order("acme", "+14155552671"), &at(10)).unwrap();
        list.settle();
        assert!(list.added.is_empty());
        assert_eq!(suppressed(&list, &[11]), [true]);
        // Lifted while the topic still holds the entry: remembered until its
        // tombstone is read back.
        list.lift(&lift("acme", "+14155552671"), at(20));
        list.settle();
        assert_eq!(list.lifted.len(), 1);
        assert_eq!(suppressed(&list, &[21]), [false]);
        let mut list = Suppressions::new(CompactedTable::fixed([]), "k".into());
        list.lift(&lift("acme", "+14155552671"), at(20));
        list.settle();
        assert!(list.lifted.is_empty());
        assert_eq!(suppressed(&list, &[21]), [false]);
    }

    #[test]
    fn a_suppressed_callers_calls_are_stored_erased_and_others_are_not() {
        let mut list = Suppressions::new(CompactedTable::fixed([]), "a-deployment-key".into());
        let entry = list.add(&order("acme", "+14155552671"), &at(0)).unwrap();
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
