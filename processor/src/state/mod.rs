//! The processor's keyed state: what a batch needs to be decided, kept beside the
//! raw partitions this instance owns, as Kafka Streams and Flink keep theirs, so a
//! batch costs the same whether ClickHouse holds a thousand calls or a billion.
//!
//! Per raw partition (the partition of each caller's key):
//! - `c` + call id → the call as stored (what a later record merges over, what a
//!   repeat re-decision or a link updates);
//! - `h` + the caller's name (a keyed hash of its caller key, never the number:
//!   [`CallerNames`]) → the caller's calls within the retention window and the
//!   CallMatrix calls routed from it (`engine::state::CallerState`);
//! - `m` + name → bookkeeping: `built` (the partition's state is complete: made
//!   empty for a new deployment, or by `cmctl state build` from an existing
//!   database), `watermark` (the newest start seen: windows expire behind it),
//!   `callernames` (the fingerprint of the key callers are named by), and,
//!   locally only, `checkpoint` (the changelog offset the local copy reflects).
//!
//! A new caller or a new call id costs no read at all: what is not in the state does
//! not exist (the state is complete for the retention window). The only reads of
//! ClickHouse left in a batch are for records without a caller whose call lives in a
//! partition this instance does not hold, bounded by the batch.
//!
//! A batch's changes are read by the batches decided after it at once (held beside
//! the local copy, [`Unlogged`]), and go to the local copy only once written to the
//! changelog (`changelog`), before the batch's raw offsets are committed: a batch
//! undone before that (the process killed, a store that failed and restarted the
//! pipeline, a rebalance) leaves no trace in the local copy. Given
//! a partition (at start, after a rebalance), an instance first catches up from the
//! changelog, from its local checkpoint (a copy still valid) or from the start, and
//! only then decides its records. A batch replayed after a crash meets a state that
//! may already hold its own effects, as it met ClickHouse before: writes are by id
//! and versions only go up, so it decides the same.

mod build;
mod caller_names;
mod changelog;
mod fjall_engine;
mod kv;
mod memory_engine;
pub mod standby;

#[cfg(test)]
#[path = "copy_age_test.rs"]
mod copy_age_test;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use engine::state::CallerState;
use schemas::{CallId, CallRecord};

use changelog::ChangelogEntry;

pub use self::build::{build, BuildError, BuildProgress};
pub use self::caller_names::CallerNames;
use self::caller_names::{CALLER, CLEAR_CALLER};
pub use self::changelog::{Changelog, ChangelogError};
pub use self::fjall_engine::FjallEngine;
pub use self::kv::{EngineError, StateEngine};
pub use self::memory_engine::MemoryEngine;

const CALL: u8 = b'c';
// Bookkeeping keys start with `m`.
const BUILT: &[u8] = b"mbuilt";
const WATERMARK: &[u8] = b"mwatermark";
const CALLER_NAMES: &[u8] = b"mcallernames";
/// Local only: never logged.
const CHECKPOINT: &[u8] = b"mcheckpoint";
/// Local only: when the checkpoint was last written (seconds since the epoch, this
/// host's clock). A copy older than the changelog keeps tombstones is not valid.
const CHECKPOINT_AT: &[u8] = b"mcheckpointat";
/// Of the changelog's tombstone retention, how much a copy may have been caught up
/// before now to be caught up from its checkpoint: an hour less, for clocks and
/// for the time a restore takes.
const COPY_MAX_AGE: std::time::Duration =
    std::time::Duration::from_millis(schemas::topics::STATE_DELETE_RETENTION_MS - 3_600_000);
/// How many times, and how far apart, a changelog's end is asked for before a
/// local copy ahead of it is dropped (`KeyedState::valid_checkpoint`).
const END_CHECKS: u32 = 10;
const END_CHECK_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Changelog(#[from] ChangelogError),
    #[error("partition {partition}: {message}")]
    Corrupt { partition: i32, message: String },
    /// ClickHouse has calls but the changelog has no state for the partition: a
    /// deployment from before the keyed state. Deciding without it would take every
    /// stored caller for a new one.
    #[error(
        "the state of raw partition {partition} was never built, and ClickHouse holds calls: \
         run `cmctl state build` once (docs/architecture.md, \"Keyed state\")"
    )]
    NotBuilt { partition: i32 },
    /// The partition's callers are named by another key than `retention.hash_key`
    /// is now: deciding with this one would take every kept caller for a new one.
    #[error(
        "the state of raw partition {partition} names its callers by another \
         retention.hash_key than this processor has: set the key it was written with, or \
         build the state again under this one (`cmctl state build --hash-key`, processors \
         stopped; docs/privacy.md, \"Keyed state\")"
    )]
    CallerNamesChanged { partition: i32 },
}

