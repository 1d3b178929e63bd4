//! A producer whose `send_all` returns only when the broker acknowledged every
//! record (acks=all, idempotent). Callers acknowledge their own senders after it.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;

use super::KafkaConfig;

#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("creating the Kafka producer: {0}")]
    Create(KafkaError),
    #[error("{failed} of {total} records to {topic} were not acknowledged: {first}")]
    NotAcknowledged {
        topic: String,
        failed: usize,
        total: usize,
        first: KafkaError,
    },
}

impl ProduceError {
    /// Broker down, slow or out of room: the caller should ask the sender to retry
    /// later rather than report a permanent failure.
    pub fn is_transient(&self) -> bool {
        match self {
            ProduceError::Create(_) => false,
            ProduceError::NotAcknowledged { first, .. } => !matches!(
                first.rdkafka_error_code(),
                Some(RDKafkaErrorCode::MessageSizeTooLarge)
                    | Some(RDKafkaErrorCode::InvalidMessageSize)
            ),
        }
    }
}

pub struct OutgoingMessage<'a> {
    pub key: &'a [u8],
    pub payload: &'a [u8],
    /// Kafka record headers, `(name, value)`; most messages have none.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// A partition chosen by the sender; `None`: the partitioner picks by key.
    pub partition: Option<i32>,
}

/// What a send that ran out of time reports: the error librdkafka would have given.
fn timed_out() -> KafkaError {
    KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)
}

/// Shortest time between two producer replacements (see `send_all`).
const RESET_EVERY: Duration = Duration::from_secs(5);

/// librdkafka settings every producer starts with and `kafka.properties` may change.
///
/// One produce request in flight per broker, not librdkafka's five: records that
/// arrive while a request is out (webhooks trickling in one per connection) then go
/// out together in the next, instead of in many small requests that the broker
/// stores one at a time. `benches/load/webhook_edge.sh 10 "32 256 1024"`, one run
/// with each setting (benches/README.md, 2026-12-03 05:50 UTC): single-record webhooks
/// at 256 connections 24.5 k/s against 21.9 k/s, ingest taking 0.49 cores against
/// 0.72; 100-record batches at about the same rate on 0.32 cores against 1.05.
pub const TUNING_DEFAULTS: &[(&str, &str)] = &[
    ("compression.type", "lz4"),
    ("linger.ms", "5"),
    ("max.in.flight.requests.per.connection", "1"),
];

/// What an acknowledgement means: every in-sync replica has the record, written once.
/// Set after `kafka.properties`, so they cannot change it.
pub const ACKNOWLEDGED: &[(&str, &str)] = &[("acks", "all"), ("enable.idempotence", "true")];

/// One changelog entry: `(partition, key, value)`; a `None` value is a tombstone.
pub type KeyedEntry<'a> = (i32, &'a [u8], Option<&'a [u8]>);

#[derive(Clone)]
pub struct AckedProducer {
    inner: Arc<RwLock<FutureProducer>>,
    client: ClientConfig,
    last_reset: Arc<Mutex<Option<Instant>>>,
    /// How long a send waits for its acks (`kafka.message_timeout_ms`).
    deadline: Duration,
}

impl AckedProducer {
    pub fn new(config: &KafkaConfig) -> Result<Self, ProduceError> {
        let mut client = config.client_config();
        // Tuning `kafka.properties` may change; what a call's safety rests on it may not.
        for (key, default) in TUNING_DEFAULTS {
            if !config.properties.contains_key(*key) {
                client.set(*key, *default);
            }
        }
        for (key, value) in ACKNOWLEDGED {
            client.set(*key, *value);
        }
        client
            // librdkafka never times a record out itself: when it does, it bumps the
            // idempotent producer's epoch on its own, and a broker that does not
            // expect that can break (tansu 0.6.0's sqlite storage panics and refuses
            // every client until restarted; tests/tests/it/broker_outage.rs). We stop
            // waiting instead (`deadline`), and replace the producer (`reset_after`).
            .set("message.timeout.ms", "0");
        let inner = client.create().map_err(ProduceError::Create)?;
        Ok(Self {
            inner: Arc::new(RwLock::new(inner)),
            client,
            last_reset: Arc::default(),
            deadline: config.message_timeout(),
        })
    }

