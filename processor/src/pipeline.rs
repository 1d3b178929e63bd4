//! The consume → map → write → commit loop: the IO shell around `engine::batch`.
//! Per batch: catch the batch's partitions up with their state changelog if they
//! are new to this instance (`crate::state`), resolve each record's mapping
//! (waiting briefly for an integration version this instance has not seen), read
//! what the engine asks for from the keyed state (stored calls, callers' windows and
//! CmCalls; ClickHouse only for records without a caller whose call this instance
//! does not hold), write what it decides (ClickHouse, the state and its changelog,
//! the topics), then commit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use engine::batch::{Batch, Processed, RawRecord};
use engine::enrich::duplicates::Candidate;
use engine::enrich::{self, Enricher, HeldHistories};
use engine::mapping::CompiledMapping;
use engine::state::CallerState;
use rdkafka::message::{Message, OwnedMessage};
use runtime::kafka::{counting_group_reader, BatchWait, KafkaConfig};
use runtime::registry::IntegrationRegistry;
use runtime::shutdown::Shutdown;
use schemas::callmatrix::{CmCall, MatchMethod, RelinkRequest};
use schemas::erasure::ErasureOrder;
use schemas::suppression::SuppressionLift;

use crate::suppressions::{At, ListChange};
use schemas::{CallId, CallRecord, ClientId, RawEnvelope};
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::ProcessorError;
use crate::sink::{BatchSink, Interrupted};
use crate::state::{BatchWrites, KeyedState, Staged};
use crate::store::Store;

/// The consumer group every processor instance joins.
pub const GROUP: &str = "processor";

/// How often an idle pipeline looks for partitions to catch up (given by a
/// rebalance, no record yet).
const IDLE_CHECK: Duration = Duration::from_secs(1);

