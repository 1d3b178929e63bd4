use std::time::Instant;

use chrono::Utc;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use runtime::http::{json, read_incoming, Body, Problem};
use runtime::kafka::{AckedProducer, ProduceError};
use runtime::registry::IntegrationRegistry;
use schemas::dead_letter::Stage;
use schemas::ids::raw_record_id;
use schemas::topics::Topics;
use schemas::{ClientId, DeadLetter, Integration, RawEnvelope, Source};
use serde::Serialize;
use tracing::Instrument;
use uuid::Uuid;

use super::body::{parse_body_within, BodyError, BodyFormat, RejectedRecord};
use super::limits::RateLimits;
use super::{decoders, forms, verifiers};
use schemas::keys::KeyRulesCache;

/// Namespace of content-derived idempotency keys (records sent without a key).
const CONTENT_KEY_NAMESPACE: Uuid = Uuid::from_u128(0x2f0c_11d2_7a4b_4c39_9e51_0d8f_6b2a_7c44);

/// The idempotency key of a record sent without one: derived from its bytes, so an
/// identical re-send (or re-import) gets the same raw id.
pub(crate) fn content_key(bytes: &[u8]) -> String {
    Uuid::new_v5(&CONTENT_KEY_NAMESPACE, bytes).to_string()
}

#[derive(Clone)]
pub struct WebhookState {
    pub registry: IntegrationRegistry,
    pub key_rules: KeyRulesCache,
    pub producer: AckedProducer,
    pub topics: Topics,
    pub body_limit: usize,
    /// How long the body may take to arrive (slowloris guard).
    pub body_timeout: std::time::Duration,
    pub max_records: usize,
    /// The largest record: every message made from it fits the broker's limit.
    pub record_limits: schemas::limits::RecordLimits,
    pub retry_after_s: u64,
    pub rate_limits: RateLimits,
    /// Answers to deliveries that carried a delivery id (`webhook-id` or
    /// `Idempotency-Key`), so a retry is answered 200 with the original ids.
    pub deliveries: Deliveries,
    /// Per-account fair shares (the edge's requests per second).
    pub limits: std::sync::Arc<crate::limits::IngestLimits>,
    /// Refused deliveries, recorded for their integration's owner.
    pub refusals: super::refusals::Refusals,
}

/// Recent answers by (client, delivery id), kept for a day.
pub type Deliveries = moka::sync::Cache<(ClientId, String), Delivery>;

/// A remembered delivery: what it carried (a digest of the body) and what it was
/// answered. A key is bound to its body: the same key with another body is a
/// conflict, never a silent replay of the first answer.
#[derive(Clone)]
pub struct Delivery {
    body_sha256: [u8; 32],
    answer: bytes::Bytes,
}

fn digest(body: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(body).into()
}

/// A delivery cache holding at most `entries` deliveries and about `bytes` bytes of
/// them. An answer lists every accepted record's id, so a 10,000-record delivery
/// weighs about 400 KB: counted in entries alone, a sender of large batches with
/// delivery ids could fill memory. Each entry weighs its bytes, and at least
/// `bytes / entries`, so one weighted capacity bounds both.
pub fn deliveries(entries: u64, bytes: u64) -> Deliveries {
    let floor = bytes / entries.max(1);
    moka::sync::Cache::builder()
        .max_capacity(bytes)
        .weigher(
            move |(client, key): &(ClientId, String), delivery: &Delivery| {
                let size = (client.as_str().len() + key.len() + delivery.answer.len()) as u64
                    + DELIVERY_OVERHEAD_BYTES;
                u32::try_from(size.max(floor)).unwrap_or(u32::MAX)
            },
        )
        .time_to_live(std::time::Duration::from_secs(24 * 3600))
        .build()
}

/// What an entry costs besides its strings: the digest, the key's and answer's
/// headers, moka's own bookkeeping (an estimate).
const DELIVERY_OVERHEAD_BYTES: u64 = 160;

#[derive(Serialize)]
struct Accepted<'a> {
    accepted: usize,
    /// Raw record ids, in body order of the accepted records: the same record sent
    /// again gets the same id.
    ids: Vec<Uuid>,
    rejected: &'a [RejectedRecord],
}

