//! Where the keyed state is kept on this instance: a key-value store with atomic
//! batches, one namespace per raw partition. Two engines: an LSM store on disk
//! (`fjall`, chosen by measurement: docs/architecture.md, "Keyed state") and an
//! in-memory twin (unit tests, and deployments that restore from the changelog at
//! every start).

/// A store failed (the disk, or a corrupt file): the batch is not decided.
#[derive(Debug, thiserror::Error)]
#[error("the state store: {0}")]
pub struct EngineError(pub String);

/// One write of a batch: a value, or a deletion.
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// A stored key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

pub trait StateEngine: Send + Sync + 'static {
    fn get(&self, partition: i32, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError>;

    /// Every write of every partition, atomically.
    fn apply(&self, writes: &[(i32, Write)]) -> Result<(), EngineError>;

    /// Up to `limit` entries of `partition` whose keys start with `prefix`, from the
    /// first key after `after` (none: the first), in key order.
    fn scan(
        &self,
        partition: i32,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, EngineError>;

    /// Drops everything kept for `partition` (a local copy of another changelog).
    fn clear(&self, partition: i32) -> Result<(), EngineError>;

    /// Bytes the store takes (on disk, or in memory for the twin).
    fn size_bytes(&self) -> u64;

    /// Entries kept for `partition` (approximate for the LSM store).
    fn entries(&self, partition: i32) -> u64;

    /// Bytes of memory the store holds besides its block cache, where it knows
    /// them (the LSM store's memtables): the part of the process's memory that
    /// grows with writes not yet flushed.
    fn write_buffer_bytes(&self) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{FjallEngine, MemoryEngine};

    fn put(key: &str, value: &str) -> Write {
        (key.as_bytes().to_vec(), Some(value.as_bytes().to_vec()))
    }

    /// What both engines must do alike: atomic batches over partitions, deletions,
    /// prefix scans that go on after a key, and a partition dropped whole.
    fn behaves(engine: &dyn StateEngine) {
        engine
            .apply(&[
                (0, put("ka", "1")),
                (0, put("kb", "2")),
                (0, put("kc", "3")),
                (0, put("ma", "mark")),
                (1, put("ka", "other")),
            ])
            .unwrap();
        assert_eq!(engine.get(0, b"kb").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(
            engine.get(1, b"ka").unwrap().as_deref(),
            Some(&b"other"[..])
        );
        engine.apply(&[(0, (b"kb".to_vec(), None))]).unwrap();
        assert_eq!(engine.get(0, b"kb").unwrap(), None);
        let first = engine.scan(0, b"k", None, 1).unwrap();
        assert_eq!(first, vec![(b"ka".to_vec(), b"1".to_vec())]);
        let rest = engine.scan(0, b"k", Some(b"ka"), 10).unwrap();
        assert_eq!(rest, vec![(b"kc".to_vec(), b"3".to_vec())], "no `m` key");
        engine.clear(0).unwrap();
        assert_eq!(engine.get(0, b"ka").unwrap(), None);
        assert!(engine.scan(0, b"", None, 10).unwrap().is_empty());
        assert_eq!(
            engine.get(1, b"ka").unwrap().as_deref(),
            Some(&b"other"[..]),
            "another partition is kept"
        );
        engine.apply(&[(0, put("ka", "again"))]).unwrap();
        assert_eq!(
            engine.get(0, b"ka").unwrap().as_deref(),
            Some(&b"again"[..])
        );
    }

    #[test]
    fn the_memory_engine_keeps_partitions_apart_and_clears_one() {
        behaves(&MemoryEngine::default());
    }

    #[test]
    fn the_disk_engine_keeps_partitions_apart_and_clears_one() {
        let dir = tempfile::tempdir().unwrap();
        behaves(&FjallEngine::open(dir.path()).unwrap());
    }

    /// A partition with enough data that the store flushes it in the background,
    /// cleared and written again, twice. (The failure that made `clear` delete keys
    /// instead of the fjall partition, `PartitionDeleted` on every write after a
    /// clear, was seen in benches/load/history_scale.sh with 1.2 GB of state; this
    /// test does not reproduce it: it passes on the old `clear` too.)
    #[test]
    fn the_disk_engine_takes_writes_after_clearing_a_busy_partition() {
        let dir = tempfile::tempdir().unwrap();
        let engine = FjallEngine::open(dir.path()).unwrap();
        let value = vec![b'v'; 300];
        for round in 0..2 {
            for chunk in 0..20 {
                let writes: Vec<(i32, Write)> = (0..5_000)
                    .map(|n| {
                        let key = format!("k{round}-{chunk}-{n}").into_bytes();
                        (0, (key, Some(value.clone())))
                    })
                    .collect();
                engine.apply(&writes).unwrap();
            }
            engine.clear(0).unwrap();
            assert!(engine.scan(0, b"", None, 1).unwrap().is_empty());
            engine.apply(&[(0, put("after", "clear"))]).unwrap();
            assert_eq!(
                engine.get(0, b"after").unwrap().as_deref(),
                Some(&b"clear"[..]),
                "round {round}"
            );
        }
    }
}
