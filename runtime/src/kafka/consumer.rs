//! Consumers. Group consumers never auto-commit: the loop that owns one commits
//! offsets only after its sink confirmed the write (see the processor).

use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaConfig;
use crate::shutdown::Shutdown;

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("creating a Kafka consumer: {0}")]
    Create(KafkaError),
    #[error("subscribing to {topics:?}: {source}")]
    Subscribe {
        topics: Vec<String>,
        source: KafkaError,
    },
    #[error("reading metadata of topic {topic}: {source}")]
    Metadata { topic: String, source: KafkaError },
    #[error("topic {topic} does not exist (create it with `cmctl topics`)")]
    MissingTopic { topic: String },
    #[error("assigning partitions of {topic}: {source}")]
    Assign { topic: String, source: KafkaError },
}

/// One partition's offsets when a reader was assigned to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    pub partition: i32,
    pub low: i64,
    pub high: i64,
}

/// A reader of every partition of `topic`, assigned by hand: no group membership,
/// nothing committed, so every instance reads everything (registries, live feeds,
/// replays). Each partition starts where `start` says, given its watermarks; the
/// watermarks are returned so a caller can tell when it has read up to "now".
pub async fn assigned_consumer(
    config: &KafkaConfig,
    reader: &str,
    topic: &str,
    timeout: Duration,
    start: impl Fn(&Watermarks) -> Offset,
) -> Result<(StreamConsumer, Vec<Watermarks>), ConsumerError> {
    let assign_error = |source| ConsumerError::Assign {
        topic: topic.to_owned(),
        source,
    };
    let mut client = config.client_config();
    // librdkafka requires a group id even for assigned partitions; it is never used.
    client
        .set("group.id", config.group_id(reader))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    let consumer: StreamConsumer = client.create().map_err(ConsumerError::Create)?;
    let owned = topic.to_owned();
    let (consumer, marks) = tokio::task::spawn_blocking(move || {
        let marks = high_watermarks(&consumer, &owned, timeout);
        (consumer, marks)
    })
    .await
    .map_err(|_| assign_error(KafkaError::Canceled))?;
    let marks: Vec<Watermarks> = marks?
        .into_iter()
        .map(|(partition, low, high)| Watermarks {
            partition,
            low,
            high,
        })
        .collect();
    let mut assignment = TopicPartitionList::new();
    for mark in &marks {
        assignment
            .add_partition_offset(topic, mark.partition, start(mark))
            .map_err(assign_error)?;
    }
    consumer.assign(&assignment).map_err(assign_error)?;
    Ok((consumer, marks))
}

