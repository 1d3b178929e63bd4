//! The integrations API against the real stack: create, update (versions only go
//! up), disable and enable, delete; health per integration; an account token sees
//! and changes only its own account's integrations, and never a secret; an integration
//! that stops sending at an hour it usually sends is `silent`.

use std::time::Duration;

use integration_tests::{eventually, sample_integration, TestEnv};
use serde_json::json;

const ADMIN: &str = "adm_test_0123456789abcdefghij";
const ACME: &str = "acm_test_0123456789abcdefghij";

async fn call(
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrations_are_managed_and_watched_through_the_api() {
    let env = TestEnv::new("integrations").await;
    let tokens = tempfile::tempdir().unwrap();
    let file = tokens.path().join("tokens.json");
    std::fs::write(
        &file,
        json!({"admin": [ADMIN], "accounts": {"acme-leads": [ACME]}}).to_string(),
    )
    .unwrap();
    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "20")])
        .await;
    let ingest = env.start("ingest", &[]).await;
    let api = env
        .start("api", &[("API_AUTH__TOKENS_FILE", file.to_str().unwrap())])
        .await;
    let url = |path: &str| api.url(&format!("/api/integrations{path}"));

    // Create one for acme, signed webhooks; it goes live on ingest.
    let new = sample_integration("arroyo", |v| {
        v["client_id"] = json!("acme-new");
        v["auth"] = json!({"scheme": "bearer", "tokens": ["tok_secret_0123456789abcdefghij"]});
    });
    let (status, _) = call(
        reqwest::Method::POST,
        &url(""),
        ACME,
        Some(serde_json::to_value(&new).unwrap()),
    )
    .await;
    assert_eq!(status, 201);
    ingest.wait_for_integration("acme-new", 1).await;
    let (status, body) = call(
        reqwest::Method::POST,
        &url(""),
        ACME,
        Some(serde_json::to_value(&new).unwrap()),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("stale_version")),
        "versions only go up"
    );
    let mut other = serde_json::to_value(&new).unwrap();
    other["client_id"] = json!("theirs");
    other["account"] = json!("other-co");
    let (status, _) = call(reqwest::Method::POST, &url(""), ACME, Some(other)).await;
    assert_eq!(status, 403, "acme cannot create for another account");

    // Disable: webhooks are refused once ingest has the new version; enable again.
    let (status, body) = call(reqwest::Method::POST, &url("/acme-new/disable"), ACME, None).await;
    assert_eq!((status, body["version"].as_u64()), (200, Some(2)));
    ingest.wait_for_integration("acme-new", 2).await;
    let record = json!({"call": {"id": "n1", "caller": {"number": "3125550123"}, "started_at": "2026-11-21T10:00:00Z"}}).to_string();
    let refused = reqwest::Client::new()
        .post(ingest.url("/api/integrations/webhook/acme-new"))
        .bearer_auth("tok_secret_0123456789abcdefghij")
        .header("content-type", "application/json")
        .body(record.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        401,
        "disabled, answered as any refused webhook"
    );
    call(reqwest::Method::POST, &url("/acme-new/enable"), ACME, None).await;
    ingest.wait_for_integration("acme-new", 3).await;
    let accepted = reqwest::Client::new()
        .post(ingest.url("/api/integrations/webhook/acme-new"))
        .bearer_auth("tok_secret_0123456789abcdefghij")
        .header("content-type", "application/json")
        .body(record)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);

    // Health: the call shows up; no secret is ever listed.
    let listed = eventually(
        "acme-new's call in its health",
        Duration::from_secs(60),
        || async {
            let (_, body) = call(reqwest::Method::GET, &url(""), ACME, None).await;
            let entry = body["integrations"]
                .as_array()?
                .iter()
                .find(|i| i["integration"]["client_id"] == "acme-new")?
                .clone();
            (entry["health"]["calls_24h"] == 1).then_some(body)
        },
    )
    .await;
    assert!(
        !listed.to_string().contains("tok_secret"),
        "no secrets in listings"
    );
    let entry = listed["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["integration"]["client_id"] == "acme-new")
        .unwrap();
    assert_eq!(entry["health"]["alert"], "ok", "{entry}");
    assert_eq!(entry["integration"]["auth"], json!({"scheme": "bearer"}));
    // A late field makes a second version of the same call: still one call.
    let late = json!({"call": {"id": "n1", "payout": "$7.00"}}).to_string();
    let accepted = reqwest::Client::new()
        .post(ingest.url("/api/integrations/webhook/acme-new"))
        .bearer_auth("tok_secret_0123456789abcdefghij")
        .header("content-type", "application/json")
        .body(late)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let clickhouse = env.client();
    eventually(
        "the second version stored",
        Duration::from_secs(60),
        || async {
            let versions: u64 = clickhouse
                .query("SELECT count() FROM calls WHERE client_id = 'acme-new'")
                .fetch_one()
                .await
                .ok()?;
            (versions >= 2).then_some(())
        },
    )
    .await;
    let (_, body) = call(reqwest::Method::GET, &url(""), ACME, None).await;
    let entry = body["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["integration"]["client_id"] == "acme-new")
        .unwrap();
    assert_eq!(
        entry["health"]["calls_24h"], 1,
        "calls, not versions: {entry}"
    );
    let never = listed["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["integration"]["client_id"] == "ringpartner")
        .unwrap();
    assert_eq!(never["health"]["alert"], "never_sent");

    // Silent: ringpartner sent at this hour of day on each of the past 3 days (a
    // history written straight into ClickHouse; 10 minutes apart, so a test that
    // crosses an hour boundary still finds the hour usual), and nothing since.
    let history = |ages: &str| {
        format!(
            "INSERT INTO calls (id, version, account, client_id, caller, started_at, received_at) \
             SELECT generateUUIDv4(), 1, 'acme-leads', 'ringpartner', '+14155550100', \
             now() - age, now() - age FROM (SELECT arrayJoin([{ages}]) AS age)"
        )
    };
    let day = 86_400;
    let ages: Vec<String> = (1..=3)
        .flat_map(|n| [n * day, n * day - 600])
        .map(|age: i64| age.to_string())
        .collect();
    clickhouse
        .query(&history(&ages.join(", ")))
        .execute()
        .await
        .unwrap();
    let ringpartner = || async {
        let (_, body) = call(reqwest::Method::GET, &url(""), ADMIN, None).await;
        body["integrations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["integration"]["client_id"] == "ringpartner")
            .unwrap()["health"]
            .clone()
    };
    let health = ringpartner().await;
    assert_eq!(
        (
            health["alert"].as_str(),
            health["usual_days_at_this_hour"].as_u64()
        ),
        (Some("silent"), Some(3)),
        "{health}"
    );
    // A record now ends the silence.
    clickhouse.query(&history("0")).execute().await.unwrap();
    let health = ringpartner().await;
    assert_eq!(health["alert"], "ok", "{health}");

    // An integration quiet for longer than the week the counts read still shows
    // when its last record came (read by client id, apart from the counts).
    clickhouse
        .query(
            "INSERT INTO calls (id, version, account, client_id, caller, started_at, received_at) \
             SELECT generateUUIDv4(), 1, 'acme-leads', 'legacy-sheet', '+14155550100', \
             toStartOfMinute(now()) - 10 * 86400, toStartOfMinute(now()) - 10 * 86400",
        )
        .execute()
        .await
        .unwrap();
    let (_, body) = call(reqwest::Method::GET, &url(""), ADMIN, None).await;
    let legacy = body["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["integration"]["client_id"] == "legacy-sheet")
        .unwrap()["health"]
        .clone();
    let last = legacy["last_record_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("no last record: {legacy}"));
    let age = chrono::Utc::now().signed_duration_since(last).num_seconds();
    assert!(
        (10 * 86_400..10 * 86_400 + 120).contains(&age),
        "last record {age} s ago: {legacy}"
    );
    assert_eq!(legacy["calls_24h"], 0, "{legacy}");

    // Delete: gone from the api and from ingest (its webhook, even with the token
    // it took before, is answered as any refused one).
    let (status, _) = call(reqwest::Method::DELETE, &url("/acme-new"), ACME, None).await;
    assert_eq!(status, 200);
    eventually("acme-new deleted", Duration::from_secs(30), || async {
        let gone = reqwest::Client::new()
            .post(ingest.url("/api/integrations/webhook/acme-new"))
            .bearer_auth("tok_secret_0123456789abcdefghij")
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .ok()?
            .status()
            == 401;
        gone.then_some(())
    })
    .await;
    let (status, _) = call(reqwest::Method::DELETE, &url("/acme-new"), ADMIN, None).await;
    assert_eq!(status, 404);
}
