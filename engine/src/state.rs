//! What the processor keeps per caller to decide a batch without reading
//! ClickHouse: the caller's calls within the retention window (the repeat decision
//! and its retroactive re-decisions) and the CallMatrix calls routed from that caller
//! (duplicate links, before or after their CmCall arrives). Pure: the processor
//! stores it per raw partition and logs it to a changelog (`processor::state`).
//!
//! Windows expire by event time: whatever started before the horizon (the newest
//! start the partition has seen, less the retention) is dropped when its caller is
//! next written or swept. The retention must cover the longest repeat window plus
//! how late records may come (docs/architecture.md, "Keyed state").

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use schemas::CallId;
use serde::{Deserialize, Serialize};

use crate::enrich::duplicates::Candidate;
use crate::enrich::repeat::Visit;
use crate::enrich::History;

/// One caller's kept state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerState {
    #[serde(rename = "v", default, skip_serializing_if = "Vec::is_empty")]
    pub visits: Vec<Visit>,
    #[serde(rename = "c", default, skip_serializing_if = "Vec::is_empty")]
    pub cm_calls: Vec<Candidate>,
}

impl CallerState {
    /// The visits as the repeat decision takes them.
    pub fn history(&self) -> History {
        Arc::new(self.visits.iter().map(|v| (v.id, v.clone())).collect())
    }

    /// This state with `history` as its visits (in start order, then id, so the
    /// same history always encodes the same).
    pub fn with_history(mut self, history: &HashMap<CallId, Visit>) -> Self {
        let mut visits: Vec<Visit> = history.values().cloned().collect();
        visits.sort_by_key(|v| (v.started_at, v.id.0));
        self.visits = visits;
        self
    }

    /// Adds a CmCall (a later copy of one replaces it).
    pub fn add_cm_call(&mut self, call: Candidate) {
        self.cm_calls.retain(|c| c.cm_call_id != call.cm_call_id);
        self.cm_calls.push(call);
        self.cm_calls
            .sort_by(|a, b| (a.started_at, &a.cm_call_id).cmp(&(b.started_at, &b.cm_call_id)));
    }

    /// Drops what started before `horizon`; returns the ids of the visits dropped
    /// (their calls go from the state too).
    pub fn expire(&mut self, horizon: DateTime<Utc>) -> Vec<CallId> {
        let mut dropped = Vec::new();
        self.visits.retain(|v| {
            let keep = v.started_at >= horizon;
            if !keep {
                dropped.push(v.id);
            }
            keep
        });
        self.cm_calls.retain(|c| c.started_at >= horizon);
        dropped
    }

    pub fn is_empty(&self) -> bool {
        self.visits.is_empty() && self.cm_calls.is_empty()
    }

    /// The newest start it holds.
    pub fn newest(&self) -> Option<DateTime<Utc>> {
        let visits = self.visits.iter().map(|v| v.started_at);
        let cm = self.cm_calls.iter().map(|c| c.started_at);
        visits.chain(cm).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn at(day: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 10, 1, 12, 0, 0).unwrap() + Duration::days(day)
    }

    fn visit(n: u128, day: i64) -> Visit {
        Visit {
            id: CallId(uuid::Uuid::from_u128(n)),
            client_id: schemas::ClientId::parse("arroyo").unwrap(),
            started_at: at(day),
            campaign: Some("Auto".into()),
            buyer: None,
            connected: true,
            qualified: false,
            repeat_of: None,
        }
    }

    #[test]
    fn expiry_drops_what_started_before_the_horizon_and_names_it() {
        let history: HashMap<CallId, Visit> = [visit(1, 0), visit(2, 20), visit(3, 40)]
            .into_iter()
            .map(|v| (v.id, v))
            .collect();
        let mut state = CallerState::default().with_history(&history);
        state.add_cm_call(Candidate {
            cm_call_id: "cm_1".into(),
            account: "acme".into(),
            caller: "+14155552671".into(),
            called: "+18885550100".into(),
            started_at: at(5),
            duration_s: 60,
        });
        let dropped = state.expire(at(10));
        assert_eq!(dropped, [CallId(uuid::Uuid::from_u128(1))]);
        assert_eq!(state.visits.len(), 2);
        assert!(state.cm_calls.is_empty());
        assert_eq!(state.newest(), Some(at(40)));
        assert!(!state.is_empty());
    }

    #[test]
    fn the_same_history_encodes_the_same_and_round_trips() {
        let a: HashMap<CallId, Visit> = (1..50)
            .map(|n| (visit(n, n as i64), ()))
            .map(|(v, _)| (v.id, v))
            .collect();
        let one = serde_json::to_vec(&CallerState::default().with_history(&a)).unwrap();
        let two = serde_json::to_vec(&CallerState::default().with_history(&a.clone())).unwrap();
        assert_eq!(one, two);
        let back: CallerState = serde_json::from_slice(&one).unwrap();
        assert_eq!(*back.history(), a);
        // Short names: a visit is about 120 bytes, not 300.
        assert!(one.len() / 49 < 160, "{} bytes a visit", one.len() / 49);
    }
}
