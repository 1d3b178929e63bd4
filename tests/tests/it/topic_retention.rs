//! A caller's number leaves the topics by their retention (docs/privacy.md, "The
//! topics"): on the real broker, the topics that carry callers' records delete
//! them once `cmctl topics --retention-hours` has passed, also in a deployment
//! whose topics were created before they had a retention (tansu keeps every record
//! of a topic without `cleanup.policy=delete`, whatever its `retention.ms`). Runs
//! on a broker of its own: tansu deletes at its maintenance, at start and every ten
//! minutes, so the test restarts it.

use std::time::Duration;

use integration_tests::{eventually, read_topic_at, PrivateBroker};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use runtime::kafka::{KafkaConfig, TopicSpec};

const NUMBER: &str = "+14155550142";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_records_leave_every_topic_that_carries_calls_after_its_retention() {
    let mut broker = PrivateBroker::start().await;
    let kafka = KafkaConfig::new(broker.brokers(), "kept.");
    let topics = kafka.topics();
    // A deployment from before: its topics exist, created without any setting.
    let bare: Vec<TopicSpec> = cmctl::topic_specs(&kafka, 2, &cmctl::TopicRetention::default())
        .into_iter()
        .map(|spec| TopicSpec {
            settings: Vec::new(),
            ..spec
        })
        .collect();
    runtime::kafka::ensure_topics(&kafka, &bare)
        .await
        .expect("the old topics");

    let retention = cmctl::TopicRetention {
        calls: Duration::from_secs(2),
    };
    let report = cmctl::create_topics(&kafka, 2, &retention)
        .await
        .expect("cmctl topics");
    assert!(report.created.is_empty(), "created {:?}", report.created);
    let carrying_calls = [
        &topics.raw,
        &topics.enriched,
        &topics.dead_letter,
        &topics.parked,
        &topics.cm_calls,
        &topics.refusals,
    ];
    let specs = cmctl::topic_specs(&kafka, 2, &retention);
    let partitions = |topic: &str| {
        specs
            .iter()
            .find(|spec| spec.name == topic)
            .map_or(1, |spec| spec.partitions)
    };
    for topic in carrying_calls {
        let change = report
            .changed
            .iter()
            .find(|c| c.topic == *topic && c.key == "retention.ms");
        assert_eq!(
            change.map(|c| c.after.as_str()),
            Some("2000"),
            "{topic}: {:?}",
            report.changed
        );
    }
    // Run again, nothing is left to change.
    let again = cmctl::create_topics(&kafka, 2, &retention)
        .await
        .expect("cmctl topics, again");
    assert!(again.changed.is_empty(), "{:?}", again.changed);

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .create()
        .expect("a producer");
    let payload = format!(r#"{{"caller":"{NUMBER}"}}"#);
    // The suppression list is compacted, kept until an entry is removed: the
    // control, which the retention must leave alone.
    for topic in carrying_calls.iter().copied().chain([&topics.suppressions]) {
        producer
            .send(
                FutureRecord::to(topic).key(NUMBER).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("producing to {topic}: {e}"));
    }
    for topic in carrying_calls {
        assert_eq!(
            read_topic_at(&broker.brokers(), "before", topic, partitions(topic)).len(),
            1,
            "{topic} holds the record before its retention"
        );
    }

    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.kill();
    broker.resume().await;
    let brokers = broker.brokers();
    eventually(
        "the records past their retention gone from every topic carrying calls",
        Duration::from_secs(60),
        || {
            let brokers = brokers.clone();
            let carrying: Vec<(String, i32)> = carrying_calls
                .iter()
                .map(|t| (t.to_string(), partitions(t)))
                .collect();
            async move {
                let kept: Vec<String> = carrying
                    .iter()
                    .filter(|(topic, n)| !read_topic_at(&brokers, "after", topic, *n).is_empty())
                    .map(|(topic, _)| topic.clone())
                    .collect();
                kept.is_empty().then_some(()).or_else(|| {
                    eprintln!("still holding the record: {kept:?}");
                    None
                })
            }
        },
    )
    .await;
    assert_eq!(
        read_topic_at(&broker.brokers(), "control", &topics.suppressions, 1).len(),
        1,
        "a compacted topic keeps its entry: {}",
        broker.log_tail(20)
    );
}
