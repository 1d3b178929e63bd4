//! The consume → map → write → commit loop: the IO shell around `engine::batch`.
//! Per batch: resolve each record's mapping (waiting briefly for an integration
//! version this instance has not seen), read what the engine asks for from the
//! store (stored calls, callers' histories, CmCalls), write what it decides, then
//! commit.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use engine::batch::{Batch, Processed, RawRecord};
use engine::enrich::{self, Enricher};
use engine::mapping::CompiledMapping;
use rdkafka::message::{Message, OwnedMessage};
use runtime::kafka::{counting_group_reader, BatchWait, KafkaConfig};
use runtime::registry::IntegrationRegistry;
use runtime::shutdown::Shutdown;
use schemas::callmatrix::{MatchMethod, RelinkRequest};
use schemas::{CallId, CallRecord, ClientId, RawEnvelope};
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::ProcessorError;
use crate::sink::{BatchSink, Interrupted};
use crate::store::Store;

/// The consumer group every processor instance joins.
pub const GROUP: &str = "processor";

pub struct Pipeline<S: Store> {
    pub registry: IntegrationRegistry,
    pub registry_wait: Duration,
    pub store: Arc<S>,
    /// Longest pause between retries of a failed read.
    pub max_backoff: Duration,
    /// Compiled once per integration version.
    pub mappings: HashMap<ClientId, Arc<CompiledMapping>>,
    pub enricher: Enricher,
    pub parking: crate::config::ParkingConfig,
    /// The broker's message limit: every message a batch makes fits it.
    pub max_message_bytes: usize,
}

impl<S: Store> Pipeline<S> {
    /// Consumes the raw topic until `shutdown`.
    pub async fn run(
        mut self,
        sink: &BatchSink,
        kafka: &KafkaConfig,
        max_records: usize,
        wait: BatchWait,
        shutdown: Shutdown,
    ) -> Result<(), ProcessorError> {
        let topic = kafka.topics().raw;
        let (mut reader, rebalances) = counting_group_reader(&kafka.live(), GROUP, &[&topic])?;
        tracing::info!(%topic, group = %kafka.group_id(GROUP), "processor consuming");
        let mut stop = shutdown.clone();
        // The raw topic's partition count, read again after every rebalance (a
        // topic that gained partitions makes the group rebalance): records outside
        // their caller's partition are forwarded, not decided (`Batch::with_raw_partitions`).
        let mut partition_count = PartitionCount::default();
        // A batch whose calls are stored but not yet announced and committed: its
        // sends to the broker run while the next batch is gathered and decided.
        let mut stored: Option<Stored> = None;
        let park_for = self.parking.delay();
        loop {
            let rebalanced_before = rebalances.count();
            let announced = async {
                match &stored {
                    Some(done) => announce(sink, &done.processed, park_for, &shutdown).await,
                    None => Ok(()),
                }
            };
            let next = async {
                let batch = tokio::select! {
                    _ = stop.wait() => return None,
                    batch = reader.next_batch(max_records, wait) => batch,
                };
                let started = Instant::now();
                record_age(&batch, "gathered");
                let rebalanced = rebalances.count();
                let partitions = partition_count.current(rebalanced, sink, &topic).await;
                let processed = self
                    .process(&batch, rebalanced, partitions, &shutdown)
                    .await;
                Some((batch, processed, started))
            };
            let (announced, next) = tokio::join!(announced, next);
            if let Some(done) = stored.take() {
                if let Err(interrupted) = announced {
                    tracing::warn!(error = %interrupted, "stopping with an unannounced batch; it will be reprocessed");
                    return ProcessorError::unless_shutdown(&shutdown, interrupted);
                }
                // A rebalance while the batch was announced may have given its
                // partitions to another instance, which reprocesses it from the last
                // commit: committing now could move that commit back. Left
                // uncommitted, it is reprocessed by its owner (stored rows are
                // idempotent), and the next commit of each partition covers it.
                if rebalances.count() == rebalanced_before {
                    reader.commit(&done.batch);
                    record_age(&done.batch, "committed");
                }
                done.count();
            }
            let Some((batch, processed, started)) = next else {
                break;
            };
            let processed = match processed {
                Ok(processed) => processed,
                Err(interrupted) => {
                    tracing::warn!(error = %interrupted, "stopping with an unmapped batch; it will be reprocessed");
                    return ProcessorError::unless_shutdown(&shutdown, interrupted);
                }
            };
            let span = tracing::info_span!(
                "batch",
                records = batch.len(),
                calls = processed.calls.len(),
                dead = processed.dead_letters.len()
            );
            if let Err(interrupted) = store(sink, &processed, &shutdown).instrument(span).await {
                tracing::warn!(error = %interrupted, "stopping with an unwritten batch; it will be reprocessed");
                return ProcessorError::unless_shutdown(&shutdown, interrupted);
            }
            stored = Some(Stored {
                batch,
                processed,
                started,
            });
        }
        Ok(())
    }

