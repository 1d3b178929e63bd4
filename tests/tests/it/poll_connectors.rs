//! Poll connectors against local fakes of partner APIs, run through the same
//! `ingest::poll::run` the poller runs (records collected instead of sent to Kafka;
//! `poll_presets.rs` runs the presets on the whole stack). Each fake answers as its
//! documentation says, and counts what it was asked, so "once", "in order" and
//! "renewed once" are counted by the partner's side, not by the code under test.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ingest::outbound::{Outbound, OutboundConfig};
use ingest::poll::run::{run, RunContext, RunReport, Start};
use ingest::poll::sink::Collected;
use ingest::poll::{Budgets, TokenCache};
use integration_tests::fake_http::{query, Canned, FakeHttp, FakeRequest};
use schemas::poll::PollConfig;
use schemas::Integration;
use serde_json::{json, Value};

struct Poller {
    outbound: Outbound,
    budgets: Budgets,
    tokens: TokenCache,
}

impl Poller {
    /// As in production: no private address allowed.
    fn guarded() -> Self {
        Self {
            outbound: Outbound::new(OutboundConfig::default().allow_list().unwrap(), 5),
            budgets: Budgets::default(),
            tokens: TokenCache::default(),
        }
    }

    fn new() -> Self {
        let config = OutboundConfig {
            allow: vec!["127.0.0.1".into()],
            ..OutboundConfig::default()
        };
        Self {
            outbound: Outbound::new(config.allow_list().unwrap(), 5),
            budgets: Budgets::default(),
            tokens: TokenCache::default(),
        }
    }

    /// One run from `since` (and `token`, `rows`): its report (or error) and what
    /// it collected.
    async fn run(
        &self,
        integration: &Integration,
        start: Start,
    ) -> (Result<RunReport, String>, Collected) {
        let ctx = RunContext {
            outbound: &self.outbound,
            max_page_bytes: 1 << 20,
            budgets: &self.budgets,
            tokens: &self.tokens,
            trace: None,
        };
        let sink = Collected::default();
        let poll = integration.poll.clone().unwrap();
        let result = run(&ctx, &sink, integration, &poll, start, Utc::now())
            .await
            .map_err(|(error, _)| error);
        (result, sink)
    }
}

fn integration(poll: Value, csv: Option<Value>) -> Integration {
    let mut value = json!({
        "client_id": "partner", "account": "acme", "name": "Partner", "source": "poll",
        "version": 1,
        "mapping": {"fields": {"external_id": {"path": "id"}, "caller": {"path": "caller"},
                               "started_at": {"path": "updated"}}},
        "poll": poll,
    });
    if let Some(csv) = csv {
        value["csv"] = csv;
    }
    let integration: Integration = serde_json::from_value(value).unwrap();
    integration.validate().unwrap();
    integration
}

fn start(since: &str) -> Start {
    Start {
        since: DateTime::parse_from_rfc3339(since)
            .unwrap()
            .with_timezone(&Utc),
        token: None,
        rows: None,
    }
}

