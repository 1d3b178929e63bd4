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