    /// Maps and enriches a batch. `Err` when stopped while the store was down.
    pub async fn process(
        &mut self,
        batch: &[OwnedMessage],
        rebalances: u64,
        raw_partitions: Option<i32>,
        shutdown: &Shutdown,
    ) -> Result<Processed, Interrupted> {
        self.enricher.histories.observe_rebalances(rebalances);
        let mut step = Batch::new(Utc::now())
            .with_parking(self.parking.max_attempts)
            .with_message_limit(self.max_message_bytes);
        if let Some(partitions) = raw_partitions {
            step = step.with_raw_partitions(partitions);
        }
        let mut gave_up = HashSet::new();
        for message in batch {
            let record = RawRecord {
                key: message.key(),
                payload: message.payload().unwrap_or_default(),
                topic: message.topic(),
                partition: message.partition(),
                offset: message.offset(),
                parked: crate::parking::parked_count(message),
            };
            if crate::parking::header_number(message, schemas::topics::RELINK_HEADER).is_some() {
                match serde_json::from_slice::<RelinkRequest>(record.payload) {
                    Ok(request) => step.relink(request.client_id, request.id),
                    Err(error) => {
                        tracing::error!(%error, partition = record.partition, offset = record.offset, "unreadable relink request; skipped");
                        metrics::counter!(crate::metric_names::PROCESSOR_CM_INVALID_TOTAL)
                            .increment(1);
                    }
                }
                continue;
            }
            match engine::batch::envelope(&record) {
                Ok(envelope) => {
                    let mapping = self.mapping_for(&envelope, &mut gave_up).await;
                    step.push(&record, envelope, mapping);
                }
                Err(letter) => step.unreadable(*letter),
            }
        }
        let known = self
            .calls(&step.call_ids(), Lookup::Batch, shutdown)
            .await?;
        step.assemble(known);
        let changed = self.enrich(step.calls_mut(), shutdown).await?;
        let ids: Vec<(ClientId, CallId)> = changed
            .iter()
            .map(|r| (r.client_id.clone(), r.id))
            .collect();
        let stored = self.calls(&ids, Lookup::Redecided, shutdown).await?;
        step.redecide(changed, &stored);
        Ok(step.finish())
    }

    /// Repeat and CallMatrix-duplicate decisions for the batch's calls, then their
    /// status. Returns the stored calls whose repeat decision this batch changed.
    async fn enrich(
        &self,
        calls: &mut [CallRecord],
        shutdown: &Shutdown,
    ) -> Result<Vec<enrich::Redecided>, Interrupted> {
        let registry = self.registry.clone();
        let rules = move |client: &ClientId| {
            registry
                .get(client)
                .map(|i| i.enrichment.clone())
                .unwrap_or_default()
        };
        let (mut held, missing) = self.enricher.checkout(calls);
        if !missing.is_empty() {
            let loaded = self
                .read("read caller histories", shutdown, || {
                    self.store.histories(&missing)
                })
                .await?;
            for (key, visits) in loaded {
                held.insert(key, Arc::new(visits));
            }
        }
        let changed = self.enricher.decide_repeats(calls, &mut held, &rules);
        self.enricher.checkin(held);

        // Calls to match by number and time: on a managed number, not echoed.
        let ours: Vec<&CallRecord> = calls
            .iter()
            .filter(|c| c.called.is_some() && c.match_method != Some(MatchMethod::EchoedId))
            .filter(|c| self.enricher.is_callmatrix_call(c))
            .collect();
        let candidates = if ours.is_empty() {
            Vec::new()
        } else {
            // Same numbers, starts within the widest tolerance a rule may set.
            let margin = i64::from(schemas::enrichment::MAX_TOLERANCE_S);
            let called: BTreeSet<String> = ours
                .iter()
                .filter_map(|c| c.called.as_ref().map(|n| n.as_str().to_owned()))
                .collect();
            let accounts: BTreeSet<String> = ours.iter().map(|c| c.account.clone()).collect();
            let starts = ours.iter().map(|c| c.started_at.timestamp());
            let (first, last) =
                starts.fold((i64::MAX, i64::MIN), |(lo, hi), s| (lo.min(s), hi.max(s)));
            self.read("read CmCalls", shutdown, || {
                self.store
                    .cm_calls(&accounts, &called, first - margin, last + margin)
            })
            .await?
        };
        self.enricher.link_duplicates(calls, &candidates, &rules);
        for call in calls.iter_mut() {
            enrich::settle_status(call);
        }
        Ok(changed)
    }

