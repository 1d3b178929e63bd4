//! CallMatrix's own data into ClickHouse, and links made after the fact.
//!
//! The `callmatrix` consumer group reads the managed-numbers and CmCall topics,
//! writes `cm_numbers` and `cm_calls`, and then finds partner records on those
//! numbers that were stored before their CmCall arrived. It does not write them:
//! it asks the owner of each caller's partition to match the call again (a
//! `RelinkRequest` on the raw topic), so the new version (and its `call.updated`
//! event) is made by the one consumer that makes every other change to that call.
//! Written here, a link and a repeat re-decision made from the same stored version
//! would both get the next version number, and one would be lost. A periodic sweep
//! re-links records still pending, so a partner record and its CmCall processed at
//! the same moment by two instances are linked on the next sweep instead of never.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use engine::enrich::{self, duplicates};
use rdkafka::message::{Message, OwnedMessage};
use runtime::kafka::{group_reader, KafkaConfig};
use runtime::registry::IntegrationRegistry;
use runtime::shutdown::Shutdown;
use schemas::callmatrix::{CmCall, CmCallRow, ManagedNumber, ManagedNumberRow, RelinkRequest};

use crate::sink::{insert, BatchSink, Interrupted};
use crate::store::{Duplicates, Store};

pub const GROUP: &str = "callmatrix";

/// Widest start tolerance a rule may set: CmCalls are read this far around the
/// partner records being linked.
const SEARCH_MARGIN_S: i64 = schemas::enrichment::MAX_TOLERANCE_S as i64;

pub struct Linker<S: Store> {
    pub sink: Arc<BatchSink>,
    pub store: Arc<S>,
    pub registry: IntegrationRegistry,
    /// The numbers CallMatrix manages: a CmCall that names no account is the
    /// account's that manages its number.
    pub managed: Arc<dyn engine::enrich::ManagedNumbers>,
    pub max_records: usize,
    pub max_wait: Duration,
    pub sweep_every: Duration,
}