impl runtime::retry::Retryable for StateError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Changelog(error) => runtime::retry::Retryable::is_transient(error),
            Self::Engine(_)
            | Self::Corrupt { .. }
            | Self::NotBuilt { .. }
            | Self::CallerNamesChanged { .. } => false,
        }
    }
}

/// The local writes recording that `partition`'s copy reflects its changelog up to
/// (not including) `next`, as of now.
fn checkpoint_writes(partition: i32, next: i64) -> [(i32, kv::Write); 2] {
    [
        (
            partition,
            (CHECKPOINT.to_vec(), Some(next.to_be_bytes().to_vec())),
        ),
        (
            partition,
            (
                CHECKPOINT_AT.to_vec(),
                Some(Utc::now().timestamp().to_be_bytes().to_vec()),
            ),
        ),
    ]
}

fn call_key(id: CallId) -> Vec<u8> {
    let mut key = Vec::with_capacity(17);
    key.push(CALL);
    key.extend_from_slice(id.0.as_bytes());
    key
}

/// Where a partition stands on this instance.
#[derive(Debug, Clone)]
struct Ready {
    /// The group rebalance count it was caught up at: after another rebalance it
    /// may have had another owner meanwhile, and is caught up again.
    at_rebalance: u64,
    /// The changelog offset after the last entry the local copy reflects.
    checkpoint: i64,
    /// The newest start seen: windows expire `retention` behind it.
    watermark: DateTime<Utc>,
    /// Where the expiry sweep goes on from (a caller key).
    sweep_after: Option<Vec<u8>>,
}

/// What one batch changes, for the changelog; read by later batches meanwhile.
#[derive(Debug, Default)]
pub struct Staged {
    entries: Vec<ChangelogEntry>,
    /// The rebalance count the batch was decided at: if it moved, the batch's
    /// partitions may be another instance's now, and its entries are not written.
    rebalance: u64,
    /// Its place among the staged batches (`Unlogged`).
    seq: u64,
}

/// The changes of batches decided but not yet in the changelog: what later batches
/// read over the local copy. Never written to the local copy before they are
/// logged: a batch decided and then undone (killed before its calls were stored, a
/// failed store that restarted the pipeline) is decided again over the state its
/// stored calls were decided over. Held in the copy, it made the same batch decided
/// again find its own undone versions, so a moved call's old position was never
/// retired (found by the cluster kill test). At most the batches in flight (two).
#[derive(Debug, Default)]
struct Unlogged {
    next_seq: u64,
    entries: HashMap<StateKey, StagedValue>,
}

/// A key of one partition's state.
type StateKey = (i32, Vec<u8>);
/// The batch that wrote a key last, and its value (`None`: deleted).
type StagedValue = (u64, Option<Vec<u8>>);

impl Unlogged {
    /// Drops what batches up to `seq` wrote (kept where a later batch wrote again).
    fn drop_through(&mut self, seq: u64) {
        self.entries.retain(|_, (by, _)| *by > seq);
    }
}