    /// The stored calls among `ids`, each at its newest version; retried while the
    /// store is unavailable.
    async fn calls(
        &self,
        ids: &[(ClientId, CallId)],
        lookup: Lookup,
        shutdown: &Shutdown,
    ) -> Result<HashMap<CallId, CallRecord>, Interrupted> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        match lookup {
            Lookup::Batch => {
                self.read("read known calls", shutdown, || self.store.known_calls(ids))
                    .await
            }
            Lookup::Redecided => {
                self.read("read redecided calls", shutdown, || self.store.calls(ids))
                    .await
            }
        }
    }

    async fn read<T, F, Fut>(
        &self,
        what: &'static str,
        shutdown: &Shutdown,
        attempt: F,
    ) -> Result<T, Interrupted>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, crate::store::StoreError>>,
    {
        crate::store::read(what, shutdown, self.max_backoff, attempt).await
    }

    /// The compiled mapping for a record. Waits for a newer integration version at
    /// most once per client per batch: a deleted integration, or a version that never
    /// arrives, must not cost the wait for every one of its records.
    async fn mapping_for(
        &mut self,
        envelope: &RawEnvelope,
        gave_up: &mut HashSet<ClientId>,
    ) -> Result<Arc<CompiledMapping>, String> {
        let client = &envelope.client_id;
        let integration = if gave_up.contains(client) {
            self.registry.get(client)
        } else {
            let found = self
                .registry
                .wait_for(client, envelope.integration_version, self.registry_wait)
                .await;
            if found
                .as_ref()
                .is_none_or(|i| i.version < envelope.integration_version)
            {
                metrics::counter!(crate::metric_names::PROCESSOR_INTEGRATION_WAIT_TIMEOUTS_TOTAL)
                    .increment(1);
                gave_up.insert(client.clone());
            }
            found
        };
        let integration =
            integration.ok_or_else(|| format!("integration {client} is not defined"))?;
        if let Some(compiled) = self.mappings.get(&envelope.client_id) {
            if compiled.integration.version == integration.version {
                return Ok(compiled.clone());
            }
        }
        let compiled = Arc::new(CompiledMapping::compile(&integration).map_err(|e| e.to_string())?);
        self.mappings
            .insert(envelope.client_id.clone(), compiled.clone());
        Ok(compiled)
    }
}

/// Whose ids a lookup of stored calls is for.
enum Lookup {
    /// A batch's own records: most may be new calls (`Store::known_calls`).
    Batch,
    /// Stored calls a history named, whose repeat decision the batch changed.
    Redecided,
}

/// How long the batch's oldest record had been in the broker (its producer's
/// timestamp) when the batch was gathered and when it was committed: the
/// processor's share of a call's latency, and the broker's and the batch window's.
fn record_age(batch: &[OwnedMessage], at: &'static str) {
    let now_ms = Utc::now().timestamp_millis();
    let oldest = batch.iter().filter_map(|m| m.timestamp().to_millis()).min();
    if let Some(oldest) = oldest {
        let age_s = (now_ms - oldest).max(0) as f64 / 1000.0;
        metrics::histogram!(crate::metric_names::PROCESSOR_RECORD_AGE_SECONDS, "at" => at)
            .record(age_s);
    }
}

/// A batch between [`store`] and its commit.
struct Stored {
    batch: Vec<OwnedMessage>,
    processed: Processed,
    started: Instant,
}

