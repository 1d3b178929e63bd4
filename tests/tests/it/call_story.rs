//! `GET /api/calls/{id}/story` on the real stack: a repeat names the earlier call and
//! when it started, a CallMatrix duplicate names the CmCall and how far apart they
//! were, and the partner's records come back from the raw topic as sent, the
//! correction first. The ids the story must name are read from ClickHouse by the
//! partner's own call ids, not from the story.

use std::time::Duration;

use integration_tests::{
    callmatrix_call_stored, eventually, fixture, load_callmatrix_samples, TestEnv,
};
use serde_json::Value;

async fn call_id(client: &clickhouse::Client, external_id: &str) -> Option<String> {
    client
        .query(
            "SELECT toString(id) FROM calls FINAL WHERE client_id = 'arroyo' AND external_id = ?",
        )
        .bind(external_id)
        .fetch_optional::<String>()
        .await
        .ok()
        .flatten()
}

async fn get(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn decision<'a>(story: &'a Value, about: &str) -> &'a Value {
    story["decisions"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["about"] == about))
        .unwrap_or_else(|| panic!("no {about} decision: {story}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_story_names_the_earlier_call_the_cmcall_and_its_partner_records() {
    let env = TestEnv::new("story").await;
    load_callmatrix_samples(&env).await;
    let _processor = env.start("processor", &[]).await;
    let ingest = env.start("ingest", &[]).await;
    let api = env.start("api", &[]).await;
    let client = env.client();
    callmatrix_call_stored(&client, "cm_0001").await;

    // The sample: ar_9f8e7d6c is on CallMatrix's number 2 s after cm_0001. And two
    // calls of one caller on a number that is not CallMatrix's, two days apart: the
    // second a repeat of the first.
    let (status, _) = ingest
        .post_webhook("arroyo", "application/json", fixture("arroyo-webhook.json"))
        .await;
    assert_eq!(status, 202);
    let pair = concat!(
        r#"{"call": {"id": "st_first", "caller": {"number": "3125550111"}, "tracking_number": "8885550199", "started_at": "2026-11-21T10:00:00Z", "duration": "3:00", "payout": "$10.00"}}"#,
        "\n",
        r#"{"call": {"id": "st_second", "caller": {"number": "3125550111"}, "tracking_number": "8885550199", "started_at": "2026-11-23T12:30:00Z", "duration": "4:00", "payout": "$10.00"}}"#,
    );
    let (status, _) = ingest
        .post_webhook("arroyo", "application/x-ndjson", pair)
        .await;
    assert_eq!(status, 202);
    let stored_payout = || async {
        client
            .query("SELECT assumeNotNull(toString(payout)) FROM calls FINAL WHERE client_id = 'arroyo' AND external_id = 'st_second'")
            .fetch_optional::<String>()
            .await
            .ok()
            .flatten()
    };
    eventually("the repeat stored", Duration::from_secs(60), || async {
        stored_payout().await
    })
    .await;
    // Then a correction of the repeat's payout: a second version, a second record.
    let correction = r#"{"call": {"id": "st_second", "payout": "$60.00"}}"#;
    let (status, _) = ingest
        .post_webhook("arroyo", "application/json", correction)
        .await;
    assert_eq!(status, 202);
    eventually("the correction stored", Duration::from_secs(60), || async {
        stored_payout().await.filter(|p| p.starts_with("60"))
    })
    .await;
    let first = call_id(&client, "st_first").await.expect("first call");
    let repeat = call_id(&client, "st_second").await.expect("repeat");
    let duplicate = call_id(&client, "ar_9f8e7d6c").await.expect("duplicate");

    // The repeat's story.
    let (status, story) =
        get(&api.url(&format!("/api/calls/{repeat}/story?client_id=arroyo"))).await;
    assert_eq!(status, 200, "{story}");
    assert_eq!(story["call"]["external_id"], "st_second");
    assert_eq!(story["call"]["status"], "repeat");
    let why = decision(&story, "repeat");
    assert_eq!(why["refers_to"], first.as_str(), "{why}");
    let text = why["text"].as_str().unwrap_or_default();
    assert!(
        text.contains(&first)
            && text.contains("2026-11-21 10:00:00 UTC")
            && text.contains("2 days 2 h before")
            && text.contains("within 30 days"),
        "{text}"
    );
    assert_eq!(decision(&story, "status")["outcome"], "repeat");
    // The partner's records, newest first, as sent: the correction, then the call.
    let raw = story["raw"].as_array().expect("raw records");
    assert_eq!(raw.len(), 2, "{raw:?}");
    assert_eq!(raw[0]["record"]["call"]["payout"], "$60.00", "{raw:?}");
    assert_eq!(
        raw[1]["record"]["call"]["started_at"], "2026-11-23T12:30:00Z",
        "{raw:?}"
    );
    assert!(raw.iter().all(|r| r["unavailable"].is_null()), "{raw:?}");
    // Versions still stored, oldest first, the last one the call as it stands (merges
    // may have folded the first away).
    let versions = story["versions"].as_array().expect("versions");
    let numbers: Vec<u64> = versions
        .iter()
        .filter_map(|v| v["version"].as_u64())
        .collect();
    assert!(
        !numbers.is_empty() && numbers.windows(2).all(|w| w[0] < w[1]),
        "{versions:?}"
    );
    assert_eq!(numbers.last().copied(), story["call"]["version"].as_u64());
    if let [.., before, last] = versions.as_slice() {
        assert_eq!(before["event"], "call.created");
        assert!(
            last["changed"]
                .as_array()
                .is_some_and(|c| c.iter().any(|f| f == "payout")),
            "{last}"
        );
    }

    // The duplicate's story.
    let (status, story) =
        get(&api.url(&format!("/api/calls/{duplicate}/story?client_id=arroyo"))).await;
    assert_eq!(status, 200, "{story}");
    let why = decision(&story, "duplicate");
    assert_eq!(why["refers_to"], "cm_0001", "{why}");
    let text = why["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("cm_0001") && text.contains("started 2 s after it"),
        "{text}"
    );
    assert_eq!(decision(&story, "status")["outcome"], "duplicate");

    // Bad asks are named.
    let (status, problem) = get(&api.url(&format!("/api/calls/{repeat}/story"))).await;
    assert_eq!(status, 400);
    assert!(problem.to_string().contains("client_id"), "{problem}");
    let (status, _) = get(&api.url("/api/calls/not-a-uuid/story?client_id=arroyo")).await;
    assert_eq!(status, 400);
    let (status, _) =
        get(&api.url("/api/calls/00000000-0000-0000-0000-000000000000/story?client_id=arroyo"))
            .await;
    assert_eq!(status, 404);
    let (status, _) = get(&api.url("/api/calls/story?client_id=arroyo")).await;
    assert_eq!(status, 404, "no id: no route");
}
