//! Refused deliveries, written for their integration's owner (`schemas::refusal`):
//! the sender's answer says as little as it can, so the owner needs another place to
//! learn that a partner signs with an old secret or sends a type we do not take.
//!
//! Only refusals of an existing integration are written (an unknown id has no
//! owner), at most [`PER_MINUTE`] per integration and minute per instance: a
//! sender hammering a URL with bad requests costs the broker a few messages a
//! minute, and the rest are counted in the next one written. Written in the
//! background: a refusal's answer never waits for the broker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use http::request::Parts;
use runtime::http::Problem;
use runtime::kafka::AckedProducer;
use runtime::registry::IntegrationRegistry;
use schemas::refusal::{is_credential_header, Refusal, BODY_SAMPLE_BYTES};
use schemas::webhook_auth::WebhookAuth;
use schemas::{ClientId, Integration};

/// Refusals written per integration, minute and instance.
pub const PER_MINUTE: u32 = 10;
/// Headers kept in a refusal (the first ones, in the request's order).
const MAX_HEADERS: usize = 40;
/// Longest header value kept.
const MAX_HEADER_VALUE: usize = 256;

/// What the handler learned about a refused delivery besides its answer.
#[derive(Default)]
pub struct Notes {
    /// The verifier's reason for a credential refusal (never a secret).
    pub reason: Option<String>,
    /// The body as sent, once it was read.
    pub body: Option<bytes::Bytes>,
}

#[derive(Clone)]
pub struct Refusals {
    producer: AckedProducer,
    topic: String,
    counts: Arc<Mutex<HashMap<ClientId, Allowance>>>,
}

/// Per integration: the minute counted, refusals written in it, and refusals not
/// written since the last one written.
type Allowance = (i64, u32, u64);

impl Refusals {
    pub fn new(producer: AckedProducer, topic: String) -> Self {
        Self {
            producer,
            topic,
            counts: Arc::default(),
        }
    }

    /// Records a refusal of a delivery to `client`, if it names an integration
    /// and this minute's allowance is not spent.
    pub fn record(
        &self,
        registry: &IntegrationRegistry,
        client: &str,
        parts: &Parts,
        problem: &Problem,
        notes: Notes,
    ) {
        let Some(integration) = registry.find(client) else {
            return;
        };
        let minute = Utc::now().timestamp() / 60;
        let allowed = {
            let mut counts = self
                .counts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            allow(&mut counts, &integration.client_id, minute)
        };
        let Some(not_recorded_before) = allowed else {
            metrics::counter!(crate::metric_names::INGEST_REFUSALS_TOTAL, "written" => "no")
                .increment(1);
            return;
        };
        metrics::counter!(crate::metric_names::INGEST_REFUSALS_TOTAL, "written" => "yes")
            .increment(1);
        let refusal = refusal_of(&integration, parts, problem, notes, not_recorded_before);
        let (producer, topic) = (self.producer.clone(), self.topic.clone());
        tokio::spawn(async move {
            let Ok(value) = serde_json::to_vec(&refusal) else {
                return;
            };
            let pairs = [(refusal.client_id.to_string(), value)];
            if let Err(error) = producer.send_pairs(&topic, &pairs).await {
                tracing::warn!(%error, client_id = %refusal.client_id, "a refused delivery could not be recorded");
            }
        });
    }
}

/// Whether a refusal of `client` in `minute` is written: `Some(refusals not written
/// since the last one written)` within [`PER_MINUTE`], `None` past it (counted).
fn allow(counts: &mut HashMap<ClientId, Allowance>, client: &ClientId, minute: i64) -> Option<u64> {
    let entry = counts.entry(client.clone()).or_insert((minute, 0, 0));
    if entry.0 != minute {
        *entry = (minute, 0, entry.2);
    }
    if entry.1 >= PER_MINUTE {
        entry.2 += 1;
        return None;
    }
    entry.1 += 1;
    Some(std::mem::take(&mut entry.2))
}

