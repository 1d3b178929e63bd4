//! One import: rows in, checked against the integration's mapping, raw records out
//! to Kafka in acknowledged batches, with progress kept for `GET /api/imports/{id}`
//! and published as `import.progress` events (which the api's SSE stream carries).
//!
//! A row that cannot become a call (a CSV error, or a required field the mapping
//! cannot fill) is rejected with its row number and reason, and dead-lettered (a
//! mapping failure as a `mapping` dead letter, so it can be replayed after a fix).
//! Raw ids come from each row's content and call ids from the call, so importing the
//! same file again stores no second row.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use runtime::kafka::{AckedProducer, OutgoingMessage};
use schemas::call::RawPosition;
use schemas::dead_letter::Stage;
use schemas::topics::Topics;
use schemas::{ClientId, DeadLetter, Integration, RawEnvelope, Source};
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::reader::Row;
use crate::webhook::{content_key, dead_letter};

/// Rows sent to Kafka per acknowledged batch.
const BATCH: usize = 500;
/// Rejected rows listed in a job's status (all are counted and dead-lettered).
const LISTED_REJECTIONS: usize = 1000;
/// Finished jobs remembered per instance.
const KEPT_JOBS: usize = 1000;
/// Attempts to send one batch before the import fails.
const SEND_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Running,
    Done,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectedRow {
    pub row: u64,
    pub reason: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportStatus {
    pub import_id: Uuid,
    pub client_id: ClientId,
    pub account: String,
    /// `upload`, or the URL fetched.
    pub source: String,
    pub state: State,
    pub rows_read: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub rejected_rows: Vec<RejectedRow>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

/// The jobs this instance ran or runs.
#[derive(Clone, Default)]
pub struct ImportJobs(Arc<Mutex<HashMap<Uuid, ImportStatus>>>);

impl ImportJobs {
    pub fn get(&self, id: &Uuid) -> Option<ImportStatus> {
        self.lock().get(id).cloned()
    }

    fn put(&self, status: &ImportStatus) {
        let mut jobs = self.lock();
        if jobs.len() >= KEPT_JOBS && !jobs.contains_key(&status.import_id) {
            let oldest_finished = jobs
                .values()
                .filter(|j| j.state != State::Running)
                .min_by_key(|j| j.started_at)
                .map(|j| j.import_id);
            if let Some(id) = oldest_finished {
                jobs.remove(&id);
            }
        }
        jobs.insert(status.import_id, status.clone());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, ImportStatus>> {
        match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// What an import needs from the ingest process.
#[derive(Clone)]
pub struct Importer {
    pub producer: AckedProducer,
    pub topics: Topics,
    /// The largest row: every message made from it fits the broker's limit.
    pub record_limits: schemas::limits::RecordLimits,
    /// The account's records per second: an import waits for its share.
    pub limits: std::sync::Arc<crate::limits::IngestLimits>,
    pub jobs: ImportJobs,
}

impl Importer {
    /// Registers a new job and returns its initial status.
    pub fn start(&self, integration: &Integration, source: String) -> ImportStatus {
        let started_at = Utc::now();
        let status = ImportStatus {
            import_id: Uuid::new_v5(
                &Uuid::NAMESPACE_OID,
                format!(
                    "{}/{}/{}",
                    integration.client_id,
                    source,
                    started_at.timestamp_nanos_opt().unwrap_or_default()
                )
                .as_bytes(),
            ),
            client_id: integration.client_id.clone(),
            account: integration.account.clone(),
            source,
            state: State::Running,
            rows_read: 0,
            accepted: 0,
            rejected: 0,
            rejected_rows: vec![],
            started_at,
            finished_at: None,
            error: None,
        };
        self.jobs.put(&status);
        status
    }

    /// Runs the job to the end of `rows`; the final status is also in `jobs`.
    pub async fn run(
        &self,
        integration: Arc<Integration>,
        mut status: ImportStatus,
        mut rows: mpsc::Receiver<Row>,
    ) -> ImportStatus {
        let mapping = match engine::mapping::CompiledMapping::compile(&integration) {
            Ok(mapping) => mapping,
            Err(error) => {
                return self
                    .finish(
                        status,
                        Some(format!("the mapping does not compile: {error}")),
                    )
                    .await
            }
        };
        // (Kafka key, envelope): the key is the caller key of the call the row maps
        // to, exactly as the processor derives it (no second parse of the row).
        let mut batch: Vec<(String, RawEnvelope)> = Vec::with_capacity(BATCH);
        let mut letters: Vec<DeadLetter> = Vec::new();
        let mut last_event = Instant::now();
        let received_at = Utc::now();
        while let Some(row) = rows.recv().await {
            status.rows_read += 1;
            match row {
                Row::Record { row, fields } => {
                    let text = serde_json::Value::Object(fields).to_string();
                    if let Err(too_large) = self.record_limits.check(&text) {
                        letters.push(
                            dead_letter(
                                &integration.client_id,
                                Source::Csv,
                                Stage::Ingest,
                                &text,
                                format!("row {row}: {too_large}"),
                                received_at,
                            )
                            .fit_within(schemas::limits::TOO_LARGE_LETTER_BYTES),
                        );
                        reject(&mut status, row, too_large.to_string(), vec![]);
                        continue;
                    }
                    let Ok(payload) = RawValue::from_string(text.clone()) else {
                        continue;
                    };
                    let envelope = RawEnvelope {
                        raw_id: schemas::ids::raw_record_id(
                            &integration.client_id,
                            &content_key(text.as_bytes()),
                        ),
                        client_id: integration.client_id.clone(),
                        source: Source::Csv,
                        received_at,
                        idempotency_key: content_key(text.as_bytes()),
                        integration_version: integration.version,
                        payload,
                    };
                    let position = RawPosition {
                        raw_id: envelope.raw_id,
                        topic: String::new(),
                        partition: -1,
                        offset: -1,
                    };
                    match engine::mapping::map_record(&mapping, &envelope, position, received_at) {
                        Ok(call) => batch.push((engine::enrich::key_of(&call), envelope)),
                        Err(rejection) => {
                            let errors: Vec<String> =
                                rejection.errors.iter().map(ToString::to_string).collect();
                            let reason = format!("row {row}: {}", rejection.reason);
                            letters.push(DeadLetter {
                                errors: errors.clone(),
                                ..dead_letter(
                                    &integration.client_id,
                                    Source::Csv,
                                    Stage::Mapping,
                                    &text,
                                    reason.clone(),
                                    received_at,
                                )
                            });
                            reject(&mut status, row, rejection.reason, errors);
                        }
                    }
                }
                Row::Bad { row, reason } => {
                    letters.push(dead_letter(
                        &integration.client_id,
                        Source::Csv,
                        Stage::Ingest,
                        "",
                        format!("row {row}: {reason}"),
                        received_at,
                    ));
                    reject(&mut status, row, reason, vec![]);
                }
            }
            if batch.len() >= BATCH || letters.len() >= BATCH {
                if let Err(error) = self.flush(&mut batch, &mut letters, &mut status).await {
                    return self.finish(status, Some(error)).await;
                }
            }
            if last_event.elapsed() >= Duration::from_secs(1) {
                self.jobs.put(&status);
                self.announce(&status).await;
                last_event = Instant::now();
            }
        }
        if let Err(error) = self.flush(&mut batch, &mut letters, &mut status).await {
            return self.finish(status, Some(error)).await;
        }
        self.finish(status, None).await
    }

    async fn flush(
        &self,
        batch: &mut Vec<(String, RawEnvelope)>,
        letters: &mut Vec<DeadLetter>,
        status: &mut ImportStatus,
    ) -> Result<(), String> {
        if !letters.is_empty() {
            let encoded: Vec<(String, Vec<u8>)> = letters
                .drain(..)
                .map(|d| crate::webhook::encoded_letter(d, self.record_limits.max_message_bytes()))
                .collect();
            self.send(&self.topics.dead_letter, &encoded).await?;
            letters.clear();
        }
        if !batch.is_empty() {
            self.limits.pace_records(&status.account, batch.len()).await;
            let encoded: Vec<(String, Vec<u8>)> = batch
                .iter()
                .map(|(key, envelope)| (key.clone(), envelope.to_json()))
                .collect();
            self.send(&self.topics.raw, &encoded).await?;
            status.accepted += batch.len() as u64;
            metrics::counter!(crate::metric_names::INGEST_RECORDS_TOTAL, "outcome" => "imported")
                .increment(batch.len() as u64);
            batch.clear();
        }
        Ok(())
    }

    /// Sends with a few retries: an import is long, a broker hiccup should not end it.
    async fn send(&self, topic: &str, encoded: &[(String, Vec<u8>)]) -> Result<(), String> {
        let mut backoff = Duration::from_millis(500);
        for attempt in 1..=SEND_ATTEMPTS {
            match self.producer.send_pairs(topic, encoded).await {
                Ok(()) => return Ok(()),
                Err(error) if attempt < SEND_ATTEMPTS && error.is_transient() => {
                    tracing::warn!(%error, attempt, "import batch not acknowledged; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(error) => {
                    return Err(format!(
                        "Kafka did not acknowledge a batch ({error}); rows before it are stored, and running the import again does not double them"
                    ))
                }
            }
        }
        Err("unreachable: the loop returns".into())
    }

    /// Ends a job that could not start reading (the fetch failed).
    pub async fn fail(&self, status: ImportStatus, error: String) -> ImportStatus {
        self.finish(status, Some(error)).await
    }

    async fn finish(&self, mut status: ImportStatus, error: Option<String>) -> ImportStatus {
        status.state = if error.is_some() {
            State::Failed
        } else {
            State::Done
        };
        status.error = error;
        status.finished_at = Some(Utc::now());
        tracing::info!(import_id = %status.import_id, client_id = %status.client_id, rows = status.rows_read, accepted = status.accepted, rejected = status.rejected, state = ?status.state, "import finished");
        self.jobs.put(&status);
        self.announce(&status).await;
        status
    }

    /// An `import.progress` event on the enriched topic: the api streams it to
    /// dashboards with the calls. Best effort: progress is also in `GET /api/imports`.
    async fn announce(&self, status: &ImportStatus) {
        #[derive(Serialize)]
        struct Progress<'a> {
            event: &'static str,
            #[serde(flatten)]
            status: &'a ImportStatus,
        }
        let mut listed = status.clone();
        listed.rejected_rows.truncate(20);
        let Ok(payload) = serde_json::to_vec(&Progress {
            event: "import.progress",
            status: &listed,
        }) else {
            return;
        };
        let key = status.import_id.to_string();
        let message = [OutgoingMessage {
            key: key.as_bytes(),
            payload: &payload,
            headers: &[],
            partition: None,
        }];
        if let Err(error) = self
            .producer
            .send_all(&self.topics.enriched, &message)
            .await
        {
            tracing::warn!(%error, "import progress event not published");
        }
    }
}

fn reject(status: &mut ImportStatus, row: u64, reason: String, errors: Vec<String>) {
    status.rejected += 1;
    metrics::counter!(crate::metric_names::INGEST_RECORDS_TOTAL, "outcome" => "import_rejected")
        .increment(1);
    if status.rejected_rows.len() < LISTED_REJECTIONS {
        status.rejected_rows.push(RejectedRow {
            row,
            reason,
            errors,
        });
    }
}
