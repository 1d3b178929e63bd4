//! The store's in-memory twin: stored calls in a map, read the way the ClickHouse
//! store reads them (newest version per call). For unit tests of the batch step.

use std::collections::HashMap;
use std::sync::Mutex;

use schemas::{CallId, CallRecord, ClientId};

use super::{Store, StoreError, StoredHistories};

#[derive(Default)]
pub struct MemoryStore {
    calls: Mutex<HashMap<CallId, CallRecord>>,
}

impl MemoryStore {
    /// Stores `call` as ClickHouse would after a write: the newest version wins.
    pub fn put(&self, call: CallRecord) {
        let mut calls = self.lock_calls();
        let newer = calls
            .get(&call.id)
            .is_none_or(|old| old.version <= call.version);
        if newer {
            calls.insert(call.id, call);
        }
    }

    fn lock_calls(&self) -> std::sync::MutexGuard<'_, HashMap<CallId, CallRecord>> {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    async fn calls(
        &self,
        ids: &[(ClientId, CallId)],
    ) -> Result<HashMap<CallId, CallRecord>, StoreError> {
        let calls = self.lock_calls();
        Ok(ids
            .iter()
            .filter_map(|(client, id)| {
                calls
                    .get(id)
                    .filter(|c| c.client_id == *client)
                    .map(|c| (*id, c.clone()))
            })
            .collect())
    }

    async fn histories(&self, keys: &[(String, String)]) -> Result<StoredHistories, StoreError> {
        let calls = self.lock_calls();
        Ok(keys
            .iter()
            .map(|(account, caller)| {
                let key = schemas::ids::caller_key(account, caller);
                let visits = calls
                    .values()
                    .filter(|c| {
                        c.account == *account
                            && c.caller.as_ref().is_some_and(|n| n.as_str() == caller)
                    })
                    .map(|c| (c.id, engine::enrich::repeat::Visit::of(c)))
                    .collect();
                (key, visits)
            })
            .collect())
    }

    async fn has_calls(&self) -> Result<bool, StoreError> {
        Ok(!self.lock_calls().is_empty())
    }
}
