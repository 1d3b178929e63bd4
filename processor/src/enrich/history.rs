//! Callers' histories for the repeat decision: a moka cache in front of ClickHouse's
//! `calls_by_caller`. The cache is only a cache: this instance is the only writer of
//! the callers in its partitions (records are keyed by caller), it updates an entry
//! after writing, and it drops everything when the group rebalances, so a reload
//! from ClickHouse always gives the same answer the cache would have.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use schemas::{CallId, ClientId};
use serde::Deserialize;
use uuid::Uuid;

use super::repeat::{connected, Visit};

/// One caller's calls, by id.
pub type History = Arc<HashMap<CallId, Visit>>;

/// Caller keys per lookup query, so no statement nears `max_query_size`.
const KEYS_PER_QUERY: usize = 500;

pub struct Histories {
    cache: moka::sync::Cache<String, History>,
    rebalances_seen: u64,
}

impl Histories {
    pub fn new(max_callers: u64) -> Self {
        Self {
            cache: moka::sync::Cache::new(max_callers),
            rebalances_seen: 0,
        }
    }

    /// Drops every history when the group has rebalanced since the last call.
    pub fn observe_rebalances(&mut self, count: u64) {
        if count != self.rebalances_seen {
            self.cache.invalidate_all();
            self.rebalances_seen = count;
            metrics::counter!("processor_history_resets_total").increment(1);
        }
    }

    /// Removes and returns a caller's history, so the caller can change it in place
    /// (`Arc::make_mut` without a copy) and `put` it back.
    pub fn take(&self, key: &str) -> Option<History> {
        let found = self.cache.remove(key);
        metrics::counter!(
            "processor_history_lookups_total",
            "result" => if found.is_some() { "hit" } else { "miss" }
        )
        .increment(1);
        found
    }

    pub fn put(&self, key: String, history: History) {
        self.cache.insert(key, history);
    }
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct VisitRow {
    account: String,
    caller: String,
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

/// The stored histories of `keys` (`(account, caller)`), read with `FINAL`. A key
/// with no stored call gets an empty history.
pub async fn load(
    clickhouse: &clickhouse::Client,
    keys: &[(String, String)],
) -> Result<HashMap<String, HashMap<CallId, Visit>>, clickhouse::error::Error> {
    let mut histories: HashMap<String, HashMap<CallId, Visit>> = keys
        .iter()
        .map(|(account, caller)| (schemas::ids::caller_key(account, caller), HashMap::new()))
        .collect();
    for chunk in keys.chunks(KEYS_PER_QUERY) {
        let accounts: BTreeSet<&str> = chunk.iter().map(|(a, _)| a.as_str()).collect();
        let callers: BTreeSet<&str> = chunk.iter().map(|(_, c)| c.as_str()).collect();
        let sql = format!(
            "SELECT account, caller, id, client_id, started_at, campaign, buyer, duration_s, \
             connected_duration_s, connected, qualified, repeat_of \
             FROM calls_by_caller FINAL WHERE account IN ({}) AND caller IN ({})",
            runtime::clickhouse::string_list(accounts),
            runtime::clickhouse::string_list(callers),
        );
        let rows = clickhouse.query(&sql).fetch_all::<VisitRow>().await?;
        for row in rows {
            let key = schemas::ids::caller_key(&row.account, &row.caller);
            // The IN lists cross accounts with callers; keep only the asked pairs.
            let Some(history) = histories.get_mut(&key) else {
                continue;
            };
            let Ok(client_id) = ClientId::parse(&row.client_id) else {
                tracing::error!(id = %row.id, client_id = row.client_id, "stored call with an invalid client id; left out of its caller's history");
                continue;
            };
            let visit = Visit {
                id: CallId(row.id),
                client_id,
                started_at: row.started_at,
                campaign: (!row.campaign.is_empty()).then_some(row.campaign),
                buyer: (!row.buyer.is_empty()).then_some(row.buyer),
                connected: connected(
                    row.connected.map(|c| c != 0),
                    row.connected_duration_s,
                    row.duration_s,
                ),
                qualified: row.qualified != 0,
                repeat_of: Uuid::parse_str(&row.repeat_of).ok().map(CallId),
            };
            history.insert(visit.id, visit);
        }
    }
    Ok(histories)
}
