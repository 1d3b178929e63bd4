//! One polling run of one integration: from the stored cursor (minus the overlap)
//! to now, page by page, each page's records acknowledged by Kafka before the next
//! page is asked for. Returns the new cursor; the caller stores it, so the cursor
//! only ever covers acknowledged records.

use std::borrow::Cow;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use runtime::kafka::AckedProducer;
use schemas::keys::KeyRules;
use schemas::path::FieldPath;
use schemas::poll::{Paging, PollAuth, PollConfig};
use schemas::{Integration, RawEnvelope, Source};
use serde_json::value::RawValue;
use serde_json::Value;

use std::sync::atomic::{AtomicU64, Ordering};

use runtime::retry::{retry, RetryError, RetryPolicy, Retryable};

use super::budget::Budgets;
use crate::outbound::{read_capped, Outbound, OutboundRequest};
use crate::webhook::content_key;
use schemas::redact::redact_url;

/// Longest a 429's `Retry-After` is honoured within a run; longer ends the run.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub records: u64,
    pub pages: u64,
    pub requests: u64,
    /// The new cursor: the largest `cursor_field` seen, never before the old one.
    pub cursor: Option<DateTime<Utc>>,
}

pub struct RunContext<'a> {
    pub outbound: &'a Outbound,
    /// Largest response read.
    pub max_page_bytes: u64,
    pub producer: &'a AckedProducer,
    pub raw_topic: &'a str,
    /// Where records too large for the pipeline go instead (fitted, with why).
    pub dead_letter_topic: &'a str,
    /// The largest record: every message made from it fits the broker's limit.
    pub record_limits: schemas::limits::RecordLimits,
    /// The account's records per second: a run waits for its share.
    pub limits: &'a crate::limits::IngestLimits,
    pub budgets: &'a Budgets,
    pub key_rules: &'a KeyRules,
}

