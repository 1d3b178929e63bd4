//! What the pipeline would decide for a previewed call against the stored data,
//! read-only: whether it repeats an earlier call of its caller, and whether it is
//! a CallMatrix call and which CmCall it duplicates, then its status. The engine's
//! own decisions (`Enricher::decide_repeats`, `link_duplicates`, `settle_status`)
//! run over what ClickHouse holds, read for this one caller and number, as the
//! processor reads them from its keyed state.
//!
//! The caller's history read is the two repeat windows before the call (a decision
//! of "qualified" repeats depends on whether the earlier calls were repeats
//! themselves, decided again here over that span); the processor's state holds
//! its partition's last 45 days, so a chain of repeats longer than that may be
//! decided differently. Only the previewed integration's account is read.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use engine::enrich::duplicates::Candidate;
use engine::enrich::repeat::Visit;
use engine::enrich::{key_of, settle_status, Enricher, HeldHistories};
use runtime::registry::IntegrationRegistry;
use schemas::call::{CallRow, CALL_COLUMNS};
use schemas::callmatrix::{
    CmCallRow, ManagedNumber, ManagedNumberRow, MatchMethod, CM_CALL_COLUMNS,
};
use schemas::enrichment::EnrichmentRules;
use schemas::{CallId, CallRecord, ClientId, E164};
use serde::Serialize;

/// The decisions, as the stored call would carry them.
#[derive(Debug, Serialize, PartialEq)]
pub struct Decided {
    pub status: String,
    pub qualified: bool,
    pub repeat_of: Option<CallId>,
    pub repeat_of_started_at: Option<DateTime<Utc>>,
    pub is_duplicate: bool,
    pub cm_call_id: Option<String>,
    pub match_method: Option<MatchMethod>,
    /// Stored calls of the caller read for the repeat decision, CmCalls for the match.
    pub read: Read,
}

#[derive(Debug, Serialize, PartialEq, Default)]
pub struct Read {
    pub caller_calls: usize,
    pub callmatrix_calls: usize,
}

/// Decides `call` (of `integration`'s mapping, `rules` its enrichment) as the
/// processor would over the stored data.
pub async fn decide(
    clickhouse: &clickhouse::Client,
    registry: &IntegrationRegistry,
    rules: &EnrichmentRules,
    mut call: CallRecord,
) -> Result<Decided, clickhouse::error::Error> {
    let own_client = call.client_id.clone();
    let rules_of = |client: &ClientId| {
        if *client == own_client {
            rules.clone()
        } else {
            registry
                .get(client)
                .map(|i| i.enrichment.clone())
                .unwrap_or_default()
        }
    };
    let mut read = Read::default();

    // The caller's earlier calls (withheld callers have none: never repeats).
    let mut held: HeldHistories = HashMap::new();
    if let Some(caller) = &call.caller {
        let window = Duration::days(i64::from(rules.repeat.window_days));
        let from = (call.started_at - window - window).timestamp();
        let sql = format!(
            "SELECT {CALL_COLUMNS} FROM calls FINAL WHERE (client_id, id) IN \
             (SELECT client_id, id FROM calls_by_caller FINAL WHERE account = ? AND caller = ? \
              AND started_at >= toDateTime(?) AND started_at <= toDateTime(?))"
        );
        let rows: Vec<CallRow> = clickhouse
            .query(&sql)
            .bind(call.account.as_str())
            .bind(caller.as_str())
            .bind(from)
            .bind(call.started_at.timestamp())
            .fetch_all()
            .await?;
        let visits: HashMap<CallId, Visit> = rows
            .into_iter()
            .filter_map(|row| CallRecord::try_from(row).ok())
            .filter(|stored| stored.id != call.id)
            .map(|stored| (stored.id, Visit::of(&stored)))
            .collect();
        read.caller_calls = visits.len();
        held.insert(key_of(&call), Arc::new(visits));
    }

    // The called number, if CallMatrix manages it.
    let mut managed: HashMap<String, ManagedNumber> = HashMap::new();
    if let Some(called) = &call.called {
        let numbers: Vec<ManagedNumberRow> = clickhouse
            .query("SELECT number, account, campaign, active, updated_at FROM cm_numbers FINAL WHERE number = ?")
            .bind(called.as_str())
            .fetch_all()
            .await?;
        // Stored numbers are E.164 already: the region is not consulted.
        let region = schemas::phone::region("US");
        for row in numbers {
            let Ok(region) = &region else { break };
            if let Ok(number) = E164::parse(&row.number, *region) {
                managed.insert(
                    row.number.clone(),
                    ManagedNumber {
                        number,
                        account: row.account,
                        campaign: row.campaign,
                        active: row.active != 0,
                    },
                );
            }
        }
    }
    let enricher = Enricher {
        managed: Arc::new(managed),
    };
    enricher.decide_repeats(std::slice::from_mut(&mut call), &mut held, &rules_of);

    // Its caller's CmCalls on that number around its start, when it is a
    // CallMatrix call not matched by an echoed id.
    let mut candidates = Vec::new();
    if let (Some(caller), Some(called)) = (&call.caller, &call.called) {
        if call.match_method != Some(MatchMethod::EchoedId) && enricher.is_callmatrix_call(&call) {
            let tolerance = i64::from(rules.duplicates.start_tolerance_s);
            let rows: Vec<CmCallRow> = clickhouse
                .query(&format!(
                    "SELECT {CM_CALL_COLUMNS} FROM cm_calls FINAL WHERE called = ? AND caller = ? \
                     AND (account = ? OR account = '') \
                     AND started_at >= toDateTime(?) AND started_at <= toDateTime(?)"
                ))
                .bind(called.as_str())
                .bind(caller.as_str())
                .bind(call.account.as_str())
                .bind(call.started_at.timestamp() - tolerance)
                .bind(call.started_at.timestamp() + tolerance)
                .fetch_all()
                .await?;
            // A CmCall stored before CmCalls carried their account is the managing
            // account's: the number is this call's account's (checked above).
            candidates = rows
                .into_iter()
                .map(|mut row| {
                    if row.account.is_empty() {
                        row.account = call.account.clone();
                    }
                    Candidate::from(row)
                })
                .collect();
            read.callmatrix_calls = candidates.len();
        }
    }
    enricher.link_duplicates(std::slice::from_mut(&mut call), &candidates, &rules_of);
    settle_status(&mut call);
    Ok(Decided {
        status: call.status,
        qualified: call.qualified,
        repeat_of: call.repeat_of,
        repeat_of_started_at: call.repeat_of_started_at,
        is_duplicate: call.is_duplicate,
        cm_call_id: call.cm_call_id,
        match_method: call.match_method,
        read,
    })
}
