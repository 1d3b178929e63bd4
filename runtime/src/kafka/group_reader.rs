//! A consumer-group member that notices when it has been left out of a group that
//! has stopped moving, and joins again.
//!
//! The group coordinator decides who reads which partition. When it gets that
//! wrong, nothing in the Kafka protocol tells the member: it holds no partitions,
//! waits for records that never come, and the calls behind them wait with it. The
//! fault matrix caught tansu 0.6.0 doing this after a member was killed (a new
//! processor assigned nothing while the dead one's session ran out, and no
//! rebalance after it; or an assignment revoked at once, over and over): the
//! processor was alive and idle while 2,477 acknowledged calls sat in `calls.raw`.
//!
//! So each group reader checks, while it waits for records, whether it holds any
//! partition. If it has held none for [`STALLED_AFTER`], and the group's committed
//! offsets are behind the topic's end and have not moved in that time (no other
//! member is reading either), it closes its consumer (leaving the group) and joins
//! with a new one. A member that holds nothing because other members read
//! everything (more instances than partitions) sees their commits move and stays.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::Instant;

use super::batch::{commit, next_batch_within, BatchWait};
use super::consumer::{high_watermarks, ConsumerError};
use super::lag_clock::LagClock;
use super::peek::Peeker;

/// How long a member may hold no partition of a group that is behind and not
/// moving before it joins again: three session timeouts (10 s each), time for the
/// coordinator to notice a dead member and rebalance on its own.
pub const STALLED_AFTER: Duration = Duration::from_secs(30);

/// How often a waiting reader looks at its assignment.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// How long the offset and watermark requests of one check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a reader reports its group's lag (`kafka_group_lag_records`).
const LAG_EVERY: Duration = Duration::from_secs(15);

/// How often a reader looks for held partitions whose records wait unread, and
/// reads the oldest one's timestamp (`kafka_group_lag_seconds`, see `lag_clock`).
/// Only partitions in hand or committed to lately are looked at: a watermark
/// request each, and a fetch of one record when records wait with none in hand.
const UNREAD_EVERY: Duration = Duration::from_secs(1);

/// How a consumer joins its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// As configured: with `kafka.instance_id`, static membership.
    Configured,
    /// Always as a new dynamic member. Joining again under the same static instance
    /// id gives the broker the same member back: on CI, tansu 0.6.0 left such a
    /// member without partitions through every one of four joins.
    Dynamic,
}

type MakeConsumer<C> =
    Box<dyn Fn(Membership) -> Result<StreamConsumer<C>, ConsumerError> + Send + Sync>;

/// A group member (see the module documentation) that reads in batches.
pub struct GroupReader<C: ConsumerContext + 'static> {
    consumer: Arc<StreamConsumer<C>>,
    make: MakeConsumer<C>,
    group: String,
    topics: Vec<String>,
    watch: StallWatch,
    /// When the group's lag was last reported, and whether a report is in flight.
    lag_reported: Option<Instant>,
    lag_reporting: Arc<std::sync::atomic::AtomicBool>,
    /// When waiting unread records were last looked for, and whether a look is in flight.
    unread_checked: Option<Instant>,
    unread_checking: Arc<std::sync::atomic::AtomicBool>,
    /// The records read and not yet committed, for `kafka_group_lag_seconds`.
    clock: Arc<LagClock>,
    peeker: Arc<Peeker>,
}

