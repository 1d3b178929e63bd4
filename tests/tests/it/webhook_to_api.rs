//! The walking skeleton end to end: the Arroyo sample posted as a webhook lands in
//! ClickHouse with the right values, comes back from `/api/calls` newest first in
//! keyset pages, and arrives on `/api/events`.

use std::collections::BTreeSet;
use std::time::Duration;

use integration_tests::sse::SseReader;
use integration_tests::{eventually, final_count, fixture, TestEnv};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arroyo_webhook_reaches_clickhouse_api_and_sse() {
    let env = TestEnv::new("e2e").await;
    let processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "50")])
        .await;
    let ingest = env.start("ingest", &[]).await;
    let api = env.start("api", &[]).await;
    let mut events = SseReader::connect(&api.url("/api/events?client_id=arroyo")).await;

    let http = reqwest::Client::new();
    let (status, accepted) = ingest
        .post_webhook("arroyo", "application/json", fixture("arroyo-webhook.json"))
        .await;
    assert_eq!(status, 202);
    assert_eq!(accepted["accepted"], 3);
    assert_eq!(accepted["ids"].as_array().unwrap().len(), 3);

    // ClickHouse: three rows with the partner's values, normalised.
    let client = env.client();
    eventually("3 rows in ClickHouse", Duration::from_secs(60), || async {
        (final_count(&client, "arroyo").await == 3).then_some(())
    })
    .await;
    #[derive(Debug, clickhouse::Row, serde::Deserialize)]
    struct Checked {
        external_id: String,
        caller: String,
        called: String,
        started: String,
        duration_s: Option<u32>,
        payout: String,
        status: String,
    }
    let rows: Vec<Checked> = client
        .query(
            "SELECT external_id, caller, called, toString(started_at), duration_s, ifNull(toString(payout), ''), status \
             FROM calls FINAL WHERE client_id = 'arroyo' ORDER BY external_id",
        )
        .fetch_all()
        .await
        .unwrap();
    let first = rows
        .iter()
        .find(|r| r.external_id == "ar_9f8e7d6c")
        .unwrap();
    assert_eq!(first.caller, "+14155552671");
    assert_eq!(first.called, "+18885550100");
    assert_eq!(first.started, "2026-11-20 22:03:22");
    assert_eq!(first.duration_s, Some(252));
    assert_eq!(first.payout, "45.0000");
    assert_eq!(first.status, "qualified");
    let free = rows
        .iter()
        .find(|r| r.external_id == "ar_1a2b3c4d")
        .unwrap();
    assert_eq!(
        (free.payout.as_str(), free.status.as_str()),
        ("0.0000", "unqualified")
    );

    // API: newest first, two pages of two and one.
    // Pages come from `calls_by_time`, which the insert into `calls` fills through a
    // materialized view a moment after the rows above are visible.
    let page = eventually("the first page", Duration::from_secs(30), || async {
        let page = get_json(&http, &api.url("/api/calls?client_id=arroyo&limit=2")).await;
        let listed = !external_ids(&page).is_empty();
        listed.then_some(page)
    })
    .await;
    assert_eq!(external_ids(&page), ["ar_5e6f7a8b", "ar_1a2b3c4d"]);
    assert_eq!(page["calls"][0]["payout"], "45.00");
    assert_eq!(page["calls"][0]["started_at"], "2026-11-21T14:58:47Z");
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let next = get_json(
        &http,
        &api.url(&format!(
            "/api/calls?client_id=arroyo&limit=2&cursor={cursor}"
        )),
    )
    .await;
    assert_eq!(external_ids(&next), ["ar_9f8e7d6c"]);
    assert!(next["next_cursor"].is_null());
    let other = get_json(&http, &api.url("/api/calls?client_id=ringpartner")).await;
    assert_eq!(
        other["calls"].as_array().unwrap().len(),
        0,
        "filter by client"
    );

    // SSE: one call.created per call, with distinct event ids.
    let mut seen = BTreeSet::new();
    let mut event_ids = BTreeSet::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(30), events.next_event())
            .await
            .expect("an SSE event within 30 s")
            .expect("stream open");
        assert_eq!(event.event, "call.created");
        let call: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(call["client_id"], "arroyo");
        seen.insert(call["external_id"].as_str().unwrap().to_owned());
        event_ids.insert(event.id.expect("event id"));
    }
    assert_eq!(
        seen,
        BTreeSet::from([
            "ar_1a2b3c4d".to_owned(),
            "ar_5e6f7a8b".to_owned(),
            "ar_9f8e7d6c".to_owned()
        ])
    );
    assert_eq!(event_ids.len(), 3);

    // Re-delivery changes nothing: same raw ids back, still three calls.
    let (_, again) = ingest
        .post_webhook("arroyo", "application/json", fixture("arroyo-webhook.json"))
        .await;
    assert_eq!(again["ids"], accepted["ids"]);
    eventually(
        "the re-delivery to be processed",
        Duration::from_secs(60),
        || async {
            let versions: u64 = client
                .query("SELECT count() FROM calls WHERE client_id = 'arroyo'")
                .fetch_one()
                .await
                .unwrap_or(0);
            // Either merged already or six versions stored; FINAL must say three either way.
            (versions >= 6 || versions == 3).then_some(())
        },
    )
    .await;
    assert_eq!(final_count(&client, "arroyo").await, 3);

    // What operators' alerts read (deploy/prometheus/rules.yml): the raw topic's
    // group caught up (lag 0 on every partition, reported every 15 s), partitions
    // held, and the newest stored call's receive time for the account.
    let raw_group = format!("topic=\"{}\"", env.kafka.topics().raw);
    eventually(
        "the raw group's partitions held and its lag reported as 0",
        Duration::from_secs(40),
        || async {
            let text = reqwest::get(processor.url("/metrics"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let value = |line: &str| line.rsplit_once(' ')?.1.parse::<f64>().ok();
            let lags: Vec<f64> = text
                .lines()
                .filter(|l| l.starts_with("kafka_group_lag_records{") && l.contains(&raw_group))
                .filter_map(value)
                .collect();
            let held: f64 = text
                .lines()
                .filter(|l| {
                    l.starts_with("kafka_group_partitions_held{") && l.contains("processor")
                })
                .filter_map(value)
                .sum();
            (held >= 1.0 && !lags.is_empty() && lags.iter().all(|lag| *lag == 0.0)).then_some(())
        },
    )
    .await;
    let newest = integration_tests::metric_sum(
        &processor,
        "processor_newest_received_timestamp_seconds",
        Some("account=\"acme-leads\""),
    )
    .await;
    let stored_versions = integration_tests::metric_sum(
        &processor,
        "processor_calls_total",
        Some("client_id=\"arroyo\""),
    )
    .await;
    assert!(
        stored_versions >= 3.0,
        "the silent-integration alert counts arroyo's calls: {stored_versions}"
    );
    let age = chrono::Utc::now().timestamp() as f64 - newest;
    assert!(
        (0.0..120.0).contains(&age),
        "the newest stored call was received {age} s ago"
    );
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// The `external_id` of each call in a `/api/calls` page, in order.
fn external_ids(page: &Value) -> Vec<&str> {
    page["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["external_id"].as_str().unwrap())
        .collect()
}