    fn current(&self) -> FutureProducer {
        match self.inner.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the producer after a failure that may have left its idempotence
    /// state behind the broker's: after messages timed out, or a broker restart that
    /// lost producer state, every later send can fail ("unknown broker error") until
    /// a new producer id is taken. At most once per `RESET_EVERY`.
    fn reset_after(&self, error: &KafkaError) {
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::MessageSizeTooLarge)
                | Some(RDKafkaErrorCode::InvalidMessageSize)
        ) {
            return;
        }
        {
            let mut last = match self.last_reset.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            if last.is_some_and(|at| at.elapsed() < RESET_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        match self.client.create::<FutureProducer>() {
            Ok(fresh) => {
                tracing::warn!(%error, "replacing the Kafka producer after a failed send");
                metrics::counter!(crate::metric_names::KAFKA_PRODUCER_RESETS_TOTAL).increment(1);
                match self.inner.write() {
                    Ok(mut guard) => *guard = fresh,
                    Err(poisoned) => *poisoned.into_inner() = fresh,
                }
            }
            Err(create) => {
                tracing::error!(error = %create, "could not create a new Kafka producer")
            }
        }
    }

    /// Sends every message and waits for every ack. On error some messages may have
    /// been written: senders retry, and deterministic ids make the retry harmless.
    /// One message under `key` (partitioned by it), with `headers`: an order on the
    /// raw topic (an erasure, a suppression lift), acknowledged or an error.
    pub async fn send_keyed(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: &[(&str, &[u8])],
    ) -> Result<(), ProduceError> {
        let message = OutgoingMessage {
            key: key.as_bytes(),
            payload,
            headers,
            partition: None,
        };
        self.send_all(topic, std::slice::from_ref(&message)).await
    }

    pub async fn send_all(
        &self,
        topic: &str,
        messages: &[OutgoingMessage<'_>],
    ) -> Result<(), ProduceError> {
        let started = Instant::now();
        let producer = self.current();
        let sends = messages.iter().map(|message| {
            let mut record = FutureRecord::to(topic)
                .key(message.key)
                .payload(message.payload);
            if let Some(partition) = message.partition {
                record = record.partition(partition);
            }
            if !message.headers.is_empty() {
                let headers = message.headers.iter().fold(
                    OwnedHeaders::new_with_capacity(message.headers.len()),
                    |headers, (key, value)| {
                        headers.insert(Header {
                            key,
                            value: Some(*value),
                        })
                    },
                );
                record = record.headers(headers);
            }
            // Queue waits count against the same budget as the broker's ack.
            producer.send(record, Timeout::Never)
        });
        self.settle(topic, started, join_all(sends), messages.len())
            .await
            .map(|_| ())
    }

    /// Sends `(partition, key, value)` entries to `topic` (a `None` value is a
    /// tombstone: it deletes the key on a compacted topic) and waits for every ack;
    /// returns where each was written, in order. For changelogs, whose writer must
    /// know what it wrote where.
    pub async fn send_entries(
        &self,
        topic: &str,
        entries: &[KeyedEntry<'_>],
    ) -> Result<Vec<(i32, i64)>, ProduceError> {
        let started = Instant::now();
        let producer = self.current();
        let sends = entries.iter().map(|(partition, key, value)| {
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(topic).key(*key).partition(*partition);
            if let Some(value) = value {
                record = record.payload(*value);
            }
            producer.send(record, Timeout::Never)
        });
        self.settle(topic, started, join_all(sends), entries.len())
            .await
    }

    /// Waits for a batch's acks (within the deadline), counts them, and on any
    /// failure replaces the producer and names the first error; returns where each
    /// message was written. Some may still be written after a failure: senders
    /// retry, and deterministic ids (or a compacted key) make the copy harmless.
    async fn settle(
        &self,
        topic: &str,
        started: Instant,
        acks: impl std::future::Future<
            Output = Vec<rdkafka::producer::future_producer::OwnedDeliveryResult>,
        >,
        total: usize,
    ) -> Result<Vec<(i32, i64)>, ProduceError> {
        let outcome = tokio::time::timeout(self.deadline, acks).await;
        let labels = [("topic", topic.to_owned())];
        metrics::histogram!(crate::metric_names::KAFKA_PRODUCE_BATCH_SECONDS, &labels)
            .record(started.elapsed().as_secs_f64());
        let mut written = Vec::with_capacity(total);
        let mut first_error = None;
        let mut failed = 0;
        match outcome {
            Ok(results) => {
                for result in results {
                    match result {
                        Ok(delivery) => written.push((delivery.partition, delivery.offset)),
                        Err((error, _)) => {
                            failed += 1;
                            first_error.get_or_insert(error);
                        }
                    }
                }
            }
            Err(_) => {
                failed = total;
                first_error = Some(timed_out());
            }
        }
        metrics::counter!(crate::metric_names::KAFKA_PRODUCED_TOTAL, &labels)
            .increment(written.len() as u64);
        // Counted on success too (by 0), so the series exists before the first
        // failure and a rate over it answers 0, not nothing.
        metrics::counter!(crate::metric_names::KAFKA_PRODUCE_ERRORS_TOTAL, &labels)
            .increment(failed as u64);
        match first_error {
            None => Ok(written),
            Some(first) => {
                self.reset_after(&first);
                Err(ProduceError::NotAcknowledged {
                    topic: topic.to_owned(),
                    failed,
                    total,
                    first,
                })
            }
        }
    }

    /// [`send_all`](Self::send_all) for owned `(key, payload)` pairs.
    pub async fn send_pairs(
        &self,
        topic: &str,
        pairs: &[(String, Vec<u8>)],
    ) -> Result<(), ProduceError> {
        let messages: Vec<OutgoingMessage<'_>> = pairs
            .iter()
            .map(|(key, payload)| OutgoingMessage {
                key: key.as_bytes(),
                payload,
                headers: &[],
                partition: None,
            })
            .collect();
        self.send_all(topic, &messages).await
    }

    /// How many partitions `topic` has, as the broker's metadata says now.
    pub async fn partition_count(&self, topic: &str) -> Result<i32, KafkaError> {
        let producer = self.current();
        let (topic, timeout) = (topic.to_owned(), self.deadline);
        let counted = tokio::task::spawn_blocking(move || {
            let metadata = producer
                .client()
                .fetch_metadata(Some(&topic), Timeout::After(timeout))?;
            let partitions = metadata
                .topics()
                .first()
                .map_or(0, |t| t.partitions().len());
            Ok(i32::try_from(partitions).unwrap_or(i32::MAX))
        })
        .await;
        counted.unwrap_or(Err(KafkaError::Canceled))
    }

    /// A message with `key` and no payload: deletes the key on a compacted topic.
    pub async fn send_tombstone(&self, topic: &str, key: &[u8]) -> Result<(), ProduceError> {
        let producer = self.current();
        let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).key(key);
        let sent = tokio::time::timeout(self.deadline, producer.send(record, Timeout::Never));
        let first = match sent.await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err((error, _))) => error,
            Err(_) => timed_out(),
        };
        drop(producer);
        self.reset_after(&first);
        Err(ProduceError::NotAcknowledged {
            topic: topic.to_owned(),
            failed: 1,
            total: 1,
            first,
        })
    }

