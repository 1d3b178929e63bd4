//! The store's in-memory twin: stored calls and CmCalls in maps, read the way the
//! ClickHouse store reads them (newest version per call, histories per caller key,
//! duplicates checked with `Duplicates::holds`). For unit tests of the batch step.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use engine::enrich::duplicates::Candidate;
use engine::enrich::repeat::Visit;
use schemas::{CallId, CallRecord, ClientId};

use super::{Duplicates, Store, StoreError, StoredHistories};

#[derive(Default)]
pub struct MemoryStore {
    calls: Mutex<HashMap<CallId, CallRecord>>,
    cm_calls: Mutex<Vec<Candidate>>,
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

    pub fn put_cm_call(&self, candidate: Candidate) {
        match self.cm_calls.lock() {
            Ok(mut all) => all.push(candidate),
            Err(poisoned) => poisoned.into_inner().push(candidate),
        }
    }

    fn lock_calls(&self) -> std::sync::MutexGuard<'_, HashMap<CallId, CallRecord>> {
        match self.calls.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
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
                    .map(|c| (c.id, Visit::of(c)))
                    .collect();
                (key, visits)
            })
            .collect())
    }

    async fn cm_calls(
        &self,
        accounts: &BTreeSet<String>,
        called: &BTreeSet<String>,
        from: i64,
        to: i64,
    ) -> Result<Vec<Candidate>, StoreError> {
        let all = match self.cm_calls.lock() {
            Ok(all) => all.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        Ok(all
            .into_iter()
            .filter(|c| accounts.contains(&c.account) && called.contains(&c.called))
            .filter(|c| (from..=to).contains(&c.started_at.timestamp()))
            .collect())
    }

    async fn duplicates(&self, which: &Duplicates) -> Result<Vec<CallRecord>, StoreError> {
        let now_s = chrono::Utc::now().timestamp();
        Ok(self
            .lock_calls()
            .values()
            .filter(|c| which.holds(c, now_s))
            .cloned()
            .collect())
    }
}