pub async fn handle(
    state: &WebhookState,
    client: &str,
    request: Request<Incoming>,
) -> Response<Body> {
    let started = Instant::now();
    let span = tracing::info_span!("webhook", client_id = %client);
    let (parts, body) = request.into_parts();
    let mut notes = super::refusals::Notes::default();
    let response = match accept(state, client, &parts, body, &mut notes)
        .instrument(span)
        .await
    {
        Ok(response) => response,
        Err(problem) => {
            let body_unread = notes.body.is_none() && has_body(&parts.headers);
            state
                .refusals
                .record(&state.registry, client, &parts, &problem, notes);
            let mut response = problem.into_response();
            if body_unread {
                // Refused before its body was read: the connection cannot carry
                // another request, and saying so keeps the sender from reusing it
                // (a reused one fails with no answer at all).
                response.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            response
        }
    };
    let status = response.status().as_u16().to_string();
    metrics::counter!(crate::metric_names::INGEST_WEBHOOK_REQUESTS_TOTAL, "status" => status)
        .increment(1);
    metrics::histogram!(crate::metric_names::INGEST_WEBHOOK_SECONDS)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Whether a request carries a body (declared non-empty, or chunked).
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

async fn accept(
    state: &WebhookState,
    client: &str,
    parts: &http::request::Parts,
    body: Incoming,
    notes: &mut super::refusals::Notes,
) -> Result<Response<Body>, Problem> {
    // Refused before it is read, the body is read and dropped (up to a bound), so a
    // sender still writing it reads the refusal instead of a reset connection.
    let body = runtime::http::Unread::new(body, &parts.headers);
    // An unknown id, a disabled integration and failed credentials are answered
    // alike: the answer says nothing about which integrations exist.
    let integration = state
        .registry
        .find(client)
        .ok_or_else(|| not_accepted(client, "unknown_integration"))?;
    if !integration.enabled {
        return Err(not_accepted(client, "integration_disabled"));
    }
    let query = parts.uri.query();
    let verifier = integration.auth.as_ref().map(verifiers::of);
    if let Some(verifier) = &verifier {
        verifier.before_body(&parts.headers, query).map_err(|e| {
            notes.reason = Some(e.to_string());
            not_accepted(client, e.code())
        })?;
    }
    // The account's share of the edge, charged before the body costs anything when
    // its length is declared (after reading it otherwise).
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(length) = declared {
        state.limits.webhook_bytes(&integration.account, length)?;
    }
    // A GET delivery (a tracking pixel) carries its record in the query.
    let pixel = (parts.method == http::Method::GET).then(|| {
        let query = query.unwrap_or("");
        match &integration.auth {
            // The key is a credential, never part of the record.
            Some(schemas::webhook_auth::WebhookAuth::ApiKey {
                query: Some(name), ..
            }) => verifiers::without_query_key(query, name),
            _ => query.to_owned(),
        }
    });
    let format = match pixel {
        Some(_) => forms::URL_ENCODED,
        None => content_format(&parts.headers)?,
    };
    let codings = decoders::codings(
        parts
            .headers
            .get(http::header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok()),
    )?;
    let key = idempotency_key(&parts.headers);
    let bytes = match &pixel {
        Some(record) => bytes::Bytes::from(record.clone().into_bytes()),
        None => {
            read_incoming(
                &parts.headers,
                body.into_body(),
                state.body_limit,
                state.body_timeout,
            )
            .await?
        }
    };
    notes.body = Some(bytes.clone());
    if declared.is_none() {
        state
            .limits
            .webhook_bytes(&integration.account, bytes.len() as u64)?;
    }
    let received_at = Utc::now();
    // Signatures cover the body, so they are checked after it is read.
    if let Some(verifier) = &verifier {
        let delivery = verifiers::Delivery {
            headers: &parts.headers,
            query,
            body: if pixel.is_some() { b"" } else { &bytes },
            form: pixel.is_none() && format.name() == forms::URL_ENCODED.name(),
            now_s: received_at.timestamp(),
        };
        verifier.after_body(&delivery).map_err(|e| {
            notes.reason = Some(e.to_string());
            not_accepted(client, e.code())
        })?;
    }
    if let Err(wait) = state.rate_limits.check(&integration) {
        metrics::counter!(crate::metric_names::INGEST_RATE_LIMITED_TOTAL).increment(1);
        return Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "integration {} allows {} requests per second; retry after the Retry-After seconds",
                integration.client_id,
                integration.rate_limit.as_ref().map_or(0, |l| l.per_second)
            ),
        )
        .retry_after(wait.as_secs().max(1)));
    }
    let delivery = key.clone().map(|key| (integration.client_id.clone(), key));
    let body_sha256 = digest(&bytes);
    if let Some((seen, (_, key))) = delivery
        .as_ref()
        .and_then(|d| state.deliveries.get(d).map(|seen| (seen, d)))
    {
        if seen.body_sha256 != body_sha256 {
            metrics::counter!(crate::metric_names::INGEST_IDEMPOTENCY_CONFLICTS_TOTAL).increment(1);
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "idempotency_conflict",
                format!(
                    "delivery id {key:?} (webhook-id / Idempotency-Key) was already used with a different body; \
                     send a changed record with a new delivery id"
                ),
            ));
        }
        // A retry of a delivery this instance already acknowledged: the same answer,
        // as 200, and nothing sent again.
        metrics::counter!(crate::metric_names::INGEST_REDELIVERIES_TOTAL).increment(1);
        return Ok(Response::builder()
            .status(StatusCode::OK)
            .header(CONTENT_TYPE, "application/json")
            .body(runtime::http::full(seen.answer))
            .unwrap_or_else(|_| Response::new(runtime::http::full(bytes::Bytes::new()))));
    }

    // Signatures and delivery ids cover the bytes as sent; records come from them
    // decoded, every limit counted on the decoded bytes.
    let bytes = decoders::decode(bytes, codings, state.body_limit).await?;
    let parsed = match parse_body_within(&bytes, format, state.max_records, state.record_limits) {
        Ok(parsed) => parsed,
        Err(error) => {
            return Err(body_problem(state, &integration, &bytes, error, received_at).await)
        }
    };

    // The account's share of the pipeline: a flood is refused here, not queued in
    // front of every other account's calls.
    state
        .limits
        .webhook_records(&integration.account, parsed.records.len())?;
    let envelopes: Vec<RawEnvelope> = parsed
        .records
        .into_iter()
        .map(|(index, payload)| {
            let idempotency_key = match &key {
                Some(key) => format!("{key}#{index}"),
                None => content_key(payload.get().as_bytes()),
            };
            RawEnvelope {
                raw_id: raw_record_id(&integration.client_id, &idempotency_key),
                client_id: integration.client_id.clone(),
                source: Source::Webhook,
                received_at,
                idempotency_key,
                integration_version: integration.version,
                payload,
            }
        })
        .collect();
    let keys = state.key_rules.get(&integration).keys(&envelopes);
    let encoded: Vec<(String, Vec<u8>)> = keys
        .into_iter()
        .zip(&envelopes)
        .map(|(key, e)| (key, e.to_json()))
        .collect();
    send(state, &state.topics.raw, &encoded).await?;

    if !parsed.rejected.is_empty() {
        let letters: Vec<(String, Vec<u8>)> = parsed
            .rejected
            .iter()
            .map(|r| {
                let letter = refused(
                    &integration.client_id,
                    &r.text,
                    format!("record {} (line {}): {}", r.index, r.line, r.error),
                    received_at,
                );
                if r.too_large {
                    encoded_letter(letter, schemas::limits::TOO_LARGE_LETTER_BYTES)
                } else {
                    encoded_letter(letter, state.record_limits.max_message_bytes())
                }
            })
            .collect();
        send(state, &state.topics.dead_letter, &letters).await?;
    }
    metrics::counter!(crate::metric_names::INGEST_RECORDS_TOTAL, "outcome" => "accepted")
        .increment(envelopes.len() as u64);
    metrics::counter!(crate::metric_names::INGEST_RECORDS_TOTAL, "outcome" => "rejected")
        .increment(parsed.rejected.len() as u64);
    tracing::info!(
        accepted = envelopes.len(),
        rejected = parsed.rejected.len(),
        "webhook accepted"
    );

    let status = if envelopes.is_empty() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::ACCEPTED
    };
    let answer = Accepted {
        accepted: envelopes.len(),
        ids: envelopes.iter().map(|e| e.raw_id).collect(),
        rejected: &parsed.rejected,
    };
    if let (Some(delivery), StatusCode::ACCEPTED) = (delivery, status) {
        if let Ok(body) = serde_json::to_vec(&answer) {
            state.deliveries.insert(
                delivery,
                Delivery {
                    body_sha256,
                    answer: body.into(),
                },
            );
        }
    }
    Ok(json(status, &answer))
}

