//! How a group reader's batch closes, on the real broker: at its size, at its
//! longest wait, or (the processor's raw reader) once the consumer has gone quiet.

use std::time::Duration;

use integration_tests::TestEnv;
use rdkafka::Message;
use runtime::kafka::{group_reader, AckedProducer, BatchWait};
use tokio::time::Instant;

/// Publishes `count` records to the run's raw topic and returns it.
async fn published(env: &TestEnv, count: usize) -> String {
    let topic = env.kafka.topics().raw;
    let producer = AckedProducer::new(&env.kafka).expect("producer");
    let records: Vec<(String, Vec<u8>)> = (0..count)
        .map(|n| (format!("key{n}"), format!("{{\"n\":{n}}}").into_bytes()))
        .collect();
    producer
        .send_pairs(&topic, &records)
        .await
        .expect("records acknowledged");
    topic
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_closes_when_no_more_records_come() {
    let env = TestEnv::new("batch-idle").await;
    let topic = published(&env, 5).await;
    let mut reader = group_reader(&env.kafka.live(), "batching", &[&topic]).expect("reader");
    // A batch that waited its longest for company would take 60 s; one that closes
    // when the consumer goes quiet comes once the first fetch is handed over. The
    // first batch includes joining the group.
    let wait = BatchWait {
        max: Duration::from_secs(60),
        idle: Some(Duration::from_millis(200)),
    };
    let started = Instant::now();
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let batch = tokio::time::timeout(Duration::from_secs(40), reader.next_batch(100, wait))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no batch closed within 40 s after {} of 5 records: the idle close did not happen",
                    seen.len()
                )
            });
        assert!(!batch.is_empty(), "a batch holds at least one record");
        seen.extend(batch.iter().map(|m| (m.partition(), m.offset())));
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 5, "every record once: {seen:?}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_idle_close_a_batch_waits_for_its_longest_wait() {
    let env = TestEnv::new("batch-fixed").await;
    let topic = published(&env, 1).await;
    let mut reader = group_reader(&env.kafka, "batching", &[&topic]).expect("reader");
    // The other readers' batches close only at their size or their longest wait
    // after the first record. Two more records come 8 s after the first (joining
    // the group takes less), well inside a 20 s wait: one batch holds all three.
    // Closed when the consumer went quiet, it would hold the first alone.
    let later = {
        let env_kafka = env.kafka.clone();
        let topic = topic.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(8)).await;
            let producer = AckedProducer::new(&env_kafka).expect("producer");
            let records = vec![
                ("late1".to_owned(), b"{}".to_vec()),
                ("late2".to_owned(), b"{}".to_vec()),
            ];
            producer.send_pairs(&topic, &records).await.expect("acked");
        })
    };
    let batch = tokio::time::timeout(
        Duration::from_secs(60),
        reader.next_batch(100, Duration::from_secs(20)),
    )
    .await
    .expect("a batch within 60 s");
    later.await.expect("later records sent");
    assert_eq!(
        batch.len(),
        3,
        "the records that came within the wait are in the batch"
    );
}
