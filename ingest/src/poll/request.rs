//! One poll request: built from the templates and the paging values, signed by the
//! authenticator, sent through the outbound guard within the account's budget, and
//! retried (`runtime::retry`: backoff with jitter, or a 429's `Retry-After`) while
//! its error is transient. A 401 from an authenticator that fetches tokens is met
//! once with a new token.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use runtime::retry::{retry, RetryError, RetryPolicy, Retryable};
use schemas::poll::template::{render_body, Template, Vars};
use schemas::poll::PollConfig;
use schemas::redact::{is_secret_name, redact_url, MASK};
use serde::Serialize;

use super::auth::{AuthContext, Authenticator};
use super::run::RunContext;
use crate::outbound::{read_capped, OutboundRequest};

/// Longest a 429's `Retry-After` is honoured within a run; longer ends the run.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// A request as it may be shown: secrets masked.
#[derive(Debug, Clone, Serialize)]
pub struct ShownRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

/// What one page request is, before it is signed.
pub struct PageRequest {
    pub method: reqwest::Method,
    pub url: url::Url,
    pub headers: HeaderMap,
    pub body: Option<serde_json::Value>,
}

/// An answer that came back 2xx.
pub struct Fetched {
    pub headers: HeaderMap,
    pub bytes: Bytes,
}

impl PageRequest {
    /// The request for `url` (the configured one, or a next page's) with the
    /// templates rendered for `vars` and `extra` query parameters (the paging
    /// style's). A template with no value leaves its parameter, header or body
    /// key out.
    pub fn build(
        poll: &PollConfig,
        url: &str,
        templated_query: bool,
        vars: &Vars,
        extra: &[(String, String)],
    ) -> Result<Self, String> {
        let secret_names = poll.all_secret_names();
        let mut parsed = url::Url::parse(url)
            .map_err(|e| format!("{}: not a URL: {e}", redact_url(url, &secret_names)))?;
        let mut query: Vec<(String, String)> = Vec::new();
        if templated_query {
            for (name, text) in &poll.query {
                let template =
                    Template::parse(text).map_err(|e| format!("poll.query.{name}: {e}"))?;
                if let Some(value) = template.render_text(vars) {
                    query.push((name.clone(), value));
                }
            }
        }
        query.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        query.extend(extra.iter().cloned());
        if !query.is_empty() {
            parsed.query_pairs_mut().extend_pairs(&query);
        }
        let mut headers = HeaderMap::new();
        for (name, text) in &poll.headers {
            let template =
                Template::parse(text).map_err(|e| format!("poll.headers.{name}: {e}"))?;
            let Some(value) = template.render_text(vars) else {
                continue;
            };
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| format!("poll.headers: {name:?} is not a header name"))?;
            let mut value = HeaderValue::try_from(value).map_err(|_| {
                format!("poll.headers.{name}: the value cannot be sent in a header")
            })?;
            value.set_sensitive(is_secret_name(name.as_str(), &secret_names));
            headers.insert(name, value);
        }
        let body = poll.body.as_ref().map(|b| render_body(b, vars));
        if body.is_some() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let method = if poll.method == "POST" {
            reqwest::Method::POST
        } else {
            reqwest::Method::GET
        };
        Ok(Self {
            method,
            url: parsed,
            headers,
            body,
        })
    }

    pub fn shown(&self, secret_names: &[String]) -> ShownRequest {
        ShownRequest {
            method: self.method.to_string(),
            url: redact_url(self.url.as_str(), secret_names),
            headers: self
                .headers
                .iter()
                .map(|(k, v)| {
                    let shown = if v.is_sensitive() || is_secret_name(k.as_str(), secret_names) {
                        MASK.to_owned()
                    } else {
                        v.to_str().unwrap_or("(binary)").to_owned()
                    };
                    (k.to_string(), shown)
                })
                .collect(),
            body: self.body.clone(),
        }
    }
}

/// Why one poll request failed, and so whether it is tried again: 429s (after
/// their `Retry-After`), 5xx and network errors are; other 4xx and refusals of the
/// outbound guard are not; a 401 is once when a new token may help.
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
    #[error("{url} answered 401 (unauthorized: check the credentials)")]
    Unauthorized { url: String, renewable: bool },
    #[error(transparent)]
    Outbound(#[from] crate::outbound::OutboundError),
    #[error("{0}")]
    Auth(String),
}