/// The one answer to a webhook that is not taken for who sent it: an unknown
/// integration, a disabled one, or credentials that do not match. Which it was is
/// logged and counted by `reason` for the operator, never told to the sender.
fn not_accepted(client: &str, reason: &'static str) -> Problem {
    metrics::counter!(crate::metric_names::INGEST_UNAUTHORIZED_TOTAL, "reason" => reason)
        .increment(1);
    tracing::info!(client_id = client, reason, "webhook refused");
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "not_accepted",
        "this webhook URL does not accept the request: no enabled integration here takes it \
         with these credentials (docs/ingest.md, \"Authentication\")",
    )
}

/// Refuses records for a disabled integration.
pub(crate) fn accepting(integration: &Integration) -> Result<(), Problem> {
    if integration.enabled {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::FORBIDDEN,
        "integration_disabled",
        format!(
            "integration {:?} is disabled and accepts no records",
            integration.client_id.as_str()
        ),
    ))
}

fn content_format(headers: &HeaderMap) -> Result<BodyFormat, Problem> {
    let value = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    forms::for_content_type(value).ok_or_else(|| {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type {value:?} is not accepted; send one of {} (or a GET with the record in its query)",
                forms::accepted_media_types()
            ),
        )
    })
}

/// The sender's idempotency key, if it gave one (Standard Webhooks' `webhook-id`,
/// or `Idempotency-Key`). Keys are bounded so they cannot bloat every envelope.
fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    ["idempotency-key", "webhook-id"]
        .iter()
        .filter_map(|name| headers.get(*name)?.to_str().ok())
        .map(str::trim)
        .find(|v| !v.is_empty() && v.len() <= 256)
        .map(str::to_owned)
}

