//! Callers' stored histories from ClickHouse (`calls_by_caller`, sorted by account
//! and caller): read only for a caller with a record older than what the keyed
//! state keeps (a late record beyond the retention window), bounded by that caller.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use engine::enrich::repeat::{connected, Visit};
use runtime::clickhouse::string_list;
use schemas::{CallId, ClientId};
use serde::Deserialize;
use uuid::Uuid;

/// Caller keys per query, so no statement nears `max_query_size`.
pub const KEYS_PER_QUERY: usize = 500;

/// The histories of callers, by caller key, each a map of the caller's calls.
pub type StoredHistories = HashMap<String, HashMap<CallId, Visit>>;

/// The stored histories of a chunk of (account, caller) keys.
pub fn histories_query(keys: &[(String, String)]) -> String {
    let accounts: BTreeSet<&str> = keys.iter().map(|(a, _)| a.as_str()).collect();
    let callers: BTreeSet<&str> = keys.iter().map(|(_, c)| c.as_str()).collect();
    format!(
        "SELECT account, caller, id, client_id, started_at, campaign, buyer, duration_s, \
         connected_duration_s, connected, qualified, repeat_of \
         FROM calls_by_caller FINAL WHERE account IN ({}) AND caller IN ({})",
        string_list(accounts),
        string_list(callers),
    )
}

#[derive(Debug, clickhouse::Row, Deserialize)]
pub struct VisitRow {
    pub account: String,
    pub caller: String,
    #[serde(with = "clickhouse::serde::uuid")]
    id: Uuid,
    client_id: String,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    started_at: DateTime<Utc>,
    campaign: String,
    buyer: String,
    duration_s: Option<u32>,
    connected_duration_s: Option<u32>,
    connected: Option<u8>,
    qualified: u8,
    repeat_of: String,
}

impl VisitRow {
    pub fn visit(self) -> Option<Visit> {
        let Ok(client_id) = ClientId::parse(&self.client_id) else {
            tracing::error!(id = %self.id, client_id = self.client_id, "stored call with an invalid client id; left out of its caller's history");
            return None;
        };
        Some(Visit {
            id: CallId(self.id),
            client_id,
            started_at: self.started_at,
            campaign: (!self.campaign.is_empty()).then_some(self.campaign),
            buyer: (!self.buyer.is_empty()).then_some(self.buyer),
            connected: connected(
                self.connected.map(|c| c != 0),
                self.connected_duration_s,
                self.duration_s,
            ),
            qualified: self.qualified != 0,
            repeat_of: Uuid::parse_str(&self.repeat_of).ok().map(CallId),
        })
    }
}
