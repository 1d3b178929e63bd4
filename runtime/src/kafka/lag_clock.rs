//! Lag in seconds: how old the oldest record a group reader has read and not yet
//! processed is, per partition, at the moment `/metrics` is scraped
//! (`kafka_group_lag_seconds`). Processed means committed, or for a reader whose
//! owner says so earlier (`GroupReader::settled`: the processor once a batch's calls
//! are stored), written: the steps between a stored call and its commit (events
//! sent, the keyed state's changelog) took up to 2 s a batch in a catch-up, and a
//! call is visible to analysts once stored.
//!
//! The age is the scrape's time minus the record's Kafka timestamp (set by the
//! producer when ingest acknowledged the record), so a processor stuck on a batch
//! shows it growing second by second, not in steps of a reporting interval. A
//! partition whose records wait in the broker with none in hand (a backlog larger
//! than a batch, read unevenly across partitions) is counted from the record at its
//! committed offset, whose timestamp the group reader's lag report reads every few
//! seconds (`peek`). Computed on scrape rather than pushed: a gauge set at a report
//! would be up to the report interval out of date when read, and the end-to-end
//! bench compares it with the load generator's own clock.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use rdkafka::message::{Message, OwnedMessage};

/// Every live clock, for [`refresh_lag_seconds`].
static CLOCKS: Mutex<Vec<Weak<LagClock>>> = Mutex::new(Vec::new());

/// One partition's unprocessed records as far as the reader knows them.
#[derive(Default)]
struct Partition {
    /// Batches read and not committed, oldest first: `(end, timestamp)`, the offset
    /// after the batch's last record of the partition and the Kafka timestamp (ms)
    /// of its first.
    spans: VecDeque<(i64, i64)>,
    /// `(offset, timestamp)` of the oldest record not read yet, when nothing of the
    /// partition is in hand and records wait (from the lag report).
    unread: Option<(i64, i64)>,
    /// The offset after the last record read: a timestamp read for an offset
    /// before it comes too late.
    read_end: i64,
    /// The timestamp of the record before `read_end`.
    read_last_stamp: i64,
    /// When a batch of the partition was last committed.
    committed_at: Option<std::time::Instant>,
    /// The last check found records waiting beyond those read: when a commit leaves
    /// nothing in hand, the next record is taken to be about as old as the last one
    /// read until a check reads its timestamp (records wait densely in a backlog,
    /// and a batch cycle is shorter than a check's round trip).
    backlog: bool,
}

/// How long after its last commit a partition with nothing in hand is still looked
/// at for records waiting unread: a partition that goes quiet stops costing requests.
const ACTIVE_FOR: std::time::Duration = std::time::Duration::from_secs(10);

type Pending = HashMap<(String, i32), Partition>;

/// How many partitions the reader's current consumer holds (`None` once it is gone).
type Held = Box<dyn Fn() -> Option<usize> + Send + Sync>;

/// One group reader's records in hand (see the module documentation), and how to
/// count the partitions it holds.
pub(crate) struct LagClock {
    group: String,
    pending: Mutex<Pending>,
    held: Mutex<Option<Held>>,
}

impl LagClock {
    pub(crate) fn new(group: String) -> Arc<Self> {
        let clock = Arc::new(Self {
            group,
            pending: Mutex::default(),
            held: Mutex::new(None),
        });
        if let Ok(mut clocks) = CLOCKS.lock() {
            clocks.retain(|c| c.strong_count() > 0);
            clocks.push(Arc::downgrade(&clock));
        }
        clock
    }

    /// Counts the partitions held with `held` from now on (the reader's consumer,
    /// replaced when it joins again).
    pub(crate) fn count_held_with(&self, held: Held) {
        if let Ok(mut slot) = self.held.lock() {
            *slot = Some(held);
        }
    }

    fn partitions_held(&self) -> Option<usize> {
        self.held.lock().ok()?.as_ref()?()
    }

    /// A batch was read: its records are unprocessed until committed.
    pub(crate) fn read(&self, batch: &[OwnedMessage]) {
        // Per partition: (end, first record's timestamp, last record's timestamp).
        let mut spans: HashMap<(&str, i32), (i64, i64, i64)> = HashMap::new();
        for message in batch {
            let stamp = message.timestamp().to_millis().unwrap_or(0);
            let span = spans
                .entry((message.topic(), message.partition()))
                .or_insert((0, stamp, stamp));
            if message.offset() + 1 > span.0 {
                span.0 = message.offset() + 1;
                span.2 = stamp;
            }
        }
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        for ((topic, partition), (end, first, last)) in spans {
            let entry = pending.entry((topic.to_owned(), partition)).or_default();
            // Read in order from the committed offset: the waiting record, if one
            // was known, is in hand now (or was in an earlier batch).
            entry.unread = None;
            if end > entry.read_end {
                entry.read_end = end;
                entry.read_last_stamp = last;
            }
            entry.spans.push_back((end, first));
        }
    }

