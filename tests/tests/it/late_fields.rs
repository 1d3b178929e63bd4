//! Late fields against the real stack: a later record of a call (a payout after
//! conversion, a correction) updates that call's row; it never makes a second call.

use std::time::Duration;

use integration_tests::{eventually, final_count, fixture, TestEnv};

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct Stored {
    caller: String,
    started: String,
    duration_s: Option<u32>,
    payout: String,
    tags: Vec<String>,
}

async fn row(client: &clickhouse::Client, external_id: &str) -> Option<Stored> {
    client
        .query(
            "SELECT caller, toString(started_at), duration_s, ifNull(toString(payout), ''), tags \
             FROM calls FINAL WHERE client_id = 'arroyo' AND external_id = ?",
        )
        .bind(external_id)
        .fetch_optional()
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_records_update_their_call() {
    let env = TestEnv::new("late").await;
    // One record per batch: every merge reads the stored call, the path a replay
    // spread over many batches takes (the in-batch path has a unit test).
    let one_per_batch = [
        ("PROCESSOR_BATCH__MAX_WAIT_MS", "50"),
        ("PROCESSOR_BATCH__MAX_RECORDS", "1"),
        ("PROCESSOR_PARKING__DELAY_MS", "200"),
        ("PROCESSOR_PARKING__MAX_ATTEMPTS", "3"),
    ];
    let _processor = env.start("processor", &one_per_batch).await;
    let ingest = env.start("ingest", &[]).await;
    let client = env.client();
    let (status, _) = ingest
        .post_webhook("arroyo", "application/json", fixture("arroyo-webhook.json"))
        .await;
    assert_eq!(status, 202);
    eventually("the 3 sample calls", Duration::from_secs(60), || async {
        (final_count(&client, "arroyo").await == 3).then_some(())
    })
    .await;

    // The payout arrives after the call, alone.
    let late = r#"{"call": {"id": "ar_9f8e7d6c", "payout": "$60.00"}}"#;
    let (status, _) = ingest
        .post_webhook("arroyo", "application/json", late)
        .await;
    assert_eq!(status, 202);
    let merged = eventually(
        "the late payout on the call",
        Duration::from_secs(60),
        || async {
            row(&client, "ar_9f8e7d6c")
                .await
                .filter(|r| r.payout == "60.0000")
        },
    )
    .await;
    assert_eq!(merged.caller, "+14155552671", "caller kept");
    assert_eq!(merged.started, "2026-11-20 22:03:22", "start kept");
    assert_eq!(merged.duration_s, Some(252), "duration kept");
    assert_eq!(final_count(&client, "arroyo").await, 3, "still three calls");

    // A call and its correction in one delivery: the correction lands on top.
    let pair = [
        r#"{"call": {"id": "ar_pair", "caller": {"number": "3125550142"}, "started_at": "2026-11-22T10:00:00Z", "payout": "$1.00", "tags": ["first"]}}"#,
        r#"{"call": {"id": "ar_pair", "payout": "$2.00", "tags": ["corrected"]}}"#,
    ]
    .join("\n");
    let (status, _) = ingest
        .post_webhook("arroyo", "application/x-ndjson", pair)
        .await;
    assert_eq!(status, 202);
    let corrected = eventually("the corrected pair", Duration::from_secs(60), || async {
        row(&client, "ar_pair")
            .await
            .filter(|r| r.payout == "2.0000")
    })
    .await;
    assert_eq!(
        (corrected.caller.as_str(), corrected.tags.clone()),
        ("+13125550142", vec!["corrected".to_owned()])
    );
    assert_eq!(final_count(&client, "arroyo").await, 4);

    // A late field for a call never seen cannot stand alone: after waiting for its
    // call (parked, tried 3 times), a dead letter, with why.
    let orphan = r#"{"call": {"id": "ar_orphan", "payout": "$5.00"}}"#;
    let (status, _) = ingest
        .post_webhook("arroyo", "application/json", orphan)
        .await;
    assert_eq!(status, 202);
    let reason: String = eventually("the orphan's dead letter", Duration::from_secs(60), || async {
        client
            .query("SELECT reason FROM dead_letters FINAL WHERE client_id = 'arroyo' AND payload LIKE '%ar_orphan%'")
            .fetch_optional::<String>()
            .await
            .ok()
            .flatten()
    })
    .await;
    assert!(
        reason.contains("no earlier record of call") && reason.contains("3 times"),
        "{reason}"
    );

    // A mapping change and a replay: the call takes the new mapping's values and
    // keeps its late payout (the late record is replayed too, onto the new row).
    let mut v2 = cmctl::read_integrations(
        &integration_tests::repo_root().join("deploy/integrations/samples.json"),
    )
    .unwrap()
    .into_iter()
    .find(|i| i.client_id.as_str() == "arroyo")
    .unwrap();
    v2.version = 2;
    v2.mapping.fields.insert(
        schemas::CanonicalField::Campaign,
        serde_json::from_value(serde_json::json!({"path": "call.publisher.name"})).unwrap(),
    );
    cmctl::publish_integrations(&env.kafka, &[v2])
        .await
        .unwrap();
    let report = cmctl::replay::replay(
        &env.kafka,
        &schemas::ClientId::parse("arroyo").unwrap(),
        runtime::replay::ReplaySource::Raw,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(
        report.replayed, 7,
        "3 samples, the late payout, the pair and the orphan"
    );
    let replayed: (String, String, u32) = eventually("the replayed call", Duration::from_secs(60), || async {
        client
            .query("SELECT campaign, ifNull(toString(payout), ''), mapping_version FROM calls FINAL WHERE external_id = 'ar_9f8e7d6c'")
            .fetch_optional::<(String, String, u32)>()
            .await
            .ok()
            .flatten()
            // Done once the replayed late payout is on the replayed call.
            .filter(|r| r.2 == 2 && r.1 == "60.0000")
    })
    .await;
    assert_eq!(
        replayed.0, "BlueMedia",
        "the new mapping's campaign, not the old one's"
    );
    assert_eq!(
        final_count(&client, "arroyo").await,
        4,
        "replayed, not doubled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_field_that_overtakes_its_call_waits_for_it() {
    // The payout reaches us before the call itself (another ingest instance, a
    // partner's retry): it is parked and tried again, and lands on the call once
    // the call is stored, instead of being a dead letter.
    let env = TestEnv::new("overtake").await;
    let parking = [
        ("PROCESSOR_BATCH__MAX_WAIT_MS", "50"),
        ("PROCESSOR_PARKING__DELAY_MS", "500"),
        ("PROCESSOR_PARKING__MAX_ATTEMPTS", "40"),
    ];
    let processor = env.start("processor", &parking).await;
    let ingest = env.start("ingest", &[]).await;
    let client = env.client();
    let payout = r#"{"call": {"id": "ar_overtaken", "payout": "$60.00"}}"#;
    assert_eq!(
        ingest
            .post_webhook("arroyo", "application/json", payout)
            .await
            .0,
        202
    );
    eventually("the payout parked", Duration::from_secs(30), || async {
        let parked =
            integration_tests::metric_sum(&processor, "processor_parked_total", None).await;
        (parked >= 1.0).then_some(())
    })
    .await;
    let call = r#"{"call": {"id": "ar_overtaken", "caller": {"number": "3125550142"}, "tracking_number": "8885550100", "started_at": "2026-11-22T10:00:00Z", "duration": "3:00"}}"#;
    assert_eq!(
        ingest
            .post_webhook("arroyo", "application/json", call)
            .await
            .0,
        202
    );
    let merged = eventually(
        "the payout on its call",
        Duration::from_secs(60),
        || async {
            row(&client, "ar_overtaken")
                .await
                .filter(|r| r.payout == "60.0000")
        },
    )
    .await;
    assert_eq!(
        (merged.caller.as_str(), merged.duration_s),
        ("+13125550142", Some(180))
    );
    assert_eq!(final_count(&client, "arroyo").await, 1);
    let dead: u64 = client
        .query("SELECT count() FROM dead_letters WHERE client_id = 'arroyo'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(dead, 0, "nothing dead-lettered");
}

/// A call's versions reach a dashboard in the order they were made, none missing.
/// One record per batch, so each version is its own batch: a batch's events go out
/// while the next batch is gathered and decided (processor/src/pipeline.rs,
/// `announce`), and the next one's may not overtake them. Counted by the records
/// this test sent, not by anything the processor derives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_versions_reach_dashboards_in_order() {
    let env = TestEnv::new("late-order").await;
    let _processor = env
        .start(
            "processor",
            &[
                ("PROCESSOR_BATCH__MAX_WAIT_MS", "20"),
                ("PROCESSOR_BATCH__MAX_RECORDS", "1"),
            ],
        )
        .await;
    let ingest = env.start("ingest", &[]).await;
    let api = env.start("api", &[]).await;
    let mut events =
        integration_tests::sse::SseReader::connect(&api.url("/api/events?client_id=arroyo")).await;
    // Every record names the caller, so all of them are keyed to one partition and
    // decided in the order they were acknowledged; each raises the payout.
    const VERSIONS: u32 = 20;
    for payout in 1..=VERSIONS {
        let record = format!(
            r#"{{"call": {{"id": "ar_order", "caller": {{"number": "3125550177"}}, "tracking_number": "8885550100", "started_at": "2026-11-22T10:00:00Z", "duration": "3:00", "payout": "${payout}.00"}}}}"#
        );
        let (status, answer) = ingest
            .post_webhook("arroyo", "application/json", record)
            .await;
        assert_eq!(status, 202, "{answer}");
    }
    let mut seen: Vec<(String, u64)> = Vec::new();
    while seen.len() < VERSIONS as usize {
        let event = tokio::time::timeout(Duration::from_secs(60), events.next_event())
            .await
            .unwrap_or_else(|_| panic!("no event within 60 s after {seen:?}"))
            .expect("the stream stays open");
        let data: serde_json::Value = serde_json::from_str(&event.data).expect("JSON data");
        if data["external_id"] == "ar_order" {
            let version = data["version"].as_u64().expect("a version");
            seen.push((event.event, version));
        }
    }
    assert_eq!(seen[0].0, "call.created", "{seen:?}");
    assert!(
        seen[1..].iter().all(|(event, _)| event == "call.updated"),
        "{seen:?}"
    );
    assert!(
        seen.windows(2).all(|pair| pair[0].1 < pair[1].1),
        "versions out of order: {seen:?}"
    );
    let client = env.client();
    let stored: (u64, String) = client
        .query("SELECT version, ifNull(toString(payout), '') FROM calls FINAL WHERE client_id = 'arroyo' AND external_id = 'ar_order'")
        .fetch_one()
        .await
        .expect("the call");
    assert_eq!(stored, (seen[seen.len() - 1].1, "20.0000".to_owned()));
    assert_eq!(final_count(&client, "arroyo").await, 1);
}