/// Polls `integration` from `cursor`. `Err` says why the run gave up; records sent
/// before that are stored, and the cursor was not advanced, so the next run reads
/// them again (harmlessly).
pub async fn run(
    ctx: &RunContext<'_>,
    integration: &Integration,
    poll: &PollConfig,
    cursor: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<RunReport, (String, RunReport)> {
    let mut report = RunReport {
        cursor: Some(cursor),
        ..RunReport::default()
    };
    let from = cursor - chrono::Duration::seconds(poll.overlap_s as i64);
    let uses_until = poll.query.values().any(|v| v.contains("{until}"));
    let window = chrono::Duration::seconds(poll.window_s.unwrap_or(0) as i64);
    let mut window_start = from;
    loop {
        let window_end = if uses_until {
            (window_start + window).min(now)
        } else {
            now
        };
        let read = match window_run(
            ctx,
            integration,
            poll,
            window_start,
            window_end,
            &mut report,
        )
        .await
        {
            Ok(read) => read,
            Err(error) => return Err((error, report)),
        };
        // The cursor may move past a window only as far as nothing unread lies
        // behind it: a whole window, or pages in cursor order (the unread ones
        // can only be newer).
        // (`None` orders before any time, so `max` keeps whichever is known.)
        match read.end {
            WindowEnd::Complete => report.cursor = advance(report.cursor, read.newest, now),
            WindowEnd::MaxPages if read.in_cursor_order => {
                report.cursor = advance(report.cursor, read.newest, now);
                tracing::info!(client_id = %integration.client_id, max_pages = poll.max_pages,
                    "max_pages reached; the next run continues from the cursor");
                return Ok(report);
            }
            WindowEnd::MaxPages => {
                let error = format!(
                    "max_pages ({}) reached and the partner's records are not in {} order, so the cursor \
                     cannot move past unread pages: raise max_pages, or use {{until}} with a smaller window_s",
                    poll.max_pages, poll.cursor_field
                );
                return Err((error, report));
            }
            WindowEnd::FullPage if read.in_cursor_order => {
                report.cursor = advance(report.cursor, read.newest, now);
                tracing::info!(client_id = %integration.client_id, page_limit = ?poll.page_limit,
                    "a full response without paging; the next run continues from the cursor");
                return Ok(report);
            }
            WindowEnd::FullPage => {
                let error = format!(
                    "a response held page_limit ({}) records, so the partner may have left some out, and its \
                     records are not in {} order, so the cursor cannot move past them: configure paging, or \
                     use {{until}} with a smaller window_s",
                    poll.page_limit.unwrap_or_default(),
                    poll.cursor_field
                );
                return Err((error, report));
            }
        }
        if !uses_until || window_end >= now {
            return Ok(report);
        }
        window_start = window_end;
    }
}

/// The cursor after a window: the newest record's time, never backwards and never
/// past `now` (a partner's record stamped in the future would otherwise move the
/// cursor beyond records that have not happened yet, and every later run would
/// skip them). (`None` orders before any time, so `max` keeps whichever is known.)
fn advance(
    cursor: Option<DateTime<Utc>>,
    newest: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    cursor.max(newest.map(|n| n.min(now)))
}

/// How a window's reading ended.
enum WindowEnd {
    /// The partner had no more pages.
    Complete,
    /// `max_pages` pages were read; more may remain.
    MaxPages,
    /// Without paging, a response held `page_limit` records; more may remain.
    FullPage,
}

/// What one window's pages showed.
struct WindowRead {
    end: WindowEnd,
    /// The largest `cursor_field` among the window's records.
    newest: Option<DateTime<Utc>>,
    /// Whether the records came in `cursor_field` order (each no older than the last).
    in_cursor_order: bool,
}

async fn window_run(
    ctx: &RunContext<'_>,
    integration: &Integration,
    poll: &PollConfig,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    report: &mut RunReport,
) -> Result<WindowRead, String> {
    let mut read = WindowRead {
        end: WindowEnd::Complete,
        newest: None,
        in_cursor_order: true,
    };
    let records_path = (!poll.records_path.is_empty())
        .then(|| FieldPath::parse(&poll.records_path))
        .transpose()
        .map_err(|e| format!("records_path: {e}"))?;
    let cursor_path =
        FieldPath::parse(&poll.cursor_field).map_err(|e| format!("cursor_field: {e}"))?;
    let base_query: Vec<(String, String)> = poll
        .query
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace("{since}", &format_time(since, &poll.since_format))
                .replace("{until}", &format_time(until, &poll.since_format));
            (k.clone(), v)
        })
        .collect();
    let mut next: Option<Next> = Some(Next::First);
    let mut pages = 0_u32;
    while let Some(step) = next.take() {
        if pages >= poll.max_pages {
            read.end = WindowEnd::MaxPages;
            return Ok(read);
        }
        let (url, query) = match &step {
            Next::First => (poll.url.clone(), base_query.clone()),
            Next::Query(extra) => {
                let mut query = base_query.clone();
                query.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
                query.extend(extra.iter().cloned());
                (poll.url.clone(), query)
            }
            Next::Url(url) => {
                same_origin(&poll.url, url, &poll.secret_names)?;
                (url.clone(), vec![])
            }
        };
        let body = request(ctx, poll, &integration.account, &url, &query, report).await?;
        pages += 1;
        report.pages += 1;
        let records = match &records_path {
            Some(path) => path.lookup(&body).map_or(Value::Null, Cow::into_owned),
            None => body.clone(),
        };
        let records = match records {
            Value::Array(records) => records,
            Value::Null => vec![],
            other => {
                return Err(format!(
                    "records_path {:?} is not an array but {}",
                    poll.records_path,
                    kind(&other)
                ))
            }
        };
        let count = records.len() as u64;
        send(ctx, integration, &records).await?;
        report.records += count;
        for record in &records {
            if let Some(seen) = cursor_path.lookup(record).and_then(|v| parse_time(&v)) {
                read.in_cursor_order &= read.newest.is_none_or(|newest| seen >= newest);
                read.newest = read.newest.max(Some(seen));
            }
        }
        if matches!(poll.paging, Paging::None)
            && poll.page_limit.is_some_and(|limit| count >= limit)
        {
            read.end = WindowEnd::FullPage;
            return Ok(read);
        }
        next = match &poll.paging {
            Paging::None => None,
            Paging::NextCursor { cursor_path, param } => FieldPath::parse(cursor_path)
                .ok()
                .and_then(|p| p.lookup(&body))
                .and_then(|v| text(&v))
                .map(|c| Next::Query(vec![(param.clone(), c)])),
            Paging::NextUrl { url_path } => FieldPath::parse(url_path)
                .ok()
                .and_then(|p| p.lookup(&body))
                .and_then(|v| text(&v))
                .map(Next::Url),
            Paging::PageNumber { param, start } => (count > 0).then(|| {
                Next::Query(vec![(
                    param.clone(),
                    (start + u64::from(pages)).to_string(),
                )])
            }),
            Paging::Offset {
                param,
                limit_param,
                limit,
            } => (count >= *limit).then(|| {
                Next::Query(vec![
                    (param.clone(), (u64::from(pages) * limit).to_string()),
                    (limit_param.clone(), limit.to_string()),
                ])
            }),
        };
    }
    Ok(read)
}

