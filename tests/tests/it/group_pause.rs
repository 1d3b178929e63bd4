//! A partition the parking worker paused, taken away by a rebalance and given
//! back by the next one, must be read again. CI run 8 of 2026-12-07 (the cluster
//! kill test): the parking group never committed on two of the four partitions of
//! `calls.parked`, and the 122 late payouts parked there never came back (acknowledged,
//! never stored). librdkafka keeps a partition's pause across a rebalance, and the
//! worker resumed only what it held when it noticed the rebalance.

use std::time::{Duration, Instant};

use integration_tests::TestEnv;
use rdkafka::message::{Message, OwnedMessage};
use runtime::kafka::{
    counting_group_reader, AckedProducer, GroupReader, OutgoingMessage, Rebalances,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_partition_given_back_by_a_rebalance_is_read_again() {
    let env = TestEnv::new("group-pause").await;
    let topic = env.kafka.topics().parked;
    let producer = AckedProducer::new(&env.kafka).unwrap();
    producer
        .send_all(
            &topic,
            &[OutgoingMessage {
                key: b"k",
                payload: b"waiting",
                headers: &[],
                partition: Some(0),
            }],
        )
        .await
        .unwrap();
    let (mut first, _) = counting_group_reader(&env.kafka, "pause-test", &[&topic]).unwrap();
    assert!(
        read_until(&mut first, Duration::from_secs(60)).await,
        "the record was never read"
    );
    // Not due yet: paused, not committed (as the parking worker does).
    first.pause(&topic, &[0]);

    // A second member joins (the partition may move to it) and leaves (it comes back).
    let (mut second, _) = counting_group_reader(&env.kafka, "pause-test", &[&topic]).unwrap();
    let both_until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < both_until {
        let soon = tokio::time::Instant::now() + Duration::from_millis(500);
        let (a, _b) = tokio::join!(
            first.next_batch_until(10, Duration::from_millis(100), soon),
            second.next_batch_until(10, Duration::from_millis(100), soon),
        );
        // Read again already (the rebalance gave partition 0 back unpaused): done.
        if holds_waiting(a) {
            return;
        }
    }
    // Dropped on a thread of its own: librdkafka's destroy may take a while.
    std::thread::spawn(move || drop(second));
    assert!(
        read_until(&mut first, Duration::from_secs(90)).await,
        "partition 0 came back to the first member and was never read again: still paused"
    );
}

/// Whether a batch holds the record waiting on partition 0.
fn holds_waiting(batch: Option<Vec<OwnedMessage>>) -> bool {
    batch
        .unwrap_or_default()
        .iter()
        .any(|m| m.partition() == 0 && m.payload() == Some(b"waiting".as_slice()))
}

/// Reads until the waiting record comes, for at most `within`.
async fn read_until(reader: &mut GroupReader<Rebalances>, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let soon = tokio::time::Instant::now() + Duration::from_secs(1);
        if holds_waiting(
            reader
                .next_batch_until(10, Duration::from_millis(100), soon)
                .await,
        ) {
            return true;
        }
    }
    false
}
