//! Which polled integrations this instance runs: the partitions of `poll.leases` the
//! `poller` consumer group gives it.
//!
//! The group is kept by a [`GroupReader`], as the processor's groups are, so an
//! instance left without partitions of a stalled group joins again on its own. That
//! needs a group that can be *behind*: a topic nobody writes never is, and the
//! reader would wait forever. Found on tansu 0.6.0 (`tests/tests/it/polling.rs`,
//! `a_stranded_poller_joins_again`): ingest and the broker killed together, both
//! started again, and the new member was given nothing while the dead one kept the
//! partitions; no integration was polled again. So an instance holding no partition
//! writes a tick to every partition now and then. Members holding partitions read
//! and commit them (the group moves: the idle instance stays idle, as with more
//! instances than partitions); when nobody holds them the ticks pile up, the group is
//! behind and not moving, and the reader joins again.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use runtime::kafka::{group_reader, AckedProducer, GroupReader, KafkaConfig, OutgoingMessage};
use runtime::shutdown::Shutdown;
use runtime::workers::Workers;
use tokio::time::Instant;

use super::PollError;

/// The `poller` consumer group.
pub const GROUP: &str = "poller";

/// How often an instance holding no partition writes its ticks. Ten a minute per
/// partition at most, one tick each: kept an hour (`cmctl` topic settings).
const TICK_EVERY: Duration = Duration::from_secs(10);

/// How long the membership loop waits for ticks before it looks at its assignment
/// again: how stale [`Leases::holds`] may be after a rebalance.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The partitions this instance holds, as last seen by the membership loop.
#[derive(Clone)]
pub struct Leases {
    held: Arc<RwLock<HashSet<i32>>>,
    partitions: i32,
}

impl Leases {
    /// Joins the group and keeps the membership (a worker named `poll-membership`).
    pub async fn start(
        kafka: &KafkaConfig,
        producer: AckedProducer,
        workers: &Workers,
        shutdown: Shutdown,
    ) -> Result<Self, PollError> {
        let topic = kafka.topics().poll_leases;
        let reader = group_reader(kafka, GROUP, &[&topic])?;
        let partitions = producer
            .partition_count(&topic)
            .await
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or(1);
        let leases = Self {
            held: Arc::default(),
            partitions,
        };
        let member = Arc::new(tokio::sync::Mutex::new(Member {
            reader,
            topic,
            producer,
            partitions,
            last_tick: None,
        }));
        let held = leases.held.clone();
        workers.supervise("poll-membership", shutdown.clone(), move || {
            let (member, held, shutdown) = (member.clone(), held.clone(), shutdown.clone());
            async move {
                member.lock().await.keep(&held, shutdown).await;
                Ok::<(), String>(())
            }
        });
        Ok(leases)
    }

    /// How many partitions the leases topic has.
    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    /// Whether this instance holds `partition` now.
    pub fn holds(&self, partition: i32) -> bool {
        self.held
            .read()
            .map(|held| held.contains(&partition))
            .unwrap_or(false)
    }
}

struct Member {
    reader: GroupReader<rdkafka::consumer::DefaultConsumerContext>,
    topic: String,
    producer: AckedProducer,
    partitions: i32,
    last_tick: Option<Instant>,
}

impl Member {
    /// Reads and commits ticks, publishes the assignment, and ticks while it holds
    /// nothing, until shutdown.
    async fn keep(&mut self, held: &RwLock<HashSet<i32>>, shutdown: Shutdown) {
        while !shutdown.is_triggered() {
            let until = Instant::now() + LOOK_EVERY;
            let wait = Duration::from_millis(10);
            if let Some(batch) = self.reader.next_batch_until(1_000, wait, until).await {
                self.reader.commit(&batch);
            }
            let now: HashSet<i32> = self.reader.assigned(&self.topic).into_iter().collect();
            let idle = now.is_empty();
            if let Ok(mut held) = held.write() {
                if *held != now {
                    tracing::info!(partitions = ?now, "poll leases held");
                    *held = now;
                }
            }
            if idle {
                self.tick().await;
            }
        }
    }

    async fn tick(&mut self) {
        if self.last_tick.is_some_and(|at| at.elapsed() < TICK_EVERY) {
            return;
        }
        self.last_tick = Some(Instant::now());
        let ticks: Vec<OutgoingMessage> = (0..self.partitions)
            .map(|partition| OutgoingMessage {
                key: b"tick",
                payload: b"",
                headers: &[],
                partition: Some(partition),
            })
            .collect();
        if let Err(error) = self.producer.send_all(&self.topic, &ticks).await {
            tracing::debug!(%error, "poll lease ticks not written; written again later");
        }
    }
}
