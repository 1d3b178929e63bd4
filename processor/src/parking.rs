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
//! in due order. The worker keeps what it has read and is not yet due in
//! [`Waiting`] and pauses those partitions, reading on meanwhile: it used to sleep
//! until the next record was due, holding its batch without reading, and a member
//! that does not read cannot finish a rebalance (alert drill run 4: after a broker
//! kill the group was without partitions for 16 minutes, joining again 12 times).
//! It commits after re-publishing, so a crash re-publishes at most what was due
//! again (the raw record merges idempotently); after a rebalance it forgets what
//! waits, which the partition's next reader reads again from the last commit.

mod waiting;

use std::time::Duration;

use chrono::Utc;
use rdkafka::message::{Headers, Message, OwnedMessage};
use runtime::kafka::{counting_group_reader, KafkaConfig, OutgoingMessage};
use runtime::shutdown::Shutdown;
use schemas::topics::PARKED_HEADER;
use tokio::time::Instant;

use crate::sink::{BatchSink, Interrupted};
use waiting::Waiting;

pub const GROUP: &str = "parking";

/// Records read per batch at most.
const MAX_BATCH: usize = 500;

/// How long a read waits for records when none is waiting to fall due.
const IDLE_READ: Duration = Duration::from_secs(5);

pub async fn run(
    kafka: &KafkaConfig,
    sink: &BatchSink,
    shutdown: Shutdown,
) -> Result<(), crate::error::ProcessorError> {
    let topic = sink.topics.parked.clone();
    let (mut reader, rebalances) = counting_group_reader(kafka, GROUP, &[&topic])?;
    let mut waiting = Waiting::default();
    let mut paused: Vec<i32> = Vec::new();
    let mut rebalanced = rebalances.count();
    let mut stop = shutdown.clone();
    loop {
        let read_for = waiting
            .next_due()
            .map(|due| {
                let wait = due.saturating_sub(Utc::now().timestamp_millis());
                Duration::from_millis(wait.max(0).unsigned_abs())
            })
            .unwrap_or(IDLE_READ)
            .min(IDLE_READ);
        let batch = tokio::select! {
            _ = stop.wait() => break,
            batch = reader.next_batch_until(MAX_BATCH, Duration::from_millis(100), Instant::now() + read_for) => batch,
        };
        if rebalances.count() != rebalanced {
            // What waits here may be another member's now; a partition this member
            // keeps or is given starts again from the last commit (its first
            // waiting record), unpaused.
            rebalanced = rebalances.count();
            waiting.clear();
            reader.resume(&topic, &std::mem::take(&mut paused));
        }
        if let Some(batch) = batch {
            waiting.add(batch);
        }
        let due = waiting.take_due(Utc::now().timestamp_millis());
        if !due.is_empty() {
            let refs: Vec<&OwnedMessage> = due.iter().collect();
            if let Err(interrupted) = republish(sink, &refs, &shutdown).await {
                tracing::warn!("stopping with parked records not re-published; they will be again");
                return crate::error::ProcessorError::unless_shutdown(&shutdown, interrupted);
            }
            reader.commit(&due);
        }
        // Read on only where nothing waits: what follows a waiting record is not
        // due before it.
        let holding = waiting.partitions();
        let released: Vec<i32> = paused
            .iter()
            .copied()
            .filter(|p| !holding.contains(p))
            .collect();
        let newly: Vec<i32> = holding
            .iter()
            .copied()
            .filter(|p| !paused.contains(p))
            .collect();
        reader.resume(&topic, &released);
        reader.pause(&topic, &newly);
        paused = holding;
        metrics::gauge!(crate::metric_names::PROCESSOR_PARKED_IN_HAND).set(waiting.len() as f64);
    }
    Ok(())
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
