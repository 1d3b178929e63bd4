//! The state changelog topic: a compacted topic partitioned as the raw topic, whose
//! latest entry per key is the state. Written by the owner of each raw partition as
//! part of the batch that commits its raw offsets; read back by whoever is given the
//! partition next (from its local copy's checkpoint, or from the start).

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::ClientContext;
use rdkafka::{Offset, TopicPartitionList};
use runtime::kafka::{AckedProducer, KafkaConfig, ProduceError};

/// One changelog entry: `(partition, key, value)`; a `None` value is a tombstone.
pub type ChangelogEntry = (i32, Vec<u8>, Option<Vec<u8>>);

/// The restore reader's client context: the end of a partition is how a read ends,
/// not an error (librdkafka's default context logs it at error level).
struct QuietAtEnd;

impl ClientContext for QuietAtEnd {
    fn error(&self, error: KafkaError, reason: &str) {
        let at_end = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !at_end {
            tracing::error!(%error, reason, "librdkafka (state changelog reader)");
        }
    }
}

impl ConsumerContext for QuietAtEnd {}

/// Past the end the watermarks gave, how long a read waits for more before it is done.
const READ_QUIET: Duration = Duration::from_secs(1);

/// How long a read of a partition may go without a message before it gives up.
const READ_STALL: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ChangelogError {
    #[error("writing the state changelog: {0}")]
    Write(#[from] ProduceError),
    #[error("reading partition {partition} of the state changelog: {message}")]
    Read { partition: i32, message: String },
}

impl runtime::retry::Retryable for ChangelogError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Write(error) => error.is_transient(),
            Self::Read { .. } => true,
        }
    }
}

#[derive(Clone)]
pub struct Changelog {
    producer: AckedProducer,
    kafka: KafkaConfig,
    topic: String,
}

impl Changelog {
    pub fn new(producer: AckedProducer, kafka: &KafkaConfig) -> Self {
        Self {
            producer,
            kafka: kafka.clone(),
            topic: kafka.topics().state,
        }
    }

    /// Writes `(partition, key, value or tombstone)` entries; returns the offsets
    /// written, in order.
    pub async fn write(
        &self,
        entries: &[ChangelogEntry],
    ) -> Result<Vec<(i32, i64)>, ChangelogError> {
        let borrowed: Vec<runtime::kafka::KeyedEntry<'_>> = entries
            .iter()
            .map(|(p, k, v)| (*p, k.as_slice(), v.as_deref()))
            .collect();
        Ok(self.producer.send_entries(&self.topic, &borrowed).await?)
    }

    /// How many partitions the changelog has. Blocking.
    pub fn partitions(&self) -> Result<i32, ChangelogError> {
        let read_error = |message: String| ChangelogError::Read {
            partition: -1,
            message,
        };
        let config = self.kafka.client_config();
        let consumer: BaseConsumer = config.create().map_err(|e| read_error(e.to_string()))?;
        let metadata = consumer
            .fetch_metadata(Some(&self.topic), Duration::from_secs(10))
            .map_err(|e| read_error(e.to_string()))?;
        let count = metadata
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len());
        match i32::try_from(count) {
            Ok(count) if count > 0 => Ok(count),
            _ => Err(read_error(format!(
                "topic {} has no partitions (create it with `cmctl topics`)",
                self.topic
            ))),
        }
    }

    /// The offset after `partition`'s last entry. Blocking.
    pub fn end(&self, partition: i32) -> Result<i64, ChangelogError> {
        let read_error = |message: String| ChangelogError::Read { partition, message };
        let consumer: BaseConsumer = self
            .kafka
            .client_config()
            .create()
            .map_err(|e| read_error(e.to_string()))?;
        let (_, high) = consumer
            .fetch_watermarks(&self.topic, partition, Duration::from_secs(10))
            .map_err(|e| read_error(e.to_string()))?;
        Ok(high)
    }

    /// Reads `partition` from offset `from` to its end as of now, handing each entry
    /// (key, value or `None` for a tombstone, offset) to `apply`; returns the offset
    /// after the last one read. Blocking: run it on a blocking thread.
    pub fn read(
        &self,
        partition: i32,
        from: i64,
        mut apply: impl FnMut(&[u8], Option<&[u8]>, i64),
    ) -> Result<i64, ChangelogError> {
        let read_error = |message: String| ChangelogError::Read { partition, message };
        let mut config = self.kafka.client_config();
        config
            .set("group.id", self.kafka.group_id("processor-state-restore"))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("fetch.max.bytes", "52428800")
            .set("enable.partition.eof", "true");
        let consumer: BaseConsumer<QuietAtEnd> = config
            .create_with_context(QuietAtEnd)
            .map_err(|e| read_error(e.to_string()))?;
        let (low, high) = consumer
            .fetch_watermarks(&self.topic, partition, Duration::from_secs(10))
            .map_err(|e| read_error(e.to_string()))?;
        // Compaction may have removed what the checkpoint points at: start at what
        // is there.
        let start = from.max(low);
        if start >= high {
            return Ok(from.max(high));
        }
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&self.topic, partition, Offset::Offset(start))
            .map_err(|e| read_error(e.to_string()))?;
        consumer
            .assign(&assignment)
            .map_err(|e| read_error(e.to_string()))?;
        let mut next = start;
        let mut last_progress = Instant::now();
        loop {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) => {
                    if message.offset() < next {
                        continue;
                    }
                    if let Some(key) = message.key() {
                        apply(key, message.payload(), message.offset());
                    }
                    next = message.offset() + 1;
                    last_progress = Instant::now();
                }
                // The end, as the last fetch saw it: done once past the end
                // the watermarks gave.
                Some(Err(KafkaError::PartitionEOF(_))) if next >= high => break,
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(error)) => return Err(read_error(error.to_string())),
                // Past the end the watermarks gave and nothing more comes: done.
                // (A broker may report a watermark behind what it holds: tansu's
                // memory storage does. Its entries are read too.)
                None if next >= high && last_progress.elapsed() > READ_QUIET => break,
                None if last_progress.elapsed() > READ_STALL => {
                    return Err(read_error(format!(
                        "no message for {} s at offset {next} of {high}",
                        READ_STALL.as_secs()
                    )))
                }
                None => {}
            }
        }
        Ok(next)
    }
}
