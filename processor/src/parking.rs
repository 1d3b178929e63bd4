//! The parking worker: records waiting for their call come back after a delay.
//!
//! A late field can overtake its call (sent to another ingest instance, retried by
//! the partner, a CSV row before the webhook). The pipeline parks such a record on
//! `calls.parked` (with its raw key and a due time) instead of dead-lettering it;
//! this worker re-publishes each parked record to the raw topic when it is due, and
//! the pipeline tries it again. A record parked `parking.max_attempts` times
//! becomes a dead letter with the reason.
//!
//! The delay is the same for every record, so each partition of `calls.parked` is
//! in due order and the worker only ever waits for the record at its head. It
//! commits after re-publishing, so a crash re-publishes at most a batch again (the
//! raw record merges idempotently).

use std::time::Duration;

use chrono::Utc;
use rdkafka::message::{Headers, Message, OwnedMessage};
use runtime::kafka::{group_reader, KafkaConfig, OutgoingMessage};
use runtime::shutdown::Shutdown;
use schemas::topics::{DUE_HEADER, PARKED_HEADER};

use crate::sink::{BatchSink, Interrupted};

pub const GROUP: &str = "parking";

/// Records re-published per batch at most.
const MAX_BATCH: usize = 500;

pub async fn run(
    kafka: &KafkaConfig,
    sink: &BatchSink,
    shutdown: Shutdown,
) -> Result<(), crate::error::ProcessorError> {
    let mut reader = group_reader(kafka, GROUP, &[&sink.topics.parked])?;
    let mut stop = shutdown.clone();
    loop {
        let batch = tokio::select! {
            _ = stop.wait() => break,
            batch = reader.next_batch(MAX_BATCH, Duration::from_millis(100)) => batch,
        };
        if let Err(interrupted) = release(sink, &batch, &shutdown).await {
            tracing::warn!("stopping with parked records not re-published; they will be again");
            return crate::error::ProcessorError::unless_shutdown(&shutdown, interrupted);
        }
        reader.commit(&batch);
    }
    Ok(())
}

/// Waits until each record is due, then re-publishes it to the raw topic under its
/// key with its park count.
async fn release(
    sink: &BatchSink,
    batch: &[OwnedMessage],
    shutdown: &Shutdown,
) -> Result<(), Interrupted> {
    let mut stop = shutdown.clone();
    let mut due_now: Vec<&OwnedMessage> = Vec::new();
    for message in batch {
        let wait = due_at(message)
            .map(|due| due - Utc::now().timestamp_millis())
            .unwrap_or(0);
        if wait > 0 {
            // Publish what is due before sleeping for the next one.
            republish(sink, &due_now, shutdown).await?;
            due_now.clear();
            tokio::select! {
                _ = stop.wait() => return Err(Interrupted { last_error: "shut down while parked records waited".into() }),
                _ = tokio::time::sleep(Duration::from_millis(wait.unsigned_abs())) => {}
            }
        }
        due_now.push(message);
    }
    republish(sink, &due_now, shutdown).await
}

async fn republish(
    sink: &BatchSink,
    messages: &[&OwnedMessage],
    shutdown: &Shutdown,
) -> Result<(), Interrupted> {
    if messages.is_empty() {
        return Ok(());
    }
    let counts: Vec<Vec<u8>> = messages
        .iter()
        .map(|m| parked_count(*m).to_string().into_bytes())
        .collect();
    let headers: Vec<[(&str, &[u8]); 1]> = counts
        .iter()
        .map(|c| [(PARKED_HEADER, c.as_slice())])
        .collect();
    let outgoing: Vec<OutgoingMessage<'_>> = messages
        .iter()
        .zip(&headers)
        .map(|(message, headers)| OutgoingMessage {
            key: message.key().unwrap_or_default(),
            payload: message.payload().unwrap_or_default(),
            headers,
            partition: None,
        })
        .collect();
    sink.retry("re-publish parked records", shutdown, || {
        sink.producer.send_all(&sink.topics.raw, &outgoing)
    })
    .await?;
    metrics::counter!(crate::metric_names::PROCESSOR_PARKED_RELEASED_TOTAL)
        .increment(messages.len() as u64);
    Ok(())
}

/// A header's value as a number; absent or unreadable is `None`.
pub fn header_number(message: &impl Message, name: &str) -> Option<i64> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| std::str::from_utf8(h.value?).ok()?.trim().parse().ok())
}

/// How many times a record was parked (0 when it never was).
pub fn parked_count(message: &impl Message) -> u32 {
    header_number(message, PARKED_HEADER)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

fn due_at(message: &impl Message) -> Option<i64> {
    header_number(message, DUE_HEADER)
}
