//! ClickHouse away for longer than a group member may go without reading: the
//! processor's batch waits on its store, librdkafka takes the member out of its group
//! (`max.poll.interval.ms`), and the pipeline must come back by itself when
//! ClickHouse does, with every call stored once and the cause reported as what it is
//! (a member that read nothing for too long), not as a broker failure: the alert
//! drill of the fault matrix saw a 390 s ClickHouse outage page as
//! `CallMatrixBrokerUnavailable` because the member's `MaxPollExceeded` counted in
//! `kafka_consume_errors_total`.

use std::time::Duration;

use integration_tests::tcp_gate::TcpGate;
use integration_tests::{eventually, metric_sum, TestEnv};

fn call(n: u32) -> String {
    format!(
        r#"{{"call":{{"id":"chgone_{n}","caller":{{"number":"+1415555{n:04}"}},"started_at":"2026-11-20T14:{n:02}:00Z","duration":"1:00"}}}}"#
    )
}

async fn stored(client: &clickhouse::Client) -> u64 {
    client
        .query("SELECT count() FROM calls FINAL WHERE client_id = 'arroyo' AND startsWith(external_id, 'chgone_')")
        .fetch_one()
        .await
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clickhouse_outage_longer_than_the_poll_interval_is_not_a_broker_error() {
    let env = TestEnv::new("chgone").await;
    let server: url::Url = env.clickhouse.url.parse().expect("ClickHouse URL");
    let target = server
        .socket_addrs(|| None)
        .expect("ClickHouse address")
        .into_iter()
        .next()
        .expect("one address");
    let gate = TcpGate::start(target).await;
    // The shortest interval librdkafka allows here (not under the 10 s session
    // timeout), so the outage can be short.
    let processor = env
        .start(
            "processor",
            &[
                ("PROCESSOR_CLICKHOUSE__URL", &gate.http_url()),
                ("PROCESSOR_KAFKA__MAX_POLL_INTERVAL_MS", "11000"),
                ("PROCESSOR_BATCH__MAX_WAIT_MS", "20"),
            ],
        )
        .await;
    let ingest = env.start("ingest", &[]).await;
    let client = env.client();
    let (status, answer) = ingest
        .post_webhook("arroyo", "application/json", call(1))
        .await;
    assert_eq!(status, 202, "{answer}");
    eventually("the first call stored", Duration::from_secs(60), || async {
        (stored(&client).await == 1).then_some(())
    })
    .await;

    gate.close();
    for n in 2..=4 {
        let (status, answer) = ingest
            .post_webhook("arroyo", "application/json", call(n))
            .await;
        assert_eq!(status, 202, "accepted with ClickHouse away: {answer}");
    }
    // Past the interval (11 s after the batch of calls 2 to 4 was read, its store
    // waiting since) with margin.
    tokio::time::sleep(Duration::from_secs(20)).await;
    gate.open();
    eventually(
        "the calls of the outage stored once ClickHouse is back",
        Duration::from_secs(120),
        || async { (stored(&client).await == 4).then_some(()) },
    )
    .await;
    let versions: u64 = client
        .query("SELECT uniqExact(external_id) FROM calls WHERE client_id = 'arroyo' AND startsWith(external_id, 'chgone_')")
        .fetch_one()
        .await
        .expect("distinct partner ids");
    assert_eq!(versions, 4, "each partner id once");
    assert_eq!(
        metric_sum(&processor, "kafka_consume_errors_total", None).await,
        0.0,
        "the broker never failed: the member's own timeout is not a consume error"
    );
    assert!(
        metric_sum(&processor, "kafka_group_poll_timeouts_total", None).await >= 1.0,
        "the member's timeout is counted as what it is"
    );
    drop(ingest);
}