impl Stored {
    /// Its figures, once announced: from its first record gathered to here.
    fn count(&self) {
        let processed = &self.processed;
        metrics::histogram!(crate::metric_names::PROCESSOR_BATCH_SECONDS)
            .record(self.started.elapsed().as_secs_f64());
        metrics::counter!(crate::metric_names::PROCESSOR_RECORDS_TOTAL, "outcome" => "call")
            .increment(processed.calls.len() as u64);
        metrics::counter!(crate::metric_names::PROCESSOR_RECORDS_TOTAL, "outcome" => "dead_letter")
            .increment(processed.dead_letters.len() as u64);
        metrics::counter!(crate::metric_names::PROCESSOR_RECORDS_TOTAL, "outcome" => "forwarded")
            .increment(processed.forwards.len() as u64);
        metrics::counter!(crate::metric_names::PROCESSOR_RECORDS_TOTAL, "outcome" => "parked")
            .increment(processed.parked.len() as u64);
    }
}

/// Old positions of moved calls retired, then the calls stored in ClickHouse: what
/// the next batch's reads must find, so it is done before the next batch is decided.
///
/// The old positions go first. A crash after them re-runs the batch over the same
/// stored calls, so the same retirements are written again and the calls after
/// them. Written after the calls, a crash between the two would re-run the batch
/// over the calls' new versions, find nothing moved, and leave the old position in
/// `calls_by_time` for good (its payout counted twice by every aggregate).
async fn store(
    sink: &BatchSink,
    processed: &Processed,
    shutdown: &Shutdown,
) -> Result<(), Interrupted> {
    // Crash points count only the batches that wrote something at that step.
    sink.retire_moved(&processed.moved, shutdown).await?;
    if !processed.moved.is_empty() {
        runtime::crash_point::reached("processor.after_retire");
    }
    sink.store(&processed.calls, shutdown).await
}

/// After [`store`], everything else before the commit: rollup marks, dead letters
/// and events to their topics, forwards re-published, records waiting for their
/// call parked. Runs while the next batch is gathered and decided; that batch is
/// stored only after this is done, so events of one call keep their order and
/// batches are committed in order.
async fn announce(
    sink: &BatchSink,
    processed: &Processed,
    park_for: Duration,
    shutdown: &Shutdown,
) -> Result<(), Interrupted> {
    sink.announce(&processed.calls, &processed.dead_letters, shutdown)
        .await?;
    if !processed.calls.is_empty() {
        runtime::crash_point::reached("processor.after_write");
    }
    sink.forward(&processed.forwards, shutdown).await?;
    if !processed.forwards.is_empty() {
        runtime::crash_point::reached("processor.after_forward");
    }
    sink.park(&processed.parked, park_for, shutdown).await?;
    Ok(())
}

#[cfg(test)]
#[path = "pipeline_test.rs"]
mod tests;

/// The raw topic's partition count as the processor last read it: read again after
/// every rebalance (a topic that gained partitions makes the group rebalance). A
/// failed read is tried again at most every [`PartitionCount::RETRY`], not on every
/// batch: the read waits up to the producer's timeout. Until it succeeds, only the
/// key decides where a record belongs.
#[derive(Default)]
struct PartitionCount {
    count: Option<i32>,
    read_at_rebalance: Option<u64>,
    failed_at: Option<Instant>,
}

impl PartitionCount {
    const RETRY: std::time::Duration = std::time::Duration::from_secs(30);

    async fn current(&mut self, rebalanced: u64, sink: &BatchSink, topic: &str) -> Option<i32> {
        let stale = self.read_at_rebalance != Some(rebalanced);
        let retry_due = self.failed_at.is_none_or(|at| at.elapsed() >= Self::RETRY);
        if stale && retry_due {
            match sink.producer.partition_count(topic).await {
                Ok(count) if count > 0 => {
                    self.count = Some(count);
                    self.read_at_rebalance = Some(rebalanced);
                    self.failed_at = None;
                }
                Ok(_) | Err(_) => {
                    tracing::warn!(%topic, "could not read the raw topic's partition count; retrying in 30 s");
                    self.count = None;
                    self.failed_at = Some(Instant::now());
                }
            }
        }
        self.count
    }
}