    /// Asks the broker for cluster metadata: the health check's proof of a live link.
    pub async fn check_broker(&self, timeout: std::time::Duration) -> Result<usize, KafkaError> {
        let producer = self.current();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, timeout)
                .map(|m| m.brokers().len())
        })
        .await
        .unwrap_or(Err(KafkaError::Canceled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn producer_with(properties: &[(&str, &str)]) -> AckedProducer {
        let mut config = KafkaConfig::new("127.0.0.1:1", "");
        for (key, value) in properties {
            config
                .properties
                .insert((*key).to_owned(), (*value).to_owned());
        }
        // Creating a producer opens no connection: no broker needed.
        AckedProducer::new(&config).expect("a producer")
    }

    #[test]
    fn tuning_defaults_apply_unless_properties_change_them() {
        let default = producer_with(&[]);
        assert_eq!(default.client.get("linger.ms"), Some("5"));
        assert_eq!(
            default.client.get("max.in.flight.requests.per.connection"),
            Some("1")
        );
        let tuned = producer_with(&[
            ("linger.ms", "20"),
            ("max.in.flight.requests.per.connection", "5"),
        ]);
        assert_eq!(tuned.client.get("linger.ms"), Some("20"));
        assert_eq!(
            tuned.client.get("max.in.flight.requests.per.connection"),
            Some("5")
        );
    }

    #[test]
    fn properties_cannot_weaken_what_an_acknowledgement_means() {
        let producer = producer_with(&[
            ("acks", "0"),
            ("enable.idempotence", "false"),
            ("message.timeout.ms", "100"),
        ]);
        assert_eq!(producer.client.get("acks"), Some("all"));
        assert_eq!(producer.client.get("enable.idempotence"), Some("true"));
        assert_eq!(producer.client.get("message.timeout.ms"), Some("0"));
    }
}
