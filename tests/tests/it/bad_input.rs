//! Hostile and half-valid webhooks against the real edge: each gets an answer that
//! names the problem, good records in the same body are kept, and the bad ones are
//! listed by `/api/dead-letters` with their reason. The processes keep running.

use std::time::Duration;

use integration_tests::{eventually, final_count, TestEnv};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_webhooks_are_answered_and_dead_lettered() {
    let env = TestEnv::new("bad").await;
    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "50")])
        .await;
    let ingest = env
        .start("ingest", &[("INGEST_HTTP__BODY_LIMIT_BYTES", "4096")])
        .await;
    let api = env.start("api", &[]).await;
    let http = reqwest::Client::new();
    let webhook = |client: &str| ingest.url(&format!("/api/integrations/webhook/{client}"));
    let post = |url: String, content_type: &'static str, body: String| {
        let http = http.clone();
        async move {
            let response = http
                .post(url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };

    // An unknown integration is answered as a refused one: nothing says which exist.
    let (status, body) = post(webhook("nobody"), "application/json", "{}".into()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("not_accepted"))
    );
    let (status, _) = post(webhook("../etc"), "application/json", "{}".into()).await;
    assert_eq!(status, 404, "not a webhook path at all");
    let (status, body) = post(webhook("arroyo"), "text/csv", "a,b".into()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let (status, body) = post(
        webhook("arroyo"),
        "application/json",
        "[{\"a\":1},\n {\"b\" 2}]".into(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        (
            body["error"]["line"].as_u64(),
            body["error"]["column"].as_u64()
        ),
        (Some(2), Some(7))
    );
    let (status, body) = post(
        webhook("arroyo"),
        "application/json",
        format!("[{}]", "{},".repeat(3000)),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );

    // Half-valid NDJSON: one good call, one broken line, one call missing its caller.
    let body = [
        r#"{"call":{"id":"good_1","caller":{"number":"(415) 555-2671"},"started_at":"2026-11-20T14:03:22-08:00","payout":"$45.00"}}"#,
        r#"{"call": broken"#,
        r#"{"call":{"id":"no_caller","caller":{"number":"not provided"},"started_at":"yesterday"}}"#,
    ]
    .join("\n");
    let (status, answer) = post(webhook("arroyo"), "application/x-ndjson", body).await;
    assert_eq!(status, 202);
    assert_eq!(answer["accepted"], 2);
    assert_eq!(answer["rejected"][0]["index"], 1);
    assert_eq!(answer["rejected"][0]["line"], 2);

    let client = env.client();
    eventually("the good call", Duration::from_secs(60), || async {
        (final_count(&client, "arroyo").await == 1).then_some(())
    })
    .await;
    let letters = eventually("three dead letters", Duration::from_secs(60), || async {
        let body: Value = http
            .get(api.url("/api/dead-letters?client_id=arroyo"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let letters = body["dead_letters"].as_array()?.clone();
        (letters.len() >= 3).then_some(letters)
    })
    .await;
    let mapping = letters
        .iter()
        .find(|l| l["stage"] == "mapping")
        .expect("a mapping dead letter");
    let errors: Vec<&str> = mapping["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        errors.iter().any(
            |e| e.starts_with("caller (path call.caller.number)") && e.contains("not provided")
        ),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("started_at") && e.contains("yesterday")),
        "{errors:?}"
    );
    assert!(
        mapping["payload"].as_str().unwrap().contains("no_caller"),
        "original payload kept"
    );
    let line = letters
        .iter()
        .find(|l| l["reason"].as_str().unwrap_or("").contains("line 2"))
        .expect("the broken line");
    assert_eq!(line["stage"], "ingest");
    assert_eq!(line["payload"], r#"{"call": broken"#);
    assert!(letters.iter().any(|l| l["reason"]
        .as_str()
        .unwrap_or("")
        .contains("malformed JSON at line 2, column 7")));

    // Still serving.
    let health = http.get(ingest.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}
