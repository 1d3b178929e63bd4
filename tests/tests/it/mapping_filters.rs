//! Issue 38 on the real stack: a feed with test calls and pre-call pings stores
//! neither, counts both by reason (integration health, one row per record so a
//! redelivery is not counted twice), dead-letters nothing, and a `cases` rule pays
//! only sales. Counted by the partner's own call ids.

use std::time::Duration;

use integration_tests::{eventually, sample_integration, TestEnv};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_calls_and_pings_are_filtered_by_reason_and_sales_alone_are_paid() {
    let env = TestEnv::new("filters").await;
    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "20")])
        .await;
    let ingest = env.start("ingest", &[]).await;
    let api = env.start("api", &[]).await;
    let hook = sample_integration("arroyo", |v| {
        v["client_id"] = json!("filtered-hook");
        v["mapping"]["fields"]["payout"] = json!({"cases": [
            {"when": {"path": "call.disposition", "equals": "sale"}, "path": "call.payout"},
            {"when": {"path": "call.disposition", "exists": true}, "static": 0}
        ]});
        v["mapping"]["filters"] = json!([
            {"reason": "test call", "when": {"path": "call.campaign.name", "in": ["Test", "QA"]}},
            {"reason": "pre-call ping", "when": {"path": "call.event", "equals": "pre-call"}}
        ]);
    });
    let created = reqwest::Client::new()
        .post(api.url("/api/integrations"))
        .json(&hook)
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.status(),
        201,
        "{}",
        created.text().await.unwrap_or_default()
    );
    ingest.wait_for_integration("filtered-hook", 1).await;
    let call = |id: &str, n: u32, extra: serde_json::Value| {
        let mut call = json!({"id": id, "caller": {"number": format!("312555{n:04}")},
            "started_at": format!("2026-11-20T10:{n:02}:00Z"), "payout": "$10.00"});
        for (k, v) in extra.as_object().unwrap() {
            call[k] = v.clone();
        }
        json!({"call": call}).to_string()
    };
    let body = [
        call("f_1", 1, json!({"disposition": "sale"})),
        call("f_2", 2, json!({"disposition": "no sale"})),
        call(
            "f_3",
            3,
            json!({"disposition": "sale", "campaign": {"name": "Auto"}}),
        ),
        call(
            "f_4",
            4,
            json!({"campaign": {"name": "QA"}, "disposition": "sale"}),
        ),
        call("f_5", 5, json!({"campaign": {"name": "test"}})),
        call("f_6", 6, json!({"event": "pre-call"})),
    ];
    let (status, _) = ingest
        .post_webhook("filtered-hook", "application/x-ndjson", body.join("\n"))
        .await;
    assert_eq!(status, 202);
    // The same delivery again (a partner's retry): still counted once per record.
    let (status, _) = ingest
        .post_webhook("filtered-hook", "application/x-ndjson", body.join("\n"))
        .await;
    assert_eq!(status, 202);
    let client = env.client();
    let stored = eventually("the 3 calls", Duration::from_secs(60), || async {
        let rows: Vec<(String, Option<i64>)> = client
            .query("SELECT external_id, payout FROM calls FINAL WHERE client_id = 'filtered-hook' ORDER BY external_id")
            .fetch_all()
            .await
            .ok()?;
        (rows.len() >= 3).then_some(rows)
    })
    .await;
    assert_eq!(
        stored,
        [
            ("f_1".to_owned(), Some(100_000)),
            ("f_2".to_owned(), Some(0)),
            ("f_3".to_owned(), Some(100_000))
        ],
        "sales paid, the no-sale zero, filtered records not stored"
    );
    let health = eventually("the filter counts", Duration::from_secs(60), || async {
        let body: serde_json::Value = reqwest::get(api.url("/api/integrations"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let entry = body["integrations"]
            .as_array()?
            .iter()
            .find(|i| i["integration"]["client_id"] == "filtered-hook")?
            .clone();
        let filtered = entry["health"]["filtered_24h"].clone();
        (filtered["test call"] == 2 && filtered["pre-call ping"] == 1).then_some(entry)
    })
    .await;
    assert_eq!(health["health"]["dead_letters_24h"], 0, "{health}");
    // The preview says what the pipeline did: which filter, which case.
    let records: Vec<serde_json::Value> = [&body[3], &body[0], &body[1]]
        .iter()
        .map(|text| serde_json::from_str(text).unwrap())
        .collect();
    let preview: serde_json::Value = reqwest::Client::new()
        .post(api.url("/api/mappings/preview"))
        .json(&json!({"client_id": "filtered-hook", "records": records}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let results = &preview["results"];
    assert_eq!(results[0]["filtered"], "test call", "{preview}");
    assert_eq!(results[1]["rules"]["payout"], "case 1", "{preview}");
    assert_eq!(results[2]["rules"]["payout"], "case 2", "{preview}");
    assert_eq!(
        health["integration"]["mapping"]["filters"][0]["reason"],
        "test call"
    );
}