/// Counts the group rebalances a consumer has been through. A member that keeps
/// state per partition (caches) drops it when the count moves: another member may
/// have written for those partitions meanwhile.
#[derive(Debug, Clone, Default)]
pub struct Rebalances(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Rebalances {
    pub fn count(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl rdkafka::client::ClientContext for Rebalances {}

impl rdkafka::consumer::ConsumerContext for Rebalances {
    fn pre_rebalance(
        &self,
        _: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        tracing::info!(?rebalance, "consumer group rebalance");
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// A partition given to this member is fetched, even one it had paused
    /// (`GroupReader::pause`) before a rebalance took it away: librdkafka keeps a
    /// partition's pause across rebalances, and a member that no longer knows it
    /// paused it never resumed it (the cluster kill test: two partitions of
    /// `calls.parked` never read again, 122 late payouts never stored).
    fn post_rebalance(
        &self,
        consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        if let rdkafka::consumer::Rebalance::Assign(assigned) = rebalance {
            if assigned.count() > 0 {
                if let Err(error) = consumer.resume(assigned) {
                    tracing::warn!(%error, "resuming the partitions given to this member failed");
                }
            }
        }
    }
}

fn subscribe<C: rdkafka::consumer::ConsumerContext>(
    consumer: &StreamConsumer<C>,
    topics: &[&str],
) -> Result<(), ConsumerError> {
    consumer
        .subscribe(topics)
        .map_err(|source| ConsumerError::Subscribe {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            source,
        })
}

/// How long the coordinator waits for a silent member before it takes its partitions.
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

fn group_client(config: &KafkaConfig, group: &str) -> rdkafka::ClientConfig {
    let mut client = config.client_config();
    client
        .set("group.id", config.group_id(group))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            SESSION_TIMEOUT.as_millis().to_string(),
        )
        .set("heartbeat.interval.ms", "1000");
    if !config.properties.contains_key("max.poll.interval.ms") {
        client.set(
            "max.poll.interval.ms",
            config.max_poll_interval_ms.to_string(),
        );
    }
    if let Some(instance) = &config.instance_id {
        client.set("group.instance.id", instance);
    }
    client
}

/// A member of consumer group `group`, subscribed to `topics`, committing by hand.
pub fn group_consumer(
    config: &KafkaConfig,
    group: &str,
    topics: &[&str],
) -> Result<StreamConsumer, ConsumerError> {
    let consumer: StreamConsumer = group_client(config, group)
        .create()
        .map_err(ConsumerError::Create)?;
    subscribe(&consumer, topics)?;
    Ok(consumer)
}

/// A [`GroupReader`](super::GroupReader) of `topics` in `group`: a
/// [`group_consumer`] that joins again when left out of a stalled group.
pub fn group_reader(
    config: &KafkaConfig,
    group: &str,
    topics: &[&str],
) -> Result<super::GroupReader<rdkafka::consumer::DefaultConsumerContext>, ConsumerError> {
    reader_with_context(
        config,
        group,
        topics,
        rdkafka::consumer::DefaultConsumerContext,
    )
}

/// Like [`group_reader`], with a count of the rebalances it goes through (joins
/// again included).
pub fn counting_group_reader(
    config: &KafkaConfig,
    group: &str,
    topics: &[&str],
) -> Result<(super::GroupReader<Rebalances>, Rebalances), ConsumerError> {
    let rebalances = Rebalances::default();
    let reader = reader_with_context(config, group, topics, rebalances.clone())?;
    Ok((reader, rebalances))
}

/// A group reader whose consumers (the first and each new join) share `context`.
fn reader_with_context<C: rdkafka::consumer::ConsumerContext + Clone + 'static>(
    config: &KafkaConfig,
    group: &str,
    topics: &[&str],
    context: C,
) -> Result<super::GroupReader<C>, ConsumerError> {
    let (config, group_name) = (config.clone(), group.to_owned());
    let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
    let subscribed = topics.clone();
    let peeker = super::peek::Peeker::new(&config, group);
    super::GroupReader::new(config.group_id(group), topics, peeker, move |membership| {
        let mut config = config.clone();
        if membership == super::Membership::Dynamic {
            config.instance_id = None;
        }
        let consumer: StreamConsumer<C> = group_client(&config, &group_name)
            .create_with_context(context.clone())
            .map_err(ConsumerError::Create)?;
        let names: Vec<&str> = subscribed.iter().map(String::as_str).collect();
        subscribe(&consumer, &names)?;
        Ok(consumer)
    })
}

/// `(partition, low, high)` for every partition of `topic`. Blocking: call from a
/// blocking task or at start-up.
pub(crate) fn high_watermarks<C: Consumer<Ctx>, Ctx: rdkafka::consumer::ConsumerContext>(
    consumer: &C,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<(i32, i64, i64)>, ConsumerError> {
    let metadata_error = |source| ConsumerError::Metadata {
        topic: topic.to_owned(),
        source,
    };
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(metadata_error)?;
    let Some(topic_metadata) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(ConsumerError::MissingTopic {
            topic: topic.to_owned(),
        });
    };
    if topic_metadata.error().is_some() || topic_metadata.partitions().is_empty() {
        return Err(ConsumerError::MissingTopic {
            topic: topic.to_owned(),
        });
    }
    let mut marks = Vec::new();
    for partition in topic_metadata.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition.id(), timeout)
            .map_err(metadata_error)?;
        marks.push((partition.id(), low, high));
    }
    Ok(marks)
}

/// Reads `consumer` until `shutdown`, handing each message to `handle`. A read error
/// is logged and counted (`kafka_consume_errors_total{reader}`) and retried after a
/// short pause, and a message the handler panics on is skipped and counted the
/// same way: a tailing reader never stops before shutdown.
pub fn spawn_tail<F>(
    consumer: StreamConsumer,
    mut shutdown: Shutdown,
    reader: &'static str,
    mut handle: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut(&BorrowedMessage<'_>) + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                _ = shutdown.wait() => break,
                message = consumer.recv() => message,
            };
            match message {
                Ok(message) => {
                    // A message that makes the handler panic is skipped, not the
                    // end of the reader: a tail that stopped would leave its table
                    // or feed stale with nothing to tell.
                    let handled =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle(&message)));
                    if handled.is_err() {
                        tracing::error!(
                            reader,
                            partition = message.partition(),
                            offset = message.offset(),
                            "a message made the reader panic; skipped"
                        );
                        metrics::counter!(crate::metric_names::KAFKA_CONSUME_ERRORS_TOTAL, "reader" => reader)
                            .increment(1);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, reader, "reading Kafka");
                    metrics::counter!(crate::metric_names::KAFKA_CONSUME_ERRORS_TOTAL, "reader" => reader)
                        .increment(1);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    })
}
