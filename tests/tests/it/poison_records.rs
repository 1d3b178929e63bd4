//! No single record stops the pipeline, whatever its size: the two cases confirmed
//! on a running stack (issue 31). A record whose dead letter (its payload escaped as
//! a JSON string) is over the broker's message limit used to stop the processor for
//! every account, with `/healthz` still "ok"; the same record with a partner id was
//! parked first and met the same stop later. Both are counted here by what the
//! code under test does not derive: the partner ids of the calls sent after them.

use std::time::Duration;

use integration_tests::{eventually, fixture, sample_integration, TestEnv};
use runtime::kafka::{AckedProducer, OutgoingMessage};
use schemas::{ClientId, RawEnvelope, Source};

/// A JSON record of about `bytes` bytes whose strings are mostly escaped quotes:
/// written as `\"` (2 bytes), each becomes `\\\"` (4 bytes) in a dead letter, so the
/// dead letter is twice the record. `id`: a partner call id, or none.
fn quote_heavy(bytes: usize, id: Option<&str>) -> String {
    let notes = "\\\"".repeat(bytes / 2);
    match id {
        Some(id) => {
            format!(r#"{{"call": {{"id": "{id}", "payout": "$5.00", "notes": "{notes}"}}}}"#)
        }
        None => format!(r#"{{"call": {{"notes": "{notes}"}}}}"#),
    }
}

/// A normal call of `client` with partner id `id`, on its own caller.
fn plain_call(id: &str, caller: &str) -> String {
    format!(
        r#"{{"call": {{"id": "{id}", "caller": {{"number": "{caller}"}}, "started_at": "2026-11-20T10:00:00Z", "duration": "1:00", "payout": "$3.00"}}}}"#
    )
}

async fn stored(client: &clickhouse::Client, client_id: &str, external_id: &str) -> bool {
    client
        .query("SELECT count() FROM calls FINAL WHERE client_id = ? AND external_id = ?")
        .bind(client_id)
        .bind(external_id)
        .fetch_one::<u64>()
        .await
        .is_ok_and(|n| n == 1)
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct Letter {
    reason: String,
    payload_bytes: u64,
    payload_sha256: String,
    payload_len: u64,
}

async fn truncated_letters(client: &clickhouse::Client, client_id: &str) -> Vec<Letter> {
    client
        .query(
            "SELECT reason, payload_bytes, payload_sha256, length(payload) AS payload_len \
             FROM dead_letters FINAL WHERE client_id = ? AND payload_bytes > 0 ORDER BY payload_bytes",
        )
        .bind(client_id)
        .fetch_all()
        .await
        .unwrap_or_default()
}

/// Another account's integration, to show the stop was everyone's.
async fn bystander(env: &TestEnv) {
    let other = sample_integration("arroyo", |v| {
        v["client_id"] = "bystander".into();
        v["account"] = "bystander-co".into();
    });
    cmctl::publish_integrations(&env.kafka, &[other])
        .await
        .expect("publish the bystander");
}

/// The confirmed case through the edge: a 690 KB record without a caller. The edge
/// now refuses it (413 naming the limit; its dead letter keeps its start, size and
/// digest), keeps the good record beside it in the same body, and every later call
/// of every account is stored. Before: 202, and the processor stopped for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_too_large_for_its_dead_letter_is_refused_alone_and_stops_nothing() {
    let env = TestEnv::new("poison_edge").await;
    bystander(&env).await;
    let processor = env.start("processor", &[]).await;
    let ingest = env.start("ingest", &[]).await;
    ingest.wait_for_integration("bystander", 1).await;
    let client = env.client();

    let big = quote_heavy(690_000, None);
    let (status, answer) = ingest
        .post_webhook("arroyo", "application/json", big.clone())
        .await;
    assert_eq!(status, 413, "{answer}");
    let problem = &answer["error"];
    assert_eq!(problem["code"], "record_too_large", "{answer}");
    assert_eq!(problem["bytes"], big.len(), "{answer}");
    assert!(
        problem["limit"].as_u64().is_some_and(|l| l < 1_000_000),
        "{answer}"
    );

    // In a body with a good record, only the big one is refused.
    let ndjson = format!("{big}\n{}\n", plain_call("ar_beside_big", "4155550101"));
    let (status, answer) = ingest
        .post_webhook("arroyo", "application/x-ndjson", ndjson)
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 1, "{answer}");
    let refused = answer["rejected"][0]["error"].as_str().unwrap_or_default();
    assert!(refused.contains("at most"), "{answer}");

    // Calls of both accounts sent after it are stored.
    for (client_id, id, caller) in [
        ("arroyo", "ar_after_big", "4155550102"),
        ("bystander", "by_after_big", "4155550103"),
    ] {
        let (status, answer) = ingest
            .post_webhook(client_id, "application/json", plain_call(id, caller))
            .await;
        assert_eq!(status, 202, "{answer}");
    }
    for (client_id, id) in [
        ("arroyo", "ar_beside_big"),
        ("arroyo", "ar_after_big"),
        ("bystander", "by_after_big"),
    ] {
        eventually(
            &format!("{client_id} {id} stored"),
            Duration::from_secs(60),
            || async { stored(&client, client_id, id).await.then_some(()) },
        )
        .await;
    }
    // The refused record's dead letter: its start, its whole size and digest.
    let letters = eventually(
        "the big record's dead letter",
        Duration::from_secs(60),
        || async {
            let found = truncated_letters(&client, "arroyo").await;
            (!found.is_empty()).then_some(found)
        },
    )
    .await;
    assert_eq!(letters[0].payload_bytes, big.len() as u64);
    assert_eq!(letters[0].payload_sha256.len(), 64);
    assert!(letters[0].payload_len < big.len() as u64);
    assert!(
        letters[0].reason.contains("at most"),
        "{}",
        letters[0].reason
    );
    let health = reqwest::get(processor.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
}

/// Records that reached the raw topic without the edge's check (an older ingest, a
/// replay, a foreign producer): one whose dead letter is too large, one with a
/// partner id whose call never comes (parked, then dead-lettered), and one too
/// large to park at all. The processor dead-letters each, fitted, and commits past
/// them: the calls sent after them are stored and health stays ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_that_skipped_the_edge_check_are_dead_lettered_and_the_pipeline_moves_on() {
    let env = TestEnv::new("poison_raw").await;
    let processor = env
        .start(
            "processor",
            &[
                ("PROCESSOR_PARKING__DELAY_MS", "500"),
                ("PROCESSOR_PARKING__MAX_ATTEMPTS", "1"),
            ],
        )
        .await;
    let ingest = env.start("ingest", &[]).await;
    let client = env.client();
    let arroyo = ClientId::parse("arroyo").unwrap();
    let producer = AckedProducer::new(&env.kafka).unwrap();
    let raw = env.kafka.topics().raw;
    let records = [
        // No caller: a dead letter of about 1.2 MB before fitting.
        quote_heavy(600_000, None),
        // A late payout whose call never comes: parked once, then dead-lettered.
        quote_heavy(600_000, Some("ar_never_big")),
        // Too large to park with its headers: dead-lettered at once.
        format!(
            r#"{{"call": {{"id": "ar_never_huge", "payout": "$5.00", "notes": "{}"}}}}"#,
            "a".repeat(995_000)
        ),
    ];
    for (n, payload) in records.iter().enumerate() {
        let envelope = RawEnvelope {
            raw_id: uuid::Uuid::from_u128(0xb16 + n as u128),
            client_id: arroyo.clone(),
            source: Source::Webhook,
            received_at: chrono::Utc::now(),
            idempotency_key: format!("poison-{n}"),
            integration_version: 1,
            payload: serde_json::value::RawValue::from_string(payload.clone()).unwrap(),
        };
        let json = envelope.to_json();
        let key = envelope.raw_id.to_string();
        producer
            .send_all(
                &raw,
                &[OutgoingMessage {
                    key: key.as_bytes(),
                    payload: &json,
                    headers: &[],
                    partition: Some(0),
                }],
            )
            .await
            .expect("the broker takes the raw record");
    }
    // Calls after them, on every partition.
    let (status, answer) = ingest
        .post_webhook("arroyo", "application/json", fixture("arroyo-webhook.json"))
        .await;
    assert_eq!(status, 202, "{answer}");
    for id in ["ar_9f8e7d6c", "ar_1a2b3c4d", "ar_5e6f7a8b"] {
        eventually(&format!("{id} stored"), Duration::from_secs(90), || async {
            stored(&client, "arroyo", id).await.then_some(())
        })
        .await;
    }
    // The two quote-heavy ones needed cutting to fit (their escaped payload is
    // twice the record); the huge plain one fits whole but was never parked.
    let letters = eventually(
        "two fitted dead letters",
        Duration::from_secs(90),
        || async {
            let found = truncated_letters(&client, "arroyo").await;
            (found.len() == 2).then_some(found)
        },
    )
    .await;
    assert!(
        letters.iter().all(|l| l.payload_bytes > 600_000),
        "{letters:?}"
    );
    let huge: u64 = client
        .query("SELECT count() FROM dead_letters FINAL WHERE client_id = 'arroyo' AND reason LIKE '%can be sent on%'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(huge, 1, "the record too large to park");
    let health: serde_json::Value = reqwest::get(processor.url("/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(
        health["workers"]["pipeline"]["state"], "running",
        "{health}"
    );
}
