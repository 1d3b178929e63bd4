//! The broker dies during a webhook burst: clients get 503 with `Retry-After` (in
//! bounded time, nothing queued in memory), and every record that was answered 202
//! is in ClickHouse after the broker returns; the 503'd records, sent again as a
//! client would, land too. Runs on a broker of its own.

use std::time::{Duration, Instant};

use integration_tests::{eventually, final_count, PrivateBroker, TestEnv};

fn record(n: u32) -> String {
    format!(
        r#"{{"call":{{"id":"burst_{n}","caller":{{"number":"415555{:04}"}},"started_at":"2026-11-21T10:{:02}:00Z","payout":"$1.00"}}}}"#,
        n % 10_000,
        n % 60
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_a_broker_outage() {
    let mut broker = PrivateBroker::start().await;
    let env = TestEnv::with_brokers("outage", broker.brokers()).await;
    let timeout = [
        ("INGEST_KAFKA__MESSAGE_TIMEOUT_MS", "2000"),
        ("INGEST_HTTP__RETRY_AFTER_S", "2"),
    ];
    let ingest = env.start("ingest", &timeout).await;
    let _processor = env
        .start(
            "processor",
            &[
                ("PROCESSOR_BATCH__MAX_WAIT_MS", "50"),
                ("PROCESSOR_KAFKA__INSTANCE_ID", "p0"),
            ],
        )
        .await;
    let client = env.client();
    let http = reqwest::Client::new();
    let url = ingest.url("/api/integrations/webhook/arroyo");

    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for n in 0..120_u32 {
        if n == 40 {
            broker.kill();
        }
        if n == 50 {
            broker.resume().await;
        }
        let started = Instant::now();
        let response = http
            .post(&url)
            .header("content-type", "application/json")
            .body(record(n))
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        let elapsed = started.elapsed();
        match response.map(|r| (r.status().as_u16(), r.headers().get("retry-after").cloned())) {
            Ok((202, _)) => accepted.push(n),
            Ok((503, retry_after)) => {
                assert_eq!(
                    retry_after
                        .and_then(|v| v.to_str().ok().map(str::to_owned))
                        .as_deref(),
                    Some("2")
                );
                assert!(
                    elapsed < Duration::from_secs(15),
                    "a 503 comes in bounded time: {elapsed:?}"
                );
                refused.push(n);
            }
            other => panic!("record {n}: unexpected answer {other:?}"),
        }
    }
    assert!(
        accepted.len() >= 40,
        "before the outage all pass: {}",
        accepted.len()
    );
    assert!(!refused.is_empty(), "the outage was seen as 503s");
    assert!(
        refused.iter().all(|n| (40..90).contains(n)),
        "503s only during the outage: {refused:?}"
    );

    // The sender retries what was refused, as Retry-After tells it to.
    let mut pending = refused.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "retries still refused: {pending:?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut still = Vec::new();
        for n in pending {
            let status = http
                .post(&url)
                .header("content-type", "application/json")
                .body(record(n))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            if status != 202 {
                still.push(n);
            }
        }
        pending = still;
    }
    eventually("all 120 calls stored", Duration::from_secs(120), || async {
        (final_count(&client, "arroyo").await == 120).then_some(())
    })
    .await;
    let ids: Vec<String> = client
        .query("SELECT external_id FROM calls FINAL WHERE client_id = 'arroyo' AND external_id LIKE 'burst_%'")
        .fetch_all()
        .await
        .unwrap();
    for n in &accepted {
        assert!(
            ids.contains(&format!("burst_{n}")),
            "record {n} was acknowledged, then lost"
        );
    }
}
