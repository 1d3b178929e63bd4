//! Replay: feed past records of one integration through the pipeline again, so the
//! current mapping is applied to them. Records go back into the raw topic unchanged
//! (same raw id, same receive time); the processor maps them with the integration's
//! current version, and the row version (receive time, then mapping version)
//! makes the new row replace the old one: same ids, rows replaced, not doubled.
//!
//! From `calls.raw`: every record of the client, to re-map after a mapping change.
//! From `calls.deadletter`: the client's records the mapping refused, after a fix.
//!
//! Run by `cmctl replay` and by the api's `POST /api/integrations/{clientId}/replay`
//! (the dashboard's replay button), the same code either way.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::StreamConsumer;
use rdkafka::message::Message;
use rdkafka::Offset;
use schemas::dead_letter::Stage;
use schemas::{DeadLetter, Integration, RawEnvelope};
use serde_json::value::RawValue;

use crate::kafka::{assigned_consumer, AckedProducer, ConsumerError, KafkaConfig, ProduceError};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
    #[error(transparent)]
    Produce(#[from] ProduceError),
    #[error("reading {topic}: {message}")]
    Read { topic: String, message: String },
}

/// Records re-produced per acknowledged batch.
const BATCH: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplaySource {
    Raw,
    DeadLetters,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReplayReport {
    /// Messages read from the source topic.
    pub read: u64,
    /// Of those, records of the client that were sent back through the pipeline.
    pub replayed: u64,
    /// Of the client's dead letters, those that cannot be replayed (refused at the
    /// edge: the record was never valid JSON, so there is nothing to re-map).
    pub not_replayable: u64,
}

/// Replays `integration`'s records from `source`, calling `progress` after each
/// acknowledged batch; `integration` must be the current version (its records are
/// stamped with it).
pub async fn replay(
    kafka: &KafkaConfig,
    integration: &Integration,
    source: ReplaySource,
    mut progress: impl FnMut(&ReplayReport),
) -> Result<ReplayReport, ReplayError> {
    let topics = kafka.topics();
    let topic = match source {
        ReplaySource::Raw => topics.raw.clone(),
        ReplaySource::DeadLetters => topics.dead_letter.clone(),
    };
    let client = &integration.client_id;
    // Stamp replayed records with the integration's current version: the processor
    // waits until it has at least that version, so the replay can never be mapped
    // with the mapping it is meant to replace.
    let current = integration.version;
    let key_rules = schemas::keys::KeyRules::compile(integration);
    // A record forwarded by the processor to its caller's partition is in the raw
    // topic twice; it is replayed once.
    let mut seen = std::collections::HashSet::new();
    let (consumer, mut remaining) = read_to_current_end(kafka, &topic).await?;
    let producer = AckedProducer::new(kafka)?;
    let mut report = ReplayReport::default();
    let mut pending: Vec<(String, Vec<u8>)> = Vec::with_capacity(BATCH);
    while !remaining.is_empty() {
        let message = match tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await {
            Ok(Ok(message)) => message,
            Ok(Err(error)) => {
                return Err(ReplayError::Read {
                    topic,
                    message: error.to_string(),
                })
            }
            Err(_) => {
                return Err(ReplayError::Read {
                    topic,
                    message: "no message for 30 s before its end".to_owned(),
                })
            }
        };
        report.read += 1;
        if let Some(target) = remaining.get(&message.partition()) {
            if message.offset() + 1 >= *target {
                remaining.remove(&message.partition());
            }
        }
        let bytes = message.payload().unwrap_or_default();
        let envelope = match source {
            ReplaySource::Raw => serde_json::from_slice::<RawEnvelope>(bytes)
                .ok()
                .filter(|e| &e.client_id == client),
            ReplaySource::DeadLetters => match serde_json::from_slice::<DeadLetter>(bytes) {
                Ok(letter) if &letter.client_id == client => {
                    let envelope = (letter.stage == Stage::Mapping)
                        .then(|| envelope_of(letter))
                        .flatten();
                    if envelope.is_none() {
                        report.not_replayable += 1;
                    }
                    envelope
                }
                _ => None,
            },
        };
        if let Some(mut envelope) = envelope.filter(|e| seen.insert(e.raw_id)) {
            envelope.integration_version = current;
            pending.push((key_rules.key(&envelope), envelope.to_json()));
            report.replayed += 1;
        }
        if pending.len() >= BATCH {
            send(&producer, &topics.raw, &mut pending).await?;
            progress(&report);
        }
    }
    send(&producer, &topics.raw, &mut pending).await?;
    progress(&report);
    Ok(report)
}

/// A mapping-stage dead letter carries the record exactly as received.
fn envelope_of(letter: DeadLetter) -> Option<RawEnvelope> {
    let payload = RawValue::from_string(letter.payload).ok()?;
    Some(RawEnvelope {
        raw_id: letter.raw_id,
        client_id: letter.client_id,
        source: letter.source,
        received_at: letter.received_at,
        idempotency_key: letter.raw_id.to_string(),
        // Set to the current version by the caller.
        integration_version: 0,
        payload,
    })
}

async fn send(
    producer: &AckedProducer,
    topic: &str,
    pending: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), ReplayError> {
    if pending.is_empty() {
        return Ok(());
    }
    producer.send_pairs(topic, pending).await?;
    pending.clear();
    Ok(())
}

/// A consumer over every partition of `topic` from the beginning, and the offset
/// each partition must reach: the end as it is now, so the replay terminates even
/// though it writes to the raw topic it may be reading.
async fn read_to_current_end(
    kafka: &KafkaConfig,
    topic: &str,
) -> Result<(StreamConsumer, HashMap<i32, i64>), ReplayError> {
    let (consumer, marks) = assigned_consumer(
        kafka,
        "cmctl-replay",
        topic,
        Duration::from_secs(10),
        |_| Offset::Beginning,
    )
    .await?;
    let remaining = marks
        .iter()
        .filter(|m| m.high > m.low)
        .map(|m| (m.partition, m.high))
        .collect();
    Ok((consumer, remaining))
}