impl<C: ConsumerContext + 'static> GroupReader<C> {
    /// `make` creates a consumer subscribed to `topics` in `group`; it is called
    /// again, with [`Membership::Dynamic`], for each new join.
    pub(crate) fn new(
        group: String,
        topics: Vec<String>,
        peeker: Peeker,
        make: impl Fn(Membership) -> Result<StreamConsumer<C>, ConsumerError> + Send + Sync + 'static,
    ) -> Result<Self, ConsumerError> {
        let consumer = Arc::new(make(Membership::Configured)?);
        let clock = LagClock::new(group.clone());
        clock.count_held_with(held_by(&consumer));
        Ok(Self {
            clock,
            peeker: Arc::new(peeker),
            consumer,
            make: Box::new(make),
            group,
            topics,
            watch: StallWatch::new(STALLED_AFTER),
            lag_reported: None,
            lag_reporting: Arc::default(),
            unread_checked: None,
            unread_checking: Arc::default(),
        })
    }

    /// Every [`LAG_EVERY`], in the background: the group's committed offsets and the
    /// topics' ends as gauges (lag in records per partition, this instance's
    /// partitions held), for operators' alerts (deploy/prometheus/rules.yml).
    fn report_lag(&mut self) {
        use std::sync::atomic::Ordering;
        if self.lag_reported.is_some_and(|at| at.elapsed() < LAG_EVERY)
            || self.lag_reporting.swap(true, Ordering::AcqRel)
        {
            return;
        }
        self.lag_reported = Some(Instant::now());
        let assignment = self.consumer.assignment().ok();
        self.clock.retain(|topic, partition| {
            assignment
                .as_ref()
                .is_some_and(|a| a.find_partition(topic, partition).is_some())
        });
        let (consumer, topics, group) = (
            self.consumer.clone(),
            self.topics.clone(),
            self.group.clone(),
        );
        let (clock, peeker) = (self.clock.clone(), self.peeker.clone());
        let reporting = self.lag_reporting.clone();
        tokio::task::spawn_blocking(move || {
            match group_positions(&*consumer, &topics) {
                Ok(positions) => {
                    // Held partitions with records waiting and none in hand (a
                    // member given a backlog, before its first batch): how old
                    // their oldest record is.
                    let held: Vec<(String, i32, i64, bool)> = positions
                        .iter()
                        .filter(|p| {
                            assignment
                                .as_ref()
                                .is_some_and(|a| a.find_partition(&p.topic, p.partition).is_some())
                        })
                        .map(|p| {
                            (
                                p.topic.clone(),
                                p.partition,
                                p.committed,
                                p.committed < p.high,
                            )
                        })
                        .collect();
                    read_unread(&clock, &peeker, held);
                    for position in positions {
                        let labels = [
                            ("group", group.clone()),
                            ("topic", position.topic.clone()),
                            ("partition", position.partition.to_string()),
                        ];
                        metrics::gauge!(crate::metric_names::KAFKA_GROUP_LAG_RECORDS, &labels)
                            .set((position.high - position.committed).max(0) as f64);
                        metrics::gauge!(crate::metric_names::KAFKA_GROUP_COMMITTED_OFFSET, &labels)
                            .set(position.committed as f64);
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, %group, "group lag unknown; reported again later");
                }
            }
            reporting.store(false, Ordering::Release);
        });
    }

    /// Every [`UNREAD_EVERY`], in the background: the held partitions whose next
    /// records wait in the broker with nothing of them in hand, and the timestamp
    /// of the first of each, for the lag in seconds.
    fn look_for_unread(&mut self) {
        use std::sync::atomic::Ordering;
        if self
            .unread_checked
            .is_some_and(|at| at.elapsed() < UNREAD_EVERY)
            || self.unread_checking.swap(true, Ordering::AcqRel)
        {
            return;
        }
        self.unread_checked = Some(Instant::now());
        let (consumer, clock, peeker) = (
            self.consumer.clone(),
            self.clock.clone(),
            self.peeker.clone(),
        );
        let checking = self.unread_checking.clone();
        tokio::task::spawn_blocking(move || {
            read_unread(&clock, &peeker, waiting_at(&*consumer, &clock));
            checking.store(false, Ordering::Release);
        });
    }

    /// The next batch: a first record, then more until `max_records` or until
    /// `wait` closes it (`Duration`: that long after the first record). Between
    /// the checks of a long wait, joins the group again if it is stalled.
    pub async fn next_batch(
        &mut self,
        max_records: usize,
        wait: impl Into<BatchWait>,
    ) -> Vec<OwnedMessage> {
        let wait = wait.into();
        loop {
            let far = Instant::now() + CHECK_EVERY;
            if let Some(batch) = self.next_batch_until(max_records, wait, far).await {
                return batch;
            }
        }
    }

    /// [`next_batch`](Self::next_batch), or `None` if no first record came by
    /// `until`. For a loop with other work to do at times: cancelling a batch being
    /// gathered would drop records the consumer has already moved past.
    pub async fn next_batch_until(
        &mut self,
        max_records: usize,
        wait: impl Into<BatchWait>,
        until: Instant,
    ) -> Option<Vec<OwnedMessage>> {
        let wait = wait.into();
        loop {
            let now = Instant::now();
            if now >= until {
                return None;
            }
            self.report_lag();
            self.look_for_unread();
            let within = (until - now).min(CHECK_EVERY);
            let waited = next_batch_within(&self.consumer, max_records, wait, within);
            if let Some(batch) = waited.await {
                self.watch.holding();
                self.clock.read(&batch);
                return Some(batch);
            }
            self.check().await;
        }
    }

    /// The partitions of `topic` this member holds now.
    pub fn assigned(&self, topic: &str) -> Vec<i32> {
        self.consumer
            .assignment()
            .map(|list| {
                list.elements_for_topic(topic)
                    .iter()
                    .map(|e| e.partition())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stops fetching these partitions of `topic` while the reader goes on reading
    /// the others (and so goes on taking part in its group: a member that stops
    /// reading cannot finish a rebalance). Fetching starts again after the last
    /// record handed out, on [`resume`](Self::resume) or when a rebalance gives the
    /// partition out again (then from the group's committed offset; only for a
    /// reader made by `counting_group_reader`, whose context resumes what a
    /// rebalance assigns: librdkafka keeps the pause otherwise). A partition no
    /// longer held is skipped.
    pub fn pause(&self, topic: &str, partitions: &[i32]) {
        self.pause_or_resume(topic, partitions, true);
    }

    /// Fetches these partitions again (see [`pause`](Self::pause)).
    pub fn resume(&self, topic: &str, partitions: &[i32]) {
        self.pause_or_resume(topic, partitions, false);
    }

    fn pause_or_resume(&self, topic: &str, partitions: &[i32], pause: bool) {
        let held = self.assigned(topic);
        let mut list = TopicPartitionList::new();
        for partition in partitions.iter().filter(|p| held.contains(p)) {
            list.add_partition(topic, *partition);
        }
        if list.count() == 0 {
            return;
        }
        let done = if pause {
            self.consumer.pause(&list)
        } else {
            self.consumer.resume(&list)
        };
        if let Err(error) = done {
            tracing::warn!(%error, group = %self.group, topic, ?partitions, pause, "pausing or resuming partitions failed");
        }
    }

    /// `batch`'s output is written, its commit to follow: its records stop counting
    /// in `kafka_group_lag_seconds`, which measures what users wait for (a stored
    /// call), not the group's bookkeeping after it.
    ///
    /// A batch that empties the hand during a backlog leaves the clock guessing
    /// that the next record is about as old as its last one; a check runs at once
    /// (not at the next [`UNREAD_EVERY`]) to read the truth: after the last batch of
    /// a burst the guess over-read by up to a second in the end-to-end bench.
    pub fn settled(&mut self, batch: &[OwnedMessage]) {
        if self.clock.settled(batch) {
            self.unread_checked = None;
            self.look_for_unread();
        }
    }

    /// Commits the offset after the last record of each partition in `batch`.
    pub fn commit(&self, batch: &[OwnedMessage]) {
        commit(&self.consumer, batch);
        self.clock.committed(batch);
    }

    /// A handle that commits for the group member this reader is now, usable while
    /// the reader gathers the next batch (a batch's commit must not wait for the
    /// next batch to arrive: on a quiet topic that is never). It does not keep the
    /// member alive: after a rejoin the old member must leave the group, or it would
    /// be given partitions nobody reads; its handle then commits nothing (callers
    /// commit only when no rebalance happened since the batch was decided anyway).
    pub fn committer(&self) -> Committer<C> {
        Committer(Arc::downgrade(&self.consumer), self.clock.clone())
    }

    async fn check(&mut self) {
        let held = self.consumer.assignment().map(|a| a.count()).unwrap_or(0);
        if held > 0 {
            self.watch.holding();
            return;
        }
        let consumer = self.consumer.clone();
        let topics = self.topics.clone();
        let positions =
            tokio::task::spawn_blocking(move || group_positions(&*consumer, &topics)).await;
        let positions = match positions {
            Ok(Ok(positions)) => Some(positions),
            Ok(Err(error)) => {
                tracing::debug!(%error, group = %self.group, "group offsets unknown; checked again later");
                None
            }
            Err(_) => None,
        };
        if self.watch.observe(Instant::now(), positions) == Verdict::Rejoin {
            self.rejoin().await;
        }
    }

    async fn rejoin(&mut self) {
        tracing::warn!(
            group = %self.group,
            after_s = STALLED_AFTER.as_secs(),
            "consumer holds no partition of a group that is behind and not moving: joining again as a new member"
        );
        metrics::counter!(crate::metric_names::KAFKA_GROUP_REJOINS_TOTAL, "group" => self.group.clone())
            .increment(1);
        // The new member joins before the old one is closed. Tried the other way (leave,
        // wait a session timeout, join): in two CI rehearsals on tansu 0.6.0 it did
        // no better, needing three joins where this needed one or two.
        match (self.make)(Membership::Dynamic) {
            Ok(fresh) => {
                let old = std::mem::replace(&mut self.consumer, Arc::new(fresh));
                self.clock.count_held_with(held_by(&self.consumer));
                // What the old member read is read again by whoever is given it.
                self.clock.retain(|_, _| false);
                // Closing leaves the group, a blocking exchange with the coordinator.
                let _ = tokio::task::spawn_blocking(move || drop(old)).await;
            }
            Err(error) => {
                tracing::error!(%error, group = %self.group, "could not create a consumer to join again");
            }
        }
    }
}

/// Counts the partitions `consumer` holds, while it lives (a local call: no request).
fn held_by<C: ConsumerContext + 'static>(
    consumer: &Arc<StreamConsumer<C>>,
) -> Box<dyn Fn() -> Option<usize> + Send + Sync> {
    let consumer = Arc::downgrade(consumer);
    Box::new(move || consumer.upgrade()?.assignment().ok().map(|a| a.count()))
}

/// Tells the clock what a check found, and reads the timestamp of the oldest record
/// of each partition waiting with nothing in hand. Blocking.
fn read_unread(clock: &LagClock, peeker: &Peeker, checked: Vec<(String, i32, i64, bool)>) {
    let unread = clock.waiting_unread(checked);
    for (topic, partition, offset, stamp) in peeker.timestamps(&unread, CHECK_TIMEOUT) {
        clock.unread(&topic, partition, offset, stamp);
    }
}

/// `(topic, partition, next offset, records waiting)` of each held partition the
/// clock says is active: waiting when its next record to deliver is below the
/// partition's end. Blocking.
fn waiting_at<C: ConsumerContext>(
    consumer: &StreamConsumer<C>,
    clock: &LagClock,
) -> Vec<(String, i32, i64, bool)> {
    let Ok(positions) = consumer.position() else {
        return Vec::new();
    };
    let maybe = clock.active(positions.elements().iter().filter_map(
        |element| match element.offset() {
            Offset::Offset(next) => Some((element.topic().to_owned(), element.partition(), next)),
            _ => None,
        },
    ));
    maybe
        .into_iter()
        .filter_map(|(topic, partition, next)| {
            let (_, high) = consumer
                .fetch_watermarks(&topic, partition, UNREAD_EVERY)
                .ok()?;
            Some((topic, partition, next, next < high))
        })
        .collect()
}

/// One partition as the group sees it: the next offset it will read, and the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupPosition {
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    pub high: i64,
}

