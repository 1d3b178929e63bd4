//! A noisy neighbour (issue 31): while account A streams webhooks at a steady rate,
//! account B (its own token, its own integrations) sends the worst it can: records
//! too large for the pipeline, signature floods, integration after integration,
//! heavy queries, event streams resumed from the topic's start, big imports and a
//! webhook flood. Measured for A by what the code under test does not derive: A's
//! own log of sends (partner ids, when each was acknowledged) against the
//! `call.created` events A's dashboard receives. Every answer B gets is counted by
//! attack and status; a refusal that does not name its limit is a finding.
//!
//! Used by the short test in the suite (`tests/tests/it/noisy_neighbour.rs`) and by
//! the longer run `benches/load/noisy_neighbour.sh` (binary `noisy_neighbour`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::sse::SseReader;

/// Where the stack is and who is who.
#[derive(Debug, Clone)]
pub struct Stack {
    /// `http://host:port` of ingest and the api.
    pub ingest: String,
    pub api: String,
    /// A's and B's account tokens.
    pub token_a: String,
    pub token_b: String,
    /// A's webhook integration (no auth).
    pub a_client: String,
    /// B's webhook integration without auth, and one with Standard Webhooks.
    pub b_client: String,
    pub b_signed_client: String,
    /// B's account name (for the integrations it creates).
    pub b_account: String,
}

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// How long A sends.
    pub duration: Duration,
    /// A's calls per second.
    pub a_rate: u32,
    /// Whether B attacks meanwhile.
    pub attack: bool,
}

/// What came of it.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    pub a_sent: usize,
    pub a_acknowledged: usize,
    /// A's sends that got anything but 2xx.
    pub a_refused: usize,
    pub a_refusals: BTreeMap<u16, usize>,
    /// Acknowledged calls whose `call.created` never reached A's dashboard.
    pub a_lost: usize,
    /// Times A's dashboard had to reconnect (dropped as too slow, or cut off).
    pub a_reconnects: usize,
    /// From each call's 2xx to its `call.created` at A's dashboard, milliseconds.
    pub a_p50_ms: u64,
    pub a_p99_ms: u64,
    pub a_max_ms: u64,
    /// B's answers: attack → status → count.
    pub b_answers: BTreeMap<&'static str, BTreeMap<u16, usize>>,
    /// B's refusals (4xx/5xx) whose answer names no limit or reason code we know.
    pub b_unnamed: Vec<String>,
    /// B's requests that got no answer (status 0): the client's error, up to 20.
    pub b_errors: Vec<String>,
    /// B's requests sent a second time after their connection closed before any
    /// answer (a keep-alive race, see `RETRIED`).
    pub b_retried: usize,
}