async fn body_problem(
    state: &WebhookState,
    integration: &Integration,
    bytes: &[u8],
    error: BodyError,
    received_at: chrono::DateTime<Utc>,
) -> Problem {
    let (status, code) = match &error {
        BodyError::TooManyRecords { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_records"),
        BodyError::RecordTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "record_too_large"),
        BodyError::Malformed { .. } => (StatusCode::BAD_REQUEST, "malformed_json"),
        BodyError::NotUtf8 { .. } => (StatusCode::BAD_REQUEST, "not_utf8"),
        BodyError::Empty | BodyError::NoRecords => (StatusCode::BAD_REQUEST, "no_records"),
        BodyError::WrongShape { .. } => (StatusCode::BAD_REQUEST, "wrong_shape"),
        BodyError::Form { .. } => (StatusCode::BAD_REQUEST, "malformed_form"),
    };
    let mut problem = Problem::new(status, code, error.to_string());
    match &error {
        BodyError::Malformed { line, column, .. } => {
            problem = problem
                .with_detail("line", line)
                .with_detail("column", column);
        }
        BodyError::NotUtf8 { position } => problem = problem.with_detail("position", position),
        BodyError::Form {
            parameter,
            position,
            ..
        } => {
            problem = problem
                .with_detail("parameter", parameter)
                .with_detail("position", position)
        }
        BodyError::RecordTooLarge(e) => {
            problem = problem
                .with_detail("bytes", e.bytes)
                .with_detail("limit", e.limit)
        }
        _ => {}
    }
    // A body that says something but cannot be read is kept for the operator to
    // see; an empty one is not worth a dead letter.
    if matches!(
        error,
        BodyError::Malformed { .. }
            | BodyError::NotUtf8 { .. }
            | BodyError::WrongShape { .. }
            | BodyError::Form { .. }
            | BodyError::RecordTooLarge(_)
    ) {
        let letter = refused(
            &integration.client_id,
            &String::from_utf8_lossy(bytes),
            error.to_string(),
            received_at,
        );
        let keep = match error {
            BodyError::RecordTooLarge(_) => schemas::limits::TOO_LARGE_LETTER_BYTES,
            _ => state.record_limits.max_message_bytes(),
        };
        let encoded = [encoded_letter(letter, keep)];
        if let Err(problem) = send(state, &state.topics.dead_letter, &encoded).await {
            tracing::warn!(message = %problem.message, "could not dead-letter a malformed body");
        }
    }
    problem
}