enum Next {
    First,
    Query(Vec<(String, String)>),
    Url(String),
}

/// A `next_url` page must stay on the integration's own origin (scheme, host and
/// port), so the poll's credentials never go to a host the partner's answer names.
fn same_origin(configured: &str, next: &str, secret_names: &[String]) -> Result<(), String> {
    let origin = |text: &str| url::Url::parse(text).ok().map(|u| u.origin());
    match (origin(configured), origin(next)) {
        (Some(a), Some(b)) if a == b && a.is_tuple() => Ok(()),
        _ => Err(format!(
            "the next page's URL {} is not on the integration's origin {}; refused (poll credentials stay with their host)",
            redact_url(next, secret_names),
            redact_url(configured, secret_names)
        )),
    }
}

/// Why one poll request failed, and so whether it is tried again: 429s (after
/// their `Retry-After`), 5xx and network errors are; other 4xx, refusals of the
/// outbound guard and answers that are not JSON are not.
#[derive(Debug, thiserror::Error)]
enum RequestError {
    #[error("{url} answered 429 (rate limited)")]
    RateLimited { url: String, wait: Option<Duration> },
    #[error("{url} answered 429 with Retry-After {seconds}s; giving up this run")]
    RetryAfterTooLong { url: String, seconds: u64 },
    #[error("{url} answered {status}")]
    Server {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("{url} answered {status}; not retried (check the poll configuration)")]
    Client {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error(transparent)]
    Outbound(#[from] crate::outbound::OutboundError),
    #[error("{url} did not answer JSON: {message}")]
    NotJson { url: String, message: String },
}

impl Retryable for RequestError {
    fn is_transient(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Server { .. } => true,
            Self::Outbound(error) => error.is_transient(),
            Self::RetryAfterTooLong { .. } | Self::Client { .. } | Self::NotJson { .. } => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { wait, .. } => *wait,
            _ => None,
        }
    }
}

/// One request, within the budget, retried (`runtime::retry`: backoff with jitter,
/// or a 429's `Retry-After`) while its error is transient, at most
/// `poll.max_attempts` times.
async fn request(
    ctx: &RunContext<'_>,
    poll: &PollConfig,
    owner: &str,
    url: &str,
    query: &[(String, String)],
    report: &mut RunReport,
) -> Result<Value, String> {
    let mut full_url = url::Url::parse(url)
        .map_err(|e| format!("{}: not a URL: {e}", redact_url(url, &poll.secret_names)))?;
    if !query.is_empty() {
        full_url.query_pairs_mut().extend_pairs(query);
    }
    // Errors and logs name the URL without its secrets.
    let shown = redact_url(full_url.as_str(), &poll.secret_names);
    let requests = AtomicU64::new(0);
    let policy = RetryPolicy {
        what: "poll request",
        first_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(30),
        max_attempts: Some(poll.max_attempts),
    };
    let result = retry(&policy, None, || {
        requests.fetch_add(1, Ordering::Relaxed);
        attempt(ctx, poll, owner, full_url.clone(), &shown)
    })
    .await;
    report.requests += requests.load(Ordering::Relaxed);
    result.map_err(|error| match error {
        RetryError::Exhausted { attempts, last, .. } => {
            format!("gave up after {attempts} attempts: {last}")
        }
        other => other.into_last().to_string(),
    })
}