/// Runs the plan; A's calls carry ids `{tag}_{n}`.
pub async fn run(stack: &Stack, plan: Plan, tag: &str) -> Report {
    // A and B are different senders: their own clients, their own connections.
    let client = || {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client")
    };
    let (http, b_http) = (client(), client());
    // A's dashboard, from the live end of the stream; like a browser's EventSource
    // it reconnects with the last id it saw when the stream ends (a `dropped`
    // client), and each reconnection is counted.
    let events_url = format!(
        "{}/api/events?client_id={}&access_token={}",
        stack.api, stack.a_client, stack.token_a
    );
    let mut dashboard = SseReader::connect(&events_url).await;
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let reconnects = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let watcher = {
        let (seen, reconnects) = (seen.clone(), reconnects.clone());
        tokio::spawn(async move {
            let mut last_id: Option<String> = None;
            loop {
                while let Some(event) = dashboard.next_event().await {
                    if event.id.is_some() {
                        last_id = event.id.clone();
                    }
                    if event.event != "call.created" {
                        continue;
                    }
                    let data: serde_json::Value =
                        serde_json::from_str(&event.data).unwrap_or_default();
                    if let Some(id) = data["external_id"].as_str() {
                        lock(&seen)
                            .entry(id.to_owned())
                            .or_insert_with(Instant::now);
                    }
                }
                reconnects.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(500)).await;
                let headers: Vec<(&str, &str)> = last_id
                    .as_deref()
                    .map(|id| vec![("last-event-id", id)])
                    .unwrap_or_default();
                match SseReader::try_connect_with(&events_url, &headers).await {
                    Ok(again) => dashboard = again,
                    Err(_) => continue,
                }
            }
        })
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answers: Arc<Mutex<Answers>> = Arc::default();
    // `CM_NEIGHBOUR_ATTACKS=heavy,flood` runs only the attacks whose names contain
    // one of those words (to see which costs A what).
    let only: Option<Vec<String>> = std::env::var("CM_NEIGHBOUR_ATTACKS")
        .ok()
        .map(|v| v.split(',').map(|w| w.trim().to_owned()).collect());
    let attackers: Vec<_> = if plan.attack {
        attacks()
            .into_iter()
            .filter(|a| {
                only.as_ref()
                    .is_none_or(|words| words.iter().any(|w| a.name().contains(w.as_str())))
            })
            .map(|attack| {
                let (http, stack, stop, answers) =
                    (b_http.clone(), stack.clone(), stop.clone(), answers.clone());
                tokio::spawn(async move {
                    let mut round = 0_usize;
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let (status, body) = attack.run(&http, &stack, round).await;
                        lock(&answers).record(attack.name(), status, &body);
                        round += 1;
                        // Refused, it tries again at once but for a breath: a raw
                        // request flood (thousands a second of instant refusals) is
                        // for a per-address limit in front (docs/security.md).
                        if status == 429 || status == 503 {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                })
            })
            .collect()
    } else {
        Vec::new()
    };

    // A: open loop at its rate, each call acknowledged (or not) by its own task.
    let acks: Arc<Mutex<Vec<(String, u16, Instant)>>> = Arc::default();
    let started = Instant::now();
    let total = (plan.duration.as_secs_f64() * f64::from(plan.a_rate)) as usize;
    let mut sends = Vec::with_capacity(total);
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / f64::from(plan.a_rate));
        tokio::time::sleep_until(due.into()).await;
        let id = format!("{tag}_{n}");
        let body = format!(
            r#"{{"call": {{"id": "{id}", "caller": {{"number": "+1415{:03}{:04}"}}, "started_at": "2026-11-20T10:00:00Z", "duration": "2:00", "payout": "$4.00"}}}}"#,
            200 + (n / 10_000) % 800,
            n % 10_000
        );
        let (http, url, acks) = (
            http.clone(),
            format!(
                "{}/api/integrations/webhook/{}",
                stack.ingest, stack.a_client
            ),
            acks.clone(),
        );
        sends.push(tokio::spawn(async move {
            let status = http
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            lock(&acks).push((id, status, Instant::now()));
        }));
    }
    for send in sends {
        let _ = send.await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    // An attack still waiting for its answer (an import paced by B's own budget)
    // is left: what it was answered so far is counted.
    for attacker in attackers {
        attacker.abort();
    }
    // Every acknowledged call's event, or give up after a grace period.
    let acked: Vec<(String, Instant)> = lock(&acks)
        .iter()
        .filter(|(_, status, _)| (200..300).contains(status))
        .map(|(id, _, at)| (id.clone(), *at))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let all_seen = {
            let seen = lock(&seen);
            acked.iter().all(|(id, _)| seen.contains_key(id))
        };
        if all_seen {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    watcher.abort();
    let a_reconnects = reconnects.load(std::sync::atomic::Ordering::SeqCst);

    let mut report = Report {
        a_sent: total,
        a_acknowledged: acked.len(),
        a_reconnects,
        ..Report::default()
    };
    for (_, status, _) in lock(&acks).iter() {
        if !(200..300).contains(status) {
            report.a_refused += 1;
            *report.a_refusals.entry(*status).or_default() += 1;
        }
    }
    let seen = lock(&seen);
    let mut latencies: Vec<u64> = Vec::with_capacity(acked.len());
    for (id, acked_at) in &acked {
        match seen.get(id) {
            Some(at) => latencies.push(at.saturating_duration_since(*acked_at).as_millis() as u64),
            None => report.a_lost += 1,
        }
    }
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0)
    };
    report.a_p50_ms = pick(0.50);
    report.a_p99_ms = pick(0.99);
    report.a_max_ms = latencies.last().copied().unwrap_or(0);
    let answers = lock(&answers);
    report.b_answers = answers.by_attack.clone();
    report.b_unnamed = answers.unnamed.iter().cloned().collect();
    report.b_errors = answers.errors.iter().cloned().collect();
    report.b_retried = RETRIED.swap(0, std::sync::atomic::Ordering::Relaxed);
    report
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Default)]
struct Answers {
    by_attack: BTreeMap<&'static str, BTreeMap<u16, usize>>,
    unnamed: HashSet<String>,
    errors: std::collections::BTreeSet<String>,
}