/// The group's committed offset and the high watermark of every partition of
/// `topics`. Blocking: call from a blocking task.
fn group_positions<C: ConsumerContext>(
    consumer: &StreamConsumer<C>,
    topics: &[String],
) -> Result<Vec<GroupPosition>, ConsumerError> {
    let mut positions = Vec::new();
    for topic in topics {
        let marks = high_watermarks(consumer, topic, CHECK_TIMEOUT)?;
        let mut list = TopicPartitionList::new();
        for (partition, _, _) in &marks {
            list.add_partition(topic, *partition);
        }
        let committed = consumer
            .committed_offsets(list, CHECK_TIMEOUT)
            .map_err(|source| ConsumerError::Metadata {
                topic: topic.clone(),
                source,
            })?;
        for (partition, low, high) in marks {
            let committed = match committed
                .find_partition(topic, partition)
                .map(|element| element.offset())
            {
                Some(Offset::Offset(offset)) => offset,
                // Nothing committed yet: the group starts at the beginning.
                _ => low,
            };
            positions.push(GroupPosition {
                topic: topic.clone(),
                partition,
                committed,
                high,
            });
        }
    }
    Ok(positions)
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Wait,
    Rejoin,
}

/// `(topic, partition, committed offset)` of every partition: what says whether
/// any member reads.
type Commits = Vec<(String, i32, i64)>;

