//! Mapping changes and replays against the real stack: a new mapping version applies
//! to new records; `cmctl replay` re-maps past records with the current mapping
//! (same ids, rows replaced, not doubled); replaying dead letters after a fix turns
//! them into calls.

use std::time::Duration;

use cmctl::replay::replay;
use integration_tests::{eventually, final_count, fixture, sample_integration, TestEnv};
use runtime::replay::ReplaySource;
use schemas::{ClientId, Integration};
use serde_json::json;

fn arroyo(version: u32, edit: impl FnOnce(&mut serde_json::Value)) -> Integration {
    sample_integration("arroyo", |value| {
        value["version"] = json!(version);
        edit(value);
    })
}

async fn campaigns(client: &clickhouse::Client) -> Vec<(String, String, u32)> {
    client
        .query("SELECT external_id, campaign, mapping_version FROM calls FINAL WHERE client_id = 'arroyo' ORDER BY external_id")
        .fetch_all()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_apply_the_current_mapping_without_doubling() {
    let env = TestEnv::new("replay").await;
    let arroyo_id = ClientId::parse("arroyo").unwrap();
    // Version 2 forgets the campaign.
    cmctl::publish_integrations(
        &env.kafka,
        &[arroyo(2, |v| {
            v["mapping"]["fields"]
                .as_object_mut()
                .unwrap()
                .remove("campaign");
        })],
    )
    .await
    .unwrap();
    let _processor = env
        .start(
            "processor",
            &[
                ("PROCESSOR_BATCH__MAX_WAIT_MS", "50"),
                // A record the broken mapping leaves without a caller names a call
                // not stored: it waits (parked) once, briefly, then is a dead letter.
                ("PROCESSOR_PARKING__DELAY_MS", "200"),
                ("PROCESSOR_PARKING__MAX_ATTEMPTS", "1"),
            ],
        )
        .await;
    let ingest = env.start("ingest", &[]).await;
    let (status, _) = ingest
        .post_webhook("arroyo", "application/json", fixture("arroyo-webhook.json"))
        .await;
    assert_eq!(status, 202);
    let client = env.client();
    eventually(
        "3 calls mapped by version 2",
        Duration::from_secs(60),
        || async {
            let rows = campaigns(&client).await;
            (rows.len() == 3 && rows.iter().all(|r| r.2 == 2)).then_some(())
        },
    )
    .await;
    assert!(
        campaigns(&client).await.iter().all(|r| r.1.is_empty()),
        "version 2 maps no campaign"
    );

    // Version 3 fixes it; new records would use it, and a replay re-maps the old ones.
    cmctl::publish_integrations(&env.kafka, &[arroyo(3, |_| {})])
        .await
        .unwrap();
    let report = replay(&env.kafka, &arroyo_id, ReplaySource::Raw, |_| {})
        .await
        .unwrap();
    assert_eq!(report.replayed, 3);
    eventually(
        "the replay to re-map with version 3",
        Duration::from_secs(60),
        || async {
            let rows = campaigns(&client).await;
            rows.iter().all(|r| r.2 == 3).then_some(())
        },
    )
    .await;
    let rows = campaigns(&client).await;
    assert_eq!(rows.len(), 3, "same ids: replaced, not doubled");
    assert_eq!(
        rows[2],
        ("ar_9f8e7d6c".to_owned(), "Auto Insurance CA".to_owned(), 3)
    );

    // Version 4 breaks the caller path: a new record is dead-lettered...
    cmctl::publish_integrations(
        &env.kafka,
        &[arroyo(4, |v| {
            v["mapping"]["fields"]["caller"] = json!({"path": "call.caller.phone"});
        })],
    )
    .await
    .unwrap();
    ingest.wait_for_integration("arroyo", 4).await;
    let record = json!({"call": {"id": "ar_late", "caller": {"number": "4155550199"}, "started_at": "2026-11-22T10:00:00Z"}});
    let (status, _) = ingest
        .post_webhook("arroyo", "application/json", record.to_string())
        .await;
    assert_eq!(status, 202);
    let dead: u64 = eventually("the dead letter", Duration::from_secs(60), || async {
        let n: u64 = client
            .query("SELECT count() FROM dead_letters FINAL WHERE client_id = 'arroyo' AND stage = 'mapping'")
            .fetch_one()
            .await
            .unwrap_or(0);
        (n > 0).then_some(n)
    })
    .await;
    assert_eq!(dead, 1);
    assert_eq!(final_count(&client, "arroyo").await, 3);

    // ...and after version 5 fixes it, replaying the dead letters makes it a call.
    cmctl::publish_integrations(&env.kafka, &[arroyo(5, |_| {})])
        .await
        .unwrap();
    let report = replay(&env.kafka, &arroyo_id, ReplaySource::DeadLetters, |_| {})
        .await
        .unwrap();
    assert_eq!((report.replayed, report.not_replayable), (1, 0));
    eventually(
        "the replayed dead letter as a call",
        Duration::from_secs(60),
        || async { (final_count(&client, "arroyo").await == 4).then_some(()) },
    )
    .await;
    let late: (String, u32) = client
        .query("SELECT caller, mapping_version FROM calls FINAL WHERE external_id = 'ar_late'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(late, ("+14155550199".to_owned(), 5));
}