impl Staged {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What a batch writes to the state: the calls' new versions and every touched
/// caller's state after the batch, each in its caller's partition.
#[derive(Debug, Default)]
pub struct BatchWrites {
    pub calls: Vec<(i32, CallRecord)>,
    pub callers: Vec<(i32, String, CallerState)>,
}

pub struct KeyedState {
    engine: Arc<dyn StateEngine>,
    names: CallerNames,
    changelog: Arc<Changelog>,
    retention: Duration,
    sweep_per_batch: usize,
    ready: Arc<Mutex<HashMap<i32, Ready>>>,
    unlogged: Arc<Mutex<Unlogged>>,
    /// Held (exclusively) while a batch's entries are written: a restore (shared:
    /// partitions restore side by side) waits for it, so it never reads the
    /// changelog while this instance's own writes are in flight.
    writing: Arc<tokio::sync::RwLock<()>>,
    /// Held while a restore decides whether to mark a new deployment's partitions.
    marking: Arc<tokio::sync::Mutex<()>>,
    /// One per partition, held while its local copy is caught up (a restore, a
    /// standby's follow): two readers of one partition's changelog at once could
    /// leave the copy's checkpoint behind entries it holds.
    catching_up: Arc<Mutex<HashMap<i32, Arc<tokio::sync::Mutex<()>>>>>,
}

impl KeyedState {
    /// On disk under `dir` (fjall), or in memory when `dir` is empty.
    pub fn open(
        dir: &str,
        changelog: Changelog,
        names: CallerNames,
        retention_days: u32,
        sweep_per_batch: usize,
    ) -> Result<Self, StateError> {
        let engine: Arc<dyn StateEngine> = if dir.is_empty() {
            Arc::new(MemoryEngine::default())
        } else {
            Arc::new(FjallEngine::open(Path::new(dir))?)
        };
        Ok(Self::with_engine(
            engine,
            changelog,
            names,
            retention_days,
            sweep_per_batch,
        ))
    }

    pub fn with_engine(
        engine: Arc<dyn StateEngine>,
        changelog: Changelog,
        names: CallerNames,
        retention_days: u32,
        sweep_per_batch: usize,
    ) -> Self {
        Self {
            engine,
            names,
            changelog: Arc::new(changelog),
            retention: Duration::days(i64::from(retention_days)),
            sweep_per_batch,
            ready: Arc::default(),
            unlogged: Arc::default(),
            writing: Arc::default(),
            marking: Arc::default(),
            catching_up: Arc::default(),
        }
    }

    fn catching_up(&self, partition: i32) -> Arc<tokio::sync::Mutex<()>> {
        self.catching_up
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(partition)
            .or_default()
            .clone()
    }

