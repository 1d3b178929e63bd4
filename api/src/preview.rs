//! `POST /api/mappings/preview`: what a mapping makes of sample records, without
//! writing anything. Takes a saved integration (`client_id`) or a draft
//! (`integration`), and `records` (or one `record`). Each result is the canonical
//! call, or the rejection with every field error, plus the warnings. This is how an
//! operator tries a new partner before switching it on.
//!
//! Dry run on real traffic: `"recent": true` instead of records runs the mapping over
//! the integration's last received payloads; a draft for an existing integration
//! then also reports, per record, the fields where its result differs from the
//! active mapping's.
//!
//! Decided like the pipeline, read-only: a record that names a call already stored
//! for the integration (its partner id, or the natural key) is assembled over that
//! call as the processor would (`engine::mapping::assemble`), and `stored` says so
//! with the fields the record would change, including a late field that alone
//! would be refused (a payout without its caller). Repeat and CallMatrix decisions
//! are not previewed yet.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use engine::mapping::{assemble, map_fields, map_record, CompiledMapping, MappedFields, Rejection};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use runtime::http::{json, read_body, require_json, Body, Problem};
use runtime::registry::IntegrationRegistry;
use schemas::call::{CallRow, RawPosition, CALL_COLUMNS};
use schemas::{CallId, CallRecord, Integration, RawEnvelope, Source};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::recent::RecentPayloads;

/// Most records in one preview (its bytes: `limits.preview_bytes`).
const MAX_RECORDS: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewRequest {
    client_id: Option<String>,
    integration: Option<Box<RawValue>>,
    record: Option<Box<RawValue>>,
    records: Option<Vec<Box<RawValue>>>,
    #[serde(default)]
    recent: bool,
}

#[derive(Serialize)]
struct PreviewResult {
    index: usize,
    call: Option<CallRecord>,
    rejected: Option<Rejected>,
    warnings: Vec<String>,
    /// Only for a draft of an existing integration: where it differs from the active one.
    #[serde(skip_serializing_if = "Option::is_none")]
    differences: Option<Vec<Difference>>,
    /// The filter that drops the record on purpose (never a dead letter), if one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    filtered: Option<String>,
    /// Which way each rule with a `when` or `cases` went: `when did not hold`,
    /// `case N`, `its source`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    rules: BTreeMap<std::borrow::Cow<'static, str>, String>,
    /// The call already stored that this record would update, as the pipeline
    /// would decide it.
    #[serde(skip_serializing_if = "Option::is_none")]
    stored: Option<StoredDecision>,
    /// The pipeline's decisions for the call it would store (this record's, or
    /// the stored call it merges into): repeat, CallMatrix duplicate, status.
    #[serde(skip_serializing_if = "Option::is_none")]
    decided: Option<crate::preview_decisions::Decided>,
}

#[derive(Serialize, PartialEq, Debug)]
struct StoredDecision {
    call_id: CallId,
    /// `merge` (the stored call updated by this record) or `refused` (the record
    /// would be refused even over the stored call: `reason`).
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// Fields the merge changes: the stored value and the value after.
    changes: Vec<StoredChange>,
}

#[derive(Serialize, PartialEq, Debug)]
struct StoredChange {
    field: String,
    stored: serde_json::Value,
    after: serde_json::Value,
}

#[derive(Serialize, PartialEq, Debug)]
struct Difference {
    field: String,
    active: serde_json::Value,
    draft: serde_json::Value,
}

/// Fields that differ between any two runs (clock, position) and say nothing
/// about the mapping.
const VOLATILE: &[&str] = &[
    "version",
    "received_at",
    "processed_at",
    "raw",
    "mapping_version",
    "warnings",
];

#[derive(Serialize)]
struct Rejected {
    reason: String,
    errors: Vec<String>,
}