pub struct Pipeline<S: Store> {
    pub registry: IntegrationRegistry,
    pub registry_wait: Duration,
    /// ClickHouse, for what the state cannot say (`crate::store`).
    pub store: Arc<S>,
    /// What a batch is decided against (`crate::state`).
    pub state: Arc<KeyedState>,
    /// How often the partitions other instances own are followed
    /// (`crate::state::standby`); `None`: not followed.
    pub standby: Option<Duration>,
    /// Longest pause between retries of a failed read.
    pub max_backoff: Duration,
    /// Compiled once per integration version.
    pub mappings: HashMap<ClientId, Arc<CompiledMapping>>,
    pub enricher: Enricher,
    pub parking: crate::config::ParkingConfig,
    /// The broker's message limit: every message a batch makes fits it.
    pub max_message_bytes: usize,
    /// The keys partners' records carry, for drift detection.
    pub source_keys: crate::source_keys::SourceKeys,
    /// Erasure orders the last decided batch carried out on the keyed state: sent
    /// on to the erasure worker once the batch is stored (`schemas::topics::ERASE_HEADER`).
    pub erasing: Vec<ErasureOrder>,
    /// Callers whose later records are stored erased (`crate::suppressions`).
    pub suppressions: crate::suppressions::Suppressions,
    /// Suppressions the last decided batch added or lifted, in order, published
    /// once it is stored.
    pub suppressing: Vec<crate::suppressions::ListChange>,
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
        // Ends with this run: a pipeline started again starts its own.
        let _standby = self.standby.map(|every| {
            AbortOnDrop(tokio::spawn(crate::state::standby::run(
                self.state.clone(),
                rebalances.clone(),
                every,
                shutdown.clone(),
            )))
        });
        let mut stop = shutdown.clone();
        // The raw topic's partition count, read again after every rebalance (a
        // topic that gained partitions makes the group rebalance): records outside
        // their caller's partition are forwarded, not decided (`Batch::with_raw_partitions`).
        let mut partition_count = PartitionCount::default();
        // A batch whose calls are stored but not yet announced and committed: its
        // sends to the broker run while the next batch is gathered and decided.
        let mut stored: Option<Stored> = None;
        let park_for = self.parking.delay();
        // The last reason an idle catch-up failed, so it is logged once.
        let mut idle_failure: Option<String> = None;
        // Each account's newest stored receive time (freshness, for operators).
        let mut newest: HashMap<String, i64> = HashMap::new();
        loop {
            let rebalanced_before = rebalances.count();
            let (state, max_backoff) = (self.state.clone(), self.max_backoff);
            let committer = reader.committer();
            let newest = &mut newest;
            let announced = async {
                match &stored {
                    Some(done) => {
                        let logged = async {
                            // A send the broker did not acknowledge is sent again (a
                            // partition whose entries then landed twice is caught up
                            // before its next batch: `KeyedState::log`).
                            crate::sink::retry_until_stopped(
                                "write the keyed state",
                                &shutdown,
                                max_backoff,
                                || state.log(&done.staged, rebalances.count()),
                            )
                            .await?;
                            if !done.staged.is_empty() {
                                // Logged, not committed: the batch is decided again
                                // over a state that holds its own effects.
                                runtime::crash_point::reached("processor.after_state");
                            }
                            Ok(())
                        };
                        let sent = announce(sink, &done.processed, park_for, &shutdown);
                        tokio::try_join!(logged, sent)?;
                        // The caller's state is erased (logged above) and the
                        // batch's calls stored: ClickHouse's turn. Sent again if
                        // the batch is decided again; the worker's erasure is
                        // idempotent.
                        crate::erasure_orders::forward(sink, &done.erasing, &shutdown).await?;
                        crate::erasure_orders::publish_suppressions(
                            sink,
                            &done.suppressing,
                            &shutdown,
                        )
                        .await?;
                        // Committed as soon as it is announced, not when the next
                        // batch arrives (on a quiet topic, never: its offsets would
                        // stay uncommitted and its metrics unrecorded). A rebalance
                        // since the batch was decided may have given its partitions
                        // to another instance, which reprocesses it from the last
                        // commit: committing now could move that commit back (and
                        // the batch's state was not logged). Left uncommitted, it is
                        // reprocessed by its owner (stored rows are idempotent), and
                        // the next commit of each partition covers it.
                        if rebalances.count() == rebalanced_before
                            && rebalances.count() == done.decided_at
                        {
                            committer.commit(&done.batch);
                            record_age(&done.batch, "committed");
                        }
                        done.count(newest);
                        Ok(())
                    }
                    None => Ok(()),
                }
            };
            let next = async {
                let batch = loop {
                    let until = Instant::now() + IDLE_CHECK;
                    let gathered = tokio::select! {
                        _ = stop.wait() => return None,
                        batch = reader.next_batch_until(max_records, wait, until) => batch,
                    };
                    if let Some(batch) = gathered {
                        break batch;
                    }
                    // Idle: catch up the partitions the group gave this instance, so
                    // their first records do not wait for it.
                    let assigned = reader.assigned(&topic);
                    if let Err(failed) = self
                        .catch_up(&assigned, rebalances.count(), &shutdown)
                        .await
                    {
                        // Tried again at the next idle check and before the next
                        // batch; said once per distinct cause, not every second.
                        let said = failed.to_string();
                        if idle_failure.as_deref() != Some(said.as_str()) {
                            tracing::error!(error = %said, "the keyed state of this instance's partitions could not be caught up");
                            idle_failure = Some(said);
                        }
                    } else {
                        idle_failure = None;
                    }
                };
                let started = Instant::now();
                record_age(&batch, "gathered");
                let rebalanced = rebalances.count();
                let partitions = partition_count.current(rebalanced, sink, &topic).await;
                let processed = self
                    .process(&batch, rebalanced, partitions, &shutdown)
                    .await;
                Some((batch, processed, started, rebalanced))
            };
            let (announced, next) = tokio::join!(announced, next);
            if stored.take().is_some() {
                if let Err(interrupted) = announced {
                    tracing::warn!(error = %interrupted, "stopping with an unannounced batch; it will be reprocessed");
                    return ProcessorError::unless_shutdown(&shutdown, interrupted);
                }
            }
            let Some((batch, processed, started, decided_at)) = next else {
                break;
            };
            let (processed, staged) = match processed {
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
            if !processed.calls.is_empty() {
                // Decided (the state's next readers see it), nothing written yet.
                runtime::crash_point::reached("processor.after_decide");
            }
            if let Err(interrupted) = store(sink, &processed, self.source_keys.rows(), &shutdown)
                .instrument(span)
                .await
            {
                tracing::warn!(error = %interrupted, "stopping with an unwritten batch; it will be reprocessed");
                return ProcessorError::unless_shutdown(&shutdown, interrupted);
            }
            self.source_keys.stored();
            // Visible to analysts: no longer lag (`kafka_group_lag_seconds`).
            reader.settled(&batch);
            stored = Some(Stored {
                erasing: std::mem::take(&mut self.erasing),
                suppressing: std::mem::take(&mut self.suppressing),
                batch,
                processed,
                staged,
                started,
                decided_at,
            });
        }
        Ok(())
    }