impl Answers {
    fn record(&mut self, attack: &'static str, status: u16, body: &str) {
        *self
            .by_attack
            .entry(attack)
            .or_default()
            .entry(status)
            .or_default() += 1;
        if status == 0 && self.errors.len() < 20 {
            self.errors.insert(format!("{attack}: {body}"));
        }
        if status >= 400 && !names_its_limit(status, body) {
            let sample: String = body.chars().take(200).collect();
            self.unnamed.insert(format!("{attack}: {status} {sample}"));
        }
    }
}

/// Whether a refusal says what refused it: a per-account limit (`limit` names its
/// key), a record or body over its size (with the limit), a webhook not accepted,
/// or a stream queue that is full (with `Retry-After`).
fn names_its_limit(status: u16, body: &str) -> bool {
    let answer: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let problem = &answer["error"];
    let code = problem["code"].as_str().unwrap_or("");
    match (status, code) {
        (429, "account_limit") => problem["limit"].is_string(),
        (429, "rate_limited") => true,
        (413, "record_too_large") => problem["limit"].is_number(),
        (413, "body_too_large") => problem["limit_bytes"].is_number(),
        (413, _) => problem["message"]
            .as_str()
            .is_some_and(|m| m.contains("at most")),
        (401, "not_accepted") => true,
        (503, "resumes_queued") => true,
        _ => false,
    }
}

/// B's requests sent again after a connection that closed before any answer
/// (`connection closed before message completed`, or `error writing a body to
/// connection` when the write met the close: the server closed a pooled keep-alive
/// connection as the request went out, as any HTTP/1.1 sender meets and retries;
/// seen once in 697 floods of CI run 14). Reported, so a rise shows.
static RETRIED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

trait SendOnceMore {
    async fn send_once_more(self) -> reqwest::Result<reqwest::Response>;
}

impl SendOnceMore for reqwest::RequestBuilder {
    async fn send_once_more(self) -> reqwest::Result<reqwest::Response> {
        // Twice at most: a sender can meet the race on two pooled connections in a
        // row (seen once in 1,700 floods on a busy box), never on a fresh one.
        let mut next = self.try_clone();
        let mut outcome = self.send().await;
        for _ in 0..2 {
            match (&outcome, next.take()) {
                (Err(error), Some(again)) if closed_before_answer(error) => {
                    RETRIED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    next = again.try_clone();
                    outcome = again.send().await;
                }
                _ => break,
            }
        }
        outcome
    }
}

