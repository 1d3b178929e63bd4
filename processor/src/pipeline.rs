//! The consume → map → write → commit loop.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use runtime::kafka::{counting_group_consumer, AckedProducer, ConsumerError, ProduceError};
use runtime::registry::{IntegrationRegistry, RegistryError};
use runtime::shutdown::Shutdown;
use runtime::table::{CompactedTable, TableError};
use schemas::call::RawPosition;
use schemas::callmatrix::ManagedNumber;
use schemas::callmatrix::{CmCallRow, MatchMethod, CM_CALL_COLUMNS};
use schemas::dead_letter::Stage;
use schemas::{CallId, CallRecord, CallRow, ClientId, DeadLetter, RawEnvelope, Source};
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::ProcessorConfig;
use crate::dead_letters;
use crate::enrich::duplicates::Candidate;
use crate::enrich::{self, history, Enricher};
use crate::mapping::{assemble, map_fields, CompiledMapping};
use crate::ops::{self, OpsState};
use crate::sink::BatchSink;

/// The consumer group every processor instance joins.
pub const GROUP: &str = "processor";

#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
    #[error(transparent)]
    Producer(#[from] ProduceError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(transparent)]
    Bind(#[from] runtime::http::BindError),
    #[error(transparent)]
    Telemetry(#[from] runtime::telemetry::TelemetryError),
}

/// Runs until `shutdown`. Offsets of a batch whose writes did not finish are not
/// committed; the next owner of those partitions processes them again.
pub async fn run(
    config: ProcessorConfig,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    shutdown: Shutdown,
) -> Result<(), ProcessorError> {
    let topics = config.kafka.topics();
    let registry = IntegrationRegistry::start(
        &config.kafka,
        shutdown.clone(),
        Duration::from_millis(config.registry.initial_load_ms),
    )
    .await?;
    let producer = AckedProducer::new(&config.kafka)?;
    let clickhouse = config.clickhouse.client();

    let listener = runtime::http::bind(config.http.listen).await?;
    let ops_state = OpsState {
        clickhouse: clickhouse.clone(),
        producer: producer.clone(),
        metrics,
    };
    tokio::spawn(runtime::http::serve(
        listener,
        move |request| ops::handle(ops_state.clone(), request),
        shutdown.clone(),
        Duration::from_secs(1),
    ));

    let managed = CompactedTable::start(
        &config.kafka,
        &topics.cm_numbers,
        "managed-numbers",
        Duration::from_millis(config.registry.initial_load_ms),
        shutdown.clone(),
        decode_managed_number,
    )
    .await?;
    // Built now so the first batch does not pay for it.
    enrich::geo::geo();
    let (consumer, rebalances) = counting_group_consumer(&config.kafka, GROUP, &[&topics.raw])?;
    let sink = Arc::new(BatchSink {
        clickhouse,
        producer,
        topics: topics.clone(),
        max_backoff: Duration::from_millis(config.batch.max_backoff_ms),
    });
    let recorder = {
        let (kafka, sink, shutdown) = (config.kafka.clone(), sink.clone(), shutdown.clone());
        let registry = registry.clone();
        let (max_records, max_wait) = (config.batch.max_records, config.batch.max_wait());
        tokio::spawn(async move {
            if let Err(error) =
                dead_letters::record(&kafka, &sink, &registry, max_records, max_wait, shutdown)
                    .await
            {
                tracing::error!(%error, "dead-letter recorder stopped");
            }
        })
    };
    let rollup = {
        let (kafka, sink, shutdown) = (config.kafka.clone(), sink.clone(), shutdown.clone());
        let (max_records, max_wait) = (config.batch.max_records, config.batch.max_wait());
        tokio::spawn(async move {
            if let Err(error) =
                crate::rollup::run(&kafka, &sink, max_records, max_wait, shutdown).await
            {
                tracing::error!(%error, "rollup worker stopped");
            }
        })
    };
    let linker = {
        let linker = enrich::linker::Linker {
            sink: sink.clone(),
            registry: registry.clone(),
            max_records: config.batch.max_records,
            max_wait: config.batch.max_wait(),
            sweep_every: Duration::from_millis(config.enrichment.link_sweep_ms),
        };
        let (kafka, shutdown) = (config.kafka.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(error) = linker.run(&kafka, shutdown).await {
                tracing::error!(%error, "CallMatrix linker stopped");
            }
        })
    };
    let mut state = Pipeline {
        registry,
        registry_wait: Duration::from_millis(config.registry.wait_ms),
        clickhouse: Some(sink.clickhouse.clone()),
        max_backoff: Duration::from_millis(config.batch.max_backoff_ms),
        mappings: HashMap::new(),
        enricher: Enricher {
            histories: history::Histories::new(config.enrichment.max_cached_callers),
            managed,
        },
    };
    tracing::info!(topic = %topics.raw, group = %config.kafka.group_id(GROUP), "processor consuming");
    let mut stop = shutdown.clone();
    loop {
        let batch = tokio::select! {
            _ = stop.wait() => break,
            batch = next_batch(&consumer, config.batch.max_records, config.batch.max_wait()) => batch,
        };
        let started = Instant::now();
        let Some(processed) = state.process(&batch, rebalances.count(), &shutdown).await else {
            tracing::warn!("stopping with an unmapped batch; it will be reprocessed");
            break;
        };
        let span = tracing::info_span!(
            "batch",
            records = batch.len(),
            calls = processed.calls.len(),
            dead = processed.dead_letters.len()
        );
        let written = async {
            sink.write(&processed.calls, &processed.dead_letters, &shutdown)
                .await?;
            sink.retire_moved(&processed.moved, &shutdown).await?;
            sink.forward(&processed.forwards, &shutdown).await
        };
        if let Err(interrupted) = written.instrument(span).await {
            tracing::warn!(error = %interrupted, "stopping with an unwritten batch; it will be reprocessed");
            break;
        }
        commit(&consumer, &batch);
        metrics::histogram!("processor_batch_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("processor_records_total", "outcome" => "call")
            .increment(processed.calls.len() as u64);
        metrics::counter!("processor_records_total", "outcome" => "dead_letter")
            .increment(processed.dead_letters.len() as u64);
        metrics::counter!("processor_records_total", "outcome" => "forwarded")
            .increment(processed.forwards.len() as u64);
    }
    let _ = recorder.await;
    let _ = linker.await;
    let _ = rollup.await;
    tracing::info!("processor stopped");
    Ok(())
}

/// Waits for a first record, then gathers more until the batch is full or
/// `max_wait` has passed since the first.
pub(crate) async fn next_batch<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    max_records: usize,
    max_wait: Duration,
) -> Vec<OwnedMessage> {
    let mut batch = Vec::new();
    let mut deadline = None;
    while batch.len() < max_records {
        let received = match deadline {
            None => consumer.recv().await,
            Some(deadline) => match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(received) => received,
                Err(_) => break,
            },
        };
        match received {
            Ok(message) => {
                batch.push(message.detach());
                deadline.get_or_insert_with(|| Instant::now() + max_wait);
            }
            Err(error) => {
                tracing::warn!(%error, "consumer error");
                metrics::counter!("kafka_consume_errors_total", "reader" => "group").increment(1);
                if batch.is_empty() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                } else {
                    break;
                }
            }
        }
    }
    batch
}

