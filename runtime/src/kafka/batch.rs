//! The batch consumer: at-least-once, as the rust-rdkafka examples do it. A batch is
//! read (`next_batch_within`, through `GroupReader`), its effects made durable by the caller, and only then its
//! offsets committed (`commit`). Every worker of the processor (pipeline, dead
//! letters, rollup, linker) is this loop around its own step.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::Instant;

/// When a batch being gathered closes, besides being full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchWait {
    /// This long after its first record at the latest.
    pub max: Duration,
    /// Sooner, when no further record came for this long: the consumer has handed
    /// over what the broker sent. Under load records queue up while a batch is
    /// written, so batches still grow with the rate; at a low rate a call no longer
    /// waits `max` for company that is not coming.
    pub idle: Option<Duration>,
}

impl From<Duration> for BatchWait {
    /// Closes only at `max` after the first record.
    fn from(max: Duration) -> Self {
        Self { max, idle: None }
    }
}

/// Waits for a first record, then gathers more until the batch is full or `wait`
/// closes it; `None` when no first record came within `first_within`, so the caller
/// can look at its consumer between waits.
pub(crate) async fn next_batch_within<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    max_records: usize,
    wait: BatchWait,
    first_within: Duration,
) -> Option<Vec<OwnedMessage>> {
    let first_by = Instant::now() + first_within;
    let mut batch = Vec::new();
    let mut deadline = None;
    while batch.len() < max_records {
        // `recv` is cancel safe: a record not yet returned stays in the queue.
        let until = match (deadline, wait.idle) {
            (None, _) => first_by,
            (Some(deadline), None) => deadline,
            (Some(deadline), Some(idle)) => deadline.min(Instant::now() + idle),
        };
        let received = match tokio::time::timeout_at(until, consumer.recv()).await {
            Ok(received) => received,
            Err(_) if batch.is_empty() => return None,
            Err(_) => break,
        };
        match received {
            Ok(message) => {
                batch.push(message.detach());
                deadline.get_or_insert_with(|| Instant::now() + wait.max);
            }
            Err(error) if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PollExceeded) => {
                // Not the broker's: this member's batch took longer than
                // `max_poll_interval_ms` (a store that was down) and librdkafka took
                // it out of the group; this read joins it again, and the batch's
                // records come back from the last commit.
                tracing::warn!(%error, "this member read nothing for longer than kafka.max_poll_interval_ms and left its group; joining again");
                metrics::counter!(crate::metric_names::KAFKA_GROUP_POLL_TIMEOUTS_TOTAL)
                    .increment(1);
            }
            Err(error) => {
                tracing::warn!(%error, "consumer error");
                metrics::counter!(crate::metric_names::KAFKA_CONSUME_ERRORS_TOTAL, "reader" => "group").increment(1);
                if batch.is_empty() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                } else {
                    break;
                }
            }
        }
    }
    Some(batch)
}

/// Commits the offset after the last record of each partition in `batch`.
pub(crate) fn commit<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    batch: &[OwnedMessage],
) {
    let mut next: HashMap<(&str, i32), i64> = HashMap::new();
    for message in batch {
        let entry = next
            .entry((message.topic(), message.partition()))
            .or_insert(0);
        *entry = (*entry).max(message.offset() + 1);
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        if let Err(error) = list.add_partition_offset(topic, partition, Offset::Offset(offset)) {
            tracing::error!(%error, topic, partition, "building the commit list");
        }
    }
    match consumer.commit(&list, CommitMode::Sync) {
        Ok(()) => metrics::counter!(crate::metric_names::KAFKA_COMMITS_TOTAL).increment(1),
        Err(error) => {
            // Usually a rebalance took the partitions away: the new owner replays
            // from the last commit, and the idempotent writes make that harmless.
            tracing::warn!(%error, "commit failed; records will be reprocessed by the partition's next owner");
            metrics::counter!(crate::metric_names::KAFKA_COMMIT_ERRORS_TOTAL).increment(1);
        }
    }
}
