//! Issue 38's drift alert on the real stack: a partner renames `payout` to
//! `payoutAmount` mid-stream, starts sending a new status word, and one record
//! sends its ZIP as a number; within one window (`health.drift_window_s`, 15 s
//! here) the integration's health says `drift`: `payout` no longer filled, the new
//! key, the new status, the changed type, each naming the first call that showed
//! it, checked by the partner's own id. The records of the second phase go in
//! separate requests a second apart, so "first" is not decided by a tie.

use std::time::Duration;

use integration_tests::{browser_check, eventually, final_count, sample_integration, TestEnv};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_payout_raises_drift_naming_the_first_record_without_it() {
    let env = TestEnv::new("drift").await;
    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "20")])
        .await;
    let ingest = env.start("ingest", &[]).await;
    let api = env
        .start("api", &[("API_HEALTH__DRIFT_WINDOW_S", "15")])
        .await;
    let hook = sample_integration("arroyo", |v| {
        v["client_id"] = json!("drift-hook");
        v["mapping"]["fields"]["status"] = json!({"path": "call.status"});
    });
    cmctl::publish_integrations(&env.kafka, &[hook])
        .await
        .unwrap();
    ingest.wait_for_integration("drift-hook", 1).await;
    // Calls `from..to`: before the rename `payout`, status "Sale", the ZIP as
    // text; after it `payoutAmount`, "Refunded" from d_08 on, d_12's ZIP a number.
    let calls = |from: u32, to: u32| -> String {
        (from..=to)
            .map(|n| {
                let payout_key = if n <= 6 { "payout" } else { "payoutAmount" };
                let status = if n <= 7 { "Sale" } else { "Refunded" };
                let zip = if n == 12 {
                    json!(94103)
                } else {
                    json!("94103")
                };
                json!({"call": {"id": format!("d_{n:02}"),
                    "caller": {"number": format!("312555{n:04}"), "zip": zip},
                    "status": status,
                    "started_at": format!("2026-11-20T10:{n:02}:00Z"), payout_key: "$10.00"}})
                .to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let client = env.client();
    let (status, _) = ingest
        .post_webhook("drift-hook", "application/x-ndjson", calls(1, 6))
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
    tokio::time::sleep(Duration::from_secs(16)).await;
    assert_ne!(
        health().await.unwrap()["alert"],
        "drift",
        "no drift before the rename"
    );
    for (from, to) in [(7, 7), (8, 8), (9, 11), (12, 12)] {
        let (status, _) = ingest
            .post_webhook("drift-hook", "application/x-ndjson", calls(from, to))
            .await;
        assert_eq!(status, 202);
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    eventually("12 calls", Duration::from_secs(60), || async {
        (final_count(&client, "drift-hook").await == 12).then_some(())
    })
    .await;
    let kinds = |health: &serde_json::Value| -> Vec<String> {
        let mut kinds: Vec<String> = health["drift"]
            .as_array()
            .map(|d| {
                d.iter()
                    .map(|d| d["kind"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default();
        kinds.sort();
        kinds
    };
    let found = eventually("the drift alert", Duration::from_secs(30), || async {
        let health = health().await?;
        (health["alert"] == "drift" && kinds(&health).len() == 4).then_some(health)
    })
    .await;
    assert_eq!(
        kinds(&found),
        ["fill", "new_key", "new_status", "type_changed"],
        "{found}"
    );
    let of = |kind: &str| -> serde_json::Value {
        found["drift"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["kind"] == kind)
            .cloned()
            .unwrap()
    };
    let external = |drift: serde_json::Value| {
        let client = client.clone();
        async move {
            let id = drift["first_call_id"]
                .as_str()
                .unwrap_or_else(|| panic!("no first call: {drift}"))
                .to_owned();
            client
                .query("SELECT external_id FROM calls FINAL WHERE id = toUUID(?)")
                .bind(id)
                .fetch_one::<String>()
                .await
                .unwrap()
        }
    };
    let fill = of("fill");
    assert_eq!(fill["field"], "payout", "{found}");
    assert_eq!(fill["filled_before"], 1.0, "{found}");
    assert_eq!(fill["filled_since"], 0.0, "{found}");
    assert_eq!(
        external(fill).await,
        "d_07",
        "the first record without payout: {found}"
    );
    let new_key = of("new_key");
    assert_eq!(new_key["path"], "call.payoutAmount", "{found}");
    assert_eq!(new_key["type"], "string", "{found}");
    assert_eq!(
        external(new_key).await,
        "d_07",
        "the first record with the new key: {found}"
    );
    let status = of("new_status");
    assert_eq!(status["value"], "refunded", "{found}");
    assert_eq!(status["calls_since"], 5, "{found}");
    assert_eq!(
        external(status).await,
        "d_08",
        "the first record with the new status: {found}"
    );
    let changed = of("type_changed");
    assert_eq!(changed["path"], "call.caller.zip", "{found}");
    assert_eq!(changed["type"], "number", "{found}");
    assert_eq!(changed["was"], json!(["string"]), "{found}");
    assert_eq!(
        external(changed).await,
        "d_12",
        "the record with the number: {found}"
    );

    // On the dashboard, in a real browser: the health row says drift, and the new
    // key's "first" button opens d_07's story with the record as sent.
    browser_check(
        "drift.mjs",
        &[api.url("").as_str(), "drift-hook", "d_07", "payoutAmount"],
        "dashboard-drift.png",
        Duration::from_secs(120),
    )
    .await;
}
