//! The parked records the worker has read and not yet re-published, per partition.
//!
//! Every record is parked for the same delay, so a partition of `calls.parked` is
//! in due order: only its head can be the next one due, and what follows a record
//! not yet due is not due either. The worker keeps these here (and pauses their
//! partitions) instead of sleeping with them: a member that stops reading cannot
//! take part in a rebalance.

use std::collections::{BTreeMap, VecDeque};

use rdkafka::message::{Message, OwnedMessage};
use schemas::topics::DUE_HEADER;

use super::header_number;

#[derive(Debug, Default)]
pub struct Waiting {
    by_partition: BTreeMap<i32, VecDeque<OwnedMessage>>,
}

impl Waiting {
    /// Adds a batch as read: per partition in offset order.
    pub fn add(&mut self, batch: Vec<OwnedMessage>) {
        for message in batch {
            self.by_partition
                .entry(message.partition())
                .or_default()
                .push_back(message);
        }
    }

    /// Takes the records due at `now_ms` (epoch milliseconds): from each
    /// partition's head, up to its first record not yet due. A record without a
    /// readable due time is due.
    pub fn take_due(&mut self, now_ms: i64) -> Vec<OwnedMessage> {
        let mut due = Vec::new();
        for queue in self.by_partition.values_mut() {
            while queue.front().is_some_and(|m| due_at(m) <= now_ms) {
                due.extend(queue.pop_front());
            }
        }
        self.by_partition.retain(|_, queue| !queue.is_empty());
        due
    }

    /// When the next record falls due (epoch milliseconds), if any waits.
    pub fn next_due(&self) -> Option<i64> {
        self.by_partition
            .values()
            .filter_map(|queue| queue.front().map(due_at))
            .min()
    }

    /// The partitions with records waiting.
    pub fn partitions(&self) -> Vec<i32> {
        self.by_partition.keys().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.by_partition.values().map(VecDeque::len).sum()
    }

    /// Forgets everything: after a rebalance these records are read again, by
    /// whichever member is given their partition, from the group's last commit.
    pub fn clear(&mut self) {
        self.by_partition.clear();
    }
}

fn due_at(message: &OwnedMessage) -> i64 {
    header_number(message, DUE_HEADER).unwrap_or(i64::MIN)
}

#[cfg(test)]
mod tests {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::Timestamp;

    use super::*;

    fn parked(partition: i32, offset: i64, due: Option<i64>) -> OwnedMessage {
        let due = due.map(|d| d.to_string());
        let headers = due.as_ref().map(|d| {
            OwnedHeaders::new().insert(Header {
                key: DUE_HEADER,
                value: Some(d.as_bytes()),
            })
        });
        OwnedMessage::new(
            Some(b"{}".to_vec()),
            Some(b"key".to_vec()),
            "calls.parked".into(),
            Timestamp::NotAvailable,
            partition,
            offset,
            headers,
        )
    }

    fn offsets(messages: &[OwnedMessage]) -> Vec<(i32, i64)> {
        messages
            .iter()
            .map(|m| (m.partition(), m.offset()))
            .collect()
    }

    #[test]
    fn only_the_heads_that_are_due_come_out_in_offset_order() {
        let mut waiting = Waiting::default();
        waiting.add(vec![
            parked(0, 10, Some(100)),
            parked(1, 5, Some(300)),
            parked(0, 11, Some(200)),
            parked(0, 12, Some(250)),
            parked(1, 6, Some(310)),
        ]);
        assert_eq!(waiting.next_due(), Some(100));
        assert!(waiting.take_due(99).is_empty(), "nothing due yet");
        assert_eq!(offsets(&waiting.take_due(200)), vec![(0, 10), (0, 11)]);
        assert_eq!(waiting.next_due(), Some(250));
        assert_eq!(waiting.partitions(), vec![0, 1]);
        assert_eq!(offsets(&waiting.take_due(305)), vec![(0, 12), (1, 5)]);
        assert_eq!(waiting.partitions(), vec![1], "partition 0 emptied");
        assert_eq!(waiting.len(), 1);
        assert_eq!(offsets(&waiting.take_due(1_000)), vec![(1, 6)]);
        assert_eq!(waiting.len(), 0);
        assert_eq!(waiting.next_due(), None);
    }

    #[test]
    fn a_record_behind_one_not_due_waits_with_it() {
        // Out of due order in one partition (a clock step between two parkings):
        // the later record is not re-published ahead of the earlier, whose
        // offset must be committed first.
        let mut waiting = Waiting::default();
        waiting.add(vec![parked(3, 1, Some(500)), parked(3, 2, Some(100))]);
        assert!(waiting.take_due(200).is_empty());
        assert_eq!(offsets(&waiting.take_due(500)), vec![(3, 1), (3, 2)]);
    }

    #[test]
    fn a_record_without_a_due_time_is_due_and_clear_forgets_all() {
        let mut waiting = Waiting::default();
        waiting.add(vec![parked(0, 1, None), parked(2, 7, Some(i64::MAX))]);
        assert_eq!(offsets(&waiting.take_due(0)), vec![(0, 1)]);
        waiting.clear();
        assert_eq!(waiting.len(), 0);
        assert_eq!(waiting.partitions(), Vec::<i32>::new());
    }
}
