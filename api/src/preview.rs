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

use std::collections::BTreeMap;

use chrono::Utc;
use engine::mapping::{map_record, CompiledMapping};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use runtime::http::{json, read_body, require_json, Body, Problem};
use runtime::registry::IntegrationRegistry;
use schemas::call::RawPosition;
use schemas::{CallRecord, Integration, RawEnvelope, Source};
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
    let results: Vec<PreviewResult> = records
        .into_iter()
        .enumerate()
        .map(|(index, payload)| {
            let (taken, filtered) = engine::mapping::trace_rules(
                &mapping,
                &envelope_of(&mapping, payload.clone(), now),
            );
            let draft = run(&mapping, payload.clone(), now);
            let differences = active
                .as_ref()
                .map(|active| differences(&run(active, payload, now), &draft));
            let (call, rejected) = match draft {
                Ok(call) => (Some(call), None),
                Err(rejected) => (None, Some(rejected)),
            };
            PreviewResult {
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
            }
        })
        .collect();
    metrics::counter!(crate::metric_names::API_PREVIEWS_TOTAL).increment(1);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "client_id": integration.client_id,
            "version": integration.version,
            "results": results,
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
    payload: Box<RawValue>,
    now: chrono::DateTime<Utc>,
) -> Result<CallRecord, Rejected> {
    let envelope = envelope_of(mapping, payload, now);
    let position = RawPosition {
        raw_id: Uuid::nil(),
        topic: "preview".into(),
        partition: -1,
        offset: -1,
    };
    map_record(mapping, &envelope, position, now).map_err(|rejection| Rejected {
        reason: rejection.reason,
        errors: rejection.errors.iter().map(ToString::to_string).collect(),
    })
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
    let as_map = |call: &CallRecord| match serde_json::to_value(call) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let (a, d) = (as_map(active_call), as_map(draft_call));
    a.iter()
        .filter(|(field, _)| !VOLATILE.contains(&field.as_str()))
        .filter_map(|(field, value)| {
            let other = d.get(field).cloned().unwrap_or(serde_json::Value::Null);
            (*value != other).then(|| Difference {
                field: field.clone(),
                active: value.clone(),
                draft: other,
            })
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
