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
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, EngineError>;

    /// Bytes the store takes (on disk, or in memory for the twin).
    fn size_bytes(&self) -> u64;

    /// Entries kept for `partition` (approximate for the LSM store).
    fn entries(&self, partition: i32) -> u64;
}