/// Commits the offset after the last record of each partition in `batch`.
pub(crate) fn commit<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    batch: &[OwnedMessage],
) {
    let mut next: HashMap<(&str, i32), i64> = HashMap::new();
    for message in batch {
        let entry = next
            .entry((message.topic(), message.partition()))
            .or_insert(0);
        *entry = (*entry).max(message.offset() + 1);
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        if let Err(error) = list.add_partition_offset(topic, partition, Offset::Offset(offset)) {
            tracing::error!(%error, topic, partition, "building the commit list");
        }
    }
    match consumer.commit(&list, CommitMode::Sync) {
        Ok(()) => metrics::counter!("kafka_commits_total").increment(1),
        Err(error) => {
            // Usually a rebalance took the partitions away: the new owner replays
            // from the last commit, and the idempotent writes make that harmless.
            tracing::warn!(%error, "commit failed; records will be reprocessed by the partition's next owner");
            metrics::counter!("kafka_commit_errors_total").increment(1);
        }
    }
}

#[derive(Default)]
struct Processed {
    calls: Vec<CallRecord>,
    dead_letters: Vec<DeadLetter>,
    /// Records that arrived under another key than their caller's: re-published to
    /// the raw topic under the caller key, processed by the caller's partition owner.
    forwards: Vec<(String, Vec<u8>)>,
    /// Old positions in `calls_by_time` of calls a new version moved.
    moved: Vec<schemas::call::MovedCallRow>,
}

