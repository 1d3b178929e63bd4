//! Issue 36, item 5: the demo's flow through the real binaries (webhooks of the
//! arroyo sample, the legacy sheet imported, a record refused, a signed partner, a
//! viewer and an account reading calls, a story, the export, aggregates and the event
//! stream) with every binary logging at debug level into a file; then every log line,
//! every metric of the three binaries and every event is searched for the sample
//! callers' numbers (each in the spellings a leak could take) and for the secrets
//! (api tokens, the partner's webhook secret, ClickHouse's password). None may appear,
//! except a caller's number in the event fields that carry it by contract (`caller`,
//! `called`, and `warnings`, which quote a value the mapping could not read).

use std::path::Path;
use std::time::Duration;

use integration_tests::sse::SseReader;
use integration_tests::{eventually, fixture, TestEnv};
use serde_json::{json, Value};

const ADMIN: &str = "adm_logs_test_0123456789abcdefgh";
const ACCOUNT: &str = "acm_logs_test_0123456789abcdefgh";
const VIEWER: &str = "vwr_logs_test_0123456789abcdefgh";
const WEBHOOK_SECRET: &str = "whk_logs_test_secret_0123456789abcdef";

/// National numbers of the demo's callers (the arroyo sample, the legacy sheet) and
/// of this test's own.
const CALLERS: [&str; 6] = [
    "4155552671",
    "3125550142",
    "2125550187",
    "6175550123",
    "3125550160",
    "3125550161",
];

fn spellings(national: &str) -> Vec<String> {
    let (a, b, c) = (&national[..3], &national[3..6], &national[6..]);
    vec![
        format!("+1{national}"),
        national.to_owned(),
        format!("({a}) {b}-{c}"),
        format!("{a}-{b}-{c}"),
        format!("{a}.{b}.{c}"),
        format!("{a} {b} {c}"),
        format!("+1 {a} {b} {c}"),
    ]
}

/// Every number and secret in `text`, by what it is.
fn found(text: &str, secrets: &[&str]) -> Vec<String> {
    let numbers = CALLERS
        .iter()
        .flat_map(|n| spellings(n))
        .filter(|s| text.contains(s.as_str()));
    let secrets = secrets
        .iter()
        .filter(|s| text.contains(**s))
        .map(|s| format!("secret {}…", &s[..6]));
    numbers.chain(secrets).collect()
}

