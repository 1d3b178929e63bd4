//! "Test this poll": one page of an integration's poll (its saved definition, or a
//! draft), sent for real but stored nowhere. Shows the request as sent (secrets
//! masked), the start of the answer, what the mapping makes of the first records,
//! and where the next run would start. The cursor is not moved.

use chrono::{DateTime, Utc};
use engine::mapping::{map_record, CompiledMapping};
use schemas::call::RawPosition;
use schemas::poll::PollConfig;
use schemas::{Integration, RawEnvelope, Source};
use serde::Serialize;
use serde_json::Value;

use super::request::ShownRequest;
use super::run::{run, RunContext, Start, Trace};
use super::sink::Collected;

/// Records of the page mapped in the answer (all are counted).
const MAPPED_SHOWN: usize = 20;

#[derive(Debug, Serialize)]
pub struct DryRun {
    pub requests: Vec<ShownRequest>,
    /// The start of each answer, as received (decoded).
    pub answers: Vec<String>,
    pub records: u64,
    /// What the mapping makes of the first records: a call, or why not.
    pub mapped: Vec<Value>,
    /// Lines or rows of the answer that could not be read, with why.
    pub rejected: Vec<String>,
    /// Where the next run would start, had this one been stored.
    pub next_cursor: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    /// Why the page could not be read, if it could not.
    pub error: Option<String>,
}

pub async fn dry_run(
    ctx: RunContext<'_>,
    integration: &Integration,
    poll: &PollConfig,
    start: Start,
) -> DryRun {
    let trace = Trace::default();
    let ctx = RunContext {
        trace: Some(&trace),
        ..ctx
    };
    let mut one_page = poll.clone();
    one_page.max_pages = 1;
    one_page.max_attempts = one_page.max_attempts.min(2);
    let sink = Collected::default();
    let (report, error) = match run(&ctx, &sink, integration, &one_page, start, Utc::now()).await {
        Ok(report) => (report, None),
        Err((error, report)) => (report, Some(error)),
    };
    let records = sink.records();
    let mapped = match CompiledMapping::compile(integration) {
        Ok(mapping) => records
            .iter()
            .take(MAPPED_SHOWN)
            .map(|record| mapped(&mapping, integration, record))
            .collect(),
        Err(e) => {
            vec![serde_json::json!({"rejected": format!("the mapping does not compile: {e}")})]
        }
    };
    DryRun {
        requests: taken(&trace.requests),
        answers: taken(&trace.answers),
        records: records.len() as u64,
        mapped,
        rejected: sink.rejected().into_iter().map(|(_, why)| why).collect(),
        next_cursor: report.cursor,
        next_token: report.token,
        error,
    }
}

fn mapped(mapping: &CompiledMapping, integration: &Integration, record: &Value) -> Value {
    let text = record.to_string();
    let key = crate::webhook::content_key(text.as_bytes());
    let Ok(payload) = serde_json::value::RawValue::from_string(text) else {
        return serde_json::json!({"rejected": "not JSON"});
    };
    let envelope = RawEnvelope {
        raw_id: schemas::ids::raw_record_id(&integration.client_id, &key),
        client_id: integration.client_id.clone(),
        source: Source::Poll,
        received_at: Utc::now(),
        idempotency_key: key,
        integration_version: integration.version,
        payload,
    };
    let position = RawPosition {
        raw_id: envelope.raw_id,
        topic: "poll-test".into(),
        partition: -1,
        offset: -1,
    };
    match map_record(mapping, &envelope, position, Utc::now()) {
        Ok(call) => serde_json::json!({"call": call}),
        Err(rejection) => serde_json::json!({
            "rejected": rejection.reason,
            "errors": rejection.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }),
    }
}

fn taken<T: Clone>(kept: &std::sync::Mutex<Vec<T>>) -> Vec<T> {
    kept.lock().map(|v| v.clone()).unwrap_or_default()
}