struct Pipeline {
    registry: IntegrationRegistry,
    registry_wait: Duration,
    /// Where stored calls are read for merging late fields (`None` in unit tests).
    clickhouse: Option<clickhouse::Client>,
    max_backoff: Duration,
    /// Compiled once per integration version.
    mappings: HashMap<ClientId, Arc<CompiledMapping>>,
    enricher: Enricher,
}

impl Pipeline {
    /// Maps a batch. Records that carry the partner's call id are assembled over the
    /// call as it stands (stored, or made by an earlier record of this batch), so a
    /// late field updates its call. `None` when stopped while ClickHouse was down.
    async fn process(
        &mut self,
        batch: &[OwnedMessage],
        rebalances: u64,
        shutdown: &Shutdown,
    ) -> Option<Processed> {
        self.enricher.histories.observe_rebalances(rebalances);
        let processed_at = Utc::now();
        let mut out = Processed::default();
        let mut gave_up = HashSet::new();
        let mut mapped = Vec::with_capacity(batch.len());
        for message in batch {
            let bytes = message.payload().unwrap_or_default();
            let envelope: RawEnvelope = match serde_json::from_slice(bytes) {
                Ok(envelope) => envelope,
                Err(error) => {
                    out.dead_letters
                        .push(unreadable(message, &error.to_string()));
                    continue;
                }
            };
            let position = RawPosition {
                raw_id: envelope.raw_id,
                topic: message.topic().to_owned(),
                partition: message.partition(),
                offset: message.offset(),
            };
            let mapping = match self.mapping_for(&envelope, &mut gave_up).await {
                Ok(mapping) => mapping,
                Err(reason) => {
                    out.dead_letters
                        .push(dead_letter(&envelope, &position, reason, vec![]));
                    continue;
                }
            };
            let fields = map_fields(&mapping, &envelope);
            mapped.push((message.key(), envelope, position, mapping, fields));
        }

        let ids: Vec<(ClientId, CallId)> = mapped
            .iter()
            .filter_map(|(_, envelope, _, _, fields)| {
                let id = fields.as_ref().ok()?.call_id?;
                Some((envelope.client_id.clone(), id))
            })
            .collect();
        let mut known = self.known_calls(&ids, shutdown).await?;
        for (key, envelope, position, mapping, fields) in mapped {
            let assembled = fields.and_then(|fields| {
                let base = fields.call_id.and_then(|id| known.get(&id));
                assemble(
                    &mapping,
                    &envelope,
                    fields,
                    base,
                    position.clone(),
                    processed_at,
                )
            });
            match assembled {
                Ok(call) => {
                    let caller_key = enrich::key_of(&call);
                    if key != Some(caller_key.as_bytes()) {
                        out.forwards.push((caller_key, envelope.to_json()));
                        continue;
                    }
                    if let Some(old) = known.get(&call.id) {
                        out.moved
                            .extend(schemas::call::MovedCallRow::tombstone(old, &call));
                    }
                    known.insert(call.id, call.clone());
                    out.calls.push(call);
                }
                Err(rejection) => {
                    tracing::debug!(client_id = %envelope.client_id, raw_id = %envelope.raw_id, reason = %rejection.reason, "record dead-lettered");
                    let errors = rejection.errors.iter().map(ToString::to_string).collect();
                    out.dead_letters.push(dead_letter(
                        &envelope,
                        &position,
                        rejection.reason,
                        errors,
                    ));
                }
            }
        }
        let redecided = self.enrich(&mut out.calls, shutdown).await?;
        let ids: Vec<(ClientId, CallId)> = redecided
            .iter()
            .map(|r| (r.client_id.clone(), r.id))
            .collect();
        let stored = self.known_calls(&ids, shutdown).await?;
        for change in redecided {
            if let Some(call) = stored.get(&change.id) {
                out.calls
                    .push(enrich::redecided(call.clone(), change.repeat, processed_at));
            }
        }
        Some(out)
    }

