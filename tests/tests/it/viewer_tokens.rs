//! Issue 36's viewer role on the real stack: a viewer token of acme-leads reads its
//! account through every GET route the api serves (the list comes from
//! docs/openapi.json, so a new route cannot skip this test) and the event stream,
//! and no answer holds a caller's full number in any spelling; calls show the last
//! four digits. A viewer changes nothing (every write route answers 403), and does
//! not see partners' records as sent (dead-letter payloads, refusals, a story's raw
//! records). The account token of the same account, as a control, sees the full
//! numbers: the masking is the viewer's, and the numbers are there to be masked.

use std::time::Duration;

use integration_tests::sse::SseReader;
use integration_tests::{eventually, repo_root, TestEnv};
use serde_json::{json, Value};

const ADMIN: &str = "adm_viewer_test_0123456789abcdef";
const MANAGER: &str = "acm_viewer_test_0123456789abcdef";
const VIEWER: &str = "vwr_viewer_test_0123456789abcdef";

/// The callers of this test, in the spellings a leak could take.
fn spellings(national: &str) -> Vec<String> {
    let (a, b, c) = (&national[..3], &national[3..6], &national[6..]);
    vec![
        format!("+1{national}"),
        national.to_owned(),
        format!("({a}) {b}-{c}"),
        format!("{a}-{b}-{c}"),
        format!("{a}.{b}.{c}"),
        format!("{a} {b} {c}"),
    ]
}

const CALLERS: [&str; 3] = ["3125550150", "3125550151", "3125550152"];