    fn lock_ready(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Ready>> {
        self.ready
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_unlogged(&self) -> std::sync::MutexGuard<'_, Unlogged> {
        self.unlogged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `key` of `partition` as the next batch must see it: a staged batch's value
    /// over the local copy's.
    fn get(&self, partition: i32, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        if let Some((_, value)) = self.lock_unlogged().entries.get(&(partition, key.to_vec())) {
            return Ok(value.clone());
        }
        Ok(self.engine.get(partition, key)?)
    }

    /// The partitions whose state is caught up for rebalance `rebalance`.
    pub fn is_ready(&self, partition: i32, rebalance: u64) -> bool {
        self.lock_ready()
            .get(&partition)
            .is_some_and(|r| r.at_rebalance == rebalance)
    }

    /// Catches `partition` up with the changelog (from the local checkpoint) for
    /// rebalance `rebalance`. `clickhouse_is_empty` is asked only when the
    /// partition's state was never built: empty, it is built now (a new
    /// deployment); else the partition cannot be decided yet.
    pub async fn restore(
        &self,
        partition: i32,
        rebalance: u64,
        clickhouse_is_empty: impl std::future::Future<Output = bool>,
    ) -> Result<(), StateError> {
        let started = Instant::now();
        let catching_up = self.catching_up(partition);
        let _catching_up = catching_up.lock().await;
        // Never while this instance's own entries are in flight.
        let _writing = self.writing.read().await;
        let checkpoint = self.valid_checkpoint(partition).await?;
        let (mut next, mut entries) = self.read_changelog(partition, checkpoint).await?;
        if self.engine.get(partition, BUILT)?.is_none() {
            // One restore at a time marks a new deployment; the others find its marks.
            let _marking = self.marking.lock().await;
            let (after, more) = self.read_changelog(partition, next).await?;
            next = after;
            entries += more;
            if self.engine.get(partition, BUILT)?.is_none() && clickhouse_is_empty.await {
                // A new deployment: every partition's state is complete, empty. All of
                // them are marked now, before this instance writes any call, so an
                // instance starting beside it never sees calls without the mark.
                let changelog = self.changelog.clone();
                let count = tokio::task::spawn_blocking(move || changelog.partitions())
                    .await
                    .map_err(|e| StateError::Corrupt {
                        partition,
                        message: e.to_string(),
                    })??;
                let marks: Vec<ChangelogEntry> = (0..count)
                    .flat_map(|p| {
                        [
                            (p, CALLER_NAMES.to_vec(), Some(self.names.fingerprint())),
                            (p, BUILT.to_vec(), Some(b"1".to_vec())),
                        ]
                    })
                    .collect();
                self.changelog.write(&marks).await?;
                tracing::info!(
                    partitions = count,
                    "keyed state built empty (ClickHouse has no calls)"
                );
            }
            // The mark, written by this instance now or by another meanwhile.
            let (after, more) = self.read_changelog(partition, next).await?;
            next = after;
            entries += more;
            if self.engine.get(partition, BUILT)?.is_none() {
                return Err(StateError::NotBuilt { partition });
            }
        }
        let (after, more) = self.rename_callers(partition, next).await?;
        next = after;
        entries += more;
        let seconds = started.elapsed().as_secs_f64();
        metrics::histogram!(crate::metric_names::PROCESSOR_STATE_RESTORE_SECONDS).record(seconds);
        metrics::counter!(crate::metric_names::PROCESSOR_STATE_RESTORED_ENTRIES_TOTAL)
            .increment(entries);
        tracing::info!(
            partition,
            from = checkpoint,
            to = next,
            entries,
            seconds,
            "keyed state caught up with its changelog"
        );
        self.mark_ready(partition, rebalance, next)
    }

    /// A standby's step: catches the local copy of `partition` up with its
    /// changelog while another instance owns it, so that taking it over later reads
    /// only what was written since (`restore` starts at the local checkpoint).
    /// Skipped when `owned` says this instance decides its records now (its own
    /// writes keep its copy). Returns the entries read.
    ///
    /// It does not wait for this instance's own writes (`writing`), as a restore
    /// does: it never follows a partition this instance decides, and a revoked
    /// partition's last writes, if they land, are the changelog's entries read
    /// again in order, which leaves the copy as the changelog's end has it.
    pub async fn follow(
        &self,
        partition: i32,
        owned: impl Fn(i32) -> bool,
    ) -> Result<u64, StateError> {
        let catching_up = self.catching_up(partition);
        let _catching_up = catching_up.lock().await;
        if owned(partition) {
            return Ok(0);
        }
        let checkpoint = self.valid_checkpoint(partition).await?;
        let (_, entries) = self.read_changelog(partition, checkpoint).await?;
        metrics::counter!(crate::metric_names::PROCESSOR_STATE_STANDBY_ENTRIES_TOTAL)
            .increment(entries);
        if entries > 0 {
            self.report_size(partition);
        }
        Ok(entries)
    }

    /// The changelog's partition count (the raw topic's).
    pub async fn partitions(&self) -> Result<i32, StateError> {
        let changelog = self.changelog.clone();
        tokio::task::spawn_blocking(move || changelog.partitions())
            .await
            .map_err(|e| StateError::Corrupt {
                partition: -1,
                message: e.to_string(),
            })?
            .map_err(StateError::from)
    }

    /// Checks that `partition` names its callers by this processor's key, and renames
    /// the callers of a state from before the hashed names (each `k` entry becomes
    /// an `h` entry and a tombstone, through the changelog), recording the key's
    /// fingerprint. Returns where the changelog was read to and the entries read.
    async fn rename_callers(&self, partition: i32, from: i64) -> Result<(i64, u64), StateError> {
        const CHUNK: usize = 10_000;
        let fingerprint = self.names.fingerprint();
        match self.engine.get(partition, CALLER_NAMES)? {
            Some(recorded) if recorded == fingerprint => return Ok((from, 0)),
            Some(_) => return Err(StateError::CallerNamesChanged { partition }),
            None => {}
        }
        let (mut next, mut read) = (from, 0);
        let mut renamed = 0_u64;
        loop {
            let clear = self.engine.scan(partition, &[CLEAR_CALLER], None, CHUNK)?;
            let last = clear.len() < CHUNK;
            let mut entries: Vec<ChangelogEntry> = Vec::with_capacity(2 * clear.len() + 1);
            for (key, value) in clear {
                let name = String::from_utf8_lossy(&key[1..]).into_owned();
                entries.push((partition, self.names.key(&name), Some(value)));
                entries.push((partition, key, None));
                renamed += 1;
            }
            if last {
                entries.push((partition, CALLER_NAMES.to_vec(), Some(fingerprint.clone())));
            }
            self.changelog.write(&entries).await?;
            let (after, more) = self.read_changelog(partition, next).await?;
            next = after;
            read += more;
            if last {
                break;
            }
        }
        if renamed > 0 {
            tracing::info!(
                partition,
                callers = renamed,
                "keyed state: callers renamed by their hashed names"
            );
        }
        Ok((next, read))
    }

    /// Reads `partition`'s changelog from `from` into the local copy.
    async fn read_changelog(&self, partition: i32, from: i64) -> Result<(i64, u64), StateError> {
        let (engine, changelog) = (self.engine.clone(), self.changelog.clone());
        tokio::task::spawn_blocking(move || restore_blocking(&*engine, &changelog, partition, from))
            .await
            .map_err(|e| StateError::Corrupt {
                partition,
                message: format!("restore stopped: {e}"),
            })?
    }

    fn mark_ready(
        &self,
        partition: i32,
        rebalance: u64,
        checkpoint: i64,
    ) -> Result<(), StateError> {
        let watermark = self
            .engine
            .get(partition, WATERMARK)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(i64::from_be_bytes)
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .unwrap_or(DateTime::UNIX_EPOCH);
        self.lock_ready().insert(
            partition,
            Ready {
                at_rebalance: rebalance,
                checkpoint,
                watermark,
                sweep_after: None,
            },
        );
        self.report_size(partition);
        Ok(())
    }

    /// The local copy's checkpoint, if the copy is of this changelog: one whose
    /// checkpoint lies past the changelog's end was made from another (a topic
    /// deleted and made again, a state directory copied from elsewhere), and is
    /// dropped, to be restored from the start.
    async fn valid_checkpoint(&self, partition: i32) -> Result<i64, StateError> {
        let checkpoint = self.local_checkpoint(partition)?;
        if checkpoint == 0 {
            return Ok(0);
        }
        // Compaction may have removed, since, the tombstones of what was deleted
        // after the copy's checkpoint (an erased caller would come back).
        let caught_up_at = self
            .engine
            .get(partition, CHECKPOINT_AT)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(i64::from_be_bytes)
            .and_then(|s| DateTime::from_timestamp(s, 0));
        let max_age = Duration::from_std(COPY_MAX_AGE).unwrap_or(Duration::MAX);
        let too_old = caught_up_at.is_none_or(|at| Utc::now() - at > max_age);
        if too_old {
            tracing::warn!(
                partition,
                checkpoint,
                caught_up_at = %caught_up_at.map_or("never recorded".to_owned(), |at| at.to_rfc3339()),
                "the local state was caught up longer ago than the changelog keeps its tombstones (delete.retention.ms): dropped, restoring from the start"
            );
            metrics::counter!(crate::metric_names::PROCESSOR_STATE_COPIES_DROPPED_TOTAL, "why" => "too_old").increment(1);
            self.engine.clear(partition)?;
            return Ok(0);
        }
        // A broker may report an end a few offsets behind what it acknowledged
        // (tansu 0.6 with memory storage did, for seconds, and a valid copy was
        // dropped and restored from the start): asked again for a while before the
        // copy is taken for another changelog's.
        let mut end = 0;
        for attempt in 0..END_CHECKS {
            let changelog = self.changelog.clone();
            end = tokio::task::spawn_blocking(move || changelog.end(partition))
                .await
                .map_err(|e| StateError::Corrupt {
                    partition,
                    message: e.to_string(),
                })??;
            if checkpoint <= end {
                return Ok(checkpoint);
            }
            if attempt + 1 < END_CHECKS {
                tokio::time::sleep(END_CHECK_WAIT).await;
            }
        }
        tracing::warn!(
            partition,
            checkpoint,
            end,
            "the local state is ahead of its changelog (made from another one): dropped, restoring from the start"
        );
        metrics::counter!(crate::metric_names::PROCESSOR_STATE_COPIES_DROPPED_TOTAL, "why" => "ahead").increment(1);
        self.engine.clear(partition)?;
        Ok(0)
    }

    fn local_checkpoint(&self, partition: i32) -> Result<i64, StateError> {
        Ok(self
            .engine
            .get(partition, CHECKPOINT)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(i64::from_be_bytes)
            .unwrap_or(0))
    }

    /// What `partition` keeps calls from: those that started at or after it (the
    /// newest start seen, less the retention).
    pub fn horizon(&self, partition: i32) -> DateTime<Utc> {
        self.lock_ready()
            .get(&partition)
            .map_or(DateTime::UNIX_EPOCH, |r| r.watermark - self.retention)
    }

    /// The stored versions of `ids` this instance's ready partitions hold.
    pub fn calls(&self, ids: &[CallId]) -> Result<HashMap<CallId, CallRecord>, StateError> {
        let partitions: Vec<i32> = self.lock_ready().keys().copied().collect();
        let mut found = HashMap::new();
        for id in ids {
            if found.contains_key(id) {
                continue;
            }
            let key = call_key(*id);
            for partition in &partitions {
                if let Some(bytes) = self.get(*partition, &key)? {
                    let call: CallRecord =
                        serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
                            partition: *partition,
                            message: format!("call {}: {e}", id.0),
                        })?;
                    found.insert(*id, call);
                    break;
                }
            }
        }
        Ok(found)
    }

