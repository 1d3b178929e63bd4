//! The one migration path for a deployment that stored calls before the keyed state
//! (`cmctl state build`): the state of every partition built from ClickHouse, once,
//! into the changelog; processors then restore from it, and keep it themselves.
//!
//! Read: every call that started within the retention window behind the newest
//! start (`calls FINAL`), written as `c` entries to its caller's partition; the same
//! calls' visits grouped by caller (`calls_by_caller FINAL`, sorted by account and
//! caller: ClickHouse sorts, so memory here stays flat), written as `h` entries (by the caller's hashed name,
//! `CallerNames`) with the caller's CmCalls of the window (`cm_calls FINAL`); then
//! each partition's `watermark`, `callernames` and `built` marks. Idempotent: a second run writes the same entries
//! again, the newest of each key wins. Run it with the processors stopped (or
//! before starting the new version): a batch decided meanwhile could be written
//! under an entry the build then replaces with an older one.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use engine::enrich::duplicates::Candidate;
use engine::enrich::key_of;
use engine::state::CallerState;
use schemas::call::CALL_COLUMNS;
use schemas::callmatrix::{CmCallRow, CM_CALL_COLUMNS};
use schemas::{CallRecord, CallRow};

use super::changelog::ChangelogEntry;
use super::{
    call_key, partition_of, CallerNames, Changelog, StateError, BUILT, CALLER_NAMES, WATERMARK,
};
use crate::store::history::VisitRow;

/// Entries written per changelog send.
const CHUNK: usize = 5_000;

/// How far a build got.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct BuildProgress {
    pub calls: u64,
    pub callers: u64,
    pub cm_calls: u64,
    pub partitions: i32,
    /// The newest start stored, and what the state keeps from.
    pub watermark: Option<DateTime<Utc>>,
    pub horizon: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("reading ClickHouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
}

