//! Kill -9 the processor in the middle of a stream of 1,000 webhook records, start
//! it again: exactly 1,000 calls, none lost, none doubled. Counted two ways:
//! `count()` over `FINAL` and `uniqExact(id)` over all stored versions.

use std::time::Duration;

use integration_tests::{eventually, final_count, metric_sum, TestEnv};

const RECORDS: usize = 1000;
const PER_REQUEST: usize = 10;

fn ndjson_batch(request: usize) -> String {
    (0..PER_REQUEST)
        .map(|i| {
            let n = request * PER_REQUEST + i;
            format!(
                r#"{{"event":"call.completed","call":{{"id":"crash_{n:04}","caller":{{"number":"+1415555{:04}"}},"tracking_number":"8885550100","started_at":"2026-11-20T{:02}:{:02}:00Z","duration":"0:{:02}","payout":"$1.00"}}}}"#,
                n % 10_000,
                (n / 60) % 24,
                n % 60,
                10 + n % 50
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// POSTs request `request`'s batch; the webhook must accept it.
async fn post_batch(http: &reqwest::Client, url: &str, request: usize) {
    let response = http
        .post(url)
        .header("content-type", "application/x-ndjson")
        .body(ndjson_batch(request))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "request {request}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processor_killed_mid_stream_loses_and_doubles_nothing() {
    let env = TestEnv::new("crash").await;
    // Small batches so the kill lands between many commits, not after one. The
    // restarted instance keeps its identity (as a StatefulSet pod does), so static
    // group membership hands it the partitions at once; tansu 0.6 never evicts a
    // crashed dynamic member (Apache Kafka does after `session.timeout.ms`).
    let small_batches = [
        ("PROCESSOR_BATCH__MAX_RECORDS", "20"),
        ("PROCESSOR_BATCH__MAX_WAIT_MS", "20"),
        ("PROCESSOR_KAFKA__INSTANCE_ID", "processor-0"),
    ];
    let mut processor = env.start("processor", &small_batches).await;
    let ingest = env.start("ingest", &[]).await;
    let client = env.client();
    let http = reqwest::Client::new();
    let url = ingest.url("/api/integrations/webhook/arroyo");
    let post = |request: usize| post_batch(&http, &url, request);

    let requests = RECORDS / PER_REQUEST;
    let mut stored_before_kill = 0;
    for request in 0..requests {
        post(request).await;
        if request == requests * 4 / 10 {
            // Let the processor get some way in, then crash it mid-stream.
            stored_before_kill = eventually(
                "the processor to store some calls",
                Duration::from_secs(60),
                || async {
                    let n = final_count(&client, "arroyo").await;
                    (n > 0).then_some(n)
                },
            )
            .await;
            processor.kill();
        }
        if request == requests * 7 / 10 {
            processor = env.start("processor", &small_batches).await;
        }
    }
    assert!(
        stored_before_kill < RECORDS as u64,
        "the kill must happen mid-stream (stored {stored_before_kill} before it)"
    );

    let total = eventually(
        "1000 calls after the restart",
        Duration::from_secs(120),
        || async {
            let n = final_count(&client, "arroyo").await;
            (n >= RECORDS as u64).then_some(n)
        },
    )
    .await;
    assert_eq!(total, RECORDS as u64, "FINAL count");
    let distinct: u64 = client
        .query("SELECT uniqExact(id) FROM calls WHERE client_id = 'arroyo'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        distinct, RECORDS as u64,
        "distinct ids over every stored version"
    );
    let expected_ids: u64 = client
        .query("SELECT countIf(external_id LIKE 'crash_%') FROM calls FINAL WHERE client_id = 'arroyo'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(expected_ids, RECORDS as u64);
    drop(processor);
}

/// Without static membership a crashed processor stays in the group: tansu 0.6.0
/// gives a processor started in its place no partition (`Assign([])`) and never
/// rebalances after the dead member's session runs out, so the calls wait in the
/// topic with a live, idle processor. The group reader notices (no partition, the
/// group behind, its commits not moving for `runtime::kafka::STALLED_AFTER`) and
/// joins again. Fails without it: nothing after the crash is ever stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_left_without_partitions_joins_again() {
    let env = TestEnv::new("rejoin").await;
    let dynamic = [("PROCESSOR_BATCH__MAX_WAIT_MS", "20")];
    let mut processor = env.start("processor", &dynamic).await;
    let ingest = env.start("ingest", &[]).await;
    let client = env.client();
    let http = reqwest::Client::new();
    let url = ingest.url("/api/integrations/webhook/arroyo");
    let post = |request: usize| post_batch(&http, &url, request);
    for request in 0..10 {
        post(request).await;
    }
    eventually("the first 100 calls", Duration::from_secs(60), || async {
        (final_count(&client, "arroyo").await >= 100).then_some(())
    })
    .await;

    processor.kill();
    let processor = env.start("processor", &dynamic).await;
    for request in 10..20 {
        post(request).await;
    }
    // The rejoin comes after STALLED_AFTER (30 s) and a rebalance.
    let total = eventually(
        "200 calls after the restart",
        Duration::from_secs(150),
        || async {
            let n = final_count(&client, "arroyo").await;
            (n >= 200).then_some(n)
        },
    )
    .await;
    assert_eq!(total, 200, "FINAL count");
    let rejoins = metric_sum(&processor, "kafka_group_rejoins_total", Some("processor")).await;
    eprintln!("rejoins of the processor group after the crash: {rejoins}");
}
