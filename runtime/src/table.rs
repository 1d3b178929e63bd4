//! A compacted Kafka topic read into memory by every instance: the latest value per
//! key, tailed from the beginning, with tombstones deleting. Integrations (see
//! `registry`), CallMatrix's managed numbers, poll cursors and poll status live in
//! tables like this; changes apply without a restart.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::message::Message;
use rdkafka::Offset;

use crate::kafka::{assigned_consumer, spawn_tail, ConsumerError, KafkaConfig};
use crate::shutdown::Shutdown;

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
    #[error("topic {topic} was not read to its end within {timeout:?}")]
    InitialLoad { topic: String, timeout: Duration },
}

type Snapshot<V> = Arc<HashMap<String, Arc<V>>>;

/// Cheap to clone; every clone sees the same live contents.
pub struct CompactedTable<V> {
    current: Arc<RwLock<Snapshot<V>>>,
    /// Bumped on every applied message, so readers can wait for a change. The table
    /// keeps the sender, so waiting on a fixed table times out instead of failing.
    changes: Arc<tokio::sync::watch::Sender<u64>>,
}

impl<V> Clone for CompactedTable<V> {
    fn clone(&self) -> Self {
        Self {
            current: self.current.clone(),
            changes: self.changes.clone(),
        }
    }
}

impl<V: Send + Sync + 'static> CompactedTable<V> {
    /// A table with fixed contents, for unit tests.
    pub fn fixed(entries: impl IntoIterator<Item = (String, V)>) -> Self {
        let map = entries.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        Self {
            current: Arc::new(RwLock::new(Arc::new(map))),
            changes: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }

    /// Reads `topic` to its current end, then keeps tailing it until `shutdown`.
    /// `decode` turns a message into a value; a message it refuses is logged, counted
    /// (`table_invalid_total{table}`) and skipped, keeping the previous value.
    pub async fn start(
        kafka: &KafkaConfig,
        topic: &str,
        name: &'static str,
        timeout: Duration,
        shutdown: Shutdown,
        decode: fn(&str, &[u8]) -> Result<V, String>,
    ) -> Result<Self, TableError> {
        let (consumer, marks) =
            assigned_consumer(kafka, name, topic, timeout, |_| Offset::Beginning).await?;
        let mut remaining: HashMap<i32, i64> = marks
            .iter()
            .filter(|m| m.high > m.low)
            .map(|m| (m.partition, m.high))
            .collect();
        let table = Self::fixed([]);
        let (loaded_tx, mut loaded_rx) = tokio::sync::watch::channel(remaining.is_empty());
        let (writer, changes) = (table.current.clone(), table.changes.clone());
        spawn_tail(consumer, shutdown, name, move |message| {
            apply(&writer, name, message.key(), message.payload(), decode);
            changes.send_modify(|n| *n += 1);
            if let Some(target) = remaining.get(&message.partition()) {
                if message.offset() + 1 >= *target {
                    remaining.remove(&message.partition());
                    if remaining.is_empty() {
                        let _ = loaded_tx.send(true);
                    }
                }
            }
        });
        let loaded = tokio::time::timeout(timeout, loaded_rx.wait_for(|done| *done))
            .await
            .is_ok_and(|r| r.is_ok());
        match loaded {
            true => {
                tracing::info!(topic, entries = table.len(), "{name} loaded");
                Ok(table)
            }
            false => Err(TableError::InitialLoad {
                topic: topic.to_owned(),
                timeout,
            }),
        }
    }
}

/// The `decode` of a table whose values are JSON documents.
pub fn json<V: serde::de::DeserializeOwned>(_key: &str, bytes: &[u8]) -> Result<V, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

impl<V> CompactedTable<V> {
    fn snapshot(&self) -> Snapshot<V> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<V>> {
        self.snapshot().get(key).cloned()
    }

    /// Every value, in key order.
    pub fn values(&self) -> Vec<Arc<V>> {
        let snapshot = self.snapshot();
        let mut entries: Vec<(&String, &Arc<V>)> = snapshot.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        entries.into_iter().map(|(_, v)| v.clone()).collect()
    }

    /// A receiver that wakes on every applied message.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn apply<V>(
    current: &RwLock<Snapshot<V>>,
    name: &'static str,
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    decode: fn(&str, &[u8]) -> Result<V, String>,
) {
    let Some(key) = key.and_then(|k| std::str::from_utf8(k).ok()) else {
        tracing::warn!(table = name, "message without a text key; ignored");
        metrics::counter!(crate::metric_names::TABLE_INVALID_TOTAL, "table" => name).increment(1);
        return;
    };
    let update = match payload.map(|bytes| decode(key, bytes)) {
        None => None,
        Some(Ok(value)) => Some(value),
        Some(Err(error)) => {
            tracing::error!(table = name, key, %error, "invalid entry; previous value kept");
            metrics::counter!(crate::metric_names::TABLE_INVALID_TOTAL, "table" => name)
                .increment(1);
            return;
        }
    };
    let mut guard = match current.write() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    // Changed in place unless a reader holds the snapshot right now (then it keeps
    // its copy and this one is copied once): a copy per message made loading N
    // entries cost N² (thousands of integrations took most of the start-up deadline).
    let next = Arc::make_mut(&mut *guard);
    match update {
        Some(value) => {
            tracing::debug!(table = name, key, "entry updated");
            next.insert(key.to_owned(), Arc::new(value))
        }
        None => {
            tracing::info!(table = name, key, "entry deleted");
            next.remove(key)
        }
    };
    metrics::gauge!(crate::metric_names::TABLE_ENTRIES, "table" => name).set(guard.len() as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(_: &str, bytes: &[u8]) -> Result<u32, String> {
        std::str::from_utf8(bytes)
            .map_err(|e| e.to_string())?
            .parse()
            .map_err(|e: std::num::ParseIntError| e.to_string())
    }

    #[test]
    fn latest_value_wins_tombstones_delete_and_bad_values_keep_the_old_one() {
        let table: CompactedTable<u32> = CompactedTable::fixed([]);
        apply(&table.current, "t", Some(b"a"), Some(b"1"), decode);
        apply(&table.current, "t", Some(b"a"), Some(b"2"), decode);
        assert_eq!(table.get("a").as_deref(), Some(&2));
        apply(&table.current, "t", Some(b"a"), Some(b"x"), decode);
        assert_eq!(table.get("a").as_deref(), Some(&2), "bad value ignored");
        apply(&table.current, "t", Some(b"a"), None, decode);
        assert!(table.get("a").is_none());
        apply(&table.current, "t", None, Some(b"3"), decode);
        assert!(table.is_empty());
    }

    /// Loading many entries copies nothing: each message changes the one map.
    #[test]
    fn entries_are_applied_in_place_while_nobody_reads() {
        let table: CompactedTable<u32> = CompactedTable::fixed([]);
        apply(&table.current, "t", Some(b"k0"), Some(b"0"), decode);
        let before = Arc::as_ptr(&table.snapshot());
        for n in 1..20_000 {
            let key = format!("k{n}");
            apply(
                &table.current,
                "t",
                Some(key.as_bytes()),
                Some(b"1"),
                decode,
            );
        }
        assert_eq!(table.len(), 20_000);
        assert_eq!(Arc::as_ptr(&table.snapshot()), before, "the map was copied");
        // A reader's snapshot stays as it was while the table moves on.
        let held = table.snapshot();
        apply(&table.current, "t", Some(b"new"), Some(b"2"), decode);
        assert_eq!(held.len(), 20_000);
        assert_eq!(table.len(), 20_001);
    }
}