/// The decision, apart from Kafka: fed what a member without partitions sees at
/// each check, says when to join again.
struct StallWatch {
    after: Duration,
    /// Since when the group has been behind with these committed offsets.
    stuck: Option<(Instant, Commits)>,
}

impl StallWatch {
    fn new(after: Duration) -> Self {
        Self { after, stuck: None }
    }

    /// The member holds partitions (or just read records): nothing is stalled.
    fn holding(&mut self) {
        self.stuck = None;
    }

    /// The member holds no partition; `positions` is the group's view, `None` when
    /// the broker could not say (then nothing is decided).
    fn observe(&mut self, now: Instant, positions: Option<Vec<GroupPosition>>) -> Verdict {
        let Some(positions) = positions else {
            return Verdict::Wait;
        };
        if positions.iter().all(|p| p.committed >= p.high) {
            // Nothing to read: idle, not stalled.
            self.stuck = None;
            return Verdict::Wait;
        }
        // Only the commits say whether anyone reads: the end moves as producers write.
        let committed: Commits = positions
            .into_iter()
            .map(|p| (p.topic, p.partition, p.committed))
            .collect();
        match &self.stuck {
            Some((since, seen)) if *seen == committed => {
                if now.duration_since(*since) >= self.after {
                    self.stuck = None;
                    Verdict::Rejoin
                } else {
                    Verdict::Wait
                }
            }
            _ => {
                self.stuck = Some((now, committed));
                Verdict::Wait
            }
        }
    }
}