fn leaks(text: &str) -> Vec<String> {
    CALLERS
        .iter()
        .flat_map(|n| spellings(n))
        .filter(|s| text.contains(s.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_no_full_number_on_any_route_and_changes_nothing() {
    let env = TestEnv::new("viewer").await;
    let tokens = tempfile::tempdir().unwrap();
    let tokens_file = tokens.path().join("tokens.json");
    std::fs::write(
        &tokens_file,
        json!({"admin": [ADMIN], "accounts": {"acme-leads": [MANAGER]},
               "viewers": {"acme-leads": [VIEWER]}})
        .to_string(),
    )
    .unwrap();
    let tokens_path = tokens_file.to_str().unwrap();
    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "20")])
        .await;
    let ingest = env
        .start("ingest", &[("INGEST_AUTH__TOKENS_FILE", tokens_path)])
        .await;
    let api = env
        .start("api", &[("API_AUTH__TOKENS_FILE", tokens_path)])
        .await;
    let mut events =
        SseReader::connect(&api.url(&format!("/api/events?access_token={VIEWER}"))).await;
    let http = reqwest::Client::new();
    let get = |path: String, token: &'static str| {
        let http = http.clone();
        let url = api.url(&path);
        async move {
            let response = http.get(url).bearer_auth(token).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };

    // acme-leads' calls (arroyo): two callers, one of them twice (a repeat), one
    // number in the warnings (a `called` the mapping cannot read), and a record the
    // mapping refuses (a dead letter holding the third caller).
    let post = |body: Value| {
        let ingest = &ingest;
        async move {
            let (status, answer) = ingest
                .post_webhook("arroyo", "application/json", body.to_string())
                .await;
            assert_eq!(status, 202, "{answer}");
        }
    };
    let at = |minutes: i64| {
        (chrono::Utc::now() - chrono::Duration::minutes(minutes))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    post(json!({"call": {"id": "view_1", "caller": {"number": "(312) 555-0150"}, "started_at": at(90), "payout": "10.00"}})).await;
    post(json!({"call": {"id": "view_2", "caller": {"number": "312.555.0150"}, "started_at": at(60), "payout": "10.00"}})).await;
    post(
        json!({"call": {"id": "view_3", "caller": {"number": "+13125550151"}, "started_at": at(30),
                          "tracking_number": "312 555 0151 x", "payout": "10.00"}}),
    )
    .await;
    post(json!({"call": {"id": "view_dead", "caller": {"number": "312-555-0152"}, "started_at": "not a time"}})).await;

    let calls: Value = eventually("the three calls", Duration::from_secs(60), || async {
        let (_, text) = get("/api/calls?client_id=arroyo&limit=50".into(), MANAGER).await;
        let page: Value = serde_json::from_str(&text).ok()?;
        let ids: Vec<&str> = page["calls"]
            .as_array()?
            .iter()
            .filter_map(|c| c["external_id"].as_str())
            .collect();
        (ids.contains(&"view_1") && ids.contains(&"view_2") && ids.contains(&"view_3"))
            .then_some(page)
    })
    .await;
    // The control: the account manager's token sees the numbers in full.
    assert!(
        !leaks(&calls.to_string()).is_empty(),
        "the control sees no number: {calls}"
    );
    let call_id = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["external_id"] == "view_2")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually("the dead letter", Duration::from_secs(60), || async {
        let (_, text) = get("/api/dead-letters/groups".into(), MANAGER).await;
        text.contains("arroyo").then_some(())
    })
    .await;

    // Every GET route of the api, as docs/openapi.json lists them.
    let openapi: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("docs/openapi.json")).unwrap(),
    )
    .unwrap();
    let mut visited = Vec::new();
    for (path, operations) in openapi["paths"].as_object().unwrap() {
        let Some(get_op) = operations.get("get") else {
            continue;
        };
        let served_by = get_op
            .get("x-served-by")
            .or_else(|| operations.get("x-served-by"));
        if !served_by.is_some_and(|s| s.to_string().contains("\"api\"")) {
            continue;
        }
        let concrete = match path.as_str() {
            "/api/calls" => "/api/calls?client_id=arroyo&limit=50".to_owned(),
            "/api/calls/export.csv" => "/api/calls/export.csv?client_id=arroyo".to_owned(),
            "/api/calls/{id}/story" => format!("/api/calls/{call_id}/story?client_id=arroyo"),
            "/api/aggregates" => "/api/aggregates?group_by=client_id,status&bucket=none".to_owned(),
            "/api/replays/{id}" => "/api/replays/00000000-0000-0000-0000-000000000000".to_owned(),
            "/api/integrations/{clientId}/refusals" => {
                "/api/integrations/arroyo/refusals".to_owned()
            }
            // The stream: read below.
            "/api/events" => {
                visited.push(path.clone());
                continue;
            }
            other => other.to_owned(),
        };
        let (status, text) = get(concrete.clone(), VIEWER).await;
        assert!(
            leaks(&text).is_empty(),
            "{concrete} ({status}) shows {:?}: {text}",
            leaks(&text)
        );
        match path.as_str() {
            "/api/calls" | "/api/calls/export.csv" | "/api/calls/{id}/story" => {
                assert_eq!(status, 200, "{concrete}: {text}");
                assert!(
                    text.contains("*******0150"),
                    "{concrete}: the last four are shown: {text}"
                );
            }
            "/api/dead-letters" | "/api/integrations/{clientId}/refusals" => {
                assert_eq!(
                    status, 403,
                    "{concrete}: payloads are not a viewer's: {text}"
                );
                assert!(text.contains("read_only_token"), "{text}");
            }
            "/api/replays/{id}" => assert_eq!(status, 404, "{concrete}: {text}"),
            // Operators' view: admin tokens only.
            "/api/ops" => {
                assert_eq!(status, 403, "{concrete}: {text}");
                assert!(text.contains("admin_only"), "{text}");
            }
            _ => assert_eq!(status, 200, "{concrete}: {text}"),
        }
        if path == "/api/calls/{id}/story" {
            let story: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                story["raw"][0]["unavailable"], "not shown to a viewer token",
                "{story}"
            );
            assert!(story["decisions"].to_string().contains("0150"), "{story}");
        }
        visited.push(path.clone());
    }
    for route in [
        "/api/calls",
        "/api/calls/export.csv",
        "/api/calls/{id}/story",
        "/api/aggregates",
        "/api/dead-letters",
        "/api/dead-letters/groups",
        "/api/integrations",
        "/api/replays/{id}",
        "/api/integrations/{clientId}/refusals",
        "/api/events",
        "/healthz",
        "/metrics",
        "/",
    ] {
        assert!(
            visited.iter().any(|v| v == route),
            "{route} not visited: {visited:?}"
        );
    }

    // The event stream as the viewer: the calls arrived masked.
    let mut seen = 0;
    while seen < 3 {
        let event = tokio::time::timeout(Duration::from_secs(30), events.next_event())
            .await
            .expect("the viewer's stream went quiet")
            .expect("the viewer's stream ended");
        assert!(
            leaks(&event.data).is_empty(),
            "an event shows a number: {}",
            event.data
        );
        if event.event.starts_with("call.") {
            assert!(event.data.contains("*******015"), "{}", event.data);
            seen += 1;
        }
    }

    // A viewer changes nothing: every write answers 403 before it runs.
    let writes = [
        (
            reqwest::Method::POST,
            api.url("/api/integrations"),
            json!({"client_id": "arroyo"}),
        ),
        (
            reqwest::Method::POST,
            api.url("/api/integrations/arroyo/disable"),
            json!({}),
        ),
        (
            reqwest::Method::POST,
            api.url("/api/integrations/arroyo/replay"),
            json!({}),
        ),
        (
            reqwest::Method::POST,
            api.url("/api/mappings/preview"),
            json!({"client_id": "arroyo", "records": []}),
        ),
        (
            reqwest::Method::DELETE,
            api.url("/api/integrations/arroyo"),
            json!({}),
        ),
        (
            reqwest::Method::POST,
            api.url("/api/privacy/erasures"),
            json!({"number": "4155550123"}),
        ),
        (
            reqwest::Method::POST,
            api.url("/api/privacy/suppression-lifts"),
            json!({"number": "4155550123"}),
        ),
        (
            reqwest::Method::POST,
            ingest.url("/api/integrations/arroyo/imports"),
            json!({}),
        ),
        (
            reqwest::Method::POST,
            ingest.url("/api/integrations/arroyo/poll"),
            json!({}),
        ),
    ];
    for (method, url, body) in writes {
        let response = http
            .request(method.clone(), &url)
            .bearer_auth(VIEWER)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, 403, "{method} {url}: {text}");
        assert!(text.contains("read_only_token"), "{method} {url}: {text}");
    }
    // Still enabled: the refused disable did not run.
    let (_, listed) = get("/api/integrations".into(), MANAGER).await;
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let arroyo = listed["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["integration"]["client_id"] == "arroyo")
        .unwrap()
        .clone();
    assert_eq!(arroyo["integration"]["enabled"], true, "{arroyo}");
}