pub async fn preview(
    registry: &IntegrationRegistry,
    recent: &RecentPayloads,
    clickhouse: &clickhouse::Client,
    request: Request<Incoming>,
    scope: &runtime::access::Scope,
    body_limit: usize,
) -> Result<Response<Body>, Problem> {
    require_json(&request)?;
    let bytes = read_body(request, body_limit, runtime::http::BODY_TIMEOUT).await?;
    let body: PreviewRequest = serde_json::from_slice(&bytes).map_err(|e| {
        Problem::new(StatusCode::BAD_REQUEST, "malformed_request", format!("{e}"))
            .with_detail("line", e.line())
            .with_detail("column", e.column())
    })?;
    let integration = which_integration(registry, &body, scope)?;
    let mapping = CompiledMapping::compile(&integration).map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_integration",
            e.to_string(),
        )
    })?;
    let records = match (body.record, body.records, body.recent) {
        (Some(one), None, false) => vec![one],
        (None, Some(many), false) => many,
        (None, None, true) => recent.of(&integration.client_id),
        _ => {
            return Err(bad(
                "send exactly one of `record`, `records` and `\"recent\": true`",
            ))
        }
    };
    if (records.is_empty() && !body.recent) || records.len() > MAX_RECORDS {
        return Err(bad(&format!("send between 1 and {MAX_RECORDS} records")));
    }
    // A draft of an integration that exists is compared with the active mapping.
    let active = match body.integration {
        Some(_) => registry
            .get(&integration.client_id)
            .and_then(|i| CompiledMapping::compile(&i).ok()),
        None => None,
    };
    let now = Utc::now();
    // The stored calls the records name, of this integration only (checked against
    // the token above): what the pipeline would assemble them over.
    // Each record mapped once; the standalone result, the merge and the draft's
    // comparison all start from it.
    let envelopes: Vec<RawEnvelope> = records
        .into_iter()
        .map(|payload| envelope_of(&mapping, payload, now))
        .collect();
    let mapped: Vec<Result<MappedFields, Rejection>> = envelopes
        .iter()
        .map(|envelope| map_fields(&mapping, envelope))
        .collect();
    let named: Vec<CallId> = mapped
        .iter()
        .filter_map(|m| m.as_ref().ok()?.call_id)
        .collect();
    // Without ClickHouse the preview still maps: it says the stored calls were not
    // read instead of failing.
    let (stored, mut stored_unread) = match stored_calls(clickhouse, &integration, &named).await {
        Ok(stored) => (stored, None),
        Err(problem) => {
            tracing::warn!(error = %problem.message, "preview: the stored calls could not be read");
            (
                HashMap::new(),
                Some("the stored data could not be read; merges and decisions are not shown"),
            )
        }
    };
    let mut results: Vec<PreviewResult> = Vec::with_capacity(envelopes.len());
    for (index, (envelope, mapped)) in envelopes.iter().zip(mapped).enumerate() {
        let (taken, filtered) = engine::mapping::trace_rules(&mapping, envelope);
        let draft = mapped
            .clone()
            .and_then(|m| assemble(&mapping, envelope, m, None, preview_position(), now))
            .map_err(Rejected::from);
        let (stored_decision, merged) = match mapped
            .ok()
            .and_then(|m| decide_over_stored(&mapping, envelope, m, &stored, now))
        {
            Some((decision, merged)) => (Some(decision), merged),
            None => (None, None),
        };
        let differences = active
            .as_ref()
            .map(|active| differences(&run(active, envelope, now), &draft));
        // The call the pipeline would store (merged over the stored one, or the
        // record's own), decided over the stored data.
        let pipeline_call = merged.or_else(|| draft.as_ref().ok().cloned());
        let decided = match pipeline_call {
            Some(call) if stored_unread.is_none() => {
                match crate::preview_decisions::decide(
                    clickhouse,
                    registry,
                    &integration.enrichment,
                    call,
                )
                .await
                {
                    Ok(decided) => Some(decided),
                    Err(error) => {
                        tracing::warn!(%error, "preview: the stored data for a decision could not be read");
                        stored_unread = Some(
                            "the stored data could not be read; merges and decisions are not shown",
                        );
                        None
                    }
                }
            }
            _ => None,
        };
        let (call, rejected) = match draft {
            Ok(call) => (Some(call), None),
            Err(rejected) => (None, Some(rejected)),
        };
        results.push(PreviewResult {
            index,
            warnings: call
                .as_ref()
                .map(|c| c.warnings.clone())
                .unwrap_or_default(),
            call,
            rejected,
            differences,
            filtered,
            rules: taken.into_iter().collect(),
            stored: stored_decision,
            decided,
        });
    }
    metrics::counter!(crate::metric_names::API_PREVIEWS_TOTAL).increment(1);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "client_id": integration.client_id,
            "version": integration.version,
            "results": results,
            "stored_unread": stored_unread,
        }),
    ))
}

/// A preview record as the pipeline would receive it.
fn envelope_of(
    mapping: &CompiledMapping,
    payload: Box<RawValue>,
    now: chrono::DateTime<Utc>,
) -> RawEnvelope {
    let integration = &mapping.integration;
    RawEnvelope {
        raw_id: Uuid::nil(),
        client_id: integration.client_id.clone(),
        source: Source::Webhook,
        received_at: now,
        idempotency_key: String::new(),
        integration_version: integration.version,
        payload,
    }
}

fn run(
    mapping: &CompiledMapping,
    envelope: &RawEnvelope,
    now: chrono::DateTime<Utc>,
) -> Result<CallRecord, Rejected> {
    map_record(mapping, envelope, preview_position(), now).map_err(Rejected::from)
}

/// Where a previewed record "was read": nowhere.
fn preview_position() -> RawPosition {
    RawPosition {
        raw_id: Uuid::nil(),
        topic: "preview".into(),
        partition: -1,
        offset: -1,
    }
}

