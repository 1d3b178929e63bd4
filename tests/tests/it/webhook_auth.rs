//! Webhook authentication, redelivery and rate limits against the real stack. The
//! signatures come from the official `standardwebhooks` Python library, so this
//! checks our verifier against the scheme's reference implementation.

use std::process::Command;

use integration_tests::{sample_integration, TestEnv};
use schemas::Integration;
use serde_json::json;

const SECRET: &str = "whsec_Y2FsbG1hdHJpeC10ZXN0LXNlY3JldC0zMi1ieXRlcyE=";
const TOKEN: &str = "tok_0123456789abcdefghijklmnop";

fn arroyo_as(client_id: &str, extra: serde_json::Value) -> Integration {
    sample_integration("arroyo", |value| {
        value["client_id"] = json!(client_id);
        for (key, v) in extra.as_object().unwrap() {
            value[key] = v.clone();
        }
    })
}

/// `webhook-signature` for (id, timestamp, body), by the official library.
fn sign(id: &str, timestamp: i64, body: &str) -> String {
    let script = "import sys, datetime\n\
                  from standardwebhooks import Webhook\n\
                  ts = datetime.datetime.fromtimestamp(int(sys.argv[3]), tz=datetime.timezone.utc)\n\
                  print(Webhook(sys.argv[1]).sign(sys.argv[2], ts, sys.stdin.read()))";
    let mut child = Command::new("python3")
        .args(["-c", script, SECRET, id, &timestamp.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "signing with standardwebhooks failed (deploy/test.sh installs it): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

async fn post(
    url: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, serde_json::Value, Option<String>) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body, retry_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_bearer_and_rate_limited_webhooks() {
    let env = TestEnv::new("auth").await;
    let integrations = [
        arroyo_as(
            "signed",
            json!({"auth": {"scheme": "standard_webhooks", "secrets": [SECRET]}}),
        ),
        arroyo_as(
            "tokened",
            json!({"auth": {"scheme": "bearer", "tokens": [TOKEN]}}),
        ),
        arroyo_as(
            "limited",
            json!({"rate_limit": {"per_second": 1, "burst": 2}}),
        ),
    ];
    cmctl::publish_integrations(&env.kafka, &integrations)
        .await
        .unwrap();
    let ingest = env.start("ingest", &[]).await;
    for client in ["signed", "tokened", "limited"] {
        ingest.wait_for_integration(client, 1).await;
    }
    let url = |client: &str| ingest.url(&format!("/api/integrations/webhook/{client}"));
    let body = r#"{"call":{"id":"ar_sig","caller":{"number":"4155552671"},"started_at":"2026-11-20T10:00:00Z"}}"#;
    let now = chrono::Utc::now().timestamp();
    let signed = |id: &str, timestamp: i64, signature: String| {
        vec![
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ]
    };

    let (status, first, _) = post(
        &url("signed"),
        &signed("msg_1", now, sign("msg_1", now, body)),
        body,
    )
    .await;
    assert_eq!(status, 202, "{first}");
    // The sender retries the same delivery: 200, the same ids.
    let (status, again, _) = post(
        &url("signed"),
        &signed("msg_1", now, sign("msg_1", now, body)),
        body,
    )
    .await;
    assert_eq!((status, &again["ids"]), (200, &first["ids"]));

    let tampered = body.replace("ar_sig", "ar_SIG");
    let (status, refused, _) = post(
        &url("signed"),
        &signed("msg_2", now, sign("msg_2", now, body)),
        &tampered,
    )
    .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (401, Some("not_accepted"))
    );
    let old = now - 3600;
    let (status, refused, _) = post(
        &url("signed"),
        &signed("msg_3", old, sign("msg_3", old, body)),
        body,
    )
    .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (401, Some("not_accepted"))
    );
    let (status, refused, _) = post(&url("signed"), &[], body).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (401, Some("not_accepted"))
    );
    assert!(
        !refused.to_string().contains("whsec"),
        "no secret in answers: {refused}"
    );

    let (status, _, _) = post(
        &url("tokened"),
        &[("authorization", format!("Bearer {TOKEN}"))],
        body,
    )
    .await;
    assert_eq!(status, 202);
    let (status, refused, _) = post(
        &url("tokened"),
        &[("authorization", "Bearer nope".into())],
        body,
    )
    .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (401, Some("not_accepted"))
    );

    // Why each was refused is the operator's to see, counted by reason; the
    // sender only learns it was not accepted.
    for reason in [
        "bad_signature",
        "bad_timestamp",
        "missing_credentials",
        "bad_token",
    ] {
        let counted = integration_tests::metric_sum(
            &ingest,
            "ingest_unauthorized_total",
            Some(&format!("reason=\"{reason}\"")),
        )
        .await;
        assert!(counted >= 1.0, "{reason} not counted");
    }
    // An unknown integration and failed credentials are answered alike: the answer
    // tells nothing about which integrations exist.
    let (unknown_status, unknown, _) = post(&url("no-such-hook"), &[], body).await;
    let (bad_status, bad, _) = post(
        &url("tokened"),
        &[("authorization", "Bearer nope".into())],
        body,
    )
    .await;
    assert_eq!((unknown_status, &unknown), (bad_status, &bad));

    // A signature header of thousands of entries over a large body is refused at
    // once: the entries are capped, the MAC is computed once per secret.
    let flood = vec!["v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; 4000].join(" ");
    let large = format!(r#"{{"call": {{"notes": "{}"}}}}"#, "y".repeat(900_000));
    let started = std::time::Instant::now();
    let (status, refused, _) = post(&url("signed"), &signed("msg_flood", now, flood), &large).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (401, Some("not_accepted"))
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "a signature flood took {:?}",
        started.elapsed()
    );

    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..4 {
        let (status, _, retry) = post(&url("limited"), &[], body).await;
        statuses.push(status);
        retry_after = retry_after.or(retry);
    }
    assert_eq!(
        &statuses[..2],
        &[202, 202],
        "the burst passes: {statuses:?}"
    );
    assert!(statuses[2..].contains(&429), "then 429: {statuses:?}");
    assert_eq!(retry_after.as_deref(), Some("1"));
}
