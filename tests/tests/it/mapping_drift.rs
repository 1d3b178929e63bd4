//! Issue 38's drift alert on the real stack: a partner renames `payout` to
//! `payoutAmount` mid-stream; within one window (`health.drift_window_s`, 8 s here)
//! the integration's health says `drift` for `payout` and names the first call that
//! came without it, by the partner's own id.

use std::time::Duration;

use integration_tests::{eventually, final_count, sample_integration, TestEnv};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_payout_raises_drift_naming_the_first_record_without_it() {
    let env = TestEnv::new("drift").await;
    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "20")])
        .await;
    let ingest = env.start("ingest", &[]).await;
    let api = env
        .start("api", &[("API_HEALTH__DRIFT_WINDOW_S", "8")])
        .await;
    let hook = sample_integration("arroyo", |v| v["client_id"] = json!("drift-hook"));
    cmctl::publish_integrations(&env.kafka, &[hook])
        .await
        .unwrap();
    ingest.wait_for_integration("drift-hook", 1).await;
    let calls = |from: u32, payout_key: &str| -> String {
        (from..from + 6)
            .map(|n| {
                json!({"call": {"id": format!("d_{n:02}"), "caller": {"number": format!("312555{n:04}")},
                    "started_at": format!("2026-11-20T10:{n:02}:00Z"), payout_key: "$10.00"}})
                .to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let client = env.client();
    let (status, _) = ingest
        .post_webhook("drift-hook", "application/x-ndjson", calls(1, "payout"))
        .await;
    assert_eq!(status, 202);
    eventually("6 calls", Duration::from_secs(60), || async {
        (final_count(&client, "drift-hook").await == 6).then_some(())
    })
    .await;
    let health = || async {
        let body: serde_json::Value = reqwest::get(api.url("/api/integrations"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        body["integrations"]
            .as_array()?
            .iter()
            .find(|i| i["integration"]["client_id"] == "drift-hook")
            .map(|i| i["health"].clone())
    };
    // Let the first calls fall out of the window, then the partner renames the key.
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_ne!(
        health().await.unwrap()["alert"],
        "drift",
        "no drift before the rename"
    );
    let (status, _) = ingest
        .post_webhook(
            "drift-hook",
            "application/x-ndjson",
            calls(7, "payoutAmount"),
        )
        .await;
    assert_eq!(status, 202);
    eventually("12 calls", Duration::from_secs(60), || async {
        (final_count(&client, "drift-hook").await == 12).then_some(())
    })
    .await;
    let found = eventually("the drift alert", Duration::from_secs(30), || async {
        let health = health().await?;
        (health["alert"] == "drift").then_some(health)
    })
    .await;
    let drift = &found["drift"][0];
    assert_eq!(drift["field"], "payout", "{found}");
    assert_eq!(drift["filled_before"], 1.0, "{found}");
    assert_eq!(drift["filled_since"], 0.0, "{found}");
    let first = drift["first_call_id"].as_str().unwrap();
    let external: String = client
        .query("SELECT external_id FROM calls FINAL WHERE id = toUUID(?)")
        .bind(first)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(external, "d_07", "the first record without payout: {found}");
}