    /// The kept state of each `(partition, caller key)`; a caller not kept is new.
    pub fn callers(
        &self,
        keys: &[(i32, String)],
    ) -> Result<HashMap<String, CallerState>, StateError> {
        let mut found = HashMap::new();
        for (partition, key) in keys {
            let state = match self.get(*partition, &self.names.key(key))? {
                Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
                    partition: *partition,
                    message: format!("caller {key}: {e}"),
                })?,
                None => CallerState::default(),
            };
            found.insert(key.clone(), state);
        }
        Ok(found)
    }

    /// Stages a batch's writes (the next batch reads them; the local copy takes them
    /// once logged), with
    /// expiry: each touched caller loses what started before its partition's horizon
    /// (and those calls go), and `sweep_per_batch` other callers are checked the
    /// same way. Returns the entries for the changelog.
    pub fn stage(&self, writes: BatchWrites, rebalance: u64) -> Result<Staged, StateError> {
        let now = Utc::now();
        let mut entries: Vec<ChangelogEntry> = Vec::new();
        let mut ready = self.lock_ready();
        // Watermarks first: the batch's newest starts move them (never past now + 1
        // day: a partner's clock error must not expire everyone's calls).
        let cap = now + Duration::days(1);
        let mut moved: BTreeSet<i32> = BTreeSet::new();
        for (partition, call) in &writes.calls {
            if let Some(r) = ready.get_mut(partition) {
                let start = call.started_at.min(cap);
                if start > r.watermark {
                    r.watermark = start;
                    moved.insert(*partition);
                }
            }
        }
        for partition in &moved {
            let seconds = ready[partition].watermark.timestamp();
            entries.push((
                *partition,
                WATERMARK.to_vec(),
                Some(seconds.to_be_bytes().to_vec()),
            ));
        }
        let horizon = |ready: &HashMap<i32, Ready>, partition: i32| {
            ready
                .get(&partition)
                .map_or(DateTime::UNIX_EPOCH, |r| r.watermark - self.retention)
        };
        let mut expired_calls: Vec<(i32, CallId)> = Vec::new();
        let mut written_callers: BTreeSet<(i32, Vec<u8>)> = BTreeSet::new();
        for (partition, key, mut state) in writes.callers {
            let value = expired(
                partition,
                &mut state,
                horizon(&ready, partition),
                &mut expired_calls,
            )?;
            let key = self.names.key(&key);
            written_callers.insert((partition, key.clone()));
            entries.push((partition, key, value));
        }
        for (partition, call) in &writes.calls {
            if call.started_at < horizon(&ready, *partition) {
                // Older than the window: kept in ClickHouse only.
                continue;
            }
            let value = serde_json::to_vec(call).map_err(|e| StateError::Corrupt {
                partition: *partition,
                message: e.to_string(),
            })?;
            entries.push((*partition, call_key(call.id), Some(value)));
        }
        // The sweep: callers not touched by this batch, a few at a time.
        let partitions: Vec<i32> = ready.keys().copied().collect();
        for partition in partitions {
            let horizon = horizon(&ready, partition);
            if horizon <= DateTime::UNIX_EPOCH {
                continue;
            }
            let after = ready.get(&partition).and_then(|r| r.sweep_after.clone());
            let scanned =
                self.engine
                    .scan(partition, &[CALLER], after.as_deref(), self.sweep_per_batch)?;
            let next = if scanned.len() < self.sweep_per_batch {
                None
            } else {
                scanned.last().map(|(k, _)| k.clone())
            };
            let staged_before = self.lock_unlogged();
            for (key, bytes) in scanned {
                // A caller a batch in flight wrote was expired then, and its
                // copy here is older than what the next batch reads.
                if written_callers.contains(&(partition, key.clone()))
                    || staged_before
                        .entries
                        .contains_key(&(partition, key.clone()))
                {
                    continue;
                }
                let Ok(mut state) = serde_json::from_slice::<CallerState>(&bytes) else {
                    continue;
                };
                let stale = state.visits.iter().any(|v| v.started_at < horizon)
                    || state.cm_calls.iter().any(|c| c.started_at < horizon);
                if !stale {
                    continue;
                }
                let value = expired(partition, &mut state, horizon, &mut expired_calls)?;
                entries.push((partition, key, value));
            }
            drop(staged_before);
            if let Some(r) = ready.get_mut(&partition) {
                r.sweep_after = next;
            }
        }
        if !expired_calls.is_empty() {
            metrics::counter!(crate::metric_names::PROCESSOR_STATE_EXPIRED_TOTAL)
                .increment(expired_calls.len() as u64);
        }
        entries.extend(
            expired_calls
                .into_iter()
                .map(|(partition, id)| (partition, call_key(id), None)),
        );
        drop(ready);
        let mut unlogged = self.lock_unlogged();
        unlogged.next_seq += 1;
        let seq = unlogged.next_seq;
        for (partition, key, value) in &entries {
            unlogged
                .entries
                .insert((*partition, key.clone()), (seq, value.clone()));
        }
        Ok(Staged {
            entries,
            rebalance,
            seq,
        })
    }

    /// Writes a staged batch to the changelog (before its raw offsets are committed),
    /// then to the local copy with each partition's checkpoint past it, in one
    /// write. Not written when the group has
    /// rebalanced since the batch was decided (`rebalance_now` moved): the batch is
    /// then left uncommitted, and its partitions' next owner decides it again. A
    /// partition whose entries did not land right after its checkpoint (another
    /// writer, or a retried send that wrote some of them twice) is caught up again
    /// before its next batch.
    pub async fn log(&self, staged: &Staged, rebalance_now: u64) -> Result<(), StateError> {
        if staged.entries.is_empty() {
            return Ok(());
        }
        let _writing = self.writing.write().await;
        if rebalance_now != staged.rebalance {
            // Not committed either (the pipeline checks the same count).
            tracing::info!(
                "the group rebalanced since the batch was decided; its state is not logged"
            );
            self.lock_ready().clear();
            self.lock_unlogged().drop_through(staged.seq);
            return Ok(());
        }
        let written = self.changelog.write(&staged.entries).await?;
        let mut first: BTreeMap<i32, i64> = BTreeMap::new();
        let mut last: BTreeMap<i32, i64> = BTreeMap::new();
        for (partition, offset) in written {
            first.entry(partition).or_insert(offset);
            last.insert(partition, offset);
        }
        let mut local: Vec<(i32, kv::Write)> = staged
            .entries
            .iter()
            .map(|(p, k, v)| (*p, (k.clone(), v.clone())))
            .collect();
        let mut checkpoints = Vec::new();
        {
            let mut ready = self.lock_ready();
            for (partition, last) in &last {
                let Some(r) = ready.get_mut(partition) else {
                    continue;
                };
                if first.get(partition) == Some(&r.checkpoint) {
                    r.checkpoint = last + 1;
                    checkpoints.push(*partition);
                    local.extend(checkpoint_writes(*partition, last + 1));
                } else {
                    tracing::warn!(
                        partition,
                        expected = r.checkpoint,
                        written_at = first.get(partition).copied().unwrap_or(-1),
                        "state changelog has entries this instance did not expect; catching up before the next batch"
                    );
                    ready.remove(partition);
                }
            }
        }
        // Entries and checkpoints in one write: a crash between them cannot leave
        // a checkpoint past entries the copy lacks.
        self.engine.apply(&local)?;
        self.lock_unlogged().drop_through(staged.seq);
        for partition in &checkpoints {
            self.report_size(*partition);
        }
        Ok(())
    }

    /// Forgets which partitions are caught up, and every batch not logged (the
    /// pipeline starts again: those batches are decided again from the last
    /// commit): each partition is caught up again before its next batch.
    pub fn forget(&self) {
        self.lock_ready().clear();
        let mut unlogged = self.lock_unlogged();
        let seq = unlogged.next_seq;
        unlogged.drop_through(seq);
    }

    /// Takes `partitions` as caught up and built, without reading a changelog: for
    /// unit tests of the batch step, whose state starts empty.
    #[doc(hidden)]
    pub fn assume_ready(&self, partitions: &[i32], rebalance: u64) {
        let mut ready = self.lock_ready();
        for partition in partitions {
            ready.entry(*partition).or_insert(Ready {
                at_rebalance: rebalance,
                checkpoint: 0,
                watermark: DateTime::UNIX_EPOCH,
                sweep_after: None,
            });
        }
    }

    /// Takes every staged batch as logged, without a changelog: for unit tests of
    /// the batch step.
    #[doc(hidden)]
    pub fn assume_logged(&self) -> Result<(), StateError> {
        let mut unlogged = self.lock_unlogged();
        let writes: Vec<(i32, kv::Write)> = unlogged
            .entries
            .drain()
            .map(|((p, k), (_, v))| (p, (k, v)))
            .collect();
        Ok(self.engine.apply(&writes)?)
    }

    fn report_size(&self, partition: i32) {
        metrics::gauge!(crate::metric_names::PROCESSOR_STATE_BYTES)
            .set(self.engine.size_bytes() as f64);
        if let Some(bytes) = self.engine.write_buffer_bytes() {
            metrics::gauge!(crate::metric_names::PROCESSOR_STATE_WRITE_BUFFER_BYTES)
                .set(bytes as f64);
        }
        metrics::gauge!(crate::metric_names::PROCESSOR_STATE_ENTRIES, "partition" => partition.to_string())
            .set(self.engine.entries(partition) as f64);
    }
}