/// The lines of a log that hold a number or a secret.
fn leaking_lines(log: &Path, secrets: &[&str]) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| !found(line, secrets).is_empty())
        .map(|line| format!("{}: {line}", log.file_name().unwrap().to_string_lossy()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_line_metric_or_event_shows_a_callers_number_or_a_secret() {
    let env = TestEnv::new("leaks").await;
    let dir = tempfile::tempdir().unwrap();
    let tokens_file = dir.path().join("tokens.json");
    std::fs::write(
        &tokens_file,
        json!({"admin": [ADMIN], "accounts": {"acme-leads": [ACCOUNT]}, "viewers": {"acme-leads": [VIEWER]}})
            .to_string(),
    )
    .unwrap();
    let tokens_path = tokens_file.to_str().unwrap();
    let password = env.clickhouse.password.clone();
    let reader_password = std::env::var("CM_TEST_CLICKHOUSE_READER_PASSWORD").unwrap_or_default();
    let mut secrets = vec![ADMIN, ACCOUNT, VIEWER, WEBHOOK_SECRET];
    for p in [password.as_str(), reader_password.as_str()] {
        if p.len() >= 8 {
            secrets.push(p);
        }
    }
    // Debug for our crates; the libraries' info.
    let level =
        "info,ingest=debug,processor=debug,api=debug,runtime=debug,engine=debug,schemas=debug";
    let logs: Vec<_> = ["processor", "ingest", "api"]
        .iter()
        .map(|b| dir.path().join(format!("{b}.log")))
        .collect();
    integration_tests::load_callmatrix_samples(&env).await;
    let processor = env
        .start_logged(
            "processor",
            &[("PROCESSOR_BATCH__MAX_WAIT_MS", "20")],
            level,
            &logs[0],
        )
        .await;
    let ingest = env
        .start_logged(
            "ingest",
            &[("INGEST_AUTH__TOKENS_FILE", tokens_path)],
            level,
            &logs[1],
        )
        .await;
    let api = env
        .start_logged(
            "api",
            &[("API_AUTH__TOKENS_FILE", tokens_path)],
            level,
            &logs[2],
        )
        .await;
    let http = reqwest::Client::new();
    // The stream, as an account reads it (the token in the URL, as a browser's
    // EventSource sends it: it must not reach a log line).
    let mut events =
        SseReader::connect(&api.url(&format!("/api/events?access_token={ACCOUNT}"))).await;

    // A partner that signs with a bearer secret.
    let signed = integration_tests::sample_integration("arroyo", |v| {
        v["client_id"] = json!("signed-partner");
        v["auth"] = json!({"scheme": "bearer", "tokens": [WEBHOOK_SECRET]});
    });
    let created = http
        .post(api.url("/api/integrations"))
        .bearer_auth(ACCOUNT)
        .json(&signed)
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.status(),
        201,
        "{}",
        created.text().await.unwrap_or_default()
    );

    // The demo's records: the arroyo sample, the legacy sheet, and this test's own
    // (one signed, one the mapping refuses, one with a bad signature).
    let samples: Vec<Value> = serde_json::from_str(&fixture("arroyo-webhook.json")).unwrap();
    for sample in &samples {
        let (status, answer) = ingest
            .post_webhook("arroyo", "application/json", sample.to_string())
            .await;
        assert_eq!(status, 202, "{answer}");
    }
    let posted = |client: &'static str, body: Value, secret: &'static str| {
        let http = http.clone();
        let url = ingest.url(&format!("/api/integrations/webhook/{client}"));
        async move {
            http.post(url)
                .bearer_auth(secret)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let good = json!({"call": {"id": "leak_1", "caller": {"number": "(312) 555-0160"}, "started_at": now, "payout": "10.00"}});
    // Ingest serves the new integration once it read it (404 until then); a
    // delivery again is the same record.
    eventually(
        "ingest to take signed-partner's records",
        Duration::from_secs(30),
        || async {
            (posted("signed-partner", good.clone(), WEBHOOK_SECRET).await == 202).then_some(())
        },
    )
    .await;
    let refused = json!({"call": {"id": "leak_2", "caller": {"number": "312.555.0161"}, "started_at": "not a time"}});
    assert_eq!(posted("signed-partner", refused, WEBHOOK_SECRET).await, 202);
    let unsigned =
        json!({"call": {"id": "leak_3", "caller": {"number": "312-555-0161"}, "started_at": now}});
    assert_eq!(
        posted(
            "signed-partner",
            unsigned,
            "not_the_secret_0123456789abcdef"
        )
        .await,
        401
    );
    let sheet = fixture("legacy-sheet.csv").replace('\n', "\r\n");
    let import = http
        .post(ingest.url("/api/integrations/legacy-sheet/imports"))
        .bearer_auth(ACCOUNT)
        .header("content-type", "text/csv")
        .body(sheet)
        .send()
        .await
        .unwrap();
    assert_eq!(
        import.status(),
        200,
        "{}",
        import.text().await.unwrap_or_default()
    );

    // Everything stored (arroyo's samples, the sheet's 4 good rows, leak_1).
    let calls: Value = eventually("the demo's calls", Duration::from_secs(90), || async {
        let page: Value = http
            .get(api.url("/api/calls?limit=100"))
            .bearer_auth(ACCOUNT)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let ids: Vec<&str> = page["calls"]
            .as_array()?
            .iter()
            .filter_map(|c| c["external_id"].as_str())
            .collect();
        (ids.contains(&"leak_1") && page["calls"].as_array()?.len() >= samples.len() + 4)
            .then_some(page)
    })
    .await;
    let first = &calls["calls"][0];
    // The reads a dashboard and an analyst make, as the account and as a viewer.
    for token in [ACCOUNT, VIEWER] {
        for path in [
            format!(
                "/api/calls/{}/story?client_id={}",
                first["id"].as_str().unwrap(),
                first["client_id"].as_str().unwrap()
            ),
            "/api/calls/export.csv".to_owned(),
            "/api/calls?caller=%28312%29%20555-0160".to_owned(),
            "/api/aggregates?group_by=client_id,status".to_owned(),
            "/api/dead-letters/groups".to_owned(),
            format!("/api/events?access_token={token}&limit=1"),
        ] {
            if path.starts_with("/api/events") {
                continue;
            }
            let status = http
                .get(api.url(&path))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status();
            assert!(status.is_success(), "{path}: {status}");
        }
    }
    // A bad token, in the header and in the query: refused, and never logged.
    let refused = http
        .get(api.url("/api/calls?access_token=tok_guess_0123456789abcdefgh"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(refused, 401);
    secrets.push("tok_guess_0123456789abcdefgh");

    // Events: read until leak_1's call arrived; numbers only where documented.
    let mut event_leaks = Vec::new();
    let mut saw_leak_1 = false;
    while !saw_leak_1 {
        let event = tokio::time::timeout(Duration::from_secs(60), events.next_event())
            .await
            .expect("the stream went quiet")
            .expect("the stream ended");
        saw_leak_1 |= event.data.contains("\"leak_1\"");
        let mut value: Value =
            serde_json::from_str(&event.data).unwrap_or(Value::String(event.data.clone()));
        if let Some(fields) = value.as_object_mut() {
            for documented in ["caller", "called", "warnings"] {
                fields.remove(documented);
            }
        }
        let text = value.to_string();
        event_leaks.extend(
            found(&text, &secrets)
                .into_iter()
                .map(|f| format!("{} {}: {f}", event.event, text)),
        );
    }
    assert!(event_leaks.is_empty(), "events: {event_leaks:#?}");

    // Metrics of the three binaries.
    for service in [&processor, &ingest, &api] {
        let text = http
            .get(service.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains("# TYPE"), "{}: {text}", service.name);
        let leaks = found(&text, &secrets);
        assert!(leaks.is_empty(), "{} metrics show {leaks:?}", service.name);
    }

    // Every log line, once the binaries wrote what this flow made them write.
    drop(events);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let lines: usize = logs
        .iter()
        .map(|l| {
            std::fs::read_to_string(l)
                .unwrap_or_default()
                .lines()
                .count()
        })
        .sum();
    assert!(
        lines > 50,
        "the binaries logged {lines} lines: the capture is not working"
    );
    let leaking: Vec<String> = logs
        .iter()
        .flat_map(|l| leaking_lines(l, &secrets))
        .collect();
    assert!(
        leaking.is_empty(),
        "{} log lines show a number or a secret:\n{}",
        leaking.len(),
        leaking.join("\n")
    );
}
