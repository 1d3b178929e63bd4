//! The call versions one stream has sent lately, so that a version published twice
//! reaches the client once.
//!
//! The processor announces a batch's calls before it commits the batch; a batch
//! whose commit a rebalance prevented is decided again by the partition's next
//! owner and announced again, with the same row versions (they derive from the
//! records). The alert drill counted it: one version twice per SSE client after a
//! processor rejoin (run 3), 15 in run 1. The processor cannot skip the second
//! announcement safely (it cannot know the first was published), so each stream
//! drops a version of a call that is not newer than one it already sent: a call's
//! versions reach a stream in order, so an older or equal one is a repeat.
//!
//! A resumed stream starts knowing the call versions of the [`LOOK_BACK`] events a
//! partition before its id (from the ring when it holds them, else read back by the
//! catch-up reader; an api just started holds none): the api was killed in the short fault
//! matrix between a version and its repeat, and the client, resuming on the new
//! instance, got the repeat (4 versions twice per client in one CI run). A version
//! announced before the client first connected is skipped too if its repeat comes
//! after a resume; the client loaded it with the page it connected from.
//!
//! Bounded: the last [`REMEMBERED`] calls a stream sent, each by a 64-bit hash of
//! its id (two u64s in a map and one in a queue: tens of bytes a call by their
//! layout, not measured). A new call whose id shares a hash with one remembered
//! would be skipped: odds of about 2 in 10^16 per call. A repeat of a call further
//! back, or after the client reconnected, is sent again (at least once).

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;

/// Calls remembered per stream: at the fault matrix's load (60 calls a second)
/// about a minute of calls, longer than a processor's rejoin takes.
pub const REMEMBERED: usize = 4096;

/// Events a partition the catch-up reader reads back before a resuming client's id,
/// only to note their call versions: a repeat follows its version within the
/// batches a processor decides again after a crash.
pub const LOOK_BACK: i64 = 1024;

#[derive(Debug)]
pub struct SentVersions {
    /// Latest version sent, by the call id's hash.
    latest: HashMap<u64, u64>,
    /// Calls in the order they were first sent, oldest first, to forget by.
    order: VecDeque<u64>,
    capacity: usize,
    hasher: RandomState,
}

impl SentVersions {
    pub fn new(capacity: usize) -> Self {
        Self {
            latest: HashMap::new(),
            order: VecDeque::new(),
            capacity,
            hasher: RandomState::new(),
        }
    }

    /// Notes a call event the client had before this stream (a resume's earlier
    /// events), so a repeat of it is not sent.
    pub fn note(&mut self, event: &super::CallEvent) {
        if let Some((call, version)) = &event.call {
            self.is_new(call, *version);
        }
    }

    /// Whether `version` of `call` is news to this stream; notes it when it is.
    pub fn is_new(&mut self, call: &str, version: u64) -> bool {
        let call = self.hasher.hash_one(call);
        if let Some(latest) = self.latest.get_mut(&call) {
            if *latest >= version {
                return false;
            }
            *latest = version;
            return true;
        }
        if self.order.len() == self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.latest.remove(&oldest);
            }
        }
        self.latest.insert(call, version);
        self.order.push_back(call);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_or_older_version_is_not_news() {
        let mut sent = SentVersions::new(10);
        assert!(sent.is_new("a", 5));
        assert!(!sent.is_new("a", 5), "the same version again");
        assert!(sent.is_new("a", 7), "a later version");
        assert!(!sent.is_new("a", 6), "an older version after a later one");
        assert!(sent.is_new("b", 1), "another call");
    }

    #[test]
    fn the_oldest_call_is_forgotten_past_capacity() {
        let mut sent = SentVersions::new(2);
        assert!(sent.is_new("a", 1));
        assert!(sent.is_new("b", 1));
        assert!(sent.is_new("a", 2), "updating a call does not add one");
        assert!(sent.is_new("c", 1));
        assert!(sent.is_new("a", 1), "a, the first sent, is forgotten");
        assert!(!sent.is_new("c", 1), "c is still remembered");
    }
}