fn refused(
    client: &ClientId,
    text: &str,
    reason: String,
    received_at: chrono::DateTime<Utc>,
) -> DeadLetter {
    dead_letter(
        client,
        Source::Webhook,
        Stage::Ingest,
        text,
        reason,
        received_at,
    )
}

/// A dead letter as the dead-letter topic takes it: fitted to the broker's limit
/// (a record too large for the pipeline keeps its start, size and digest).
pub(crate) fn encoded_letter(letter: DeadLetter, max_bytes: usize) -> (String, Vec<u8>) {
    let letter = letter.fit_within(max_bytes);
    (
        letter.raw_id.to_string(),
        serde_json::to_vec(&letter).unwrap_or_default(),
    )
}

/// A record refused at the edge, keyed by its content so a re-send replaces it.
pub(crate) fn dead_letter(
    client: &ClientId,
    source: Source,
    stage: Stage,
    text: &str,
    reason: String,
    received_at: chrono::DateTime<Utc>,
) -> DeadLetter {
    let key = content_key(text.as_bytes());
    DeadLetter {
        raw_id: raw_record_id(client, &key),
        client_id: client.clone(),
        source,
        stage,
        reason,
        errors: vec![],
        received_at: schemas::call::to_whole_seconds(received_at),
        failed_at: schemas::call::to_whole_seconds(Utc::now()),
        raw_partition: None,
        raw_offset: None,
        payload: text.to_owned(),
        truncated: None,
    }
}

async fn send(
    state: &WebhookState,
    topic: &str,
    encoded: &[(String, Vec<u8>)],
) -> Result<(), Problem> {
    state
        .producer
        .send_pairs(topic, encoded)
        .await
        .map_err(|error| unavailable(state, &error))
}

fn unavailable(state: &WebhookState, error: &ProduceError) -> Problem {
    tracing::warn!(%error, "records not acknowledged by Kafka");
    if error.is_transient() {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "broker_unavailable",
            "the records could not be stored right now; nothing was acknowledged, retry later",
        )
        .retry_after(state.retry_after_s)
    } else {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "record_too_large",
            format!("the broker refused a record: {error}"),
        )
    }
}

#[cfg(test)]
mod delivery_cache_tests {
    use super::*;

    fn delivery(answer_bytes: usize) -> Delivery {
        Delivery {
            body_sha256: [0; 32],
            answer: bytes::Bytes::from(vec![b'x'; answer_bytes]),
        }
    }

    fn settle(cache: &Deliveries) -> (u64, u64) {
        cache.run_pending_tasks();
        (cache.entry_count(), cache.weighted_size())
    }

    #[test]
    fn large_answers_are_bounded_in_bytes() {
        // 1,000 entries allowed, 4 MB: 100 answers of 400 KB (10,000-record
        // deliveries) would be 40 MB if only entries counted.
        let cache = deliveries(1_000, 4_000_000);
        let client = ClientId::parse("arroyo").unwrap();
        for n in 0..100 {
            cache.insert((client.clone(), format!("delivery-{n}")), delivery(400_000));
        }
        let (entries, weight) = settle(&cache);
        let held: u64 = cache.iter().map(|(_, d)| d.answer.len() as u64).sum();
        assert!(weight <= 4_000_000, "weighted size {weight}");
        assert!(held <= 4_000_000, "{entries} answers hold {held} bytes");
        assert!(entries >= 5, "still remembers recent deliveries: {entries}");
    }

    #[test]
    fn small_answers_are_bounded_in_entries() {
        let cache = deliveries(100, 64 * 1024 * 1024);
        let client = ClientId::parse("arroyo").unwrap();
        for n in 0..1_000 {
            cache.insert((client.clone(), format!("delivery-{n}")), delivery(60));
        }
        let (entries, _) = settle(&cache);
        assert!(entries <= 100, "{entries} entries");
        assert!(entries >= 50, "{entries} entries");
    }
}
