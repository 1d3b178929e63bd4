//! The store on ClickHouse. No `FINAL` over `calls` (sorted by client and id, so a
//! filter on anything else merges the whole table): calls are read by (client, id)
//! pairs keeping each one's newest version.

use std::collections::HashMap;

use runtime::call_lookup::StoredId;
use schemas::{CallId, CallRecord, CallRow, ClientId};

use super::history::{histories_query, VisitRow, KEYS_PER_QUERY};
use super::{Store, StoreError, StoredHistories};

#[derive(Clone)]
pub struct ClickHouseStore {
    pub client: clickhouse::Client,
}

impl Store for ClickHouseStore {
    /// `call_ids` first (which of the ids are stored at all, a few granules), then
    /// `calls` for those only: a random id touches its own granule of `calls`.
    async fn calls(
        &self,
        ids: &[(ClientId, CallId)],
    ) -> Result<HashMap<CallId, CallRecord>, StoreError> {
        let mut stored = Vec::new();
        for sql in runtime::call_lookup::stored_id_queries(ids) {
            let found = self.client.query(&sql).fetch_all::<StoredId>().await?;
            stored.extend(found.iter().filter_map(StoredId::parse));
        }
        let mut rows = Vec::new();
        for sql in runtime::call_lookup::by_id_queries(&stored) {
            rows.extend(self.client.query(&sql).fetch_all::<CallRow>().await?);
        }
        Ok(runtime::call_lookup::newest_versions(rows))
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

    async fn has_calls(&self) -> Result<bool, StoreError> {
        let found: Vec<u8> = self
            .client
            .query("SELECT 1 FROM call_ids LIMIT 1")
            .fetch_all()
            .await?;
        Ok(!found.is_empty())
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
        let mut statements = runtime::call_lookup::stored_id_queries(&ids);
        statements.extend(runtime::call_lookup::by_id_queries(&ids));
        statements.push("SELECT 1 FROM call_ids LIMIT 1".to_owned());
        statements.push(crate::store::history::histories_query(&[(
            "acme".to_owned(),
            "+14155552671".to_owned(),
        )]));
        runtime::clickhouse::check_sql_snapshot("processor_reads", &statements).unwrap();
    }

    #[test]
    fn a_lookup_keeps_each_calls_newest_version() {
        let at = chrono::Utc::now();
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