    /// Maps and enriches a batch, and applies what it changes to the keyed state
    /// (returned staged for the changelog). `Err` when stopped while a store was down.
    pub async fn process(
        &mut self,
        batch: &[OwnedMessage],
        rebalances: u64,
        raw_partitions: Option<i32>,
        shutdown: &Shutdown,
    ) -> Result<(Processed, Staged), Interrupted> {
        let partitions: Vec<i32> = batch.iter().map(|m| m.partition()).collect();
        self.catch_up(&partitions, rebalances, shutdown).await?;
        // What an earlier decision of this batch found and did not store.
        self.source_keys.discard();
        let mut step = Batch::new(Utc::now())
            .with_parking(self.parking.max_attempts)
            .with_message_limit(self.max_message_bytes);
        if let Some(partitions) = raw_partitions {
            step = step.with_raw_partitions(partitions);
        }
        let mut gave_up = HashSet::new();
        // Erasure orders for callers of this batch's partitions, applied to the
        // state after the batch's own decisions.
        let mut erasing: Vec<(At, ErasureOrder)> = Vec::new();
        // Suppressions lifted by this batch's records, met before its calls.
        let mut lifting: Vec<(At, SuppressionLift)> = Vec::new();
        // CmCalls of this batch, by their caller's key (and the partition it lives in).
        let mut arrived: BTreeMap<String, (i32, Vec<Candidate>)> = BTreeMap::new();
        for message in batch {
            let record = RawRecord {
                key: message.key(),
                payload: message.payload().unwrap_or_default(),
                topic: message.topic(),
                partition: message.partition(),
                offset: message.offset(),
                parked: crate::parking::parked_count(message),
            };
            if crate::parking::header_number(message, schemas::topics::ERASE_HEADER).is_some() {
                match serde_json::from_slice::<ErasureOrder>(record.payload) {
                    Ok(order) => erasing.push((At::of(&record), order)),
                    Err(error) => {
                        tracing::error!(%error, partition = record.partition, offset = record.offset, "unreadable erasure order on the raw topic; skipped");
                        metrics::counter!(crate::metric_names::PROCESSOR_ERASURE_ORDERS_TOTAL, "outcome" => "unreadable")
                            .increment(1);
                    }
                }
                continue;
            }
            if crate::parking::header_number(message, schemas::topics::LIFT_HEADER).is_some() {
                match serde_json::from_slice::<SuppressionLift>(record.payload) {
                    Ok(lift) => lifting.push((At::of(&record), lift)),
                    Err(error) => {
                        tracing::error!(%error, partition = record.partition, offset = record.offset, "unreadable suppression lift on the raw topic; skipped");
                        metrics::counter!(crate::metric_names::PROCESSOR_SUPPRESSION_LIFTS_TOTAL, "outcome" => "unreadable")
                            .increment(1);
                    }
                }
                continue;
            }
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
            if crate::parking::header_number(message, schemas::topics::CM_CALL_HEADER).is_some() {
                match serde_json::from_slice::<CmCall>(record.payload) {
                    Ok(call) => {
                        let account = call.account.clone().unwrap_or_default();
                        let key = schemas::ids::caller_key(&account, call.caller.as_str());
                        arrived
                            .entry(key)
                            .or_insert_with(|| (record.partition, Vec::new()))
                            .1
                            .push(Candidate::of(&call, &account));
                    }
                    Err(error) => {
                        tracing::error!(%error, partition = record.partition, offset = record.offset, "unreadable CmCall on the raw topic; skipped");
                        metrics::counter!(crate::metric_names::PROCESSOR_CM_INVALID_TOTAL)
                            .increment(1);
                    }
                }
                continue;
            }
            match engine::batch::envelope(&record) {
                Ok(envelope) => {
                    let mapping = self.mapping_for(&envelope, &mut gave_up).await;
                    if let Ok(compiled) = &mapping {
                        self.source_keys
                            .observe(&compiled.integration.account, &envelope);
                    }
                    step.push(&record, envelope, mapping);
                }
                Err(letter) => step.unreadable(*letter),
            }
        }
        // The stored calls a CmCall may complete: its caller's calls around it.
        let cm_callers = self.callers(arrived.iter().map(|(k, (p, _))| (*p, k.clone())))?;
        for (key, (_, calls)) in &arrived {
            if let Some(state) = cm_callers.get(key) {
                for (client, id) in relinks_for(state, calls) {
                    step.relink(client, id);
                }
            }
        }
        let ids: Vec<CallId> = step.call_ids().iter().map(|(_, id)| *id).collect();
        let mut known = self.state.calls(&ids).map_err(stopped)?;
        // What the state cannot say, asked of ClickHouse (bounded by the batch): a
        // record without a caller arrives under its call's id, in whatever partition
        // that maps to; a record without a start, or older than the state keeps,
        // may name a call only ClickHouse still holds. Every other call not in the
        // state is new, and costs no read.
        let mut elsewhere: Vec<(ClientId, CallId)> = step
            .named_calls()
            .into_iter()
            .filter(|n| !known.contains_key(&n.id))
            .filter(|n| {
                !n.has_caller
                    || n.started_at
                        .is_none_or(|at| at < self.state.horizon(n.partition))
            })
            .map(|n| (n.client_id, n.id))
            .collect();
        elsewhere.sort_by_key(|(_, id)| id.0);
        elsewhere.dedup();
        let found = self.stored_elsewhere(&elsewhere, shutdown).await?;
        known.extend(found);
        step.assemble(known);
        self.suppressing.clear();
        self.suppressions.settle();
        for (at, lift) in lifting {
            let (key, was) = self.suppressions.lift(&lift, at);
            let outcome = if was { "lifted" } else { "not_suppressed" };
            tracing::info!(lift = %lift.id, account = %lift.account, outcome, "suppression lift met");
            metrics::counter!(crate::metric_names::PROCESSOR_SUPPRESSION_LIFTS_TOTAL, "outcome" => outcome)
                .increment(1);
            self.suppressing.push(ListChange::Lift(key));
        }
        let suppressed = self.suppressions.apply(step.calls_mut());
        if suppressed > 0 {
            metrics::counter!(crate::metric_names::PROCESSOR_SUPPRESSED_CALLS_TOTAL)
                .increment(suppressed as u64);
        }
        let (changed, callers) = self
            .enrich(step.calls_mut(), cm_callers, arrived, shutdown)
            .await?;
        let ids: Vec<CallId> = changed.iter().map(|r| r.id).collect();
        let mut stored = self.state.calls(&ids).map_err(stopped)?;
        let older: Vec<(ClientId, CallId)> = changed
            .iter()
            .filter(|r| !stored.contains_key(&r.id))
            .map(|r| (r.client_id.clone(), r.id))
            .collect();
        stored.extend(self.stored_elsewhere(&older, shutdown).await?);
        step.redecide(changed, &stored);
        let processed = step.finish();
        let mut writes = BatchWrites {
            calls: processed
                .calls
                .iter()
                .map(|c| (c.raw.partition, c.clone()))
                .collect(),
            callers,
        };
        self.erasing.clear();
        for (at, order) in erasing {
            crate::erasure_orders::erase_state(&self.state, &mut writes, at.partition, &order)
                .map_err(stopped)?;
            if order.suppress {
                // From the next batch on; this one's calls of the caller are in its
                // window, erased just now.
                if let Some(entry) = self.suppressions.add(&order, &at) {
                    self.suppressing.push(ListChange::Add(entry));
                }
            }
            self.erasing.push(order);
        }
        let staged = self.state.stage(writes, rebalances).map_err(stopped)?;
        Ok((processed, staged))
    }

