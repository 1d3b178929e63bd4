//! A raw topic that gained partitions, against the real broker (docs/deploy.md,
//! "Partitions and instances"). The broker here cannot add partitions to a topic, so
//! the test builds the state a repartition leaves: the topic has 3 partitions, and
//! some callers' older records sit where a 2-partition topic put them, while their
//! newer records are where 3 partitions put them. Every call must be decided in its
//! caller's partition under the current count, so one processor decides a caller.

use std::time::Duration;

use integration_tests::{eventually, final_count, metric_sum, TestEnv};
use runtime::kafka::{AckedProducer, OutgoingMessage};
use schemas::topics::partition_for;
use schemas::{ClientId, RawEnvelope, Source};

const PARTITIONS: i32 = 3;
const BEFORE: i32 = 2;

fn envelope(n: u32, caller: &str) -> Vec<u8> {
    let payload = format!(
        r#"{{"call":{{"id":"rp_{n}","caller":{{"number":"{caller}"}},"started_at":"2026-11-20T10:{:02}:00Z"}}}}"#,
        n % 60
    );
    RawEnvelope {
        raw_id: uuid::Uuid::from_u128(u128::from(n) + 7_000),
        client_id: ClientId::parse("arroyo").unwrap(),
        source: Source::Webhook,
        received_at: chrono::Utc::now(),
        idempotency_key: format!("rp-{n}"),
        integration_version: 1,
        payload: serde_json::value::RawValue::from_string(payload).unwrap(),
    }
    .to_json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_left_in_a_callers_old_partition_are_decided_in_its_new_one() {
    let env = TestEnv::new("repartition").await;
    let raw = env.kafka.topics().raw;
    // Callers whose partition differs between 2 and 3 partitions: the ones a
    // repartition moves.
    let moved: Vec<(String, String)> = (0..200u32)
        .map(|n| format!("+1415555{:04}", 2000 + n))
        .map(|caller| (format!("acme-leads|{caller}"), caller))
        .filter(|(key, _)| {
            partition_for(key.as_bytes(), BEFORE) != partition_for(key.as_bytes(), PARTITIONS)
        })
        .take(6)
        .collect();
    assert_eq!(moved.len(), 6);

    let producer = AckedProducer::new(&env.kafka).unwrap();
    // Each caller's newer call, sent as ingest sends it: by key, the partitioner
    // choosing the partition.
    let newer: Vec<(String, Vec<u8>)> = moved
        .iter()
        .enumerate()
        .map(|(n, (key, caller))| (key.clone(), envelope(n as u32, caller)))
        .collect();
    producer.send_pairs(&raw, &newer).await.unwrap();
    // librdkafka's partitioner is the one the processor computes.
    let landed: Vec<(String, i32)> = integration_tests::read_topic(&env, &raw, PARTITIONS)
        .into_iter()
        .map(|r| (r.key, r.partition))
        .collect();
    assert_eq!(landed.len(), moved.len());
    for (key, partition) in &landed {
        assert_eq!(
            *partition,
            partition_for(key.as_bytes(), PARTITIONS),
            "librdkafka put {key} in partition {partition}"
        );
    }
    // Each caller's older call, where 2 partitions put it.
    let older: Vec<(String, Vec<u8>, i32)> = moved
        .iter()
        .enumerate()
        .map(|(n, (key, caller))| {
            let payload = envelope(100 + n as u32, caller);
            (key.clone(), payload, partition_for(key.as_bytes(), BEFORE))
        })
        .collect();
    let messages: Vec<OutgoingMessage<'_>> = older
        .iter()
        .map(|(key, payload, partition)| OutgoingMessage {
            key: key.as_bytes(),
            payload,
            headers: &[],
            partition: Some(*partition),
        })
        .collect();
    producer.send_all(&raw, &messages).await.unwrap();

    let processor = env.start("processor", &[]).await;
    let client = env.client();
    let expected = (moved.len() * 2) as u64;
    eventually("every call stored", Duration::from_secs(60), || async {
        (final_count(&client, "arroyo").await == expected).then_some(())
    })
    .await;
    let stored: Vec<(String, String, i32)> = client
        .query(
            "SELECT external_id, caller, raw_partition FROM calls FINAL WHERE client_id = 'arroyo'",
        )
        .fetch_all()
        .await
        .unwrap();
    for (external_id, caller, partition) in &stored {
        let home = partition_for(format!("acme-leads|{caller}").as_bytes(), PARTITIONS);
        assert_eq!(
            *partition, home,
            "{external_id} of {caller} was decided in partition {partition}, not its caller's {home}"
        );
    }
    let forwarded = metric_sum(
        &processor,
        "processor_records_total",
        Some("outcome=\"forwarded\""),
    )
    .await;
    assert_eq!(
        forwarded,
        moved.len() as f64,
        "the older records were forwarded"
    );
}