fn closed_before_answer(error: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let said = cause.to_string();
        if said.contains("connection closed before message completed")
            || said.contains("error writing a body to connection")
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// B's attacks.
#[derive(Debug, Clone, Copy)]
enum Attack {
    /// A record of 1.5 MB: over the broker's limit.
    Oversized,
    /// A 900 KB body with 4,000 `v1,` signature entries, to the signed integration.
    SignatureFlood,
    /// Integration after integration.
    Integrations,
    /// A year of aggregates by campaign and a full export, over and over.
    HeavyQueries,
    /// Event streams resumed from the start of the topic, held open.
    SseResumes,
    /// CSV uploads (paced to B's records per second once accepted).
    BigImports,
    /// Small webhooks as fast as it can.
    WebhookFlood,
}

fn attacks() -> Vec<Attack> {
    let mut all = vec![
        Attack::Oversized,
        Attack::SignatureFlood,
        Attack::Integrations,
    ];
    // Several at once of those whose limit is how many at once.
    all.extend([Attack::SseResumes; 24]);
    all.extend([Attack::BigImports; 3]);
    all.extend([Attack::HeavyQueries; 6]);
    all.extend([Attack::WebhookFlood; 6]);
    all
}

impl Attack {
    fn name(self) -> &'static str {
        match self {
            Attack::Oversized => "oversized records",
            Attack::SignatureFlood => "signature floods",
            Attack::Integrations => "integrations",
            Attack::HeavyQueries => "heavy queries",
            Attack::SseResumes => "event stream resumes",
            Attack::BigImports => "big imports",
            Attack::WebhookFlood => "webhook flood",
        }
    }

    async fn run(self, http: &reqwest::Client, stack: &Stack, round: usize) -> (u16, String) {
        let answer = |r: reqwest::Result<reqwest::Response>| async move {
            match r {
                Ok(response) => {
                    let status = response.status().as_u16();
                    (status, response.text().await.unwrap_or_default())
                }
                Err(error) => {
                    // The whole cause chain: "error sending request" alone says nothing.
                    let mut said = error.to_string();
                    let mut source = std::error::Error::source(&error);
                    while let Some(cause) = source {
                        said.push_str(": ");
                        said.push_str(&cause.to_string());
                        source = cause.source();
                    }
                    (0, said)
                }
            }
        };
        let webhook = |client: &str| format!("{}/api/integrations/webhook/{client}", stack.ingest);
        match self {
            Attack::Oversized => {
                let body = format!(r#"{{"call": {{"notes": "{}"}}}}"#, "x".repeat(1_500_000));
                answer(
                    http.post(webhook(&stack.b_client))
                        .header("content-type", "application/json")
                        .body(body)
                        .send_once_more()
                        .await,
                )
                .await
            }
            Attack::SignatureFlood => {
                let signatures =
                    vec!["v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; 4000].join(" ");
                let body = format!(r#"{{"call": {{"notes": "{}"}}}}"#, "y".repeat(900_000));
                let now = chrono::Utc::now().timestamp().to_string();
                answer(
                    http.post(webhook(&stack.b_signed_client))
                        .header("content-type", "application/json")
                        .header("webhook-id", format!("msg_flood_{round}"))
                        .header("webhook-timestamp", now)
                        .header("webhook-signature", signatures)
                        .body(body)
                        .send_once_more()
                        .await,
                )
                .await
            }
            Attack::Integrations => {
                let definition = serde_json::json!({
                    "client_id": format!("b-spam-{round}"),
                    "account": stack.b_account,
                    "name": format!("spam {round}"),
                    "source": "webhook",
                    "version": 1,
                    "auth": {"scheme": "none"},
                    "mapping": {"fields": {
                        "caller": {"path": "c"}, "started_at": {"path": "s"}
                    }}
                });
                let response = answer(
                    http.post(format!("{}/api/integrations", stack.api))
                        .bearer_auth(&stack.token_b)
                        .json(&definition)
                        .send_once_more()
                        .await,
                )
                .await;
                // Once refused, try again now and then, not in a tight loop.
                if response.0 == 429 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                response
            }
            Attack::HeavyQueries => {
                let url = if round.is_multiple_of(2) {
                    format!("{}/api/aggregates?from=2025-01-01T00:00:00Z&to=2027-01-01T00:00:00Z&bucket=day&group_by=campaign", stack.api)
                } else {
                    format!("{}/api/calls/export.csv", stack.api)
                };
                answer(
                    http.get(url)
                        .bearer_auth(&stack.token_b)
                        .send_once_more()
                        .await,
                )
                .await
            }
            Attack::SseResumes => {
                let response = http
                    .get(format!("{}/api/events", stack.api))
                    .bearer_auth(&stack.token_b)
                    .header("last-event-id", "0:0,1:0,2:0")
                    .send_once_more()
                    .await;
                match response {
                    // Held open (up to 2 s), as a dashboard would.
                    Ok(response) if response.status().is_success() => {
                        let status = response.status().as_u16();
                        let mut stream = response;
                        let until = Instant::now() + Duration::from_secs(2);
                        while Instant::now() < until {
                            match tokio::time::timeout(Duration::from_millis(500), stream.chunk())
                                .await
                            {
                                Ok(Ok(Some(_))) | Err(_) => {}
                                _ => break,
                            }
                        }
                        (status, String::new())
                    }
                    other => answer(other).await,
                }
            }
            Attack::BigImports => {
                let mut csv = String::from("caller,started_at\n");
                // Small enough to be sent whole before a refusal is answered.
                while csv.len() < 40_000 {
                    csv.push_str("4155550000,2026-11-20T10:00:00Z\n");
                }
                answer(
                    http.post(format!(
                        "{}/api/integrations/{}/imports",
                        stack.ingest, stack.b_client
                    ))
                    .bearer_auth(&stack.token_b)
                    .header("content-type", "text/csv")
                    .body(csv)
                    .send_once_more()
                    .await,
                )
                .await
            }
            Attack::WebhookFlood => {
                let body = format!(
                    r#"{{"c": "+1212{:03}{:04}", "s": "2026-11-20T10:00:00Z"}}"#,
                    200 + (round / 10_000) % 800,
                    round % 10_000
                );
                answer(
                    http.post(webhook(&stack.b_client))
                        .header("content-type", "application/json")
                        .body(body)
                        .send_once_more()
                        .await,
                )
                .await
            }
        }
    }
}
