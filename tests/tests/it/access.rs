//! Account tokens against the real stack: one account's token cannot read another
//! account's calls, dead letters, events or integrations through any endpoint; the
//! admin token reads everything; no token reads nothing.

use std::time::Duration;

use integration_tests::sse::SseReader;
use integration_tests::{eventually, repo_root, TestEnv};
use serde_json::json;

const ADMIN: &str = "adm_test_0123456789abcdefghij";
const ACME: &str = "acm_test_0123456789abcdefghij";

async fn get(url: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or_default(),
    )
}

fn client_ids(page: &serde_json::Value) -> Vec<String> {
    page["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_accounts_token_never_reads_another_accounts_data() {
    let env = TestEnv::new("access").await;
    let all =
        cmctl::read_integrations(&repo_root().join("deploy/integrations/samples.json")).unwrap();
    let mut other = serde_json::to_value(
        all.into_iter()
            .find(|i| i.client_id.as_str() == "arroyo")
            .unwrap(),
    )
    .unwrap();
    other["client_id"] = json!("other-arroyo");
    other["account"] = json!("other-co");
    cmctl::publish_integrations(&env.kafka, &[serde_json::from_value(other).unwrap()])
        .await
        .unwrap();
    let tokens = tempfile::tempdir().unwrap();
    let tokens_file = tokens.path().join("tokens.json");
    std::fs::write(&tokens_file, json!({"admin": [ADMIN], "accounts": {"acme-leads": [ACME], "other-co": ["oth_test_0123456789abcdefghij"]}}).to_string()).unwrap();

    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "20")])
        .await;
    let ingest = env.start("ingest", &[]).await;
    ingest.wait_for_integration("other-arroyo", 1).await;
    let api = env
        .start(
            "api",
            &[("API_AUTH__TOKENS_FILE", tokens_file.to_str().unwrap())],
        )
        .await;
    let mut acme_events =
        SseReader::connect(&api.url(&format!("/api/events?access_token={ACME}"))).await;

    let call = |id: &str| {
        json!({"call": {"id": id, "caller": {"number": "3125550150"}, "started_at": "2026-11-21T10:00:00Z"}}).to_string()
    };
    ingest
        .post_webhook("other-arroyo", "application/json", call("theirs"))
        .await;
    ingest
        .post_webhook("other-arroyo", "application/json", "not json".to_owned())
        .await;
    ingest
        .post_webhook("arroyo", "application/json", call("ours"))
        .await;

    // Events: the other account's call came first, but only ours arrives.
    let event = tokio::time::timeout(Duration::from_secs(60), acme_events.next_event())
        .await
        .unwrap()
        .unwrap();
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(
        (data["external_id"].as_str(), data["account"].as_str()),
        (Some("ours"), Some("acme-leads"))
    );

    let calls = |query: &str| api.url(&format!("/api/calls?{query}"));
    let everything = eventually("both calls stored", Duration::from_secs(60), || async {
        let (_, page) = get(&calls("limit=10"), Some(ADMIN)).await;
        (page["calls"].as_array()?.len() == 2).then_some(page)
    })
    .await;
    assert_eq!(
        client_ids(&everything).len(),
        2,
        "the admin sees both accounts"
    );
    let (status, mine) = get(&calls("limit=10"), Some(ACME)).await;
    assert_eq!(
        (status, client_ids(&mine)),
        (200, vec!["arroyo".to_owned()])
    );
    let (status, _) = get(&calls("account=other-co"), Some(ACME)).await;
    assert_eq!(status, 403, "asking for another account is refused");
    let (status, theirs) = get(&calls("client_id=other-arroyo"), Some(ACME)).await;
    assert_eq!(
        (status, theirs["error"]["code"].as_str()),
        (404, Some("unknown_integration")),
        "another account's integration is as unknown as a missing one"
    );

    let letters = api.url("/api/dead-letters?limit=10");
    eventually(
        "the other account's dead letter",
        Duration::from_secs(60),
        || async {
            let (_, page) = get(&letters, Some(ADMIN)).await;
            (!page["dead_letters"].as_array()?.is_empty()).then_some(())
        },
    )
    .await;
    let (status, page) = get(&letters, Some(ACME)).await;
    assert_eq!(
        (status, page["dead_letters"].as_array().unwrap().len()),
        (200, 0)
    );

    let preview = reqwest::Client::new()
        .post(api.url("/api/mappings/preview"))
        .bearer_auth(ACME)
        .json(&json!({"client_id": "other-arroyo", "record": {"call": {}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        preview.status(),
        404,
        "another account's integration cannot be previewed (nor told apart from a missing one)"
    );

    let (status, body) = get(&calls(""), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("missing_token"))
    );
    let (status, _) = get(&calls(""), Some("not-a-token-at-all-0000000000")).await;
    assert_eq!(status, 401);
    // A definition of 1.5 MB pushed slowly without a token: refused before routing,
    // the rest of the body read and dropped, so the pusher reads its 401 rather
    // than a cut connection.
    let big = vec![b' '; 1_500_000];
    let answer = integration_tests::slow_sender::post_slowly(api.port, "/api/integrations", &big)
        .await
        .expect("a refused body still arriving goes through");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("missing_token"), "{answer}");
    let (status, _) = get(
        &api.url(&format!("/api/events?account=other-co&access_token={ACME}")),
        None,
    )
    .await;
    assert_eq!(status, 403, "SSE for another account is refused");
    assert_eq!(
        get(&api.url("/healthz"), None).await.0,
        200,
        "ops endpoints stay open"
    );
    let (status, document) = get(&api.url("/api/openapi.json"), None).await;
    assert_eq!(
        (status, document["openapi"].as_str()),
        (200, Some("3.0.3")),
        "the OpenAPI document is public"
    );
}