fn ids(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| match &r["id"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

fn record(n: u32) -> Value {
    json!({"id": format!("c{n}"), "caller": "+14155550100",
           "updated": format!("2026-11-20T10:{n:02}:00Z")})
}

#[tokio::test]
async fn a_link_header_api_is_read_page_by_page_and_stays_on_its_origin() {
    let base = Arc::new(Mutex::new(String::new()));
    let link_base = base.clone();
    let partner = FakeHttp::start(move |target| {
        let page: u32 = query(target).get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let records: Vec<Value> = (1..=2).map(|i| record((page - 1) * 2 + i)).collect();
        let mut answer = Canned::ok("application/json", Value::from(records).to_string());
        let base = link_base.lock().unwrap().clone();
        if page < 3 {
            let link = format!(
                r#"<{base}/calls?page=1>; rel="first", <{base}/calls?page={}>; rel="next", <{base}/calls?page=3>; rel="last""#,
                page + 1
            );
            answer.headers.push(("link".into(), link));
        }
        answer
    })
    .await;
    *base.lock().unwrap() = partner.base_url.clone();
    let poll = json!({
        "interval_s": 60, "url": format!("{}/calls", partner.base_url),
        "query": {"since": "{since}"}, "paging": {"type": "link_header"},
        "cursor_field": "updated", "initial_since": "2026-11-20T00:00:00Z"
    });
    let poller = Poller::new();
    let (report, sink) = poller
        .run(
            &integration(poll.clone(), None),
            start("2026-11-20T00:00:00Z"),
        )
        .await;
    let report = report.unwrap();
    assert_eq!(ids(&sink.records()), ["c1", "c2", "c3", "c4", "c5", "c6"]);
    assert_eq!((report.pages, partner.requests().len()), (3, 3));
    assert_eq!(
        report.cursor.unwrap().to_rfc3339(),
        "2026-11-20T10:06:00+00:00"
    );

    // A Link to another origin (here: the same server by another name) is refused,
    // so the poll's credentials never follow a partner's answer elsewhere.
    let elsewhere = partner.base_url.replace("127.0.0.1", "localhost");
    *base.lock().unwrap() = elsewhere;
    let (report, sink) = poller
        .run(&integration(poll, None), start("2026-11-20T00:00:00Z"))
        .await;
    let error = report.unwrap_err();
    assert!(error.contains("not on the integration's origin"), "{error}");
    assert_eq!(ids(&sink.records()), ["c1", "c2"], "the first page is kept");
}

/// An OAuth2 API whose tokens live 3 s: one token serves runs until shortly before
/// it expires, a new one is fetched before the old one is refused, and a token the
/// partner revokes early (401) is replaced once and the request made again.
#[tokio::test]
async fn an_oauth2_token_is_cached_renewed_before_expiry_and_once_on_401() {
    struct Issued {
        token: String,
        at: Instant,
    }
    let issued: Arc<Mutex<Vec<Issued>>> = Arc::default();
    let refused = Arc::new(AtomicU64::new(0));
    let revoke = Arc::new(AtomicBool::new(false));
    let (issued_in, refused_in, revoke_in) = (issued.clone(), refused.clone(), revoke.clone());
    let partner = FakeHttp::start_with(move |request: &FakeRequest| {
        if request.target == "/oauth/token" {
            let form: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
                .into_owned()
                .collect();
            let has = |k: &str, v: &str| form.iter().any(|(a, b)| a == k && b == v);
            if request.method != "POST"
                || !has("grant_type", "client_credentials")
                || !has("client_id", "cid")
                || !has("client_secret", "oauth-s3cret")
            {
                return Canned {
                    status: 401,
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: br#"{"error":"invalid_client"}"#.to_vec(),
                };
            }
            let mut issued = issued_in.lock().unwrap();
            let token = format!("t{}", issued.len() + 1);
            issued.push(Issued {
                token: token.clone(),
                at: Instant::now(),
            });
            return Canned::ok(
                "application/json",
                json!({"access_token": token, "token_type": "Bearer", "expires_in": 3}).to_string(),
            );
        }
        let issued = issued_in.lock().unwrap();
        let valid = issued.last().is_some_and(|latest| {
            request.header("authorization") == Some(&format!("Bearer {}", latest.token))
                && latest.at.elapsed() < Duration::from_secs(3)
        });
        if !valid || revoke_in.swap(false, Ordering::SeqCst) {
            refused_in.fetch_add(1, Ordering::SeqCst);
            return Canned::status(401);
        }
        Canned::ok("application/json", json!({"data": [record(1)]}).to_string())
    })
    .await;
    let poll = |secret: &str| {
        json!({
            "interval_s": 60, "url": format!("{}/calls", partner.base_url),
            "auth": {"type": "oauth2", "token_url": format!("{}/oauth/token", partner.base_url),
                     "client_id": "cid", "client_secret": secret},
            "records_path": "data", "cursor_field": "updated",
            "initial_since": "2026-11-20T00:00:00Z", "max_attempts": 3
        })
    };
    let integration = integration(poll("oauth-s3cret"), None);
    let poller = Poller::new();
    let from = || start("2026-11-20T00:00:00Z");
    for _ in 0..2 {
        let (report, sink) = poller.run(&integration, from()).await;
        report.unwrap();
        assert_eq!(sink.records().len(), 1);
    }
    assert_eq!(issued.lock().unwrap().len(), 1, "one token for both runs");
    // Renewed a fifth of its life before it ends: no request is refused for it.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    poller.run(&integration, from()).await.0.unwrap();
    assert_eq!(issued.lock().unwrap().len(), 2);
    assert_eq!(refused.load(Ordering::SeqCst), 0, "renewed before expiry");
    // Revoked early: one 401, one new token, the page read.
    revoke.store(true, Ordering::SeqCst);
    let (report, sink) = poller.run(&integration, from()).await;
    report.unwrap();
    assert_eq!(sink.records().len(), 1);
    assert_eq!(refused.load(Ordering::SeqCst), 1);
    assert_eq!(issued.lock().unwrap().len(), 3);

    // Wrong credentials: a clear error that quotes no secret.
    let wrong = self::integration(poll("wrong-s3cret"), None);
    let error = Poller::new().run(&wrong, from()).await.0.unwrap_err();
    assert!(error.contains("check the credentials"), "{error}");
    assert!(!error.contains("s3cret"), "{error}");
}

/// A session login's token is used until the API refuses it, then one new login.
#[tokio::test]
async fn a_session_token_is_logged_in_once_and_again_when_refused() {
    let logins = Arc::new(AtomicU64::new(0));
    let expire = Arc::new(AtomicBool::new(false));
    let (logins_in, expire_in) = (logins.clone(), expire.clone());
    let partner = FakeHttp::start_with(move |request: &FakeRequest| {
        if request.target == "/login" {
            let body = request.json();
            if body != json!({"user": {"login": "ops@acme.example", "password": "pw-s3cret"}}) {
                return Canned::status(403);
            }
            let n = logins_in.fetch_add(1, Ordering::SeqCst) + 1;
            return Canned::ok(
                "application/json",
                json!({"data": {"session": format!("s{n}"), "ttl": 600}}).to_string(),
            );
        }
        let current = format!("s{}", logins_in.load(Ordering::SeqCst));
        if request.header("x-session") != Some(current.as_str())
            || expire_in.swap(false, Ordering::SeqCst)
        {
            return Canned::status(401);
        }
        Canned::ok(
            "application/json",
            Value::from(vec![record(1), record(2)]).to_string(),
        )
    })
    .await;
    let integration = integration(
        json!({
            "interval_s": 60, "url": format!("{}/calls", partner.base_url),
            "auth": {"type": "session_token", "login_url": format!("{}/login", partner.base_url),
                     "login_body": {"user": {"login": "{username}", "password": "{password}"}},
                     "username": "ops@acme.example", "password": "pw-s3cret",
                     "token_path": "data.session", "expires_in_path": "ttl",
                     "header": "X-Session", "prefix": ""},
            "cursor_field": "updated", "initial_since": "2026-11-20T00:00:00Z"
        }),
        None,
    );
    let poller = Poller::new();
    for _ in 0..2 {
        let (report, sink) = poller
            .run(&integration, start("2026-11-20T00:00:00Z"))
            .await;
        report.unwrap();
        assert_eq!(sink.records().len(), 2);
    }
    assert_eq!(logins.load(Ordering::SeqCst), 1);
    expire.store(true, Ordering::SeqCst);
    poller
        .run(&integration, start("2026-11-20T00:00:00Z"))
        .await
        .0
        .unwrap();
    assert_eq!(logins.load(Ordering::SeqCst), 2);
}

/// A CSV-answering API (semicolons, Windows-1252 as its Content-Type says): every
/// good row is a record, a row with more cells than columns is rejected by number.
#[tokio::test]
async fn a_csv_answering_api_keeps_good_rows_and_names_bad_ones() {
    let mut body = b"id;caller;updated;city\r\n".to_vec();
    body.extend_from_slice(b"c1;+14155550100;2026-11-20T10:01:00Z;Caf\xe9\r\n");
    body.extend_from_slice(b"c2;+14155550101;2026-11-20T10:02:00Z;Oslo;extra\r\n");
    body.extend_from_slice(b"c3;+14155550102;2026-11-20T10:03:00Z;\"Rome; IT\"\r\n");
    let partner = FakeHttp::start(move |_| Canned {
        status: 200,
        headers: vec![(
            "content-type".into(),
            "text/csv; charset=windows-1252".into(),
        )],
        body: body.clone(),
    })
    .await;
    let integration = integration(
        json!({
            "interval_s": 60, "url": format!("{}/export.csv", partner.base_url),
            "format": "csv", "cursor_field": "updated", "initial_since": "2026-11-20T00:00:00Z"
        }),
        Some(json!({"delimiter": ";"})),
    );
    let (report, sink) = Poller::new()
        .run(&integration, start("2026-11-20T00:00:00Z"))
        .await;
    report.unwrap();
    let records = sink.records();
    assert_eq!(ids(&records), ["c1", "c3"]);
    assert_eq!(records[0]["city"], "Café");
    assert_eq!(records[1]["city"], "Rome; IT");
    let rejected = sink.rejected();
    assert_eq!(rejected.len(), 1);
    assert!(
        rejected[0].1.starts_with("row 3: 5 cells but 4 columns"),
        "{rejected:?}"
    );
}

/// A gzip-compressed NDJSON answer is read decoded; a bad line is rejected by its
/// number and the rest kept; an answer that decodes past the page cap is refused.
#[tokio::test]
async fn a_gzip_ndjson_api_is_read_decoded_within_the_page_cap() {
    let lines = format!("{}\n{}\nnot json\n{}\n", record(1), record(2), record(3));
    let big = "x".repeat(2 << 20);
    let partner = FakeHttp::start(move |target| {
        if target.starts_with("/big") {
            return Canned::gzip("application/x-ndjson", format!("{{\"id\":\"{big}\"}}\n"));
        }
        Canned::gzip("application/x-ndjson", lines.clone())
    })
    .await;
    let poll = |path: &str| {
        json!({
            "interval_s": 60, "url": format!("{}{path}", partner.base_url), "format": "ndjson",
            "cursor_field": "updated", "initial_since": "2026-11-20T00:00:00Z"
        })
    };
    let poller = Poller::new();
    let (report, sink) = poller
        .run(
            &integration(poll("/calls"), None),
            start("2026-11-20T00:00:00Z"),
        )
        .await;
    report.unwrap();
    assert_eq!(ids(&sink.records()), ["c1", "c2", "c3"]);
    assert_eq!(
        sink.rejected()[0].1,
        "line 3: not JSON: expected ident at line 1 column 2"
    );
    let (report, _) = poller
        .run(
            &integration(poll("/big"), None),
            start("2026-11-20T00:00:00Z"),
        )
        .await;
    let error = report.unwrap_err();
    assert!(error.contains("bytes"), "{error}");
}

/// A sheet re-read whole every run (Google Sheets' CSV export): only rows added
/// since the last run are sent, across three runs; the count travels with the
/// cursor.
#[tokio::test]
async fn a_scheduled_sheet_sends_only_its_new_rows() {
    let rows = Arc::new(Mutex::new(3_u32));
    let rows_in = rows.clone();
    let partner = FakeHttp::start(move |target| {
        assert!(
            target.starts_with("/spreadsheets/d/sheet1/export?format=csv"),
            "{target}"
        );
        let mut csv = String::from("id,caller,updated\n");
        for n in 1..=*rows_in.lock().unwrap() {
            csv.push_str(&format!("c{n},+1415555{n:04},2026-11-20T10:{n:02}:00Z\n"));
        }
        Canned::ok("text/csv", csv)
    })
    .await;
    let integration = integration(
        json!({
            "interval_s": 600, "url": format!("{}/spreadsheets/d/sheet1/export", partner.base_url),
            "query": {"format": "csv"}, "format": "csv", "new_rows_only": true,
            "cursor_field": "updated", "initial_since": "2026-11-20T00:00:00Z"
        }),
        None,
    );
    let poller = Poller::new();
    let mut from = start("2026-11-20T00:00:00Z");
    let mut sent = Vec::new();
    for added in [0, 2, 1] {
        *rows.lock().unwrap() += added;
        let (report, sink) = poller.run(&integration, from.clone()).await;
        let report = report.unwrap();
        sent.push(ids(&sink.records()));
        from = Start {
            since: report.cursor.unwrap(),
            token: report.token,
            rows: report.rows,
        };
    }
    assert_eq!(sent, [vec!["c1", "c2", "c3"], vec!["c4", "c5"], vec!["c6"]]);
}

/// Templates: a POST body carries the window and the offset as typed JSON, a header
/// the day, and a `has_more` flag ends the window.
#[tokio::test]
async fn a_post_body_template_pages_by_offset_until_has_more_is_false() {
    let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = bodies.clone();
    let partner = FakeHttp::start_with(move |request: &FakeRequest| {
        assert_eq!(request.method, "POST");
        assert_eq!(request.header("x-day"), Some("2026-11-20"));
        let body = request.json();
        seen.lock().unwrap().push(body.clone());
        let offset = body["paging"]["skip"].as_u64().unwrap() as u32;
        let records: Vec<Value> = (1..=2).map(|i| record(offset + i)).collect();
        Canned::ok(
            "application/json",
            json!({"rows": records, "has_more": offset < 4}).to_string(),
        )
    })
    .await;
    let poll: PollConfig = serde_json::from_value(json!({
        "interval_s": 60, "method": "POST", "url": format!("{}/report", partner.base_url),
        "headers": {"X-Day": "{since:%Y-%m-%d}"},
        "body": {"from": "{since:epoch_ms}", "to": "{until}", "paging": {"skip": "{offset}", "take": "{limit}"}},
        "records_path": "rows", "paging": {"type": "offset", "limit": 2},
        "stop": {"has_more_path": "has_more"}, "window_s": 86400,
        "cursor_field": "updated", "initial_since": "2026-11-20T00:00:00Z", "overlap_s": 0
    }))
    .unwrap();
    assert_eq!(poll.problem(), None);
    let integration = integration(serde_json::to_value(&poll).unwrap(), None);
    let since = "2026-11-20T00:00:00Z";
    let ctx_poller = Poller::new();
    // One window: end the run at the window's end by polling "now" as that time.
    let ctx = RunContext {
        outbound: &ctx_poller.outbound,
        max_page_bytes: 1 << 20,
        budgets: &ctx_poller.budgets,
        tokens: &ctx_poller.tokens,
        trace: None,
    };
    let sink = Collected::default();
    let now = DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    run(&ctx, &sink, &integration, &poll, start(since), now)
        .await
        .unwrap();
    assert_eq!(ids(&sink.records()), ["c1", "c2", "c3", "c4", "c5", "c6"]);
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 3, "has_more false ended it: {bodies:?}");
    assert_eq!(
        bodies[0],
        json!({"from": 1_795_132_800_000_i64, "to": "2026-11-20T12:00:00Z", "paging": {"skip": 0, "take": 2}})
    );
    assert_eq!(bodies[2]["paging"]["skip"], 4);
}

/// The refresh-token grant: the configured refresh token gets the first access
/// token; the server rotates refresh tokens, and the next fetch uses the new one
/// (the old one is refused once used, as rotating servers do).
#[tokio::test]
async fn an_oauth2_refresh_token_is_used_and_its_rotation_followed() {
    let refresh_tokens: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(vec!["r0".into()]));
    let grants: Arc<Mutex<Vec<String>>> = Arc::default();
    let (valid_in, grants_in) = (refresh_tokens.clone(), grants.clone());
    let partner = FakeHttp::start_with(move |request: &FakeRequest| {
        if request.target == "/token" {
            let form: std::collections::HashMap<String, String> =
                url::form_urlencoded::parse(&request.body).into_owned().collect();
            let mut valid = valid_in.lock().unwrap();
            let presented = form.get("refresh_token").cloned().unwrap_or_default();
            grants_in.lock().unwrap().push(presented.clone());
            if form.get("grant_type").map(String::as_str) != Some("refresh_token")
                || valid.last() != Some(&presented)
            {
                return Canned::status(400);
            }
            let next = format!("r{}", valid.len());
            valid.push(next.clone());
            return Canned::ok(
                "application/json",
                json!({"access_token": format!("a-{next}"), "expires_in": 1, "refresh_token": next}).to_string(),
            );
        }
        let latest = valid_in.lock().unwrap().last().cloned().unwrap_or_default();
        if request.header("authorization") != Some(format!("Bearer a-{latest}").as_str()) {
            return Canned::status(401);
        }
        Canned::ok("application/json", Value::from(vec![record(1)]).to_string())
    })
    .await;
    let integration = integration(
        json!({
            "interval_s": 60, "url": format!("{}/calls", partner.base_url),
            "auth": {"type": "oauth2", "token_url": format!("{}/token", partner.base_url),
                     "client_id": "cid", "client_secret": "cs", "refresh_token": "r0"},
            "cursor_field": "updated", "initial_since": "2026-11-20T00:00:00Z"
        }),
        None,
    );
    let poller = Poller::new();
    for _ in 0..3 {
        let (report, sink) = poller
            .run(&integration, start("2026-11-20T00:00:00Z"))
            .await;
        report.unwrap();
        assert_eq!(sink.records().len(), 1);
        // Tokens live a second: each run after this one needs a new one.
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }
    assert_eq!(*grants.lock().unwrap(), ["r0", "r1", "r2"]);
}

