//! Issue 37, alert drill run 4: the parking worker's group was left without
//! partitions for 16 minutes after a broker kill, joining again 12 times. The
//! worker slept until a parked record was due (`parking.delay_ms`) holding its
//! batch, without reading, and a member that does not read cannot take part in a
//! rebalance: the group waits for it.
//!
//! The broker kill itself did not reproduce it in a test (five variants passed
//! with the sleeping worker: 3 to 60 s outages, delays of 15 and 30 s, one parked
//! record, fifteen, or a new one a second, static and dynamic membership). What
//! it rests on does: here a first processor waits for a parked record due in 90 s
//! while a second processor joins. With the sleeping worker the group could not rebalance until
//! the record was due; a worker that reads while it waits lets the new member in
//! at once. Then the parked record's call is sent, and its payout (counted by
//! what the test sent) must land on it, whichever member holds it.

use std::time::{Duration, Instant};

use integration_tests::{eventually, final_count, metric_sum, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_waiting_for_a_parked_record_lets_the_group_rebalance() {
    let env = TestEnv::new("park_rebalance").await;
    let state = tempfile::tempdir().expect("state directories");
    let dir = |name: &str| state.path().join(name).display().to_string();
    let (first_dir, second_dir) = (dir("first"), dir("second"));
    let parking = |state_dir| {
        [
            ("PROCESSOR_BATCH__MAX_WAIT_MS", "50"),
            ("PROCESSOR_PARKING__DELAY_MS", "90000"),
            ("PROCESSOR_PARKING__MAX_ATTEMPTS", "5"),
            ("PROCESSOR_STATE__DIR", state_dir),
        ]
    };
    let first = env.start("processor", &parking(&first_dir)).await;
    let ingest = env.start("ingest", &[]).await;
    let client = env.client();

    let (status, answer) = ingest
        .post_webhook(
            "arroyo",
            "application/json",
            r#"{"call": {"id": "ar_waiting", "payout": "$60.00"}}"#,
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    eventually("the payout parked", Duration::from_secs(60), || async {
        let parked = metric_sum(&first, "processor_parked_total", None).await;
        (parked >= 1.0).then_some(())
    })
    .await;
    // The first member's parking worker has read it and waits for it (90 s).
    tokio::time::sleep(Duration::from_secs(3)).await;

    let second = env.start("processor", &parking(&second_dir)).await;
    let joined = Instant::now();
    // The gauge is refreshed every 15 s; a rebalance on tansu takes a few more.
    let held = eventually(
        "the second processor holds partitions of the parking group",
        Duration::from_secs(45),
        || async {
            let held = metric_sum(&second, "kafka_group_partitions_held", Some("parking")).await;
            (held > 0.0).then_some(held)
        },
    )
    .await;
    eprintln!(
        "the second processor held {held} parking partitions {:.0} s after it started",
        joined.elapsed().as_secs_f64()
    );

    let call = r#"{"call": {"id": "ar_waiting", "caller": {"number": "3125550142"}, "tracking_number": "8885550100", "started_at": "2026-11-22T10:00:00Z", "duration": "3:00"}}"#;
    let (status, answer) = ingest
        .post_webhook("arroyo", "application/json", call)
        .await;
    assert_eq!(status, 202, "{answer}");
    // Due 90 s after it was parked, then merged by whichever member holds
    // its raw partition.
    let payout: String = eventually(
        "the parked payout on its call",
        Duration::from_secs(180),
        || async {
            client
                .query("SELECT ifNull(toString(payout), '') FROM calls FINAL WHERE client_id = 'arroyo' AND external_id = 'ar_waiting'")
                .fetch_optional::<String>()
                .await
                .ok()
                .flatten()
                .filter(|p| p == "60.0000")
        },
    )
    .await;
    assert_eq!(payout, "60.0000");
    assert_eq!(final_count(&client, "arroyo").await, 1, "one call");
}
