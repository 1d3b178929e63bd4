//! The most recent events, in the order the hub's reader got them, so a client that
//! reconnects with a recent `Last-Event-ID` is served from memory: no consumer of
//! its own, no read of the broker. Bounded in events and bytes; what falls out of it
//! is served by the one shared catch-up reader (`catch_up`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::{CallEvent, Positions};

pub struct Ring {
    events: VecDeque<Arc<CallEvent>>,
    bytes: usize,
    max_events: usize,
    max_bytes: usize,
    /// Per partition, the offset from which the ring holds every event: where the
    /// hub's reader started, then one past each event that fell out.
    floor: BTreeMap<i32, i64>,
    /// Per partition, the topic's first offset when the hub's reader started: a
    /// ring whose floor is there holds everything before any id.
    low: BTreeMap<i32, i64>,
}

impl Ring {
    /// A ring whose reader starts at `start` (partition → next offset) in a topic
    /// that begins at `low` (partition → first offset).
    pub fn new(start: &Positions, low: &Positions, max_events: usize, max_bytes: usize) -> Self {
        Self {
            events: VecDeque::new(),
            bytes: 0,
            max_events: max_events.max(1),
            max_bytes,
            floor: start.0.clone(),
            low: low.0.clone(),
        }
    }

    pub fn push(&mut self, event: Arc<CallEvent>) {
        self.bytes += event.frame.len();
        self.events.push_back(event);
        while self.events.len() > self.max_events || self.bytes > self.max_bytes {
            let Some(old) = self.events.pop_front() else {
                break;
            };
            self.bytes -= old.frame.len();
            self.floor.insert(old.partition, old.offset + 1);
        }
    }

    /// Whether every event after `from` is here (for each partition the ring knows,
    /// `from` is at or past its floor). A partition `from` does not name is read
    /// from its start, which the ring only holds if nothing of it ever fell out.
    pub fn covers(&self, from: &Positions) -> bool {
        self.floor.iter().all(|(partition, floor)| {
            from.0
                .get(partition)
                .is_some_and(|position| position >= floor)
        })
    }

    /// Whether it holds the `look_back` events a partition before `from` (or every
    /// event before it, where the topic has fewer): then [`before`](Self::before)
    /// is all a resuming stream needs to know what it had. Not so after an api
    /// restart: the ring starts at the topic's end, and a client resuming from
    /// there had events the ring never saw (the short fault matrix: versions sent
    /// twice when the processor announced them again after the restart).
    pub fn holds_look_back(&self, from: &Positions, look_back: i64) -> bool {
        self.floor.iter().all(|(partition, floor)| {
            let low = self.low.get(partition).copied().unwrap_or(0);
            from.0
                .get(partition)
                .is_some_and(|position| *floor <= (position - look_back).max(low))
        })
    }

    /// The events it holds before `from` (what a client resuming from `from` has
    /// had), to know which call versions it has already.
    pub fn before(&self, from: &Positions) -> Vec<Arc<CallEvent>> {
        self.events
            .iter()
            .filter(|e| from.0.get(&e.partition).is_some_and(|p| e.offset < *p))
            .cloned()
            .collect()
    }

    /// The events after `from`, in order (call only when [`covers`](Self::covers)).
    pub fn after(&self, from: &Positions) -> Vec<Arc<CallEvent>> {
        self.events
            .iter()
            .filter(|e| from.0.get(&e.partition).is_none_or(|p| e.offset >= *p))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn event(partition: i32, offset: i64) -> Arc<CallEvent> {
        Arc::new(CallEvent {
            client_id: "arroyo".into(),
            account: "acme".into(),
            id: format!("{partition}:{}", offset + 1),
            partition,
            offset,
            call: None,
            frame: Bytes::from(vec![b'x'; 10]),
        })
    }

    fn at(pairs: &[(i32, i64)]) -> Positions {
        Positions(pairs.iter().copied().collect())
    }

    #[test]
    fn recent_positions_are_covered_and_old_ones_are_not() {
        let mut ring = Ring::new(&at(&[(0, 5), (1, 7)]), &at(&[(0, 0), (1, 0)]), 3, 1000);
        for (p, o) in [(0, 5), (1, 7), (0, 6)] {
            ring.push(event(p, o));
        }
        assert!(ring.covers(&at(&[(0, 5), (1, 7)])));
        let after: Vec<i64> = ring
            .after(&at(&[(0, 6), (1, 7)]))
            .iter()
            .map(|e| e.offset)
            .collect();
        assert_eq!(
            after,
            [7, 6],
            "partition 1's 7 and partition 0's 6, in arrival order"
        );
        // A fourth event pushes (0, 5) out: a client at 0:5 is no longer covered.
        ring.push(event(1, 8));
        assert!(!ring.covers(&at(&[(0, 5), (1, 7)])));
        assert!(ring.covers(&at(&[(0, 6), (1, 7)])));
        assert!(!ring.covers(&at(&[(0, 6)])), "partition 1 from its start");
        assert!(
            !ring.covers(&at(&[(0, 4), (1, 9)])),
            "older than the hub's start"
        );
    }

    #[test]
    fn bytes_are_bounded() {
        let mut ring = Ring::new(&at(&[(0, 0)]), &at(&[(0, 0)]), 1000, 35);
        for o in 0..10 {
            ring.push(event(0, o));
        }
        assert_eq!(ring.events.len(), 3);
        assert!(ring.covers(&at(&[(0, 7)])));
    }

    #[test]
    fn a_ring_started_at_the_topics_end_does_not_know_what_came_before() {
        // Started at 0:10, 1:4 in a topic that begins at 0:0, 1:4 (partition 1 was
        // empty): a client at the start had partition 0's events the ring never saw.
        let mut ring = Ring::new(&at(&[(0, 10), (1, 4)]), &at(&[(0, 0), (1, 4)]), 100, 10_000);
        assert!(ring.covers(&at(&[(0, 10), (1, 4)])));
        assert!(!ring.holds_look_back(&at(&[(0, 10), (1, 4)]), 3));
        for o in 10..20 {
            ring.push(event(0, o));
        }
        assert!(
            !ring.holds_look_back(&at(&[(0, 12), (1, 4)]), 3),
            "2 of 3 held"
        );
        assert!(ring.holds_look_back(&at(&[(0, 13), (1, 4)]), 3));
        assert!(
            !ring.holds_look_back(&at(&[(0, 13)]), 3),
            "partition 1 unnamed"
        );
        // A ring started at a topic's beginning holds everything before any id.
        let ring = Ring::new(&at(&[(0, 0)]), &at(&[(0, 0)]), 100, 10_000);
        assert!(ring.holds_look_back(&at(&[(0, 0)]), 1024));
    }
}