/// A token or login URL is fetched through the outbound guard like every page: one
/// aimed at the cloud metadata address or loopback is refused before anything is
/// sent, and the error quotes no secret.
#[tokio::test]
async fn token_and_login_urls_cannot_reach_our_network() {
    let oauth = integration(
        json!({
            "interval_s": 60, "url": "https://partner.example/calls",
            "auth": {"type": "oauth2", "token_url": "http://169.254.169.254/latest/meta-data/token",
                     "client_id": "cid", "client_secret": "oauth-s3cret"},
            "cursor_field": "updated", "initial_since": "2026-11-20T00:00:00Z", "max_attempts": 1
        }),
        None,
    );
    let session = integration(
        json!({
            "interval_s": 60, "url": "https://partner.example/calls",
            "auth": {"type": "session_token", "login_url": "http://127.0.0.1:8123/?query=SELECT+1",
                     "login_body": {"p": "{password}"}, "username": "u", "password": "pw-s3cret",
                     "token_path": "token"},
            "cursor_field": "updated", "initial_since": "2026-11-20T00:00:00Z", "max_attempts": 1
        }),
        None,
    );
    for integration in [oauth, session] {
        let (report, sink) = Poller::guarded()
            .run(&integration, start("2026-11-20T00:00:00Z"))
            .await;
        let error = report.unwrap_err();
        assert!(error.contains("may not reach our own network"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
        assert!(sink.records().is_empty());
    }
}
