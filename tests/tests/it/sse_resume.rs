//! SSE resume against the real stack: a dashboard that loses its connection and
//! comes back with `Last-Event-ID` gets every event it missed, none twice, from any
//! api instance.

use std::collections::HashSet;
use std::time::Duration;

use integration_tests::sse::{SseEvent, SseReader};
use integration_tests::TestEnv;

fn calls(from: u32, to: u32) -> String {
    (from..to)
        .map(|n| {
            format!(
                r#"{{"call":{{"id":"sse_{n}","caller":{{"number":"312555{:04}"}},"started_at":"2026-11-21T1{}:00:00Z","payout":"$2.00"}}}}"#,
                2000 + n,
                n % 10
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn next(events: &mut SseReader) -> SseEvent {
    tokio::time::timeout(Duration::from_secs(60), events.next_event())
        .await
        .expect("an event within 60 s")
        .expect("the stream stays open")
}

fn external_id(event: &SseEvent) -> String {
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
    data["external_id"].as_str().unwrap_or("").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_dashboard_misses_nothing_and_sees_nothing_twice() {
    let env = TestEnv::new("resume").await;
    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "20")])
        .await;
    let ingest = env.start("ingest", &[]).await;
    let first_api = env.start("api", &[]).await;
    let second_api = env.start("api", &[]).await;

    let mut live = SseReader::connect(&first_api.url("/api/events?client_id=arroyo")).await;
    let (status, _) = ingest
        .post_webhook("arroyo", "application/x-ndjson", calls(0, 3))
        .await;
    assert_eq!(status, 202);
    let first = next(&mut live).await;
    let resume_from = first.id.clone().expect("events carry ids");
    drop(live);

    // Published while the dashboard is away.
    let (status, _) = ingest
        .post_webhook("arroyo", "application/x-ndjson", calls(3, 6))
        .await;
    assert_eq!(status, 202);

    // Back, on the other api instance, with the id it last saw.
    let mut resumed = SseReader::connect_with(
        &second_api.url("/api/events?client_id=arroyo"),
        &[("last-event-id", resume_from.as_str())],
    )
    .await;
    let mut seen = Vec::new();
    let mut ids = Vec::new();
    while seen.len() < 5 {
        let event = next(&mut resumed).await;
        assert_eq!(event.event, "call.created", "{event:?}");
        seen.push(external_id(&event));
        ids.push(event.id.clone().unwrap_or_default());
    }
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), 5, "no event twice: {seen:?}");
    assert!(
        !seen.contains(&external_id(&first)),
        "the event it saw ({} at {resume_from}) is not sent again: {seen:?} at {ids:?}",
        external_id(&first)
    );
    let expected: HashSet<String> = (0..6)
        .map(|n| format!("sse_{n}"))
        .filter(|id| *id != external_id(&first))
        .collect();
    assert_eq!(
        seen.iter().cloned().collect::<HashSet<_>>(),
        expected,
        "every missed event"
    );

    // Nothing more is pending: the next event is a new one.
    let (status, _) = ingest
        .post_webhook("arroyo", "application/x-ndjson", calls(6, 7))
        .await;
    assert_eq!(status, 202);
    assert_eq!(external_id(&next(&mut resumed).await), "sse_6");

    // A failing integration is announced too.
    let (status, _) = ingest
        .post_webhook("arroyo", "application/json", "{not json".to_owned())
        .await;
    assert_eq!(status, 400);
    let error = next(&mut resumed).await;
    assert_eq!(error.event, "integration.error", "{error:?}");
    let data: serde_json::Value = serde_json::from_str(&error.data).unwrap();
    assert_eq!(
        (data["client_id"].as_str(), data["dead_letters"].as_u64()),
        (Some("arroyo"), Some(1))
    );
    assert!(data["reason"].as_str().unwrap().contains("JSON"), "{data}");

    // A malformed id is refused, not silently ignored.
    let response = reqwest::Client::new()
        .get(second_api.url("/api/events"))
        .header("last-event-id", "2-41")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

/// A call version the processor announced twice (a batch decided again after a
/// crash) with the client's reconnect in between: the short fault matrix's api kill
/// fell there once in CI, and each client got 4 versions twice. The enriched topic
/// is written here by hand: version 7 of `c1`, another event, the same version 7
/// again; the client resumes after the second, on an api started afterwards (so
/// from the catch-up reader, which reads back before the id to learn what the
/// client had). It must get `c2`'s event, not `c1`'s repeat. A second client
/// resumes exactly where the new api started (its ring empty, but covering the id):
/// it must not get `c0`'s repeat either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_repeated_across_a_reconnect_is_not_sent_again() {
    let env = TestEnv::new("sse-repeat").await;
    let producer = runtime::kafka::AckedProducer::new(&env.kafka).unwrap();
    let topic = env.kafka.topics().enriched;
    let event = |id: &str, version: u64| {
        format!(
            r#"{{"client_id":"arroyo","account":"acme-leads","id":"{id}","version":{version}}}"#
        )
    };
    let publish = |payloads: Vec<String>| {
        let (producer, topic) = (&producer, topic.clone());
        async move {
            let messages: Vec<runtime::kafka::OutgoingMessage<'_>> = payloads
                .iter()
                .map(|p| runtime::kafka::OutgoingMessage {
                    key: b"k",
                    payload: p.as_bytes(),
                    headers: &[],
                    partition: Some(0),
                })
                .collect();
            producer.send_all(&topic, &messages).await.unwrap();
        }
    };
    publish(vec![event("c1", 7), event("c0", 1), event("c1", 7)]).await;
    let api = env.start("api", &[]).await;
    // Resumed from the api's start (its ring is empty): the client had c0 and c1's
    // version 7 from an instance killed since (CI run 6's short fault matrix: 3
    // versions twice per client; before the ring said whether it holds the look
    // back, this stream was served from the empty ring and sent the repeat first).
    let end = tokio::task::block_in_place(|| integration_tests::topic_end_id(&env, &topic));
    assert!(end.starts_with("0:3"), "{end}");
    let mut from_the_end = SseReader::connect_with(
        &api.url("/api/events?client_id=arroyo"),
        &[("Last-Event-ID", end.as_str())],
    )
    .await;
    let mut events = SseReader::connect_with(
        &api.url("/api/events?client_id=arroyo"),
        &[("Last-Event-ID", "0:2")],
    )
    .await;
    publish(vec![event("c0", 1), event("c2", 1)]).await;
    let first = next(&mut events).await;
    assert!(
        first.data.contains(r#""id":"c2""#),
        "the repeat of c1's version 7 was sent: {first:?}"
    );
    assert_eq!(
        first.id.as_deref().map(|id| id.starts_with("0:5")),
        Some(true),
        "{first:?}"
    );
    let first = next(&mut from_the_end).await;
    assert!(
        first.data.contains(r#""id":"c2""#),
        "c0's version 1 again, from the ring that started after it: {first:?}"
    );
}
