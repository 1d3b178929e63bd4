//! CallMatrix's own data: into ClickHouse for readers, and to the callers'
//! partitions for linking.
//!
//! The `callmatrix` consumer group reads the managed-numbers and CmCall topics and
//! writes `cm_numbers` and `cm_calls`. Each CmCall is then sent to the raw topic
//! under its caller's key (the account that routed it, its caller's number) with
//! the `cm-call` header: the owner of that caller's partition keeps it in the
//! caller's state and links the partner records it completes, there and then. One
//! consumer makes every change to a caller's calls (late fields, repeat
//! re-decisions, links), in order; a partner record and its CmCall, whichever comes
//! first, meet in one partition, so nothing waits for a sweep.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rdkafka::message::{Message, OwnedMessage};
use runtime::kafka::{group_reader, KafkaConfig, OutgoingMessage};
use runtime::shutdown::Shutdown;
use schemas::callmatrix::{CmCall, CmCallRow, ManagedNumber, ManagedNumberRow};

use crate::sink::{insert, BatchSink, Interrupted};

pub const GROUP: &str = "callmatrix";

pub struct Linker {
    pub sink: Arc<BatchSink>,
    /// The numbers CallMatrix manages: a CmCall that names no account is the
    /// account's that manages its number.
    pub managed: Arc<dyn engine::enrich::ManagedNumbers>,
    pub max_records: usize,
    pub max_wait: Duration,
}

impl Linker {
    pub async fn run(
        &self,
        kafka: &KafkaConfig,
        shutdown: Shutdown,
    ) -> Result<(), crate::error::ProcessorError> {
        let topics = kafka.topics();
        let mut reader = group_reader(kafka, GROUP, &[&topics.cm_numbers, &topics.cm_calls])?;
        let mut stop = shutdown.clone();
        loop {
            let batch = tokio::select! {
                _ = stop.wait() => break,
                batch = reader.next_batch(self.max_records, self.max_wait) => batch,
            };
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

    /// Writes the batch's numbers and CmCalls, then sends each CmCall to its
    /// caller's partition.
    async fn record(
        &self,
        batch: &[OwnedMessage],
        calls_topic: &str,
        shutdown: &Shutdown,
    ) -> Result<(), Interrupted> {
        let now = Utc::now();
        let mut numbers = Vec::new();
        let mut calls: Vec<(CmCall, String)> = Vec::new();
        for message in batch {
            let payload = message.payload();
            if message.topic() == calls_topic {
                match payload.map(serde_json::from_slice::<CmCall>) {
                    Some(Ok(call)) => match self.account_of(&call) {
                        Some(account) => calls.push((call, account)),
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
        let rows: Vec<CmCallRow> = calls
            .iter()
            .map(|(call, account)| CmCallRow::new(call, account.clone(), now))
            .collect();
        self.sink
            .retry("insert cm_calls", shutdown, || {
                insert(clickhouse, "cm_calls", &rows)
            })
            .await?;
        metrics::counter!(crate::metric_names::CLICKHOUSE_ROWS_WRITTEN_TOTAL, "table" => "cm_calls")
            .increment(rows.len() as u64);
        // To the callers' partitions, each with its account.
        let sent: Vec<(String, Vec<u8>)> = calls
            .into_iter()
            .map(|(mut call, account)| {
                let key = schemas::ids::caller_key(&account, call.caller.as_str());
                call.account = Some(account);
                (key, serde_json::to_vec(&call).unwrap_or_default())
            })
            .collect();
        let header: [(&str, &[u8]); 1] = [(schemas::topics::CM_CALL_HEADER, b"1")];
        let messages: Vec<OutgoingMessage<'_>> = sent
            .iter()
            .map(|(key, payload)| OutgoingMessage {
                key: key.as_bytes(),
                payload,
                headers: &header,
                partition: None,
            })
            .collect();
        self.sink
            .retry(
                "send CmCalls to their callers' partitions",
                shutdown,
                || {
                    self.sink
                        .producer
                        .send_all(&self.sink.topics.raw, &messages)
                },
            )
            .await?;
        metrics::counter!(crate::metric_names::PROCESSOR_CM_LINKS_TOTAL, "when" => "after")
            .increment(messages.len() as u64);
        Ok(())
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
}

fn invalid(message: &OwnedMessage, error: Option<serde_json::Error>) {
    let error = error
        .map(|e| e.to_string())
        .unwrap_or_else(|| "no key or no payload".into());
    tracing::error!(topic = message.topic(), partition = message.partition(), offset = message.offset(), %error, "invalid CallMatrix message; skipped");
    metrics::counter!(crate::metric_names::PROCESSOR_CM_INVALID_TOTAL).increment(1);
}
