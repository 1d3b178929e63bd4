//! The one reader that serves clients resuming from further back than the ring
//! holds (`ring`). Resumes queue for it (at most `queue` waiting; more are answered
//! 503 with `Retry-After`) and it serves them one at a time: it seeks its consumer to
//! the client's position, reads forward, and hands the client over to the ring and
//! the live feed once it has caught up with them. A client that does not keep up is
//! dropped (its channel is full) without holding up the reader or anyone queued.
//!
//! So however many clients resume, this instance has one catch-up consumer, not one
//! per client (each consumer is a broker connection, threads and fetch buffers); it
//! reads at most `rate` events a second (resumes from far back must not take the
//! broker from the live path every call goes through); a resume further behind than
//! `max_events` is told to reload and goes on live; and each account has at most
//! `per_account` resumes waiting or being served, so one account's resumes never
//! hold another's up for long.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use runtime::kafka::{assigned_consumer, ConsumerError, KafkaConfig};
use runtime::shutdown::Shutdown;
use tokio::sync::mpsc;

use super::{render, CallEvent, EventsQuery, Feed, HubShared, Positions};

/// How long a resume's look back may take at most (see `Item::Had`).
const LOOK_BACK_WAIT: Duration = Duration::from_secs(10);

/// What a resuming client receives from the catch-up reader, in order.
pub enum Item {
    /// The topic no longer holds events from the client's id.
    Reset(&'static str),
    Event(Arc<CallEvent>),
    /// The call versions (call id, row version) of a partition's events before the
    /// client's id, read back so its stream knows what it had (`sent_versions`);
    /// nothing is sent for them. One item per partition, so a look back cannot
    /// fill the client's channel.
    Had(Vec<(String, u64)>),
    /// Caught up: everything from here on comes from the live feed.
    Live(Feed),
}

pub struct Request {
    pub from: Positions,
    pub filter: EventsQuery,
    pub sender: mpsc::Sender<Item>,
    pub overflowed: Arc<AtomicBool>,
    /// Whose resume this is (`None`: an admin stream of every account).
    pub account: Option<String>,
}

/// How the reader is shared.
#[derive(Debug, Clone, Copy)]
pub struct CatchUpLimits {
    /// Resumes waiting at most, all accounts together.
    pub queue: usize,
    /// Events a second it reads at most.
    pub rate: u32,
    /// A resume further behind than this many events gets `reset` and goes on live.
    pub max_events: i64,
    /// Resumes one account may have waiting or being served.
    pub per_account: usize,
}

/// Why a resume was not queued.
pub enum Refused {
    /// Every place in the queue is taken.
    Queue,
    /// The account has this many resumes waiting or being served already.
    Account(usize),
}

type Held = Arc<std::sync::Mutex<HashMap<String, usize>>>;

#[derive(Clone)]
pub struct CatchUp {
    requests: mpsc::Sender<Request>,
    per_account: usize,
    /// Resumes per account waiting or being served.
    held: Held,
}

impl CatchUp {
    pub async fn start(
        kafka: &KafkaConfig,
        shared: Arc<HubShared>,
        limits: CatchUpLimits,
        workers: &runtime::workers::Workers,
        shutdown: Shutdown,
    ) -> Result<Self, ConsumerError> {
        let topic = kafka.topics().enriched;
        let (consumer, _) = assigned_consumer(
            kafka,
            "api-events-catch-up",
            &topic,
            Duration::from_secs(10),
            |m| Offset::Offset(m.high),
        )
        .await?;
        let consumer = Arc::new(consumer);
        let (requests, queued) = mpsc::channel::<Request>(limits.queue.max(1));
        // Kept across restarts of the worker: what waits stays queued.
        let queued = Arc::new(tokio::sync::Mutex::new(queued));
        let held: Held = Arc::default();
        let released = held.clone();
        workers.supervise("sse-catch-up", shutdown.clone(), move || {
            let (consumer, topic, shared, queued, released) = (
                consumer.clone(),
                topic.clone(),
                shared.clone(),
                queued.clone(),
                released.clone(),
            );
            let mut stop = shutdown.clone();
            async move {
                let mut queued = queued.lock().await;
                loop {
                    let request = tokio::select! {
                        _ = stop.wait() => return Ok::<(), String>(()),
                        request = queued.recv() => request,
                    };
                    let Some(request) = request else {
                        return Ok(());
                    };
                    metrics::gauge!(crate::metric_names::API_SSE_CATCH_UP_WAITING)
                        .set(queued.len() as f64);
                    let account = request.account.clone();
                    serve(&consumer, &topic, &shared, limits, request).await;
                    if let Some(account) = account {
                        release(&released, &account);
                    }
                }
            }
        });
        Ok(Self {
            requests,
            per_account: limits.per_account,
            held,
        })
    }

