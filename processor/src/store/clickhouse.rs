//! The store on ClickHouse. No `FINAL` over `calls` (sorted by client and id, so a
//! filter on anything else merges the whole table): calls are read by (client, id)
//! pairs keeping each one's newest version, candidates come from the tables sorted
//! for the question (`calls_by_caller`, `calls_by_time`, `cm_calls`).

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use engine::enrich::duplicates::Candidate;
use engine::enrich::repeat::{connected, Visit};
use runtime::call_lookup::StoredId;
use runtime::clickhouse::string_list;
use schemas::callmatrix::{CmCallRow, CM_CALL_COLUMNS};
use schemas::{CallId, CallRecord, CallRow, ClientId};
use serde::Deserialize;
use uuid::Uuid;

use super::{Duplicates, Store, StoreError, StoredHistories};

/// Caller keys per history query, so no statement nears `max_query_size`.
const KEYS_PER_QUERY: usize = 500;

#[derive(Clone)]
pub struct ClickHouseStore {
    pub client: clickhouse::Client,
}

impl Store for ClickHouseStore {
    async fn calls(
        &self,
        ids: &[(ClientId, CallId)],
    ) -> Result<HashMap<CallId, CallRecord>, StoreError> {
        let mut rows = Vec::new();
        for sql in runtime::call_lookup::by_id_queries(ids) {
            rows.extend(self.client.query(&sql).fetch_all::<CallRow>().await?);
        }
        Ok(runtime::call_lookup::newest_versions(rows))
    }

    /// `call_ids` first: a batch's new calls then cost no read of `calls`, whose
    /// lookups by random id read about half the table (migration 13).
    async fn known_calls(
        &self,
        ids: &[(ClientId, CallId)],
    ) -> Result<HashMap<CallId, CallRecord>, StoreError> {
        let mut stored = Vec::new();
        for sql in runtime::call_lookup::stored_id_queries(ids) {
            let found = self.client.query(&sql).fetch_all::<StoredId>().await?;
            stored.extend(found.iter().filter_map(StoredId::parse));
        }
        metrics::counter!(crate::metric_names::PROCESSOR_KNOWN_CALL_LOOKUPS_TOTAL, "found" => "stored")
            .increment(stored.len() as u64);
        metrics::counter!(crate::metric_names::PROCESSOR_KNOWN_CALL_LOOKUPS_TOTAL, "found" => "new")
            .increment(ids.len().saturating_sub(stored.len()) as u64);
        self.calls(&stored).await
    }

    async fn histories(&self, keys: &[(String, String)]) -> Result<StoredHistories, StoreError> {
        let mut histories: StoredHistories = keys
            .iter()
            .map(|(account, caller)| (schemas::ids::caller_key(account, caller), HashMap::new()))
            .collect();
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let rows = self
                .client
                .query(&histories_query(chunk))
                .fetch_all::<VisitRow>()
                .await?;
            for row in rows {
                let key = schemas::ids::caller_key(&row.account, &row.caller);
                // The IN lists cross accounts with callers; keep only the asked pairs.
                let Some(history) = histories.get_mut(&key) else {
                    continue;
                };
                if let Some(visit) = row.visit() {
                    history.insert(visit.id, visit);
                }
            }
        }
        Ok(histories)
    }

    async fn cm_calls(
        &self,
        accounts: &BTreeSet<String>,
        called: &BTreeSet<String>,
        from: i64,
        to: i64,
    ) -> Result<Vec<Candidate>, StoreError> {
        Ok(self
            .client
            .query(&cm_calls_query(accounts, called, from, to))
            .fetch_all::<CmCallRow>()
            .await?
            .into_iter()
            .map(Candidate::from)
            .collect())
    }

    async fn duplicates(&self, which: &Duplicates) -> Result<Vec<CallRecord>, StoreError> {
        let ids: Vec<(ClientId, CallId)> = self
            .client
            .query(&duplicates_query(which))
            .fetch_all::<StoredId>()
            .await?
            .iter()
            .filter_map(StoredId::parse)
            .collect();
        let now_s = Utc::now().timestamp();
        Ok(self
            .calls(&ids)
            .await?
            .into_values()
            .filter(|call| which.holds(call, now_s))
            .collect())
    }
}

/// The stored histories of a chunk of (account, caller) keys.
pub(crate) fn histories_query(keys: &[(String, String)]) -> String {
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

/// The CmCalls of `accounts` on `called` numbers starting in [from, to].
pub(crate) fn cm_calls_query(
    accounts: &BTreeSet<String>,
    called: &BTreeSet<String>,
    from: i64,
    to: i64,
) -> String {
    format!(
        "SELECT {CM_CALL_COLUMNS} FROM cm_calls FINAL WHERE called IN ({}) \
         AND account IN ({}) \
         AND started_at >= toDateTime({from}) AND started_at <= toDateTime({to})",
        string_list(called.iter().map(String::as_str)),
        string_list(accounts.iter().map(String::as_str)),
    )
}

/// The ids that may be among `which`: a superset, checked again by
/// [`Duplicates::holds`] on each call's newest version.
pub(crate) fn duplicates_query(which: &Duplicates) -> String {
    match which {
        // `calls_by_time` is sorted by (account, start): a time range reads its own
        // granules. A call is a duplicate exactly when its status says so.
        Duplicates::Around {
            accounts, from, to, ..
        } => format!(
            "SELECT client_id, toString(id) AS call_id FROM calls_by_time FINAL \
             WHERE deleted = 0 AND status = 'duplicate' AND account IN ({}) \
             AND started_at >= toDateTime({from}) AND started_at <= toDateTime({to})",
            string_list(accounts.iter().map(String::as_str)),
        ),
        // A plain scan of three columns; any version that was pending.
        Duplicates::Pending => "SELECT DISTINCT client_id, toString(id) AS call_id FROM calls \
             WHERE is_duplicate = 1 AND match_method = 'pending' AND processed_at >= now() - 86400"
            .to_owned(),
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

impl VisitRow {
    fn visit(self) -> Option<Visit> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_sent_is_the_sql_checked_on_current_clickhouse() {
        let client = ClientId::parse("arroyo").unwrap();
        let ids = [
            (client.clone(), CallId::from_external(&client, "a")),
            (client.clone(), CallId::from_external(&client, "b")),
        ];
        let around = Duplicates::Around {
            accounts: ["acme".to_owned()].into(),
            called: ["+18885550100".to_owned()].into(),
            from: 1_795_212_000,
            to: 1_795_215_600,
        };
        let mut statements = runtime::call_lookup::stored_id_queries(&ids);
        statements.extend(runtime::call_lookup::by_id_queries(&ids));
        statements.push(duplicates_query(&around));
        statements.push(duplicates_query(&Duplicates::Pending));
        runtime::clickhouse::check_sql_snapshot("processor_reads", &statements).unwrap();
    }

    #[test]
    fn a_lookup_keeps_each_calls_newest_version() {
        let at = Utc::now();
        let mut old = engine::enrich::test_call("a", at);
        old.version = 10;
        let mut new = old.clone();
        new.version = 11;
        new.campaign = Some("corrected".into());
        let other = engine::enrich::test_call("b", at);
        let rows = [&new, &old, &new, &other, &old]
            .into_iter()
            .map(CallRow::from)
            .collect();
        let newest = runtime::call_lookup::newest_versions(rows);
        assert_eq!(newest.len(), 2);
        assert_eq!(newest[&old.id].version, 11);
        assert_eq!(newest[&old.id].campaign.as_deref(), Some("corrected"));
    }
}