    /// A batch's output is written (for the processor: its calls are stored, its
    /// events about to be sent): what it read is processed, as far as the lag in
    /// seconds goes, though its offsets are committed a step later.
    ///
    /// True when it left a partition's age a guess (see `Partition::backlog`).
    pub(crate) fn settled(&self, batch: &[OwnedMessage]) -> bool {
        self.processed(batch, false)
    }

    /// A batch was committed: what it read is processed.
    pub(crate) fn committed(&self, batch: &[OwnedMessage]) {
        self.processed(batch, true);
    }

    /// True when a partition's age is now a guess.
    fn processed(&self, batch: &[OwnedMessage], committed: bool) -> bool {
        let mut ends: HashMap<(&str, i32), i64> = HashMap::new();
        for message in batch {
            let end = ends
                .entry((message.topic(), message.partition()))
                .or_insert(0);
            *end = (*end).max(message.offset() + 1);
        }
        let Ok(mut pending) = self.pending.lock() else {
            return false;
        };
        let mut guessing = false;
        for ((topic, partition), end) in ends {
            if let Some(entry) = pending.get_mut(&(topic.to_owned(), partition)) {
                if committed {
                    entry.committed_at = Some(std::time::Instant::now());
                }
                while entry
                    .spans
                    .front()
                    .is_some_and(|(span_end, _)| *span_end <= end)
                {
                    entry.spans.pop_front();
                }
                if entry.unread.is_some_and(|(offset, _)| offset < end) {
                    entry.unread = None;
                }
                // Settled then committed: the second must not replace a timestamp
                // a check read in between with this estimate.
                if entry.backlog
                    && entry.spans.is_empty()
                    && end >= entry.read_end
                    && entry.unread.is_none()
                {
                    entry.unread = Some((end, entry.read_last_stamp));
                    guessing = true;
                }
            }
        }
        guessing
    }

    /// Forgets the partitions this member no longer holds (their batches will be
    /// read again by the next owner), or every partition after a new join.
    pub(crate) fn retain(&self, held: impl Fn(&str, i32) -> bool) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.retain(|(topic, partition), _| {
                let kept = held(topic, *partition);
                if !kept {
                    // The next owner reports it; this instance's series says 0.
                    let labels = [
                        ("group", self.group.clone()),
                        ("topic", topic.clone()),
                        ("partition", partition.to_string()),
                    ];
                    metrics::gauge!(crate::metric_names::KAFKA_GROUP_LAG_SECONDS, &labels).set(0.0);
                }
                kept
            });
        }
    }

    /// Of `held` (`(topic, partition, next offset)`), those with records in hand or
    /// committed to within [`ACTIVE_FOR`]: where records may wait unread.
    pub(crate) fn active(
        &self,
        held: impl Iterator<Item = (String, i32, i64)>,
    ) -> Vec<(String, i32, i64)> {
        let Ok(pending) = self.pending.lock() else {
            return Vec::new();
        };
        held.filter(|(topic, partition, _)| {
            pending
                .get(&(topic.clone(), *partition))
                .is_some_and(|entry| {
                    !entry.spans.is_empty()
                        || entry
                            .committed_at
                            .is_some_and(|at| at.elapsed() < ACTIVE_FOR)
                })
        })
        .collect()
    }

    /// Given what a check found of held partitions (`(topic, partition, next
    /// offset, records waiting)`), those waiting with none in hand: whose oldest
    /// record's timestamp must be read. Forgets the waiting record of a partition
    /// found not waiting.
    pub(crate) fn waiting_unread(
        &self,
        checked: Vec<(String, i32, i64, bool)>,
    ) -> Vec<(String, i32, i64)> {
        let Ok(mut pending) = self.pending.lock() else {
            return Vec::new();
        };
        let mut unread = Vec::new();
        for (topic, partition, next, waiting) in checked {
            let entry = pending.get_mut(&(topic.clone(), partition));
            match (waiting, entry) {
                (false, Some(entry)) => {
                    entry.unread = None;
                    entry.backlog = false;
                }
                (false, None) => {}
                (true, Some(entry)) if !entry.spans.is_empty() => entry.backlog = true,
                (true, Some(entry)) => {
                    entry.backlog = true;
                    unread.push((topic, partition, next));
                }
                (true, None) => unread.push((topic, partition, next)),
            }
        }
        unread
    }

    /// The oldest record of a partition with none in hand, as read at its offset;
    /// ignored if a batch of the partition was read or committed past it since.
    pub(crate) fn unread(&self, topic: &str, partition: i32, offset: i64, stamp: i64) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let entry = pending.entry((topic.to_owned(), partition)).or_default();
        if entry.spans.is_empty() && offset >= entry.read_end {
            entry.unread = Some((offset, stamp));
        }
    }

    /// The age in seconds of each partition's oldest unprocessed record at `now_ms`
    /// (0 for a partition with nothing in hand and nothing known to wait).
    fn ages(&self, now_ms: i64) -> Vec<(String, i32, f64)> {
        let Ok(pending) = self.pending.lock() else {
            return Vec::new();
        };
        pending
            .iter()
            .map(|((topic, partition), entry)| {
                let oldest = match (entry.spans.front(), entry.unread) {
                    (Some((_, in_hand)), Some((_, waiting))) => Some((*in_hand).min(waiting)),
                    (Some((_, in_hand)), None) => Some(*in_hand),
                    (None, waiting) => waiting.map(|(_, stamp)| stamp),
                };
                let age = oldest.map_or(0.0, |stamp| (now_ms - stamp).max(0) as f64 / 1000.0);
                (topic.clone(), *partition, age)
            })
            .collect()
    }
}