/// See [`GroupReader::committer`].
pub struct Committer<C: ConsumerContext + 'static>(
    std::sync::Weak<StreamConsumer<C>>,
    Arc<LagClock>,
);

impl<C: ConsumerContext + 'static> Committer<C> {
    /// Commits the offset after the last record of each partition in `batch`, if
    /// the member is still the reader's.
    pub fn commit(&self, batch: &[OwnedMessage]) {
        if let Some(consumer) = self.0.upgrade() {
            commit(&consumer, batch);
            self.1.committed(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(committed: i64, high: i64) -> Option<Vec<GroupPosition>> {
        Some(vec![
            GroupPosition {
                topic: "calls.raw".into(),
                partition: 0,
                committed,
                high,
            },
            GroupPosition {
                topic: "calls.raw".into(),
                partition: 1,
                committed: 5,
                high: 5,
            },
        ])
    }

    #[test]
    fn a_group_behind_and_not_moving_is_joined_again_after_the_wait() {
        let start = Instant::now();
        let mut watch = StallWatch::new(Duration::from_secs(30));
        assert_eq!(watch.observe(start, at(10, 50)), Verdict::Wait);
        // The end moves (producers write); the commits do not: still stalled.
        let later = start + Duration::from_secs(29);
        assert_eq!(watch.observe(later, at(10, 80)), Verdict::Wait);
        let due = start + Duration::from_secs(30);
        assert_eq!(watch.observe(due, at(10, 90)), Verdict::Rejoin);
        // The wait starts again after a join.
        assert_eq!(watch.observe(due, at(10, 90)), Verdict::Wait);
    }

    #[test]
    fn moving_commits_mean_another_member_reads() {
        let start = Instant::now();
        let mut watch = StallWatch::new(Duration::from_secs(30));
        for step in 0..10 {
            let now = start + Duration::from_secs(step * 10);
            let committed = 10 + step as i64;
            assert_eq!(watch.observe(now, at(committed, 100)), Verdict::Wait);
        }
    }

    #[test]
    fn nothing_to_read_or_nothing_known_is_never_a_stall() {
        let start = Instant::now();
        let mut watch = StallWatch::new(Duration::from_secs(30));
        for step in 0..10 {
            let now = start + Duration::from_secs(step * 10);
            assert_eq!(watch.observe(now, at(50, 50)), Verdict::Wait);
            assert_eq!(watch.observe(now, None), Verdict::Wait);
        }
    }

    #[test]
    fn holding_a_partition_resets_the_wait() {
        let start = Instant::now();
        let mut watch = StallWatch::new(Duration::from_secs(30));
        assert_eq!(watch.observe(start, at(10, 50)), Verdict::Wait);
        watch.holding();
        let later = start + Duration::from_secs(31);
        assert_eq!(watch.observe(later, at(10, 50)), Verdict::Wait);
        let due = later + Duration::from_secs(30);
        assert_eq!(watch.observe(due, at(10, 50)), Verdict::Rejoin);
    }
}