/// One attempt of a poll request.
async fn attempt(
    ctx: &RunContext<'_>,
    poll: &PollConfig,
    owner: &str,
    url: url::Url,
    shown: &str,
) -> Result<Value, RequestError> {
    if let Some(budget) = &poll.budget {
        ctx.budgets.acquire(owner, budget).await;
    }
    let method = if poll.method == "POST" {
        reqwest::Method::POST
    } else {
        reqwest::Method::GET
    };
    let sent = ctx
        .outbound
        .send(OutboundRequest {
            method,
            url,
            headers: headers(poll),
            timeout: Duration::from_secs(poll.timeout_s),
            secret_names: &poll.secret_names,
        })
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(error) => {
            let outcome = if error.is_transient() {
                "network_error"
            } else {
                "refused"
            };
            metrics::counter!(crate::metric_names::INGEST_POLL_REQUESTS_TOTAL, "outcome" => outcome).increment(1);
            return Err(error.into());
        }
    };
    let url = shown.to_owned();
    let status = response.status();
    if status.is_success() {
        pause_if_exhausted(ctx, poll, owner, response.headers());
        let bytes = read_capped(response, ctx.max_page_bytes, shown).await?;
        return serde_json::from_slice(&bytes).map_err(|e| RequestError::NotJson {
            url,
            message: e.to_string(),
        });
    }
    if status.as_u16() == 429 {
        metrics::counter!(crate::metric_names::INGEST_POLL_REQUESTS_TOTAL, "outcome" => "rate_limited").increment(1);
        let wait = retry_after(response.headers());
        if let Some(wait) = wait.filter(|w| *w > MAX_RETRY_AFTER) {
            return Err(RequestError::RetryAfterTooLong {
                url,
                seconds: wait.as_secs(),
            });
        }
        if let (Some(budget), Some(wait)) = (&poll.budget, wait) {
            ctx.budgets.pause(owner, &budget.account, wait);
        }
        return Err(RequestError::RateLimited { url, wait });
    }
    if status.is_server_error() {
        metrics::counter!(crate::metric_names::INGEST_POLL_REQUESTS_TOTAL, "outcome" => "server_error").increment(1);
        return Err(RequestError::Server { url, status });
    }
    metrics::counter!(crate::metric_names::INGEST_POLL_REQUESTS_TOTAL, "outcome" => "client_error")
        .increment(1);
    Err(RequestError::Client { url, status })
}

/// The request's headers, credentials included (the guard drops the secret ones on
/// a redirect to another origin).
fn headers(poll: &PollConfig) -> HeaderMap {
    use base64::Engine;
    let mut headers = HeaderMap::new();
    let mut add = |name: &str, value: &str| {
        if let (Ok(name), Ok(mut value)) =
            (HeaderName::try_from(name), HeaderValue::try_from(value))
        {
            value.set_sensitive(true);
            headers.insert(name, value);
        }
    };
    for (name, value) in &poll.headers {
        add(name, value);
    }
    match &poll.auth {
        Some(PollAuth::ApiKeyHeader { header, key }) => add(header, key.expose()),
        Some(PollAuth::Bearer { token }) => {
            add("authorization", &format!("Bearer {}", token.expose()))
        }
        Some(PollAuth::Basic { user, password }) => {
            let pair = format!("{user}:{}", password.expose());
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            add("authorization", &format!("Basic {encoded}"));
        }
        None => {}
    }
    headers
}

