//! Lag in seconds: how old the oldest record a group reader has read and not yet
//! committed is, per partition, at the moment `/metrics` is scraped
//! (`kafka_group_lag_seconds`).
//!
//! The age is the scrape's time minus the record's Kafka timestamp (set by the
//! producer when ingest acknowledged the record), so a processor stuck on a batch
//! shows it growing second by second, not in steps of a reporting interval. Records
//! the reader has not fetched yet are not counted until it does (a batch is read as
//! soon as its first record arrives; the lag in records, `kafka_group_lag_records`,
//! counts them). Computed on scrape rather than pushed: a gauge set at a report
//! would be up to the report interval out of date when read, and the end-to-end
//! bench compares it with the load generator's own clock to within a second.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use rdkafka::message::{Message, OwnedMessage};

/// Every live clock, for [`refresh_lag_seconds`].
static CLOCKS: Mutex<Vec<Weak<LagClock>>> = Mutex::new(Vec::new());

/// Batches read and not committed, per partition, oldest first: `(end, timestamp)`,
/// the offset after the batch's last record of the partition and the Kafka
/// timestamp (ms) of its first.
type Pending = HashMap<(String, i32), VecDeque<(i64, i64)>>;

/// One group reader's records in hand (see the module documentation).
pub(crate) struct LagClock {
    group: String,
    pending: Mutex<Pending>,
}

impl LagClock {
    pub(crate) fn new(group: String) -> Arc<Self> {
        let clock = Arc::new(Self {
            group,
            pending: Mutex::default(),
        });
        if let Ok(mut clocks) = CLOCKS.lock() {
            clocks.retain(|c| c.strong_count() > 0);
            clocks.push(Arc::downgrade(&clock));
        }
        clock
    }

    /// A batch was read: its records are unprocessed until committed.
    pub(crate) fn read(&self, batch: &[OwnedMessage]) {
        let mut spans: HashMap<(&str, i32), (i64, i64)> = HashMap::new();
        for message in batch {
            let stamp = message.timestamp().to_millis().unwrap_or(0);
            let span = spans
                .entry((message.topic(), message.partition()))
                .or_insert((0, stamp));
            span.0 = span.0.max(message.offset() + 1);
        }
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        for ((topic, partition), span) in spans {
            pending
                .entry((topic.to_owned(), partition))
                .or_default()
                .push_back(span);
        }
    }

    /// A batch was committed: what it read is processed.
    pub(crate) fn committed(&self, batch: &[OwnedMessage]) {
        let mut ends: HashMap<(&str, i32), i64> = HashMap::new();
        for message in batch {
            let end = ends
                .entry((message.topic(), message.partition()))
                .or_insert(0);
            *end = (*end).max(message.offset() + 1);
        }
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        for ((topic, partition), end) in ends {
            if let Some(spans) = pending.get_mut(&(topic.to_owned(), partition)) {
                while spans.front().is_some_and(|(span_end, _)| *span_end <= end) {
                    spans.pop_front();
                }
            }
        }
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

    /// The age in seconds of each partition's oldest unprocessed record at `now_ms`
    /// (0 for a partition with nothing in hand).
    fn ages(&self, now_ms: i64) -> Vec<(String, i32, f64)> {
        let Ok(pending) = self.pending.lock() else {
            return Vec::new();
        };
        pending
            .iter()
            .map(|((topic, partition), spans)| {
                let age = spans
                    .front()
                    .map_or(0.0, |(_, stamp)| (now_ms - stamp).max(0) as f64 / 1000.0);
                (topic.clone(), *partition, age)
            })
            .collect()
    }
}

/// Sets `kafka_group_lag_seconds` for every partition of every live reader: call
/// right before rendering `/metrics`.
pub fn refresh_lag_seconds() {
    let clocks: Vec<Arc<LagClock>> = match CLOCKS.lock() {
        Ok(clocks) => clocks.iter().filter_map(Weak::upgrade).collect(),
        Err(_) => return,
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    for clock in clocks {
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
    fn partitions_given_away_are_forgotten() {
        let clock = LagClock::new("processor".into());
        clock.read(&[record(0, 1, 1_000), record(2, 1, 1_000)]);
        clock.retain(|_, partition| partition == 2);
        let partitions: Vec<i32> = clock.ages(2_000).into_iter().map(|(_, p, _)| p).collect();
        assert_eq!(partitions, vec![2]);
    }
}