/// `state` without what started before `horizon` (the calls dropped with it go into
/// `dropped`), encoded for the changelog; `None` (a tombstone) when nothing is left.
fn expired(
    partition: i32,
    state: &mut CallerState,
    horizon: DateTime<Utc>,
    dropped: &mut Vec<(i32, CallId)>,
) -> Result<Option<Vec<u8>>, StateError> {
    dropped.extend(state.expire(horizon).into_iter().map(|id| (partition, id)));
    (!state.is_empty())
        .then(|| serde_json::to_vec(state))
        .transpose()
        .map_err(|e| StateError::Corrupt {
            partition,
            message: e.to_string(),
        })
}

/// Reads `partition`'s changelog from `checkpoint` into the local copy, in chunks,
/// each with the checkpoint after it. Returns where it got to and how many entries
/// it applied.
fn restore_blocking(
    engine: &dyn StateEngine,
    changelog: &Changelog,
    partition: i32,
    checkpoint: i64,
) -> Result<(i64, u64), StateError> {
    const CHUNK: usize = 10_000;
    let mut pending: Vec<(i32, kv::Write)> = Vec::with_capacity(CHUNK + 1);
    let mut applied = 0_u64;
    let mut failed: Option<EngineError> = None;
    let next = changelog.read(partition, checkpoint, |key, value, offset| {
        if failed.is_some() {
            return;
        }
        pending.push((partition, (key.to_vec(), value.map(<[u8]>::to_vec))));
        if pending.len() >= CHUNK {
            applied += pending.len() as u64;
            pending.extend(checkpoint_writes(partition, offset + 1));
            if let Err(e) = engine.apply(&pending) {
                failed = Some(e);
            }
            pending.clear();
        }
    })?;
    if let Some(error) = failed {
        return Err(error.into());
    }
    applied += pending.len() as u64;
    pending.extend(checkpoint_writes(partition, next));
    engine.apply(&pending)?;
    Ok((next, applied))
}

/// The partition a caller key (or, for a withheld caller, a call id) lives in.
pub fn partition_of(key: &str, partitions: i32) -> i32 {
    schemas::topics::partition_for(key.as_bytes(), partitions)
}