/// `X-RateLimit-Remaining: 0` with `X-RateLimit-Reset` (Unix seconds, or seconds
/// from now when small) pauses the account until the reset.
fn pause_if_exhausted(ctx: &RunContext<'_>, poll: &PollConfig, owner: &str, headers: &HeaderMap) {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<i64>().ok();
    let (Some(budget), Some(0), Some(reset)) = (
        &poll.budget,
        number("x-ratelimit-remaining"),
        number("x-ratelimit-reset"),
    ) else {
        return;
    };
    let now = Utc::now().timestamp();
    let seconds = if reset > 1_000_000_000 {
        reset - now
    } else {
        reset
    };
    if seconds > 0 {
        ctx.budgets.pause(
            owner,
            &budget.account,
            Duration::from_secs(seconds.min(3600) as u64),
        );
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    value.parse::<u64>().ok().map(Duration::from_secs)
}

async fn send(
    ctx: &RunContext<'_>,
    integration: &Integration,
    records: &[Value],
) -> Result<(), String> {
    if records.is_empty() {
        return Ok(());
    }
    let received_at = Utc::now();
    let mut letters = Vec::new();
    let envelopes: Vec<RawEnvelope> = records
        .iter()
        .filter_map(|record| {
            let text = record.to_string();
            if let Err(too_large) = ctx.record_limits.check(&text) {
                let letter = crate::webhook::dead_letter(
                    &integration.client_id,
                    Source::Poll,
                    schemas::dead_letter::Stage::Ingest,
                    &text,
                    too_large.to_string(),
                    received_at,
                );
                letters.push(crate::webhook::encoded_letter(
                    letter,
                    schemas::limits::TOO_LARGE_LETTER_BYTES,
                ));
                return None;
            }
            let key = content_key(text.as_bytes());
            Some(RawEnvelope {
                raw_id: schemas::ids::raw_record_id(&integration.client_id, &key),
                client_id: integration.client_id.clone(),
                source: Source::Poll,
                received_at,
                idempotency_key: key,
                integration_version: integration.version,
                payload: RawValue::from_string(text).ok()?,
            })
        })
        .collect();
    ctx.limits
        .pace_records(&integration.account, envelopes.len())
        .await;
    let keys = ctx.key_rules.keys(&envelopes);
    let encoded: Vec<(String, Vec<u8>)> = keys
        .into_iter()
        .zip(&envelopes)
        .map(|(k, e)| (k, e.to_json()))
        .collect();
    ctx.producer
        .send_pairs(ctx.raw_topic, &encoded)
        .await
        .map_err(|e| format!("Kafka did not acknowledge a page: {e}"))?;
    if !letters.is_empty() {
        ctx.producer
            .send_pairs(ctx.dead_letter_topic, &letters)
            .await
            .map_err(|e| format!("Kafka did not acknowledge a page's dead letters: {e}"))?;
        metrics::counter!(crate::metric_names::INGEST_RECORDS_TOTAL, "outcome" => "poll_rejected")
            .increment(letters.len() as u64);
    }
    metrics::counter!(crate::metric_names::INGEST_RECORDS_TOTAL, "outcome" => "polled")
        .increment(envelopes.len() as u64);
    Ok(())
}

pub fn format_time(at: DateTime<Utc>, format: &str) -> String {
    match format {
        "epoch_s" => at.timestamp().to_string(),
        "epoch_ms" => at.timestamp_millis().to_string(),
        format => at.format(format).to_string(),
    }
}

fn parse_time(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::String(text) => DateTime::parse_from_rfc3339(text.trim())
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        Value::Number(n) => {
            let n = n.as_i64()?;
            let seconds = if n > 100_000_000_000 { n / 1000 } else { n };
            DateTime::from_timestamp(seconds, 0)
        }
        _ => None,
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "an object",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Array(_) => "an array",
        Value::Null => "null",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn since_formats() {
        let at = Utc.with_ymd_and_hms(2026, 11, 20, 22, 3, 22).unwrap();
        assert_eq!(
            format_time(at, "%Y-%m-%dT%H:%M:%SZ"),
            "2026-11-20T22:03:22Z"
        );
        assert_eq!(format_time(at, "epoch_s"), "1795212202");
        assert_eq!(format_time(at, "epoch_ms"), "1795212202000");
        assert_eq!(format_time(at, "%m/%d/%Y"), "11/20/2026");
    }

    #[test]
    fn cursor_values_in_text_or_epoch() {
        let at = Utc.with_ymd_and_hms(2026, 11, 20, 23, 46, 30).unwrap();
        assert_eq!(parse_time(&Value::from("2026-11-20T23:46:30Z")), Some(at));
        assert_eq!(parse_time(&Value::from(at.timestamp())), Some(at));
        assert_eq!(parse_time(&Value::from(at.timestamp_millis())), Some(at));
        assert_eq!(parse_time(&Value::from("yesterday")), None);
    }

    /// Issue "Prove it under faults": a partner's future timestamp moved the cursor
    /// past now (the old rule was `cursor.max(newest)`).
    #[test]
    fn the_cursor_never_moves_past_now_nor_backwards() {
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap();
        let cursor = Some(now - chrono::Duration::hours(1));
        let future = Some(now + chrono::Duration::days(365));
        assert_eq!(advance(cursor, future, now), Some(now));
        assert_eq!(
            advance(cursor, Some(now - chrono::Duration::hours(2)), now),
            cursor
        );
        assert_eq!(advance(cursor, None, now), cursor);
        assert_eq!(advance(None, future, now), Some(now));
    }

    #[test]
    fn next_pages_stay_on_the_integrations_origin() {
        let configured = "https://api.partner.example/v2/calls";
        assert!(same_origin(
            configured,
            "https://api.partner.example/v2/calls?page=2",
            &[]
        )
        .is_ok());
        for elsewhere in [
            "https://evil.example/v2/calls?page=2",
            "http://api.partner.example/v2/calls",
            "https://api.partner.example:8443/v2/calls",
            "http://127.0.0.1:8123/?query=SELECT+1",
            "not a url",
        ] {
            let error = same_origin(configured, elsewhere, &[]).unwrap_err();
            assert!(error.contains("origin"), "{elsewhere}: {error}");
        }
        let error =
            same_origin(configured, "https://evil.example/?api_key=s3cr3t", &[]).unwrap_err();
        assert!(!error.contains("s3cr3t"), "{error}");
    }
}
