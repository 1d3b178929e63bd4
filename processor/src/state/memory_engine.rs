//! The keyed state in memory: the disk engine's twin for unit tests, and for
//! deployments that restore every partition from the changelog at start.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use super::kv::{EngineError, KeyValue, StateEngine, Write};

/// One raw partition's keys, in order (scans are by prefix).
type Partition = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Default)]
pub struct MemoryEngine {
    partitions: RwLock<HashMap<i32, Partition>>,
}

impl StateEngine for MemoryEngine {
    fn get(&self, partition: i32, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self
            .partitions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&partition)
            .and_then(|p| p.get(key).cloned()))
    }

    fn apply(&self, writes: &[(i32, Write)]) -> Result<(), EngineError> {
        let mut partitions = self
            .partitions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (partition, (key, value)) in writes {
            let entries = partitions.entry(*partition).or_default();
            match value {
                Some(value) => entries.insert(key.clone(), value.clone()),
                None => entries.remove(key),
            };
        }
        Ok(())
    }

    fn scan(
        &self,
        partition: i32,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, EngineError> {
        let partitions = self
            .partitions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(entries) = partitions.get(&partition) else {
            return Ok(Vec::new());
        };
        let start = match after {
            Some(after) => std::ops::Bound::Excluded(after.to_vec()),
            None => std::ops::Bound::Included(prefix.to_vec()),
        };
        Ok(entries
            .range((start, std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn clear(&self, partition: i32) -> Result<(), EngineError> {
        self.partitions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&partition);
        Ok(())
    }

    fn size_bytes(&self) -> u64 {
        self.partitions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .flat_map(|p| p.iter())
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum()
    }

    fn entries(&self, partition: i32) -> u64 {
        self.partitions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&partition)
            .map_or(0, |p| p.len() as u64)
    }
}