    /// Repeat and CallMatrix-duplicate decisions for the batch's calls, then their
    /// status. Returns the stored calls whose repeat decision this batch changed.
    /// `None` if stopped while ClickHouse was down.
    async fn enrich(
        &self,
        calls: &mut [CallRecord],
        shutdown: &Shutdown,
    ) -> Option<Vec<enrich::Redecided>> {
        let registry = self.registry.clone();
        let rules = move |client: &ClientId| {
            registry
                .get(client)
                .map(|i| i.enrichment.clone())
                .unwrap_or_default()
        };
        let (mut held, missing) = self.enricher.checkout(calls);
        if let (Some(clickhouse), false) = (&self.clickhouse, missing.is_empty()) {
            let loaded = self
                .read("read caller histories", shutdown, || {
                    history::load(clickhouse, &missing)
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
        let candidates = match (&self.clickhouse, ours.is_empty()) {
            (Some(clickhouse), false) => {
                let sql = candidates_query(&ours);
                self.read("read CmCalls", shutdown, || async {
                    clickhouse.query(&sql).fetch_all::<CmCallRow>().await
                })
                .await?
                .into_iter()
                .map(Candidate::from)
                .collect()
            }
            _ => Vec::new(),
        };
        self.enricher.link_duplicates(calls, &candidates, &rules);
        for call in calls.iter_mut() {
            enrich::settle_status(call);
        }
        Some(changed)
    }

    /// Retries a ClickHouse read until it succeeds; `None` if stopped meanwhile.
    async fn read<T, F, Fut>(
        &self,
        what: &'static str,
        shutdown: &Shutdown,
        mut attempt: F,
    ) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, clickhouse::error::Error>>,
    {
        let mut backoff = Duration::from_millis(100);
        loop {
            match attempt().await {
                Ok(value) => return Some(value),
                Err(error) => {
                    tracing::warn!(%error, read = what, retry_in_ms = backoff.as_millis() as u64, "ClickHouse read failed; retrying");
                    metrics::counter!("processor_write_retries_total", "write" => what)
                        .increment(1);
                    let mut waiter = shutdown.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = waiter.wait() => return None,
                    }
                    backoff = (backoff * 2).min(self.max_backoff);
                }
            }
        }
    }

    /// The stored calls among `ids`, each at its newest version; retried while
    /// ClickHouse is unavailable, `None` if stopped meanwhile.
    async fn known_calls(
        &self,
        ids: &[(ClientId, CallId)],
        shutdown: &Shutdown,
    ) -> Option<HashMap<CallId, CallRecord>> {
        let Some(clickhouse) = &self.clickhouse else {
            return Some(HashMap::new());
        };
        let mut rows = Vec::new();
        for sql in runtime::call_lookup::by_id_queries(ids) {
            rows.extend(
                self.read("read known calls", shutdown, || {
                    clickhouse.query(&sql).fetch_all::<CallRow>()
                })
                .await?,
            );
        }
        Some(runtime::call_lookup::newest_versions(rows))
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
                metrics::counter!("processor_integration_wait_timeouts_total").increment(1);
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

fn decode_managed_number(key: &str, bytes: &[u8]) -> Result<ManagedNumber, String> {
    let number: ManagedNumber = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if number.number.as_str() != key {
        return Err(format!("key {key} and number {} disagree", number.number));
    }
    Ok(number)
}

/// The CmCalls that could match `calls` (on managed numbers): same numbers, starts
/// within the widest tolerance a rule may set.
fn candidates_query(calls: &[&CallRecord]) -> String {
    let margin = i64::from(schemas::enrichment::MAX_TOLERANCE_S);
    let numbers: BTreeSet<&str> = calls
        .iter()
        .filter_map(|c| c.called.as_ref().map(|n| n.as_str()))
        .collect();
    let first = calls
        .iter()
        .map(|c| c.started_at.timestamp())
        .min()
        .unwrap_or(0);
    let last = calls
        .iter()
        .map(|c| c.started_at.timestamp())
        .max()
        .unwrap_or(0);
    format!(
        "SELECT {CM_CALL_COLUMNS} FROM cm_calls FINAL WHERE called IN ({}) \
         AND started_at >= toDateTime({}) AND started_at <= toDateTime({})",
        runtime::clickhouse::string_list(numbers),
        first - margin,
        last + margin
    )
}

fn dead_letter(
    envelope: &RawEnvelope,
    position: &RawPosition,
    reason: String,
    errors: Vec<String>,
) -> DeadLetter {
    DeadLetter {
        raw_id: envelope.raw_id,
        client_id: envelope.client_id.clone(),
        source: envelope.source,
        stage: Stage::Mapping,
        reason,
        errors,
        received_at: schemas::call::to_whole_seconds(envelope.received_at),
        failed_at: schemas::call::to_whole_seconds(Utc::now()),
        raw_partition: Some(position.partition),
        raw_offset: Some(position.offset),
        payload: envelope.payload.get().to_owned(),
    }
}

/// A raw-topic message that is not an envelope: only a foreign producer writes
/// those. Kept with a name-based id so a replay does not add a second row.
fn unreadable(message: &OwnedMessage, error: &str) -> DeadLetter {
    let payload = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
    let key = format!(
        "{}/{}/{}",
        message.topic(),
        message.partition(),
        message.offset()
    );
    let unknown = ClientId::parse("unknown")
        .unwrap_or_else(|_| unreachable!("\"unknown\" is a valid client id"));
    let now = schemas::call::to_whole_seconds(Utc::now());
    DeadLetter {
        raw_id: schemas::ids::raw_record_id(&unknown, &key),
        client_id: unknown,
        source: Source::Webhook,
        stage: Stage::Mapping,
        reason: format!("raw message is not an envelope: {error}"),
        errors: vec![],
        received_at: now,
        failed_at: now,
        raw_partition: Some(message.partition()),
        raw_offset: Some(message.offset()),
        payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Timestamp;
    use serde_json::value::RawValue;

    fn raw_message(client: &str, offset: i64) -> OwnedMessage {
        let envelope = RawEnvelope {
            raw_id: uuid::Uuid::from_u128(offset as u128),
            client_id: ClientId::parse(client).unwrap(),
            source: Source::Webhook,
            received_at: Utc::now(),
            idempotency_key: offset.to_string(),
            integration_version: 1,
            payload: RawValue::from_string("{}".into()).unwrap(),
        };
        OwnedMessage::new(
            Some(envelope.to_json()),
            None,
            "calls.raw".into(),
            Timestamp::NotAvailable,
            0,
            offset,
            None,
        )
    }

    /// A pipeline over `integrations` with no ClickHouse (nothing stored is read).
    fn test_pipeline(integrations: Vec<schemas::Integration>, wait: Duration) -> Pipeline {
        Pipeline {
            registry: IntegrationRegistry::fixed(integrations),
            registry_wait: wait,
            clickhouse: None,
            max_backoff: wait,
            mappings: HashMap::new(),
            enricher: Enricher {
                histories: history::Histories::new(100),
                managed: CompactedTable::fixed([]),
            },
        }
    }

    fn samples() -> Vec<schemas::Integration> {
        serde_json::from_str(include_str!("../../deploy/integrations/samples.json")).unwrap()
    }

    /// Virtual time (paused clock): the batch costs one registry wait, not one per record.
    #[tokio::test(start_paused = true)]
    async fn an_unknown_integration_costs_one_wait_per_batch() {
        let wait = Duration::from_secs(5);
        let mut pipeline = test_pipeline(vec![], wait);
        let batch: Vec<OwnedMessage> = (0..100).map(|n| raw_message("gone", n)).collect();
        let started = tokio::time::Instant::now();
        let (_stop, shutdown) = Shutdown::new();
        let processed = pipeline.process(&batch, 0, &shutdown).await.unwrap();
        assert_eq!(processed.dead_letters.len(), 100);
        assert!(processed.dead_letters[99]
            .reason
            .contains("integration gone is not defined"));
        assert_eq!(started.elapsed(), wait, "one wait for the whole batch");
    }

    /// A call and its late payout in one batch: the late record merges onto the
    /// call made by the earlier one, without a stored row to read.
    #[tokio::test]
    async fn a_late_field_in_the_same_batch_merges_onto_its_call() {
        let mut pipeline = test_pipeline(samples(), Duration::from_millis(10));
        let record = |payload: &str, offset: i64| {
            let envelope = RawEnvelope {
                raw_id: uuid::Uuid::from_u128(offset as u128),
                client_id: ClientId::parse("arroyo").unwrap(),
                source: Source::Webhook,
                received_at: Utc::now() + chrono::Duration::milliseconds(offset),
                idempotency_key: offset.to_string(),
                integration_version: 1,
                payload: RawValue::from_string(payload.to_owned()).unwrap(),
            };
            OwnedMessage::new(
                Some(envelope.to_json()),
                Some(b"acme-leads|+14155552671".to_vec()),
                "calls.raw".into(),
                Timestamp::NotAvailable,
                0,
                offset,
                None,
            )
        };
        let batch = [
            record(
                r#"{"call":{"id":"ar_1","caller":{"number":"4155552671"},"started_at":"2026-11-20T10:00:00Z"}}"#,
                0,
            ),
            record(r#"{"call":{"id":"ar_1","payout":"$7.50"}}"#, 1),
        ];
        let (_stop, shutdown) = Shutdown::new();
        let processed = pipeline.process(&batch, 0, &shutdown).await.unwrap();
        assert!(
            processed.dead_letters.is_empty(),
            "{:?}",
            processed.dead_letters
        );
        let [first, late] = processed.calls.as_slice() else {
            panic!("two versions")
        };
        assert_eq!(first.id, late.id);
        assert!(late.version > first.version);
        assert_eq!(late.caller.as_str(), "+14155552671");
        assert_eq!(late.payout.unwrap().to_string(), "7.50");
        assert_eq!(late.status, "qualified");
        assert_eq!(
            (first.event, late.event),
            (
                schemas::call::Change::Created,
                schemas::call::Change::Updated
            )
        );
    }

    /// A record under another key than its caller's is sent on to the caller's
    /// partition, not processed here: two instances must never decide one caller.
    #[tokio::test]
    async fn a_record_under_the_wrong_key_is_forwarded_to_its_callers_partition() {
        let mut pipeline = test_pipeline(samples(), Duration::from_millis(10));
        let envelope = RawEnvelope {
            raw_id: uuid::Uuid::from_u128(1),
            client_id: ClientId::parse("arroyo").unwrap(),
            source: Source::Webhook,
            received_at: Utc::now(),
            idempotency_key: "1".into(),
            integration_version: 1,
            payload: RawValue::from_string(
                r#"{"call":{"id":"ar_1","caller":{"number":"4155552671.0"},"started_at":"2026-11-20T10:00:00Z"}}"#.into(),
            )
            .unwrap(),
        };
        let message = OwnedMessage::new(
            Some(envelope.to_json()),
            Some(b"some-call-id".to_vec()),
            "calls.raw".into(),
            Timestamp::NotAvailable,
            0,
            0,
            None,
        );
        let (_stop, shutdown) = Shutdown::new();
        let processed = pipeline.process(&[message], 0, &shutdown).await.unwrap();
        assert!(processed.calls.is_empty());
        let [(key, payload)] = processed.forwards.as_slice() else {
            panic!("one forward")
        };
        assert_eq!(key, "acme-leads|+14155552671");
        assert_eq!(
            payload,
            &envelope.to_json(),
            "the envelope travels unchanged"
        );
    }
}
