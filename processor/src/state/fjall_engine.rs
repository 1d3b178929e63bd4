//! The keyed state on disk: fjall, a log-structured merge tree. One fjall partition
//! per raw partition. Writes go to its journal without a sync per batch: the
//! changelog topic is the record, and each partition's checkpoint (the changelog
//! offset its data reflects) is written in the same atomic batch as the data, so a
//! crash that loses the journal's tail loses data and checkpoint together, and the
//! restore reads them back from the changelog.

use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;

use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle};

use super::kv::{EngineError, KeyValue, StateEngine, Write};

pub struct FjallEngine {
    keyspace: Keyspace,
    partitions: RwLock<HashMap<i32, PartitionHandle>>,
}

fn error(e: impl std::fmt::Display) -> EngineError {
    EngineError(e.to_string())
}

impl FjallEngine {
    pub fn open(dir: &Path) -> Result<Self, EngineError> {
        let keyspace = Config::new(dir)
            .cache_size(128 * 1024 * 1024)
            .open()
            .map_err(error)?;
        Ok(Self {
            keyspace,
            partitions: RwLock::default(),
        })
    }

    fn partition(&self, partition: i32) -> Result<PartitionHandle, EngineError> {
        if let Some(handle) = self
            .partitions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&partition)
        {
            return Ok(handle.clone());
        }
        let handle = self
            .keyspace
            .open_partition(
                &format!("raw-{partition}"),
                PartitionCreateOptions::default(),
            )
            .map_err(error)?;
        self.partitions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(partition, handle.clone());
        Ok(handle)
    }
}

impl StateEngine for FjallEngine {
    fn get(&self, partition: i32, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self
            .partition(partition)?
            .get(key)
            .map_err(error)?
            .map(|v| v.to_vec()))
    }

    fn apply(&self, writes: &[(i32, Write)]) -> Result<(), EngineError> {
        let mut batch = self.keyspace.batch();
        for (partition, (key, value)) in writes {
            let handle = self.partition(*partition)?;
            match value {
                Some(value) => batch.insert(&handle, key.as_slice(), value.as_slice()),
                None => batch.remove(&handle, key.as_slice()),
            }
        }
        batch.commit().map_err(error)
    }

    fn scan(
        &self,
        partition: i32,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, EngineError> {
        let handle = self.partition(partition)?;
        let mut found = Vec::new();
        let iter: Box<dyn Iterator<Item = fjall::Result<fjall::KvPair>>> = match after {
            Some(after) => Box::new(
                handle
                    .range((
                        std::ops::Bound::Excluded(after.to_vec()),
                        std::ops::Bound::Unbounded,
                    ))
                    .take_while(|kv| kv.as_ref().map_or(true, |(k, _)| k.starts_with(prefix))),
            ),
            None => Box::new(handle.prefix(prefix)),
        };
        for kv in iter.take(limit) {
            let (key, value) = kv.map_err(error)?;
            found.push((key.to_vec(), value.to_vec()));
        }
        Ok(found)
    }

    /// Deletes every key, in batches. Not `Keyspace::delete_partition`: a deleted
    /// partition cannot be opened again by its name while any handle to it lives
    /// (seen: every restore after a clear failed with `PartitionDeleted`).
    fn clear(&self, partition: i32) -> Result<(), EngineError> {
        const CHUNK: usize = 10_000;
        let handle = self.partition(partition)?;
        loop {
            let keys: Vec<fjall::Slice> = handle
                .keys()
                .take(CHUNK)
                .collect::<Result<_, _>>()
                .map_err(error)?;
            if keys.is_empty() {
                return Ok(());
            }
            let mut batch = self.keyspace.batch();
            for key in &keys {
                batch.remove(&handle, key.clone());
            }
            batch.commit().map_err(error)?;
        }
    }

    fn size_bytes(&self) -> u64 {
        self.keyspace.disk_space()
    }

    fn write_buffer_bytes(&self) -> Option<u64> {
        Some(self.keyspace.write_buffer_size())
    }

    fn entries(&self, partition: i32) -> u64 {
        self.partition(partition)
            .map(|h| h.approximate_len() as u64)
            .unwrap_or(0)
    }
}