    /// Catches the batch's partitions up with their changelog, those not caught up
    /// since the group last rebalanced.
    async fn catch_up(
        &self,
        partitions: &[i32],
        rebalances: u64,
        shutdown: &Shutdown,
    ) -> Result<(), Interrupted> {
        let partitions: std::collections::BTreeSet<i32> = partitions
            .iter()
            .copied()
            .filter(|p| !self.state.is_ready(*p, rebalances))
            .collect();
        // Side by side: a restore mostly waits for the broker.
        let restores = partitions.into_iter().map(|partition| {
            let (state, store) = (self.state.clone(), self.store.clone());
            crate::sink::retry_until_stopped(
                "catch up the keyed state",
                shutdown,
                self.max_backoff,
                move || {
                    let (state, store) = (state.clone(), store.clone());
                    async move {
                        let empty = async { store.has_calls().await.is_ok_and(|has| !has) };
                        state.restore(partition, rebalances, empty).await
                    }
                },
            )
        });
        futures::future::try_join_all(restores).await?;
        Ok(())
    }

    /// Stored calls the keyed state does not hold, from ClickHouse.
    async fn stored_elsewhere(
        &self,
        ids: &[(ClientId, CallId)],
        shutdown: &Shutdown,
    ) -> Result<HashMap<CallId, CallRecord>, Interrupted> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        metrics::counter!(crate::metric_names::PROCESSOR_STATE_CLICKHOUSE_LOOKUPS_TOTAL, "what" => "calls")
            .increment(ids.len() as u64);
        self.read("read calls the state does not hold", shutdown, || {
            self.store.calls(ids)
        })
        .await
    }

    /// The kept state of `(partition, caller key)`s.
    fn callers(
        &self,
        keys: impl Iterator<Item = (i32, String)>,
    ) -> Result<HashMap<String, CallerState>, Interrupted> {
        let keys: Vec<(i32, String)> = keys.collect();
        self.state.callers(&keys).map_err(stopped)
    }

    /// Repeat and CallMatrix-duplicate decisions for the batch's calls, then their
    /// status, over the callers' kept state. Returns the stored calls whose repeat
    /// decision this batch changed, and every touched caller's state after the batch.
    async fn enrich(
        &self,
        calls: &mut [CallRecord],
        cm_callers: HashMap<String, CallerState>,
        arrived: BTreeMap<String, (i32, Vec<Candidate>)>,
        shutdown: &Shutdown,
    ) -> Result<CallerDecisions, Interrupted> {
        let registry = self.registry.clone();
        let rules = move |client: &ClientId| {
            registry
                .get(client)
                .map(|i| i.enrichment.clone())
                .unwrap_or_default()
        };
        // Each caller's partition: that of its calls' records in this batch (a
        // record decided here is in its caller's partition).
        let mut partition_of: HashMap<String, i32> = calls
            .iter()
            .filter(|c| c.caller.is_some())
            .map(|c| (enrich::key_of(c), c.raw.partition))
            .collect();
        for (key, (partition, _)) in &arrived {
            partition_of.entry(key.clone()).or_insert(*partition);
        }
        let missing: Vec<(i32, String)> = partition_of
            .iter()
            .filter(|(key, _)| !cm_callers.contains_key(*key))
            .map(|(key, p)| (*p, key.clone()))
            .collect();
        let mut states = self.callers(missing.into_iter())?;
        states.extend(cm_callers);
        for (key, (_, arrived)) in arrived {
            let state = states.entry(key).or_default();
            for call in arrived {
                state.add_cm_call(call);
            }
        }
        let mut held: HeldHistories = enrich::caller_keys(calls)
            .into_iter()
            .map(|key| {
                let history = states
                    .get(&key)
                    .map(CallerState::history)
                    .unwrap_or_default();
                (key, history)
            })
            .collect();
        // A caller with a call older than its partition keeps (a late record
        // beyond the retention window): its history from ClickHouse too, bounded by
        // that caller.
        let late: std::collections::BTreeSet<(String, String)> = calls
            .iter()
            .filter(|c| c.started_at < self.state.horizon(c.raw.partition))
            .filter_map(|c| Some((c.account.clone(), c.caller.as_ref()?.as_str().to_owned())))
            .collect();
        if !late.is_empty() {
            let keys: Vec<(String, String)> = late.into_iter().collect();
            metrics::counter!(crate::metric_names::PROCESSOR_STATE_CLICKHOUSE_LOOKUPS_TOTAL, "what" => "histories")
                .increment(keys.len() as u64);
            let stored = self
                .read("read histories of late callers", shutdown, || {
                    self.store.histories(&keys)
                })
                .await?;
            for (key, visits) in stored {
                let history = held.entry(key).or_default();
                let merged = std::sync::Arc::make_mut(history);
                for (id, visit) in visits {
                    merged.entry(id).or_insert(visit);
                }
            }
        }
        let changed = self.enricher.decide_repeats(calls, &mut held, &rules);

        // Calls to match by number and time: on a managed number of their account,
        // not echoed; against the CmCalls of their own caller.
        let linked: std::collections::BTreeSet<String> = calls
            .iter()
            .filter(|c| c.called.is_some() && c.match_method != Some(MatchMethod::EchoedId))
            .filter(|c| self.enricher.is_callmatrix_call(c))
            .map(enrich::key_of)
            .collect();
        let candidates: Vec<Candidate> = linked
            .iter()
            .filter_map(|key| states.get(key))
            .flat_map(|s| s.cm_calls.iter().cloned())
            .collect();
        self.enricher.link_duplicates(calls, &candidates, &rules);
        for call in calls.iter_mut() {
            enrich::settle_status(call);
        }
        let callers = states
            .into_iter()
            .filter_map(|(key, state)| {
                let partition = *partition_of.get(&key)?;
                let state = match held.get(&key) {
                    Some(history) => state.with_history(history),
                    None => state,
                };
                Some((partition, key, state))
            })
            .collect();
        Ok((changed, callers))
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
    /// Erasure orders its state changes carried out, for the erasure worker.
    erasing: Vec<ErasureOrder>,
    /// Suppressions it added or lifted, for the suppressions topic.
    suppressing: Vec<crate::suppressions::ListChange>,
    processed: Processed,
    /// Its changes to the keyed state, for the changelog.
    staged: Staged,
    started: Instant,
    /// The group's rebalance count when it was decided: committed only if it has
    /// not moved since.
    decided_at: u64,
}