impl<S: Store> Linker<S> {
    pub async fn run(
        &self,
        kafka: &KafkaConfig,
        shutdown: Shutdown,
    ) -> Result<(), crate::error::ProcessorError> {
        let topics = kafka.topics();
        let mut reader = group_reader(kafka, GROUP, &[&topics.cm_numbers, &topics.cm_calls])?;
        let mut stop = shutdown.clone();
        // The sweep runs between batches, never by cancelling one being gathered:
        // its records would be dropped after the consumer had moved past them, and
        // the next commit would skip them for good.
        let mut next_sweep = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_sweep {
                if let Err(interrupted) = self.relink(&Duplicates::Pending, &shutdown).await {
                    return crate::error::ProcessorError::unless_shutdown(&shutdown, interrupted);
                }
                next_sweep = tokio::time::Instant::now() + self.sweep_every;
            }
            let batch = tokio::select! {
                _ = stop.wait() => break,
                batch = reader.next_batch_until(self.max_records, self.max_wait, next_sweep) => batch,
            };
            let Some(batch) = batch else { continue };
            if let Err(interrupted) = self.record(&batch, &topics.cm_calls, &shutdown).await {
                tracing::warn!(
                    "stopping with an unwritten CallMatrix batch; it will be reprocessed"
                );
                return crate::error::ProcessorError::unless_shutdown(&shutdown, interrupted);
            }
            reader.commit(&batch);
        }
        Ok(())
    }

    /// Writes the batch's numbers and CmCalls, then links what they complete.
    async fn record(
        &self,
        batch: &[OwnedMessage],
        calls_topic: &str,
        shutdown: &Shutdown,
    ) -> Result<(), Interrupted> {
        let now = Utc::now();
        let mut numbers = Vec::new();
        let mut calls = Vec::new();
        for message in batch {
            let payload = message.payload();
            if message.topic() == calls_topic {
                match payload.map(serde_json::from_slice::<CmCall>) {
                    Some(Ok(call)) => match self.account_of(&call) {
                        Some(account) => calls.push(CmCallRow::new(&call, account, now)),
                        None => {
                            tracing::error!(cm_call_id = %call.cm_call_id, called = %call.called, "CmCall names no account and its number is not managed; skipped");
                            metrics::counter!(crate::metric_names::PROCESSOR_CM_INVALID_TOTAL)
                                .increment(1);
                        }
                    },
                    other => invalid(message, other.and_then(|r| r.err())),
                }
            } else {
                let key = message.key().and_then(|k| std::str::from_utf8(k).ok());
                match (key, payload.map(serde_json::from_slice::<ManagedNumber>)) {
                    (Some(_), Some(Ok(number))) => numbers.push(ManagedNumberRow {
                        number: number.number.to_string(),
                        account: number.account,
                        campaign: number.campaign,
                        active: u8::from(number.active),
                        updated_at: schemas::call::to_whole_seconds(now),
                    }),
                    // A tombstone retires the number.
                    (Some(key), None) => numbers.push(ManagedNumberRow {
                        number: key.to_owned(),
                        account: String::new(),
                        campaign: String::new(),
                        active: 0,
                        updated_at: schemas::call::to_whole_seconds(now),
                    }),
                    (_, other) => invalid(message, other.and_then(|r| r.err())),
                }
            }
        }
        let clickhouse = &self.sink.clickhouse;
        if !numbers.is_empty() {
            self.sink
                .retry("insert cm_numbers", shutdown, || {
                    insert(clickhouse, "cm_numbers", &numbers)
                })
                .await?;
        }
        if calls.is_empty() {
            return Ok(());
        }
        self.sink
            .retry("insert cm_calls", shutdown, || {
                insert(clickhouse, "cm_calls", &calls)
            })
            .await?;
        metrics::counter!(crate::metric_names::CLICKHOUSE_ROWS_WRITTEN_TOTAL, "table" => "cm_calls")
            .increment(calls.len() as u64);
        let (first, last) = time_span(calls.iter().map(|c| c.started_at.timestamp()));
        let around = Duplicates::Around {
            accounts: calls.iter().map(|c| c.account.clone()).collect(),
            called: calls.iter().map(|c| c.called.as_str().to_owned()).collect(),
            from: first - SEARCH_MARGIN_S,
            to: last + SEARCH_MARGIN_S,
        };
        self.relink(&around, shutdown).await
    }

    /// The account a CmCall was routed for: its own, else the managing account's.
    fn account_of(&self, call: &CmCall) -> Option<String> {
        call.account
            .clone()
            .filter(|a| !a.trim().is_empty())
            .or_else(|| {
                self.managed
                    .managed(call.called.as_str())
                    .map(|n| n.account.clone())
            })
    }

    /// Matches the stored duplicates `which` names against the CmCalls around them,
    /// and asks for those whose link would change to be linked again.
    async fn relink(&self, which: &Duplicates, shutdown: &Shutdown) -> Result<(), Interrupted> {
        let max_backoff = self.sink.max_backoff;
        let partners =
            crate::store::read("read duplicates to relink", shutdown, max_backoff, || {
                self.store.duplicates(which)
            })
            .await?;
        if partners.is_empty() {
            return Ok(());
        }
        let called: BTreeSet<String> = partners
            .iter()
            .filter_map(|c| c.called.as_ref().map(|n| n.as_str().to_owned()))
            .collect();
        let accounts: BTreeSet<String> = partners.iter().map(|c| c.account.clone()).collect();
        let (first, last) = time_span(partners.iter().map(|c| c.started_at.timestamp()));
        let candidates = crate::store::read("read CmCalls", shutdown, max_backoff, || {
            self.store.cm_calls(
                &accounts,
                &called,
                first - SEARCH_MARGIN_S,
                last + SEARCH_MARGIN_S,
            )
        })
        .await?;
        let requests: Vec<(String, Vec<u8>)> = partners
            .into_iter()
            .filter(|call| {
                let rule = self
                    .registry
                    .get(&call.client_id)
                    .map(|i| i.enrichment.duplicates.clone())
                    .unwrap_or_default();
                let found = duplicates::link(call, &candidates, &rule);
                let unchanged = call.match_method == Some(found.method)
                    && call.cm_call_id == found.cm_call_id
                    && call.match_start_delta_s == found.start_delta_s;
                !unchanged
            })
            .map(|call| {
                let request = RelinkRequest {
                    client_id: call.client_id.clone(),
                    id: call.id,
                };
                let payload = serde_json::to_vec(&request).unwrap_or_default();
                (enrich::key_of(&call), payload)
            })
            .collect();
        if !requests.is_empty() {
            tracing::info!(
                calls = requests.len(),
                "asking the callers' partitions to link partner records to CallMatrix calls"
            );
            metrics::counter!(crate::metric_names::PROCESSOR_CM_LINKS_TOTAL, "when" => "after")
                .increment(requests.len() as u64);
            self.sink.relink(&requests, shutdown).await?;
        }
        Ok(())
    }
}

fn time_span(seconds: impl Iterator<Item = i64>) -> (i64, i64) {
    seconds.fold((i64::MAX, i64::MIN), |(lo, hi), s| (lo.min(s), hi.max(s)))
}

fn invalid(message: &OwnedMessage, error: Option<serde_json::Error>) {
    let error = error
        .map(|e| e.to_string())
        .unwrap_or_else(|| "no key or no payload".into());
    tracing::error!(topic = message.topic(), partition = message.partition(), offset = message.offset(), %error, "invalid CallMatrix message; skipped");
    metrics::counter!(crate::metric_names::PROCESSOR_CM_INVALID_TOTAL).increment(1);
}
