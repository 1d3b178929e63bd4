//! Reads the timestamp of the record at a given offset, for the lag in seconds of
//! partitions whose oldest unprocessed record the group reader has not fetched yet
//! (see `lag_clock`): in a backlog the reader's batches can fill from some
//! partitions while another's oldest records wait in the broker, and the age of what
//! is in hand then under-reads the lag (by 5 s in the end-to-end bench's catch-up
//! after an 8 s stop, before this).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaConfig;

/// A consumer of no group, assigned by hand to the offsets asked about.
pub(crate) struct Peeker {
    config: rdkafka::ClientConfig,
    consumer: Mutex<Option<BaseConsumer>>,
}

impl Peeker {
    pub(crate) fn new(config: &KafkaConfig, group: &str) -> Self {
        let mut client = config.client_config();
        // librdkafka requires a group id even for assigned partitions; never used.
        client
            .set("group.id", format!("{}-peek", config.group_id(group)))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // One record is wanted per partition: fetch little.
            .set("max.partition.fetch.bytes", "65536")
            .set("fetch.max.bytes", "262144");
        Self {
            config: client,
            consumer: Mutex::new(None),
        }
    }

    /// The Kafka timestamp (ms) of the record at each `(topic, partition, offset)`,
    /// for those read within `timeout`. Blocking: call from a blocking task.
    pub(crate) fn timestamps(
        &self,
        wanted: &[(String, i32, i64)],
        timeout: Duration,
    ) -> Vec<(String, i32, i64, i64)> {
        if wanted.is_empty() {
            return Vec::new();
        }
        let Ok(mut slot) = self.consumer.lock() else {
            return Vec::new();
        };
        if slot.is_none() {
            match self.config.create::<BaseConsumer>() {
                Ok(consumer) => *slot = Some(consumer),
                Err(error) => {
                    tracing::debug!(%error, "no consumer to read record timestamps");
                    return Vec::new();
                }
            }
        }
        let Some(consumer) = slot.as_ref() else {
            return Vec::new();
        };
        let mut list = TopicPartitionList::new();
        for (topic, partition, offset) in wanted {
            if list
                .add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .is_err()
            {
                return Vec::new();
            }
        }
        if consumer.assign(&list).is_err() {
            return Vec::new();
        }
        let mut found: Vec<(String, i32, i64, i64)> = Vec::new();
        let deadline = Instant::now() + timeout;
        while found.len() < wanted.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let Some(Ok(message)) = consumer.poll(left) else {
                continue;
            };
            let key = (message.topic(), message.partition(), message.offset());
            let asked = wanted.iter().any(|(t, p, o)| (t.as_str(), *p, *o) == key);
            let known = found
                .iter()
                .any(|(t, p, _, _)| (t.as_str(), *p) == (key.0, key.1));
            if asked && !known {
                if let Some(stamp) = message.timestamp().to_millis() {
                    found.push((key.0.to_owned(), key.1, key.2, stamp));
                }
            }
        }
        let _ = consumer.unassign();
        found
    }
}

impl Drop for Peeker {
    /// Drops the consumer on a thread of its own that nobody waits for: librdkafka's
    /// destroy of a consumer with a group id can wait forever for its broker threads
    /// (confluentinc/librdkafka#4674). Seen here: a release processor stopped with
    /// SIGTERM after the history bench's load hung with two consumers of no
    /// context in `rd_kafka_destroy_app`, their broker threads still serving. A
    /// process that exits does not wait for that thread.
    fn drop(&mut self) {
        let consumer = match self.consumer.get_mut() {
            Ok(slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(consumer) = consumer {
            let dropped = std::thread::Builder::new()
                .name("peek-drop".into())
                .spawn(move || drop(consumer));
            if let Err(error) = dropped {
                tracing::debug!(%error, "no thread for the peek consumer's drop: dropped here");
            }
        }
    }
}