/// What the enrichment decided beyond the batch's calls: the stored calls whose
/// repeat decision changed, and each touched caller's state after the batch.
type CallerDecisions = (Vec<enrich::Redecided>, Vec<(i32, String, CallerState)>);

impl Stored {
    /// Its figures, once announced: from its first record gathered to here.
    /// `newest` keeps each account's newest receive time stored so far (a replayed
    /// old record must not make the pipeline look fresher than it is, nor staler).
    fn count(&self, newest: &mut HashMap<String, i64>) {
        let processed = &self.processed;
        for call in &processed.calls {
            let at = call.received_at.timestamp();
            let known = newest.entry(call.account.clone()).or_insert(i64::MIN);
            if at > *known {
                *known = at;
                metrics::gauge!(crate::metric_names::PROCESSOR_NEWEST_RECEIVED_TIMESTAMP_SECONDS, "account" => call.account.clone())
                    .set(at as f64);
            }
        }
        let mut per_client: HashMap<&str, u64> = HashMap::new();
        for call in &processed.calls {
            *per_client.entry(call.client_id.as_str()).or_default() += 1;
        }
        for (client, calls) in per_client {
            metrics::counter!(crate::metric_names::PROCESSOR_CALLS_TOTAL, "client_id" => client.to_owned())
                .increment(calls);
        }
        for letter in &processed.dead_letters {
            metrics::counter!(crate::metric_names::PROCESSOR_DEAD_LETTERS_TOTAL, "client_id" => letter.client_id.to_string())
                .increment(1);
        }
        for filtered in &processed.filtered {
            metrics::counter!(crate::metric_names::PROCESSOR_FILTERED_TOTAL, "client_id" => filtered.client_id.to_string(), "reason" => filtered.reason.clone())
                .increment(1);
        }
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
        metrics::counter!(crate::metric_names::PROCESSOR_RECORDS_TOTAL, "outcome" => "filtered")
            .increment(processed.filtered.len() as u64);
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
    source_keys: &[schemas::source_keys::SourceKeyRow],
    shutdown: &Shutdown,
) -> Result<(), Interrupted> {
    // Crash points count only the batches that wrote something at that step.
    sink.retire_moved(&processed.moved, shutdown).await?;
    if !processed.moved.is_empty() {
        runtime::crash_point::reached("processor.after_retire");
    }
    sink.store(&processed.calls, shutdown).await?;
    sink.store_filtered(&processed.filtered, shutdown).await?;
    sink.store_source_keys(source_keys, shutdown).await
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

/// A keyed state that fails for good (its disk, a corrupt entry) stops the batch.
fn stopped(error: crate::state::StateError) -> Interrupted {
    Interrupted {
        last_error: error.to_string(),
    }
}

/// The stored calls of a caller that newly arrived CmCalls may link: those starting
/// within the widest start tolerance of one of them. Their next versions are decided
/// again in the batch (a relink that changes nothing writes nothing).
fn relinks_for(state: &CallerState, arrived: &[Candidate]) -> Vec<(ClientId, CallId)> {
    let margin = chrono::Duration::seconds(i64::from(schemas::enrichment::MAX_TOLERANCE_S));
    state
        .visits
        .iter()
        .filter(|v| {
            arrived
                .iter()
                .any(|c| (v.started_at - c.started_at).abs() <= margin)
        })
        .map(|v| (v.client_id.clone(), v.id))
        .collect()
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

/// A task that ends when its owner does.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