impl From<Rejection> for Rejected {
    fn from(rejection: Rejection) -> Self {
        Self {
            reason: rejection.reason,
            errors: rejection.errors.iter().map(ToString::to_string).collect(),
        }
    }
}

/// The stored calls of `integration` among `ids` (at most `MAX_RECORDS`).
async fn stored_calls(
    clickhouse: &clickhouse::Client,
    integration: &Integration,
    ids: &[CallId],
) -> Result<HashMap<CallId, CallRecord>, Problem> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let list = ids
        .iter()
        .map(|id| format!("toUUID('{}')", id.0))
        .collect::<Vec<_>>()
        .join(", ");
    let rows: Vec<CallRow> = clickhouse
        .query(&format!(
            "SELECT {CALL_COLUMNS} FROM calls FINAL WHERE client_id = ? AND account = ? AND id IN ({list})"
        ))
        .bind(integration.client_id.as_str())
        .bind(integration.account.as_str())
        .fetch_all()
        .await
        .map_err(crate::calls::storage_error)?;
    Ok(rows
        .into_iter()
        .filter_map(|row| CallRecord::try_from(row).ok())
        .map(|call| (call.id, call))
        .collect())
}

/// The record assembled over the stored call it names, as the processor does.
fn decide_over_stored(
    mapping: &CompiledMapping,
    envelope: &RawEnvelope,
    mapped: MappedFields,
    stored: &HashMap<CallId, CallRecord>,
    now: chrono::DateTime<Utc>,
) -> Option<(StoredDecision, Option<CallRecord>)> {
    let base = stored.get(&mapped.call_id?)?;
    Some(
        match assemble(
            mapping,
            envelope,
            mapped,
            Some(base),
            preview_position(),
            now,
        ) {
            Ok(after) => (
                StoredDecision {
                    call_id: base.id,
                    outcome: "merge",
                    reason: None,
                    changes: changed_fields(base, &after)
                        .into_iter()
                        .map(|(field, stored, after)| StoredChange {
                            field,
                            stored,
                            after,
                        })
                        .collect(),
                },
                Some(after),
            ),
            Err(rejection) => (
                StoredDecision {
                    call_id: base.id,
                    outcome: "refused",
                    reason: Some(rejection.reason),
                    changes: Vec::new(),
                },
                None,
            ),
        },
    )
}

/// The fields (but the volatile ones) whose values differ between two calls.
fn changed_fields(
    a: &CallRecord,
    b: &CallRecord,
) -> Vec<(String, serde_json::Value, serde_json::Value)> {
    let as_map = |call: &CallRecord| match serde_json::to_value(call) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let (a, b) = (as_map(a), as_map(b));
    a.iter()
        .filter(|(field, _)| !VOLATILE.contains(&field.as_str()))
        .filter_map(|(field, value)| {
            let other = b.get(field).cloned().unwrap_or(serde_json::Value::Null);
            (*value != other).then(|| (field.clone(), value.clone(), other))
        })
        .collect()
}

/// Field by field, what the draft changes relative to the active mapping.
fn differences(
    active: &Result<CallRecord, Rejected>,
    draft: &Result<CallRecord, Rejected>,
) -> Vec<Difference> {
    let outcome = |result: &Result<CallRecord, Rejected>| match result {
        Ok(_) => serde_json::Value::from("call"),
        Err(rejected) => serde_json::Value::from(format!("rejected: {}", rejected.reason)),
    };
    let (Ok(active_call), Ok(draft_call)) = (active, draft) else {
        let (a, d) = (outcome(active), outcome(draft));
        return if a == d {
            vec![]
        } else {
            vec![Difference {
                field: "outcome".into(),
                active: a,
                draft: d,
            }]
        };
    };
    changed_fields(active_call, draft_call)
        .into_iter()
        .map(|(field, active, draft)| Difference {
            field,
            active,
            draft,
        })
        .collect()
}

/// The saved integration or the draft to preview, checked against the token: a
/// saved one must be the token's account's; a draft must name the token's account
/// and a client id that is free or already that account's (a draft naming another
/// account's client id would otherwise read its recent payloads and active mapping).
fn which_integration(
    registry: &IntegrationRegistry,
    body: &PreviewRequest,
    scope: &runtime::access::Scope,
) -> Result<Integration, Problem> {
    match (&body.client_id, &body.integration) {
        (Some(client), None) => scope.integration(registry, client).map(|i| (*i).clone()),
        (None, Some(draft)) => {
            let draft: Integration = serde_json::from_str(draft.get()).map_err(|e| {
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_integration",
                    format!("integration: {e}"),
                )
            })?;
            scope.may_define(registry, draft.client_id.as_str(), &draft.account)?;
            Ok(draft)
        }
        _ => Err(bad(
            "send exactly one of `client_id` (a saved integration) and `integration` (a draft)",
        )),
    }
}

fn bad(message: &str) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "bad_request", message)
}