/// The refusal as its owner sees it: credentials masked, the query left out (it
/// may hold a key), the body's start.
fn refusal_of(
    integration: &Integration,
    parts: &Parts,
    problem: &Problem,
    notes: Notes,
    not_recorded_before: u64,
) -> Refusal {
    let own: Vec<&str> = match &integration.auth {
        Some(WebhookAuth::Hmac {
            header,
            timestamp_header,
            ..
        }) => std::iter::once(header.as_str())
            .chain(timestamp_header.as_deref())
            .collect(),
        Some(WebhookAuth::ApiKey {
            header: Some(header),
            ..
        }) => vec![header.as_str()],
        _ => vec![],
    };
    let headers = parts
        .headers
        .iter()
        .take(MAX_HEADERS)
        .map(|(name, value)| {
            let shown = if is_credential_header(name.as_str(), &own) {
                "***".to_owned()
            } else {
                String::from_utf8_lossy(value.as_bytes())
                    .chars()
                    .take(MAX_HEADER_VALUE)
                    .collect()
            };
            (name.as_str().to_owned(), shown)
        })
        .collect();
    let body_sample = notes.body.filter(|b| !b.is_empty()).map(|body| {
        let end = body.len().min(BODY_SAMPLE_BYTES);
        String::from_utf8_lossy(&body[..end]).into_owned()
    });
    Refusal {
        client_id: integration.client_id.clone(),
        account: integration.account.clone(),
        at: Utc::now(),
        status: problem.status.as_u16(),
        code: problem.code.to_owned(),
        reason: notes.reason.unwrap_or_else(|| problem.message.clone()),
        method: parts.method.to_string(),
        headers,
        body_sample,
        not_recorded_before,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flood of bad requests to one integration writes PER_MINUTE refusals a
    /// minute; the next one written carries how many were not; another
    /// integration's allowance is its own.
    #[test]
    fn a_flood_writes_a_few_a_minute_and_counts_the_rest() {
        let mut counts = HashMap::new();
        let (flooded, other) = (
            ClientId::parse("flooded").unwrap(),
            ClientId::parse("other").unwrap(),
        );
        let written: Vec<Option<u64>> =
            (0..1000).map(|_| allow(&mut counts, &flooded, 7)).collect();
        assert_eq!(
            written.iter().filter(|w| w.is_some()).count(),
            PER_MINUTE as usize
        );
        assert_eq!(allow(&mut counts, &other, 7), Some(0));
        assert_eq!(
            allow(&mut counts, &flooded, 8),
            Some(1000 - u64::from(PER_MINUTE))
        );
        assert_eq!(allow(&mut counts, &flooded, 8), Some(0));
    }

    #[test]
    fn credentials_are_masked_and_the_query_left_out() {
        let integration: Integration = serde_json::from_value(serde_json::json!({
            "client_id": "p", "account": "acme", "name": "P", "source": "webhook", "version": 1,
            "auth": {"scheme": "hmac", "secrets": ["a-shared-secret-of-some-length"], "header": "X-Partner-Mac"},
            "mapping": {"fields": {"caller": {"path": "c"}, "started_at": {"path": "s"}}}
        }))
        .unwrap();
        let request = http::Request::post("/api/integrations/webhook/p?key=SECRETKEY")
            .header("content-type", "application/json")
            .header("x-partner-mac", "deadbeef")
            .header("authorization", "Bearer tok_secret")
            .header("user-agent", "partner/1.0")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let problem = Problem::new(http::StatusCode::UNAUTHORIZED, "not_accepted", "no");
        let refusal = refusal_of(
            &integration,
            &parts,
            &problem,
            Notes {
                reason: Some(
                    "the signature does not match the request with a current secret".into(),
                ),
                body: Some(bytes::Bytes::from(vec![b'x'; 2000])),
            },
            3,
        );
        let shown = serde_json::to_string(&refusal).unwrap();
        for secret in ["deadbeef", "tok_secret", "SECRETKEY"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("partner/1.0"));
        assert_eq!(refusal.body_sample.unwrap().len(), BODY_SAMPLE_BYTES);
        assert_eq!(refusal.code, "not_accepted");
        assert!(refusal.reason.contains("signature"));
        assert_eq!(refusal.not_recorded_before, 3);
    }
}