    /// Queues a resume, or says why not.
    pub fn submit(&self, request: Request) -> Result<(), Refused> {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(account) = &request.account {
            if held.get(account).copied().unwrap_or(0) >= self.per_account {
                return Err(Refused::Account(self.per_account));
            }
        }
        let account = request.account.clone();
        self.requests
            .try_send(request)
            .map_err(|_| Refused::Queue)?;
        if let Some(account) = account {
            *held.entry(account).or_default() += 1;
        }
        Ok(())
    }
}

fn release(held: &Held, account: &str) {
    let mut held = held
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(n) = held.get_mut(account) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            held.remove(account);
        }
    }
}

/// Reads for one client from its position until the ring covers where it got to,
/// then hands it the rest of the ring and the live feed.
async fn serve(
    consumer: &Arc<StreamConsumer>,
    topic: &str,
    shared: &HubShared,
    limits: CatchUpLimits,
    request: Request,
) {
    let Request {
        mut from,
        filter,
        sender,
        overflowed,
        ..
    } = request;
    let give = |item: Item| {
        if sender.try_send(item).is_err() {
            overflowed.store(true, Ordering::SeqCst);
            false
        } else {
            true
        }
    };
    let marks = match watermarks(consumer, topic).await {
        Some(marks) => marks,
        None => {
            // The broker did not answer: end the stream; the client reconnects.
            return;
        }
    };
    let expired = marks
        .iter()
        .any(|(p, (low, _))| from.0.get(p).is_some_and(|o| o < low));
    if expired
        && !give(Item::Reset(
            "the topic no longer holds events from that id; reload",
        ))
    {
        return;
    }
    let behind: i64 = marks
        .iter()
        .map(|(p, (low, high))| high - from.0.get(p).copied().unwrap_or(*low).max(*low))
        .sum();
    if !expired && behind > limits.max_events {
        // Too far back to replay for one client: it reloads and goes on from now.
        if !give(Item::Reset(
            "the id is too far behind to replay; reload, the stream goes on from now",
        )) {
            return;
        }
        from = Positions(marks.iter().map(|(p, (_, high))| (*p, *high)).collect());
    }
    let mut positions = Positions::default();
    let mut assignment = TopicPartitionList::new();
    // Where the look back of each partition starts, and what it found (`Item::Had`).
    let mut look_back: BTreeMap<i32, i64> = BTreeMap::new();
    let mut had: BTreeMap<i32, Vec<(String, u64)>> = BTreeMap::new();
    for (partition, (low, high)) in &marks {
        // A partition the id does not name was added since: read it whole.
        let at = from
            .0
            .get(partition)
            .copied()
            .unwrap_or(*low)
            .clamp(*low, *high);
        positions.0.insert(*partition, at);
        let start = (at - super::sent_versions::LOOK_BACK).max(*low);
        if start < at {
            look_back.insert(*partition, start);
        }
        if assignment
            .add_partition_offset(topic, *partition, Offset::Offset(start))
            .is_err()
        {
            return;
        }
    }
    if consumer.assign(&assignment).is_err() {
        return;
    }
    // A look back that has not reached the id by then (a gap in the offsets) is
    // given up: what it found is noted, the rest is sent as usual. Not sooner: the
    // first fetch after an assignment can take longer than one wait below.
    let look_back_until = tokio::time::Instant::now() + LOOK_BACK_WAIT;
    // Paced: after each `rate / 10` events, at least a tenth of a second has passed.
    let step = (limits.rate / 10).max(1) as usize;
    let mut read = 0_usize;
    let mut since = tokio::time::Instant::now();
    loop {
        if read >= step {
            tokio::time::sleep_until(since + Duration::from_millis(100)).await;
            since = tokio::time::Instant::now();
            read = 0;
        }
        if sender.is_closed() {
            return;
        }
        // The ring takes over once the look back is read (else its versions would
        // not be noted).
        if look_back.is_empty() {
            let ring = shared.lock_ring();
            if ring.covers(&positions) {
                let live = shared.subscribe(filter.account.as_deref());
                let rest = ring.after(&positions);
                drop(ring);
                // The ring's events after where this reader got to, then live
                // without what this reader gave already (it may be ahead of the
                // instance's own reader).
                let mut reached = positions.clone();
                for event in &rest {
                    reached.advance(event.partition, event.offset);
                }
                let live = Feed::new(live, reached);
                for event in rest {
                    if filter.wants(&event) && !give(Item::Event(event)) {
                        return;
                    }
                }
                give(Item::Live(live));
                return;
            }
        }
        let message = match tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await
        {
            Ok(Ok(message)) => message,
            // Nothing within the wait (caught up with the topic's end): look at the
            // ring again. A read error: the same, after a pause.
            Ok(Err(_)) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(_) => {
                if !look_back.is_empty() && tokio::time::Instant::now() >= look_back_until {
                    look_back.clear();
                    for (_, versions) in std::mem::take(&mut had) {
                        if !give(Item::Had(versions)) {
                            return;
                        }
                    }
                }
                continue;
            }
        };
        read += 1;
        let (partition, offset) = (message.partition(), message.offset());
        if let Some(at) = positions
            .0
            .get(&partition)
            .copied()
            .filter(|at| offset < *at)
        {
            // Before the client's id: read back to note what it had, or fetched
            // before this request's assignment.
            if look_back
                .get(&partition)
                .is_some_and(|start| offset >= *start)
            {
                let event = render("", partition, offset, message.payload());
                if let Some(call) = event.filter(|e| filter.wants(e)).and_then(|e| e.call) {
                    had.entry(partition).or_default().push(call);
                }
                if offset + 1 >= at {
                    look_back.remove(&partition);
                    let versions = had.remove(&partition).unwrap_or_default();
                    if !give(Item::Had(versions)) {
                        return;
                    }
                }
            }
            continue;
        }
        // Past the client's id in this partition: its look back is done.
        if look_back.remove(&partition).is_some() {
            let versions = had.remove(&partition).unwrap_or_default();
            if !give(Item::Had(versions)) {
                return;
            }
        }
        positions.advance(partition, offset);
        let Some(event) = render(&positions.encode(), partition, offset, message.payload()) else {
            continue;
        };
        if filter.wants(&event) && !give(Item::Event(Arc::new(event))) {
            return;
        }
    }
}

/// `partition → (low, high)` of the topic now; `None` when the broker does not say.
async fn watermarks(
    consumer: &Arc<StreamConsumer>,
    topic: &str,
) -> Option<BTreeMap<i32, (i64, i64)>> {
    let (consumer, topic) = (consumer.clone(), topic.to_owned());
    tokio::task::spawn_blocking(move || read_watermarks(&consumer, &topic))
        .await
        .ok()
        .flatten()
}

fn read_watermarks(consumer: &StreamConsumer, topic: &str) -> Option<BTreeMap<i32, (i64, i64)>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?;
    let partitions: Vec<i32> = metadata
        .topics()
        .first()?
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    let mut marks = BTreeMap::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(5))
            .ok()?;
        marks.insert(partition, (low, high));
    }
    Some(marks)
}
