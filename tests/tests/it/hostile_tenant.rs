//! A hostile account against the real stack. Account `acme-leads` (A) has calls,
//! dead letters, an import and integrations; account `mallory` (B) holds a valid
//! token and tries every endpoint of the api and of ingest, and every SSE filter,
//! against A's data, then tries to make our servers fetch from our own network
//! (ClickHouse's port, the api's port, a private address), directly, through a
//! redirect and through a `next_url` page. Every attempt must be a 401/403/404 (or,
//! for fetches, a refusal naming the reason), nothing of A's may appear in any
//! answer, and ClickHouse's `system.query_log` must show no query from any attempt
//! (checked against a control query that does appear).

use std::time::Duration;

use integration_tests::fake_http::{Canned, FakeHttp};
use integration_tests::sse::SseReader;
use integration_tests::{eventually, sample_integration, TestEnv};
use serde_json::{json, Value};

const ADMIN: &str = "adm_hostile_0123456789abcdefghij";
const A: &str = "acme_hostile_0123456789abcdefghij";
const B: &str = "mallory_hostile_0123456789abcdefghij";
/// Never to be seen in any answer: B's own poll credentials.
const SECRET: &str = "S3CRETVALUE";

struct Http {
    client: reqwest::Client,
}

impl Http {
    async fn send(&self, request: reqwest::RequestBuilder, token: Option<&str>) -> (u16, String) {
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    async fn get(&self, url: &str, token: &str) -> (u16, String) {
        self.send(self.client.get(url), Some(token)).await
    }

    async fn post(&self, url: &str, token: &str, body: Value) -> (u16, String) {
        self.send(self.client.post(url).json(&body), Some(token))
            .await
    }
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Nothing of A's data in an answer to B: A's calls, callers, dead letters,
/// integration names (B's own input, such as a client id it asked for, may be
/// echoed in an error message).
fn nothing_of_a(what: &str, body: &str) {
    for marker in [
        "hostile_a_call",
        "3125550150",
        "{not json}",
        "Arroyo (webhook)",
        "Ring Partner (polled API)",
        "Legacy spreadsheet export",
        "Auto CA",
    ] {
        assert!(
            !body.contains(marker),
            "{what}: B's answer shows {marker}: {body}"
        );
    }
}

/// An answer to a question B did not aim at A: not even A's ids or account.
fn nothing_of_a_at_all(what: &str, body: &str) {
    nothing_of_a(what, body);
    for marker in [
        "acme-leads",
        "\"arroyo\"",
        "arroyo,",
        "legacy-sheet",
        "ringpartner\"",
    ] {
        assert!(
            !body.contains(marker),
            "{what}: B's answer shows {marker}: {body}"
        );
    }
}

fn refused(what: &str, (status, body): (u16, String), expected: &[u16]) {
    assert!(
        expected.contains(&status),
        "{what}: expected one of {expected:?}, got {status}: {body}"
    );
    nothing_of_a(what, &body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_account_reaches_nothing_of_ours_and_our_network_is_not_reachable() {
    let env = TestEnv::new("hostile").await;
    let http = Http {
        client: reqwest::Client::new(),
    };
    let ch_port = env
        .clickhouse
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .expect("ClickHouse port");
    let marker = format!("probe_{}", std::process::id());

    // A partner of B's (allow-listed, like a real partner), that tries to bounce our
    // requests to our own network, and a second origin that records what reaches it.
    let elsewhere = FakeHttp::start(|_| Canned::ok("application/json", r#"{"data": []}"#)).await;
    let elsewhere_url = elsewhere.base_url.clone();
    let probe = marker.clone();
    let partner = FakeHttp::start(move |target| {
        let to_clickhouse = format!(
            "http://127.0.0.1:{ch_port}/?query=SELECT%20%27{probe}_redirect%27"
        );
        match target.split('?').next().unwrap_or("") {
            "/redirect" | "/redirect.csv" => {
                let mut answer = Canned::status(302);
                answer.headers.push(("location".into(), to_clickhouse));
                answer
            }
            "/next" => Canned::ok(
                "application/json",
                json!({"data": [], "next": format!("http://127.0.0.1:{ch_port}/?query=SELECT%20%27{probe}_next%27")})
                    .to_string(),
            ),
            "/elsewhere" => {
                let mut answer = Canned::status(307);
                answer
                    .headers
                    .push(("location".into(), format!("{elsewhere_url}/landing")));
                answer
            }
            "/secret" => Canned::status(500),
            _ => Canned::status(404),
        }
    })
    .await;
    let partner_port = partner.base_url.rsplit(':').next().unwrap().to_owned();
    let elsewhere_port = elsewhere.base_url.rsplit(':').next().unwrap().to_owned();

    // B's integrations: a webhook, and polls aimed at our network.
    let poll = |client: &str, url: String, extra: Value| {
        sample_integration("ringpartner", |value| {
            value["client_id"] = json!(client);
            value["account"] = json!("mallory");
            value["name"] = json!("Mallory poll");
            let mut poll = json!({
                "interval_s": 3600, "url": url, "cursor_field": "UpdatedAt",
                "initial_since": "2026-11-20T00:00:00Z", "records_path": "data",
                "max_attempts": 1, "timeout_s": 5
            });
            if let (Value::Object(poll), Value::Object(extra)) = (&mut poll, extra) {
                poll.extend(extra);
            }
            value["poll"] = poll;
        })
    };
    let mallory_hook = sample_integration("arroyo", |value| {
        value["client_id"] = json!("mallory-hook");
        value["account"] = json!("mallory");
        value["name"] = json!("Mallory hook");
    });
    let attempts = vec![
        poll(
            "m-clickhouse",
            format!("http://127.0.0.1:{ch_port}/"),
            json!({"query": {"query": format!("SELECT '{marker}_direct'")}}),
        ),
        poll("m-private", "http://10.255.255.1/calls".into(), json!({})),
        poll(
            "m-metadata",
            "http://169.254.169.254/latest/meta-data/".into(),
            json!({}),
        ),
        poll(
            "m-redirect",
            format!("{}/redirect", partner.base_url),
            json!({}),
        ),
        poll(
            "m-next",
            format!("{}/next", partner.base_url),
            json!({"paging": {"type": "next_url", "url_path": "next"}}),
        ),
        poll(
            "m-elsewhere",
            format!("{}/elsewhere", partner.base_url),
            json!({"headers": {"X-Api-Key": format!("hdr_{SECRET}")},
                   "auth": {"type": "bearer", "token": format!("tok_{SECRET}")}}),
        ),
        poll(
            "m-secret",
            format!("{}/secret", partner.base_url),
            json!({"query": {"api_key": format!("qry_{SECRET}"), "since": "{since}"},
                   "auth": {"type": "basic", "user": "mallory", "password": format!("pw_{SECRET}")}}),
        ),
    ];
    let mut published = attempts.clone();
    published.push(mallory_hook);
    cmctl::publish_integrations(&env.kafka, &published)
        .await
        .unwrap();

    let tokens = tempfile::tempdir().unwrap();
    let tokens_file = tokens.path().join("tokens.json");
    std::fs::write(
        &tokens_file,
        json!({"admin": [ADMIN], "accounts": {"acme-leads": [A], "mallory": [B]}}).to_string(),
    )
    .unwrap();
    let tokens_path = tokens_file.to_str().unwrap();
    // Only B's partner's two ports are allow-listed: not ClickHouse's, not the api's.
    let allow = format!(r#"["127.0.0.1:{partner_port}", "127.0.0.1:{elsewhere_port}"]"#);

    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "20")])
        .await;
    let ingest = env
        .start(
            "ingest",
            &[
                ("INGEST_AUTH__TOKENS_FILE", tokens_path),
                ("INGEST_OUTBOUND__ALLOW", &allow),
                ("INGEST_KAFKA__INSTANCE_ID", "ingest-hostile"),
            ],
        )
        .await;
    let api = env
        .start("api", &[("API_AUTH__TOKENS_FILE", tokens_path)])
        .await;
    let mut b_events = SseReader::connect(&api.url(&format!("/api/events?access_token={B}"))).await;
    // A poll at the api's own port, known only now.
    let at_api = poll(
        "m-api",
        format!("http://127.0.0.1:{}/api/calls", api.port),
        json!({"headers": {"Authorization": format!("Bearer {ADMIN}")}}),
    );
    cmctl::publish_integrations(&env.kafka, std::slice::from_ref(&at_api))
        .await
        .unwrap();
    let mut attempts = attempts;
    attempts.push(at_api);

    // A's data: calls, a dead letter, an import.
    let (status, _) = http
        .send(
            http.client
                .post(ingest.url("/api/integrations/webhook/arroyo"))
                .header("content-type", "application/json")
                .body(json!({"call": {"id": "hostile_a_call", "caller": {"number": "3125550150"}, "started_at": "2026-11-21T10:00:00Z", "payout": "12.50"}}).to_string()),
            None,
        )
        .await;
    assert_eq!(status, 202);
    http.send(
        http.client
            .post(ingest.url("/api/integrations/webhook/arroyo"))
            .header("content-type", "application/x-ndjson")
            .body("{not json}\n"),
        None,
    )
    .await;
    let (status, body) = http
        .send(
            http.client
                .post(ingest.url("/api/integrations/legacy-sheet/imports"))
                .header("content-type", "text/csv")
                .body(integration_tests::fixture("legacy-sheet.csv")),
            Some(A),
        )
        .await;
    assert_eq!(status, 200, "A imports into its own integration: {body}");
    let a_import = json_of(&body)["import_id"].as_str().unwrap().to_owned();
    eventually(
        "A's call and dead letter stored",
        Duration::from_secs(60),
        || async {
            let (_, calls) = http.get(&api.url("/api/calls?client_id=arroyo"), A).await;
            let (_, letters) = http
                .get(&api.url("/api/dead-letters?client_id=arroyo"), A)
                .await;
            (calls.contains("hostile_a_call")
                && json_of(&letters)["dead_letters"].as_array()?.len() == 1)
                .then_some(())
        },
    )
    .await;

    // ---- The api, read side: every filter on A's ids or account.
    let api_get = |path: &str| api.url(path);
    for (what, path, expected) in [
        (
            "calls by A's client id",
            "/api/calls?client_id=arroyo",
            &[404][..],
        ),
        (
            "calls by A's account",
            "/api/calls?account=acme-leads",
            &[403],
        ),
        (
            "export by A's client id",
            "/api/calls/export.csv?client_id=arroyo",
            &[404],
        ),
        (
            "export by A's account",
            "/api/calls/export.csv?account=acme-leads",
            &[403],
        ),
        (
            "aggregates by A's client id",
            "/api/aggregates?client_id=arroyo&from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z",
            &[404],
        ),
        (
            "aggregates by A's account",
            "/api/aggregates?account=acme-leads&from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z",
            &[403],
        ),
        (
            "dead letters by A's client id",
            "/api/dead-letters?client_id=arroyo",
            &[404],
        ),
        (
            "dead-letter groups by A's client id",
            "/api/dead-letters/groups?client_id=arroyo",
            &[404],
        ),
        (
            "events by A's client id",
            "/api/events?client_id=arroyo",
            &[404],
        ),
        (
            "A's refused deliveries",
            "/api/integrations/arroyo/refusals",
            &[404],
        ),
        (
            "events by A's account",
            "/api/events?account=acme-leads",
            &[403],
        ),
        (
            "a repeated client id",
            "/api/calls?client_id=mallory-hook&client_id=arroyo",
            &[404],
        ),
        (
            "A's retention policy",
            "/api/privacy/retention?account=acme-leads",
            &[403],
        ),
        (
            "A's erasure receipts",
            "/api/privacy/erasures?account=acme-leads",
            &[403],
        ),
        ("A's audit trail", "/api/audit?account=acme-leads", &[403]),
        ("the operators' view", "/api/ops", &[403]),
    ] {
        refused(what, http.get(&api_get(path), B).await, expected);
    }
    // Nor set A's retention policy (which would hash or delete A's data).
    refused(
        "a retention policy for A's account",
        http.send(
            http.client
                .put(api_get("/api/privacy/retention"))
                .json(&json!({"account": "acme-leads", "personal_days": 60})),
            Some(B),
        )
        .await,
        &[403],
    );
    // Nor erase a caller of A's (which would rewrite A's calls and audit trail).
    refused(
        "an erasure in A's account",
        http.send(
            http.client
                .post(api_get("/api/privacy/erasures"))
                .json(&json!({"account": "acme-leads", "number": "(415) 555-2671"})),
            Some(B),
        )
        .await,
        &[403],
    );
    // Nor lift a suppression of A's (which would bring a number A had withheld back).
    refused(
        "a suppression lift in A's account",
        http.send(
            http.client
                .post(api_get("/api/privacy/suppression-lifts"))
                .json(&json!({"account": "acme-leads", "number": "(415) 555-2671"})),
            Some(B),
        )
        .await,
        &[403],
    );
    // Control for the refusals row above: the route exists and answers A (a 404 for
    // B is then the wall, not a missing route).
    let (status, refusals) = http
        .get(&api_get("/api/integrations/arroyo/refusals"), A)
        .await;
    assert!(
        status == 200 && refusals.contains("\"client_id\":\"arroyo\""),
        "control: A reads its own refusals: {status} {refusals}"
    );
    // A's call's story: by A's client id, and by B's own client id with A's call id.
    let a_call = schemas::CallId::from_external(
        &schemas::ClientId::parse("arroyo").unwrap(),
        "hostile_a_call",
    );
    for (what, client) in [
        ("story of A's call by A's client id", "arroyo"),
        ("story of A's call under B's client id", "mallory-hook"),
    ] {
        let path = format!("/api/calls/{a_call}/story?client_id={client}");
        let (status, body) = http.get(&api_get(&path), B).await;
        assert_eq!(status, 404, "{what}: {body}");
        nothing_of_a(what, &body);
    }
    let (status, story) = http
        .get(
            &api_get(&format!("/api/calls/{a_call}/story?client_id=arroyo")),
            A,
        )
        .await;
    assert!(
        status == 200 && story.contains("hostile_a_call"),
        "control: A reads its own call's story: {status} {story}"
    );
    // Unfiltered reads answer, with B's rows only.
    for (what, path) in [
        ("calls", "/api/calls?limit=100"),
        ("export", "/api/calls/export.csv"),
        (
            "aggregates",
            "/api/aggregates?from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z&group_by=client_id",
        ),
        ("dead letters", "/api/dead-letters?limit=100"),
        ("dead-letter groups", "/api/dead-letters/groups"),
        // Crafted values, bound or escaped: still only B's rows.
        (
            "dead letters of a crafted reason group",
            "/api/dead-letters?reason_group=x%27%20OR%201%3D1%20--%20",
        ),
        (
            "aggregates of a crafted campaign",
            "/api/aggregates?campaign=x%27%20OR%20%271%27%3D%271&from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z&group_by=client_id",
        ),
        ("integrations", "/api/integrations"),
    ] {
        let (status, body) = http.get(&api_get(path), B).await;
        assert_eq!(status, 200, "{what}: {body}");
        nothing_of_a_at_all(what, &body);
    }
    let (_, a_groups) = http.get(&api_get("/api/dead-letters/groups"), A).await;
    assert!(
        json_of(&a_groups)["groups"][0]["client_id"] == "arroyo",
        "control: A's dead-letter groups have A's letter: {a_groups}"
    );
    // Replays: B cannot start one of A's integration, nor read A's job.
    refused(
        "replay A's integration",
        http.post(&api_get("/api/integrations/arroyo/replay"), B, json!({}))
            .await,
        &[404],
    );
    let (status, job) = http
        .post(&api_get("/api/integrations/arroyo/replay"), A, json!({}))
        .await;
    assert_eq!(status, 202, "control: A replays its own integration: {job}");
    let job = json_of(&job)["id"].as_str().unwrap().to_owned();
    refused(
        "A's replay job",
        http.get(&api_get(&format!("/api/replays/{job}")), B).await,
        &[404],
    );
    let (status, a_job) = http.get(&api_get(&format!("/api/replays/{job}")), A).await;
    assert_eq!(status, 200, "control: A reads its replay: {a_job}");
    let (_, a_sees) = http.get(&api_get("/api/calls/export.csv"), A).await;
    assert!(
        a_sees.contains("hostile_a_call"),
        "control: A's export has A's call"
    );

    // ---- Writes and drafts naming A's client ids.
    let arroyo_as_b = sample_integration("arroyo", |value| {
        value["account"] = json!("mallory");
        value["version"] = json!(99);
    });
    let draft = serde_json::to_value(&arroyo_as_b).unwrap();
    refused(
        "take over A's client id",
        http.post(&api_get("/api/integrations"), B, draft.clone())
            .await,
        &[403],
    );
    refused(
        "a draft on A's client id replays A's recent payloads",
        http.post(
            &api_get("/api/mappings/preview"),
            B,
            json!({"integration": draft, "recent": true}),
        )
        .await,
        &[403],
    );
    let mut draft_as_a = draft.clone();
    draft_as_a["account"] = json!("acme-leads");
    refused(
        "a draft for A's account",
        http.post(
            &api_get("/api/mappings/preview"),
            B,
            json!({"integration": draft_as_a, "recent": true}),
        )
        .await,
        &[403],
    );
    refused(
        "preview of A's saved integration",
        http.post(
            &api_get("/api/mappings/preview"),
            B,
            json!({"client_id": "arroyo", "recent": true}),
        )
        .await,
        &[404],
    );
    for (what, request) in [
        (
            "enable A's",
            http.client.post(api_get("/api/integrations/arroyo/enable")),
        ),
        (
            "disable A's",
            http.client
                .post(api_get("/api/integrations/arroyo/disable")),
        ),
        (
            "delete A's",
            http.client.delete(api_get("/api/integrations/arroyo")),
        ),
    ] {
        refused(what, http.send(request, Some(B)).await, &[404]);
    }

    // ---- A deletes an integration: its id stays A's.
    let (status, body) = http
        .send(
            http.client
                .delete(api_get("/api/integrations/legacy-sheet")),
            Some(A),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let reuse = sample_integration("legacy-sheet", |value| {
        value["account"] = json!("mallory");
        value["version"] = json!(50);
    });
    let reuse = serde_json::to_value(&reuse).unwrap();
    refused(
        "reuse A's deleted client id",
        http.post(&api_get("/api/integrations"), B, reuse.clone())
            .await,
        &[403],
    );
    refused(
        "even an admin gives it to B",
        http.post(&api_get("/api/integrations"), ADMIN, reuse).await,
        &[403],
    );
    refused(
        "dead letters of A's deleted id",
        http.get(&api_get("/api/dead-letters?client_id=legacy-sheet"), B)
            .await,
        &[404],
    );
    let (status, _) = http
        .get(&api_get("/api/dead-letters?client_id=legacy-sheet"), A)
        .await;
    assert_eq!(
        status, 200,
        "A still reads its deleted integration's dead letters"
    );

    // ---- Ingest's own endpoints.
    refused(
        "import into A's integration",
        http.send(
            http.client
                .post(ingest.url("/api/integrations/arroyo/imports"))
                .header("content-type", "text/csv")
                .body("a,b\n1,2\n"),
            Some(B),
        )
        .await,
        &[404],
    );
    refused(
        "A's import status",
        http.get(&ingest.url(&format!("/api/imports/{a_import}")), B)
            .await,
        &[404],
    );
    refused(
        "poll A's integration now",
        http.post(
            &ingest.url("/api/integrations/ringpartner/poll"),
            B,
            json!({}),
        )
        .await,
        &[404],
    );
    // A poll test sends A's stored credentials to A's partner and shows the answer:
    // B may not run one, with A's poll or with a draft of B's own aimed elsewhere.
    for (what, body) in [
        ("test A's poll", json!({})),
        (
            "test a draft poll on A's integration",
            json!({"poll": {"interval_s": 60, "url": "https://partner.example/calls",
                            "cursor_field": "u", "initial_since": "2026-11-01T00:00:00Z"}}),
        ),
    ] {
        refused(
            what,
            http.post(
                &ingest.url("/api/integrations/ringpartner/poll/test"),
                B,
                body.clone(),
            )
            .await,
            &[404],
        );
        refused(
            &format!("{what}, through the api"),
            http.post(&api.url("/api/integrations/ringpartner/poll/test"), B, body)
                .await,
            &[404],
        );
    }
    let (status, answer) = http
        .post(
            &api.url("/api/integrations/ringpartner/poll/test"),
            A,
            json!({}),
        )
        .await;
    assert_ne!(
        status, 404,
        "control: A's own poll test passes the scope check: {answer}"
    );
    refused(
        "imports without a token",
        http.send(
            http.client
                .post(ingest.url("/api/integrations/mallory-hook/imports"))
                .header("content-type", "text/csv")
                .body("a\n"),
            None,
        )
        .await,
        &[401],
    );
    refused(
        "polls without a token",
        http.send(http.client.get(ingest.url("/api/polls")), None)
            .await,
        &[401],
    );
    let (status, health) = http
        .send(http.client.get(ingest.url("/healthz")), None)
        .await;
    assert_eq!(status, 200);
    assert!(
        json_of(&health).get("integrations").is_none(),
        "healthz lists client ids only to an admin: {health}"
    );
    let (_, health) = http.get(&ingest.url("/healthz"), ADMIN).await;
    assert!(
        health.contains("arroyo"),
        "control: the admin sees them: {health}"
    );

    // ---- Imports from our own network.
    let api_port = api.port;
    for url in [
        format!("http://127.0.0.1:{api_port}/api/calls"),
        format!("http://127.0.0.1:{ch_port}/?query=SELECT%20%27{marker}_import%27"),
        format!("http://2130706433:{ch_port}/"),
        "http://192.168.1.1/sheet.csv".to_owned(),
        "http://[::ffff:127.0.0.1]:8081/".to_owned(),
    ] {
        let (status, body) = http
            .post(
                &ingest.url("/api/integrations/mallory-hook/imports"),
                B,
                json!({"url": url}),
            )
            .await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(
            json_of(&body)["error"]["code"],
            "url_refused",
            "{url}: {body}"
        );
    }
    let (status, body) = http
        .post(
            &ingest.url("/api/integrations/mallory-hook/imports"),
            B,
            json!({"url": format!("{}/redirect.csv", partner.base_url)}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let b_import = json_of(&body)["import_id"].as_str().unwrap().to_owned();
    let import = eventually(
        "B's redirected import to end",
        Duration::from_secs(30),
        || async {
            let (_, body) = http
                .get(&ingest.url(&format!("/api/imports/{b_import}")), B)
                .await;
            let status = json_of(&body);
            (status["state"] != "running").then_some(status)
        },
    )
    .await;
    assert_eq!(import["state"], "failed", "{import}");
    assert!(
        import["error"].as_str().unwrap().contains("loopback"),
        "{import}"
    );
    assert_eq!(
        http.get(&ingest.url(&format!("/api/imports/{b_import}")), A)
            .await
            .0,
        404,
        "B's import is not A's to read either"
    );

    // ---- Polls aimed at our network: each run fails with its reason.
    let polls = eventually(
        "every poll of B's to have run",
        Duration::from_secs(60),
        || async {
            let (_, body) = http.get(&ingest.url("/api/polls"), B).await;
            let polls = json_of(&body)["polls"].as_array()?.clone();
            let done = polls.iter().filter(|p| p["last_ok"].is_boolean()).count();
            (done == attempts.len()).then_some((polls, body))
        },
    )
    .await;
    nothing_of_a_at_all("B's poll statuses", &polls.1);
    assert!(
        !polls.1.contains(SECRET),
        "poll statuses show a secret: {}",
        polls.1
    );
    let reason = |client: &str| {
        polls.0.iter().find(|p| p["client_id"] == client).unwrap()["last_error"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for (client, expected) in [
        ("m-clickhouse", "loopback"),
        ("m-api", "loopback"),
        ("m-private", "private network"),
        ("m-metadata", "link-local"),
        ("m-redirect", "loopback"),
        ("m-next", "origin"),
        ("m-secret", "500"),
    ] {
        let error = reason(client);
        assert!(error.contains(expected), "{client}: {error}");
    }
    let elsewhere_run = polls
        .0
        .iter()
        .find(|p| p["client_id"] == "m-elsewhere")
        .unwrap();
    assert_eq!(
        elsewhere_run["last_ok"], true,
        "a redirect to an allowed origin is followed: {elsewhere_run}"
    );
    // The redirect to another origin reached it without B's credentials.
    let landed = elsewhere.requests();
    assert!(!landed.is_empty(), "control: the redirect was followed");
    for request in &landed {
        let lower = request.to_ascii_lowercase();
        assert!(
            !lower.contains("authorization")
                && !lower.contains("x-api-key")
                && !request.contains(SECRET),
            "credentials crossed origins: {request}"
        );
    }
    // The partner's own host got them (control).
    assert!(partner
        .requests()
        .iter()
        .any(|r| r.contains(&format!("hdr_{SECRET}"))));

    // Secrets stay out of the api's listing (with its poll health) and B's events.
    let (_, listing) = http.get(&api_get("/api/integrations"), B).await;
    assert!(
        !listing.contains(SECRET) && !listing.contains(ADMIN),
        "listing shows a secret: {listing}"
    );
    assert!(
        listing.contains("m-secret"),
        "control: B sees its own integrations"
    );

    // ---- B's live stream carried nothing of A's: A posts, then B posts; B's first
    // call event is B's own, and nothing before it was A's.
    http.send(
        http.client
            .post(ingest.url("/api/integrations/webhook/arroyo"))
            .header("content-type", "application/json")
            .body(json!({"call": {"id": "hostile_a_call_2", "caller": {"number": "3125550151"}, "started_at": "2026-11-21T11:00:00Z"}}).to_string()),
        None,
    )
    .await;
    http.send(
        http.client
            .post(ingest.url("/api/integrations/webhook/mallory-hook"))
            .header("content-type", "application/json")
            .body(json!({"call": {"id": "b_call", "caller": {"number": "3125550152"}, "started_at": "2026-11-21T12:00:00Z"}}).to_string()),
        None,
    )
    .await;
    loop {
        let event = tokio::time::timeout(Duration::from_secs(60), b_events.next_event())
            .await
            .expect("B's own call within 60 s")
            .expect("stream open");
        nothing_of_a_at_all("B's event stream", &event.data);
        assert!(
            !event.data.contains(SECRET),
            "an event shows a secret: {}",
            event.data
        );
        if event.event == "call.created" && event.data.contains("b_call") {
            break;
        }
    }

    // ---- No attempt reached ClickHouse as a query; a control query did.
    let writer = env.clickhouse.server_client();
    writer
        .query(&format!("SELECT '{marker}_control'"))
        .fetch_all::<String>()
        .await
        .unwrap();
    let logged = |pattern: String| {
        let writer = writer.clone();
        async move {
            writer.query("SYSTEM FLUSH LOGS").execute().await.unwrap();
            writer
                .query("SELECT count() FROM system.query_log WHERE query LIKE ? AND query NOT LIKE '%system.query_log%'")
                .bind(pattern)
                .fetch_one::<u64>()
                .await
                .unwrap()
        }
    };
    // The server logs a query as it finishes it, which can be after its answer and
    // after one flush (seen once in a CI rehearsal). Everything the attempts sent
    // came before the control, so once the control is logged, they are too.
    eventually(
        "the control query in query_log",
        Duration::from_secs(30),
        || async { (logged(format!("%{marker}_control%")).await >= 1).then_some(()) },
    )
    .await;
    assert_eq!(
        logged(format!("%{marker}_direct%")).await,
        0,
        "the direct poll reached ClickHouse"
    );
    assert_eq!(
        logged(format!("%{marker}_redirect%")).await,
        0,
        "the redirect reached ClickHouse"
    );
    assert_eq!(
        logged(format!("%{marker}_next%")).await,
        0,
        "the next_url reached ClickHouse"
    );
    assert_eq!(
        logged(format!("%{marker}_import%")).await,
        0,
        "the import reached ClickHouse"
    );
}

/// An idempotency key is bound to its body: a retry with the same body gets the
/// original answer, the same key with another body is a 409, and the changed record
/// is not silently dropped as a "retry".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_id_reused_with_another_body_is_a_conflict() {
    let env = TestEnv::new("idem").await;
    let ingest = env.start("ingest", &[]).await;
    let post = |body: String| {
        let url = ingest.url("/api/integrations/webhook/arroyo");
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .header("idempotency-key", "delivery-42")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, json_of(&response.text().await.unwrap()))
        }
    };
    let first = json!({"call": {"id": "idem_1", "caller": {"number": "3125550150"}, "started_at": "2026-11-21T10:00:00Z"}}).to_string();
    let changed = first.replace("10:00:00", "10:05:00");
    let (status, original) = post(first.clone()).await;
    assert_eq!(status, 202, "{original}");
    let (status, again) = post(first).await;
    assert_eq!(
        (status, &again),
        (200, &original),
        "a retry gets the original answer"
    );
    let (status, conflict) = post(changed).await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["error"]["code"], "idempotency_conflict");
    assert!(conflict["error"]["message"]
        .as_str()
        .unwrap()
        .contains("delivery-42"));
}

/// ClickHouse has no password-less user: a stray request (from a URL an account got
/// fetched, or any process here) can neither read nor write; the api's read-only
/// user cannot write or drop; the pipeline's writer can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_answers_only_its_users_and_the_reader_cannot_write() {
    let env = TestEnv::new("chusers").await;
    let http = reqwest::Client::new();
    let run = |user: Option<(&'static str, String)>, sql: String| {
        let mut request = http.post(format!("{}/", env.clickhouse.url)).body(sql);
        if let Some((user, password)) = user {
            request = request.basic_auth(user, Some(password));
        }
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.text().await.unwrap_or_default(),
            )
        }
    };
    let db = &env.clickhouse.database;
    let writer = || Some(("callmatrix_writer", env.clickhouse.password.clone()));
    let reader = || Some(("callmatrix_reader", integration_tests::reader_password()));
    let analyst = || Some(("callmatrix_analyst", integration_tests::analyst_password()));

    let (status, body) = run(None, "SELECT 1".into()).await;
    assert_ne!(status, 200, "an anonymous request is answered: {body}");
    let (status, body) = run(None, format!("DROP TABLE {db}.calls")).await;
    assert_ne!(status, 200, "an anonymous DROP: {body}");
    let (status, body) = run(
        Some(("callmatrix_writer", "wrong-password".into())),
        "SELECT 1".into(),
    )
    .await;
    assert_ne!(status, 200, "a wrong password: {body}");

    let (status, body) = run(reader(), format!("SELECT count() FROM {db}.calls")).await;
    assert_eq!(status, 200, "the reader reads: {body}");
    for sql in [
        format!("INSERT INTO {db}.dead_letters (client_id) VALUES ('x')"),
        format!("DROP TABLE {db}.calls"),
        format!("CREATE TABLE {db}.evil (x UInt8) ENGINE = Memory"),
        format!("ALTER TABLE {db}.calls DELETE WHERE 1"),
    ] {
        let (status, body) = run(reader(), sql.clone()).await;
        assert_ne!(status, 200, "the reader ran {sql}: {body}");
        let (status, body) = run(analyst(), sql.clone()).await;
        assert_ne!(status, 200, "the analyst ran {sql}: {body}");
    }
    let (status, body) = run(analyst(), format!("SELECT count() FROM {db}.calls")).await;
    assert_eq!(status, 200, "the analyst reads: {body}");
    // Neither reader may raise its own limits (readonly 1: no setting changes).
    for user in [reader(), analyst()] {
        let (status, body) = run(
            user,
            "SELECT 1 SETTINGS max_concurrent_queries_for_user = 1000".into(),
        )
        .await;
        assert_ne!(status, 200, "a reader changed its own limit: {body}");
    }
    let (status, body) = run(writer(), format!("SELECT count() FROM {db}.calls")).await;
    assert_eq!(status, 200, "the writer reads: {body}");
    let (status, body) = run(writer(), format!("EXISTS TABLE {db}.calls")).await;
    assert_eq!(
        (status, body.trim()),
        (200, "1"),
        "calls survived every attempt"
    );
}