/// Builds every partition's state from `clickhouse`, calling `progress` as it goes.
pub async fn build(
    changelog: &Changelog,
    clickhouse: &clickhouse::Client,
    names: &CallerNames,
    retention_days: u32,
    mut progress: impl FnMut(&BuildProgress),
) -> Result<BuildProgress, BuildError> {
    let mut done = BuildProgress::default();
    let counter = changelog.clone();
    done.partitions = tokio::task::spawn_blocking(move || counter.partitions())
        .await
        .map_err(|e| StateError::Corrupt {
            partition: -1,
            message: e.to_string(),
        })?
        .map_err(StateError::from)?;
    let n = done.partitions;
    let newest: u32 = clickhouse
        .query("SELECT toUInt32(max(started_at)) FROM calls")
        .fetch_one()
        .await?;
    let cap = Utc::now() + Duration::days(1);
    let watermark = DateTime::from_timestamp(i64::from(newest), 0)
        .unwrap_or(DateTime::UNIX_EPOCH)
        .min(cap);
    let horizon = watermark - Duration::days(i64::from(retention_days));
    done.watermark = Some(watermark);
    done.horizon = Some(horizon);
    let since = horizon.timestamp().max(0);

    // The calls.
    let mut pending: Vec<ChangelogEntry> = Vec::with_capacity(CHUNK);
    let mut cursor = clickhouse
        .query(&format!(
            "SELECT {CALL_COLUMNS} FROM calls FINAL WHERE started_at >= toDateTime({since})"
        ))
        .fetch::<CallRow>()?;
    while let Some(row) = cursor.next().await? {
        let Ok(call) = CallRecord::try_from(row) else {
            continue;
        };
        let partition = partition_of(&key_of(&call), n);
        let value = serde_json::to_vec(&call).map_err(|e| StateError::Corrupt {
            partition,
            message: e.to_string(),
        })?;
        pending.push((partition, call_key(call.id), Some(value)));
        done.calls += 1;
        if pending.len() >= CHUNK {
            write(changelog, &pending).await?;
            pending.clear();
            progress(&done);
        }
    }

    // The CmCalls of the window, by caller key (fewer than the calls: kept in memory).
    let managed: HashMap<String, String> = clickhouse
        .query("SELECT number, account FROM cm_numbers FINAL")
        .fetch_all::<(String, String)>()
        .await?
        .into_iter()
        .collect();
    let mut cm: HashMap<String, Vec<Candidate>> = HashMap::new();
    let rows: Vec<CmCallRow> = clickhouse
        .query(&format!(
            "SELECT {CM_CALL_COLUMNS} FROM cm_calls FINAL WHERE started_at >= toDateTime({since})"
        ))
        .fetch_all()
        .await?;
    for mut row in rows {
        if row.account.is_empty() {
            // Stored before CmCalls carried their account: the managing account's.
            match managed.get(&row.called) {
                Some(account) => row.account = account.clone(),
                None => continue,
            }
        }
        let key = schemas::ids::caller_key(&row.account, &row.caller);
        cm.entry(key).or_default().push(Candidate::from(row));
        done.cm_calls += 1;
    }

    // The callers, sorted by ClickHouse so each comes whole, once.
    let mut cursor = clickhouse
        .query(&format!(
            "SELECT account, caller, id, client_id, started_at, campaign, buyer, duration_s, \
             connected_duration_s, connected, qualified, repeat_of \
             FROM calls_by_caller FINAL WHERE started_at >= toDateTime({since}) \
             ORDER BY account, caller \
             SETTINGS max_bytes_before_external_sort = 1000000000"
        ))
        .fetch::<VisitRow>()?;
    let mut current: Option<(String, CallerState)> = None;
    while let Some(row) = cursor.next().await? {
        let key = schemas::ids::caller_key(&row.account, &row.caller);
        let Some(visit) = row.visit() else {
            continue;
        };
        match &mut current {
            Some((k, state)) if *k == key => state.visits.push(visit),
            _ => {
                if let Some((k, state)) = current.take() {
                    emit(names, k, state, &mut cm, n, &mut pending)?;
                    done.callers += 1;
                }
                current = Some((
                    key,
                    CallerState {
                        visits: vec![visit],
                        cm_calls: Vec::new(),
                    },
                ));
            }
        }
        if pending.len() >= CHUNK {
            write(changelog, &pending).await?;
            pending.clear();
            progress(&done);
        }
    }
    if let Some((k, state)) = current.take() {
        emit(names, k, state, &mut cm, n, &mut pending)?;
        done.callers += 1;
    }
    // Callers with CmCalls and no call of their own in the window.
    let rest: Vec<String> = cm.keys().cloned().collect();
    for key in rest {
        emit(names, key, CallerState::default(), &mut cm, n, &mut pending)?;
        done.callers += 1;
    }
    // The marks, last: a partition counts as built once everything is in.
    for partition in 0..n {
        pending.push((
            partition,
            WATERMARK.to_vec(),
            Some(watermark.timestamp().to_be_bytes().to_vec()),
        ));
        pending.push((partition, CALLER_NAMES.to_vec(), Some(names.fingerprint())));
        pending.push((partition, BUILT.to_vec(), Some(b"1".to_vec())));
    }
    for chunk in pending.chunks(CHUNK) {
        write(changelog, chunk).await?;
    }
    progress(&done);
    Ok(done)
}

/// Writes `entries`, sending them again while the broker does not acknowledge them
/// (a busy broker times a send out; the build is idempotent), for about ten minutes
/// at most.
async fn write(changelog: &Changelog, entries: &[ChangelogEntry]) -> Result<(), BuildError> {
    let policy = runtime::retry::RetryPolicy {
        what: "write the state changelog",
        first_backoff: std::time::Duration::from_millis(500),
        max_backoff: std::time::Duration::from_secs(30),
        max_attempts: Some(25),
    };
    runtime::retry::retry(&policy, None, || changelog.write(entries))
        .await
        .map(|_| ())
        .map_err(|e| BuildError::State(StateError::from(e.into_last())))
}

/// One caller's entry, with its CmCalls, visits in start order.
fn emit(
    names: &CallerNames,
    key: String,
    mut state: CallerState,
    cm: &mut HashMap<String, Vec<Candidate>>,
    partitions: i32,
    pending: &mut Vec<ChangelogEntry>,
) -> Result<(), StateError> {
    for call in cm.remove(&key).unwrap_or_default() {
        state.add_cm_call(call);
    }
    state.visits.sort_by_key(|v| (v.started_at, v.id.0));
    let partition = partition_of(&key, partitions);
    let value = serde_json::to_vec(&state).map_err(|e| StateError::Corrupt {
        partition,
        message: e.to_string(),
    })?;
    pending.push((partition, names.key(&key), Some(value)));
    Ok(())
}