/// Sets `kafka_group_lag_seconds` for every partition of every live reader, and
/// `kafka_group_partitions_held` for each: call right before rendering `/metrics`.
/// Partitions held are counted here, not by the reading loop: a loop held up by its
/// batch (a store that is down) would leave the last count standing, and an
/// assignment made just before was reported as none for the whole outage
/// (`CallMatrixGroupWithoutMembers` fired in the alert drill with the processor
/// holding every partition).
pub fn refresh_lag_seconds() {
    let clocks: Vec<Arc<LagClock>> = match CLOCKS.lock() {
        Ok(clocks) => clocks.iter().filter_map(Weak::upgrade).collect(),
        Err(_) => return,
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    for clock in clocks {
        if let Some(held) = clock.partitions_held() {
            metrics::gauge!(crate::metric_names::KAFKA_GROUP_PARTITIONS_HELD, "group" => clock.group.clone())
                .set(held as f64);
        }
        for (topic, partition, age) in clock.ages(now_ms) {
            let labels = [
                ("group", clock.group.clone()),
                ("topic", topic),
                ("partition", partition.to_string()),
            ];
            metrics::gauge!(crate::metric_names::KAFKA_GROUP_LAG_SECONDS, &labels).set(age);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Timestamp;

    fn record(partition: i32, offset: i64, at_ms: i64) -> OwnedMessage {
        OwnedMessage::new(
            None,
            None,
            "calls.raw".into(),
            Timestamp::CreateTime(at_ms),
            partition,
            offset,
            None,
        )
    }

    fn age_of(clock: &LagClock, partition: i32, now_ms: i64) -> f64 {
        clock
            .ages(now_ms)
            .into_iter()
            .find(|(_, p, _)| *p == partition)
            .map(|(_, _, age)| age)
            .expect("partition known")
    }

    #[test]
    fn the_oldest_record_in_hand_sets_the_age_until_its_batch_is_committed() {
        let clock = LagClock::new("processor".into());
        let first = vec![
            record(0, 10, 1_000),
            record(0, 11, 1_500),
            record(1, 4, 2_000),
        ];
        clock.read(&first);
        assert_eq!(age_of(&clock, 0, 4_000), 3.0);
        assert_eq!(age_of(&clock, 1, 4_000), 2.0);
        // The next batch is read before the first is committed (the processor
        // gathers while it stores): the first batch still counts.
        let second = vec![record(0, 12, 3_000)];
        clock.read(&second);
        assert_eq!(age_of(&clock, 0, 5_000), 4.0);
        clock.committed(&first);
        assert_eq!(
            age_of(&clock, 0, 5_000),
            2.0,
            "now the second batch's record"
        );
        assert_eq!(age_of(&clock, 1, 5_000), 0.0, "partition 1 is caught up");
        clock.committed(&second);
        assert_eq!(age_of(&clock, 0, 9_000), 0.0);
    }

    #[test]
    fn a_waiting_record_not_yet_read_counts_until_it_is_read_or_committed_past() {
        let clock = LagClock::new("processor".into());
        let waiting = || {
            vec![
                ("calls.raw".to_owned(), 1, 40, true),
                ("calls.raw".to_owned(), 0, 9, true),
            ]
        };
        clock.read(&[record(0, 10, 5_000)]);
        // Partition 0 has a batch in hand: only partition 1 needs its timestamp read.
        assert_eq!(
            clock.waiting_unread(waiting()),
            vec![("calls.raw".to_owned(), 1, 40)]
        );
        clock.unread("calls.raw", 1, 40, 1_000);
        assert_eq!(age_of(&clock, 1, 9_000), 8.0, "waiting in the broker");
        assert_eq!(age_of(&clock, 0, 9_000), 4.0);
        // Its records are read: the batch in hand says how old they are.
        clock.read(&[record(1, 40, 1_000), record(1, 41, 1_200)]);
        clock.committed(&[record(1, 40, 1_000), record(1, 41, 1_200)]);
        assert_eq!(age_of(&clock, 1, 9_000), 0.0);
        // A timestamp read for a record already read (the broker's committed offset
        // lags the reader's) is ignored.
        clock.unread("calls.raw", 1, 41, 1_200);
        assert_eq!(age_of(&clock, 1, 9_000), 0.0);
        // One that was right when read is forgotten once the partition is no longer
        // waiting at the next report.
        clock.unread("calls.raw", 1, 42, 2_000);
        assert_eq!(age_of(&clock, 1, 9_000), 7.0);
        clock.waiting_unread(vec![("calls.raw".to_owned(), 1, 43, false)]);
        assert_eq!(age_of(&clock, 1, 9_000), 0.0);
    }

    #[test]
    fn only_partitions_in_hand_or_committed_lately_are_looked_at() {
        let clock = LagClock::new("processor".into());
        clock.read(&[record(0, 1, 1_000), record(1, 1, 1_000)]);
        clock.committed(&[record(0, 1, 1_000)]);
        let held = vec![
            ("calls.raw".to_owned(), 0, 2),
            ("calls.raw".to_owned(), 1, 2),
            ("calls.raw".to_owned(), 2, 0),
        ];
        // 2 was never read (the lag report covers it).
        assert_eq!(
            clock.active(held.into_iter()),
            vec![
                ("calls.raw".to_owned(), 0, 2),
                ("calls.raw".to_owned(), 1, 2)
            ]
        );
    }

    #[test]
    fn in_a_backlog_a_commit_that_empties_the_hand_keeps_counting_from_the_last_record() {
        let clock = LagClock::new("processor".into());
        let batch = vec![record(0, 10, 1_000), record(0, 11, 1_100)];
        clock.read(&batch);
        // A check found more waiting beyond what is in hand.
        clock.waiting_unread(vec![("calls.raw".to_owned(), 0, 12, true)]);
        clock.committed(&batch);
        assert_eq!(
            age_of(&clock, 0, 3_100),
            2.0,
            "as old as record 11, until read"
        );
        // The check that finds the partition caught up ends it.
        clock.waiting_unread(vec![("calls.raw".to_owned(), 0, 12, false)]);
        assert_eq!(age_of(&clock, 0, 3_100), 0.0);
        // Out of a backlog, a commit that empties the hand means caught up.
        let next = vec![record(0, 12, 2_000)];
        clock.read(&next);
        clock.committed(&next);
        assert_eq!(age_of(&clock, 0, 9_000), 0.0);
    }

    #[test]
    fn a_settled_batch_stops_counting_before_its_commit_and_the_commit_keeps_a_read_timestamp() {
        let clock = LagClock::new("processor".into());
        let batch = vec![record(0, 10, 1_000), record(0, 11, 1_100)];
        clock.read(&batch);
        clock.waiting_unread(vec![("calls.raw".to_owned(), 0, 12, true)]);
        assert!(clock.settled(&batch), "a guess: the reader checks at once");
        assert_eq!(
            age_of(&clock, 0, 3_100),
            2.0,
            "stored: the backlog counts from the last record read"
        );
        // A check reads the waiting record's own timestamp; the commit after it
        // must not put the estimate back.
        clock.unread("calls.raw", 0, 12, 1_600);
        clock.committed(&batch);
        assert_eq!(age_of(&clock, 0, 3_100), 1.5);
    }

    #[test]
    fn partitions_held_are_counted_by_the_current_consumer_while_it_lives() {
        let clock = LagClock::new("processor".into());
        assert_eq!(clock.partitions_held(), None, "no consumer yet");
        let first = Arc::new(3usize);
        let weak = Arc::downgrade(&first);
        clock.count_held_with(Box::new(move || weak.upgrade().map(|n| *n)));
        assert_eq!(clock.partitions_held(), Some(3));
        // Joined again: the new consumer counts, whatever the old one said.
        let second = Arc::new(0usize);
        let weak = Arc::downgrade(&second);
        clock.count_held_with(Box::new(move || weak.upgrade().map(|n| *n)));
        drop(first);
        assert_eq!(clock.partitions_held(), Some(0));
        drop(second);
        assert_eq!(clock.partitions_held(), None, "gone: the last count stands");
    }

    #[test]
    fn partitions_given_away_are_forgotten() {
        let clock = LagClock::new("processor".into());
        clock.read(&[record(0, 1, 1_000), record(2, 1, 1_000)]);
        clock.retain(|_, partition| partition == 2);
        let partitions: Vec<i32> = clock.ages(2_000).into_iter().map(|(_, p, _)| p).collect();
        assert_eq!(partitions, vec![2]);
    }
}