impl Retryable for RequestError {
    fn is_transient(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Server { .. } => true,
            Self::Unauthorized { renewable, .. } => *renewable,
            Self::Outbound(error) => error.is_transient(),
            Self::RetryAfterTooLong { .. } | Self::Client { .. } | Self::Auth(_) => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { wait, .. } => *wait,
            Self::Unauthorized { .. } => Some(Duration::ZERO),
            _ => None,
        }
    }
}

/// Sends `page` (retried) and reads its answer.
pub async fn send(
    ctx: &RunContext<'_>,
    poll: &PollConfig,
    owner: &str,
    auth: &dyn Authenticator,
    page: &PageRequest,
    requests_made: &mut u64,
) -> Result<Fetched, String> {
    let secret_names = poll.all_secret_names();
    if let Some(trace) = ctx.trace {
        if let Ok(mut shown) = trace.requests.lock() {
            shown.push(page.shown(&secret_names));
        }
    }
    let requests = AtomicU64::new(0);
    let renewed = std::sync::atomic::AtomicBool::new(false);
    let policy = RetryPolicy {
        what: "poll request",
        first_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(30),
        max_attempts: Some(poll.max_attempts),
    };
    let body: Option<Bytes> = page.body.as_ref().map(|b| b.to_string().into());
    let result = retry(&policy, None, || {
        requests.fetch_add(1, Ordering::Relaxed);
        attempt(
            ctx,
            poll,
            owner,
            auth,
            page,
            body.clone(),
            &secret_names,
            &renewed,
        )
    })
    .await;
    *requests_made += requests.load(Ordering::Relaxed);
    result.map_err(|error| match error {
        RetryError::Exhausted { attempts, last, .. } => {
            format!("gave up after {attempts} attempts: {last}")
        }
        other => other.into_last().to_string(),
    })
}

#[allow(clippy::too_many_arguments)]
async fn attempt(
    ctx: &RunContext<'_>,
    poll: &PollConfig,
    owner: &str,
    auth: &dyn Authenticator,
    page: &PageRequest,
    body: Option<Bytes>,
    secret_names: &[String],
    renewed: &std::sync::atomic::AtomicBool,
) -> Result<Fetched, RequestError> {
    if let Some(budget) = &poll.budget {
        ctx.budgets.acquire(owner, budget).await;
    }
    let timeout = Duration::from_secs(poll.timeout_s);
    let auth_ctx = AuthContext {
        outbound: ctx.outbound,
        timeout,
        secret_names,
        max_bytes: ctx.max_page_bytes.min(1024 * 1024),
    };
    let credentials = auth
        .credentials(&auth_ctx)
        .await
        .map_err(RequestError::Auth)?;
    let mut url = page.url.clone();
    if !credentials.query.is_empty() {
        // A next page's URL (Link header, next_url) may carry the key already: set
        // it once, never twice.
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(name, _)| !credentials.query.iter().any(|(key, _)| key == name))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(&kept)
            .extend_pairs(&credentials.query);
    }
    let mut headers = page.headers.clone();
    for (name, value) in credentials.headers {
        headers.insert(name, value);
    }
    let shown = redact_url(url.as_str(), secret_names);
    let sent = ctx
        .outbound
        .send(OutboundRequest {
            method: page.method.clone(),
            url,
            headers,
            timeout,
            secret_names,
            body,
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
    let url = shown.clone();
    let status = response.status();
    if status.is_success() {
        // Every request is counted by outcome, the answered ones too: the rate of
        // failures is read against it (deploy/grafana's "Poll requests" panel).
        metrics::counter!(crate::metric_names::INGEST_POLL_REQUESTS_TOTAL, "outcome" => "ok")
            .increment(1);
        pause_if_exhausted(ctx, poll, owner, response.headers());
        let headers = response.headers().clone();
        let bytes = read_capped(response, ctx.max_page_bytes, &shown).await?;
        return Ok(Fetched { headers, bytes });
    }
    if status.as_u16() == 401 {
        metrics::counter!(crate::metric_names::INGEST_POLL_REQUESTS_TOTAL, "outcome" => "unauthorized").increment(1);
        // Once per request: a token refused twice is not a stale token.
        let renewable = !renewed.swap(true, Ordering::Relaxed) && auth.rejected();
        if renewable {
            tracing::info!(url = %shown, "poll: 401, fetching a new token once");
        }
        return Err(RequestError::Unauthorized { url, renewable });
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

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&Utc) - Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_a_date() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }
}
