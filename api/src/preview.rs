//! `POST /api/mappings/preview`: what a mapping makes of sample records, without
//! writing anything. Takes a saved integration (`client_id`) or a draft
//! (`integration`), and `records` (or one `record`). Each result is the canonical
//! call, or the rejection with every field error, plus the warnings. This is how an
//! operator tries a new partner before switching it on.

use chrono::Utc;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use processor::mapping::{map_record, CompiledMapping};
use runtime::http::{json, read_body, require_json, Body, Problem};
use runtime::registry::IntegrationRegistry;
use schemas::call::RawPosition;
use schemas::{CallRecord, ClientId, Integration, RawEnvelope, Source};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

/// A preview body: sample records are small; a megabyte is plenty.
const BODY_LIMIT: usize = 1024 * 1024;
const MAX_RECORDS: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewRequest {
    client_id: Option<String>,
    integration: Option<Box<RawValue>>,
    record: Option<Box<RawValue>>,
    records: Option<Vec<Box<RawValue>>>,
}

#[derive(Serialize)]
struct PreviewResult {
    index: usize,
    call: Option<CallRecord>,
    rejected: Option<Rejected>,
    warnings: Vec<String>,
}

#[derive(Serialize)]
struct Rejected {
    reason: String,
    errors: Vec<String>,
}

pub async fn preview(
    registry: &IntegrationRegistry,
    request: Request<Incoming>,
) -> Result<Response<Body>, Problem> {
    require_json(&request)?;
    let bytes = read_body(request, BODY_LIMIT).await?;
    let body: PreviewRequest = serde_json::from_slice(&bytes).map_err(|e| {
        Problem::new(StatusCode::BAD_REQUEST, "malformed_request", format!("{e}"))
            .with_detail("line", e.line())
            .with_detail("column", e.column())
    })?;
    let integration = which_integration(registry, &body)?;
    let mapping = CompiledMapping::compile(&integration).map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_integration",
            e.to_string(),
        )
    })?;
    let records = match (body.record, body.records) {
        (Some(one), None) => vec![one],
        (None, Some(many)) => many,
        _ => return Err(bad("send exactly one of `record` and `records`")),
    };
    if records.is_empty() || records.len() > MAX_RECORDS {
        return Err(bad(&format!("send between 1 and {MAX_RECORDS} records")));
    }
    let now = Utc::now();
    let results: Vec<PreviewResult> = records
        .into_iter()
        .enumerate()
        .map(|(index, payload)| {
            let envelope = RawEnvelope {
                raw_id: Uuid::nil(),
                client_id: integration.client_id.clone(),
                source: Source::Webhook,
                received_at: now,
                idempotency_key: String::new(),
                integration_version: integration.version,
                payload,
            };
            let position = RawPosition {
                raw_id: Uuid::nil(),
                topic: "preview".into(),
                partition: -1,
                offset: -1,
            };
            match map_record(&mapping, &envelope, position, now) {
                Ok(call) => PreviewResult {
                    index,
                    warnings: call.warnings.clone(),
                    call: Some(call),
                    rejected: None,
                },
                Err(rejection) => PreviewResult {
                    index,
                    call: None,
                    rejected: Some(Rejected {
                        reason: rejection.reason,
                        errors: rejection.errors.iter().map(ToString::to_string).collect(),
                    }),
                    warnings: vec![],
                },
            }
        })
        .collect();
    metrics::counter!("api_previews_total").increment(1);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "client_id": integration.client_id,
            "version": integration.version,
            "results": results,
        }),
    ))
}

fn which_integration(
    registry: &IntegrationRegistry,
    body: &PreviewRequest,
) -> Result<Integration, Problem> {
    match (&body.client_id, &body.integration) {
        (Some(client), None) => {
            let not_found = || {
                Problem::new(
                    StatusCode::NOT_FOUND,
                    "unknown_integration",
                    format!("no integration with client id {client:?}"),
                )
            };
            let id = ClientId::parse(client).map_err(|_| not_found())?;
            registry
                .get(&id)
                .map(|i| (*i).clone())
                .ok_or_else(not_found)
        }
        (None, Some(draft)) => serde_json::from_str(draft.get()).map_err(|e| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_integration",
                format!("integration: {e}"),
            )
        }),
        _ => Err(bad(
            "send exactly one of `client_id` (a saved integration) and `integration` (a draft)",
        )),
    }
}

fn bad(message: &str) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "bad_request", message)
}
