//! The batch step against the in-memory store: what it makes of records, with and
//! without stored calls, without a broker or a database.

use super::*;
use crate::store::MemoryStore;
use engine::enrich::history::Histories;
use rdkafka::message::Timestamp;
use schemas::Source;
use serde_json::value::RawValue;

fn raw_message(client: &str, offset: i64) -> OwnedMessage {
    let envelope = RawEnvelope {
        raw_id: uuid::Uuid::from_u128(offset as u128),
        client_id: ClientId::parse(client).unwrap(),
        source: Source::Webhook,
        received_at: Utc::now(),
        idempotency_key: offset.to_string(),
        integration_version: 1,
        payload: RawValue::from_string("{}".into()).unwrap(),
    };
    OwnedMessage::new(
        Some(envelope.to_json()),
        None,
        "calls.raw".into(),
        Timestamp::NotAvailable,
        0,
        offset,
        None,
    )
}

/// A pipeline over `integrations` and a store holding `stored`.
fn test_pipeline(
    integrations: Vec<schemas::Integration>,
    wait: Duration,
    stored: Arc<MemoryStore>,
) -> Pipeline<MemoryStore> {
    Pipeline {
        registry: IntegrationRegistry::fixed(integrations),
        registry_wait: wait,
        store: stored,
        max_backoff: wait,
        mappings: HashMap::new(),
        enricher: Enricher {
            histories: Histories::new(100),
            managed: Arc::new(HashMap::new()),
        },
    }
}

fn samples() -> Vec<schemas::Integration> {
    serde_json::from_str(include_str!("../../deploy/integrations/samples.json")).unwrap()
}

/// Virtual time (paused clock): the batch costs one registry wait, not one per record.
#[tokio::test(start_paused = true)]
async fn an_unknown_integration_costs_one_wait_per_batch() {
    let wait = Duration::from_secs(5);
    let mut pipeline = test_pipeline(vec![], wait, Arc::default());
    let batch: Vec<OwnedMessage> = (0..100).map(|n| raw_message("gone", n)).collect();
    let started = tokio::time::Instant::now();
    let (_stop, shutdown) = Shutdown::new();
    let processed = pipeline.process(&batch, 0, &shutdown).await.unwrap();
    assert_eq!(processed.dead_letters.len(), 100);
    assert!(processed.dead_letters[99]
        .reason
        .contains("integration gone is not defined"));
    assert_eq!(started.elapsed(), wait, "one wait for the whole batch");
}

/// A call and its late payout in one batch: the late record merges onto the
/// call made by the earlier one, without a stored row to read.
#[tokio::test]
async fn a_late_field_in_the_same_batch_merges_onto_its_call() {
    let mut pipeline = test_pipeline(samples(), Duration::from_millis(10), Arc::default());
    let record = |payload: &str, offset: i64| {
        let envelope = RawEnvelope {
            raw_id: uuid::Uuid::from_u128(offset as u128),
            client_id: ClientId::parse("arroyo").unwrap(),
            source: Source::Webhook,
            received_at: Utc::now() + chrono::Duration::milliseconds(offset),
            idempotency_key: offset.to_string(),
            integration_version: 1,
            payload: RawValue::from_string(payload.to_owned()).unwrap(),
        };
        OwnedMessage::new(
            Some(envelope.to_json()),
            Some(b"acme-leads|+14155552671".to_vec()),
            "calls.raw".into(),
            Timestamp::NotAvailable,
            0,
            offset,
            None,
        )
    };
    let batch = [
        record(
            r#"{"call":{"id":"ar_1","caller":{"number":"4155552671"},"started_at":"2026-11-20T10:00:00Z"}}"#,
            0,
        ),
        record(r#"{"call":{"id":"ar_1","payout":"$7.50"}}"#, 1),
    ];
    let (_stop, shutdown) = Shutdown::new();
    let processed = pipeline.process(&batch, 0, &shutdown).await.unwrap();
    assert!(
        processed.dead_letters.is_empty(),
        "{:?}",
        processed.dead_letters
    );
    let [first, late] = processed.calls.as_slice() else {
        panic!("two versions")
    };
    assert_eq!(first.id, late.id);
    assert!(late.version > first.version);
    assert_eq!(late.caller.as_str(), "+14155552671");
    assert_eq!(late.payout.unwrap().to_string(), "7.50");
    assert_eq!(late.status, "qualified");
    assert_eq!(
        (first.event, late.event),
        (
            schemas::call::Change::Created,
            schemas::call::Change::Updated
        )
    );
}

/// A record under another key than its caller's is sent on to the caller's
/// partition, not processed here: two instances must never decide one caller.
#[tokio::test]
async fn a_record_under_the_wrong_key_is_forwarded_to_its_callers_partition() {
    let mut pipeline = test_pipeline(samples(), Duration::from_millis(10), Arc::default());
    let envelope = RawEnvelope {
        raw_id: uuid::Uuid::from_u128(1),
        client_id: ClientId::parse("arroyo").unwrap(),
        source: Source::Webhook,
        received_at: Utc::now(),
        idempotency_key: "1".into(),
        integration_version: 1,
        payload: RawValue::from_string(
            r#"{"call":{"id":"ar_1","caller":{"number":"4155552671.0"},"started_at":"2026-11-20T10:00:00Z"}}"#.into(),
        )
        .unwrap(),
    };
    let message = OwnedMessage::new(
        Some(envelope.to_json()),
        Some(b"some-call-id".to_vec()),
        "calls.raw".into(),
        Timestamp::NotAvailable,
        0,
        0,
        None,
    );
    let (_stop, shutdown) = Shutdown::new();
    let processed = pipeline.process(&[message], 0, &shutdown).await.unwrap();
    assert!(processed.calls.is_empty());
    let [(key, payload)] = processed.forwards.as_slice() else {
        panic!("one forward")
    };
    assert_eq!(key, "acme-leads|+14155552671");
    assert_eq!(
        payload,
        &envelope.to_json(),
        "the envelope travels unchanged"
    );
}

fn arroyo_record(payload: &str, offset: i64) -> OwnedMessage {
    let envelope = RawEnvelope {
        raw_id: uuid::Uuid::from_u128(1000 + offset as u128),
        client_id: ClientId::parse("arroyo").unwrap(),
        source: Source::Webhook,
        received_at: Utc::now(),
        idempotency_key: format!("k{offset}"),
        integration_version: 1,
        payload: RawValue::from_string(payload.to_owned()).unwrap(),
    };
    OwnedMessage::new(
        Some(envelope.to_json()),
        Some(b"acme-leads|+14155552671".to_vec()),
        "calls.raw".into(),
        Timestamp::NotAvailable,
        0,
        offset,
        None,
    )
}

/// A late field for a call stored by an earlier batch: merged over the stored
/// version (read from the store), as a newer version of the same call.
#[tokio::test]
async fn a_late_field_merges_onto_the_stored_call() {
    let store = Arc::new(MemoryStore::default());
    let mut pipeline = test_pipeline(samples(), Duration::from_millis(10), store.clone());
    let (_stop, shutdown) = Shutdown::new();
    let first = pipeline
        .process(
            &[arroyo_record(
                r#"{"call":{"id":"ar_s","caller":{"number":"4155552671"},"started_at":"2026-11-20T10:00:00Z"}}"#,
                0,
            )],
            0,
            &shutdown,
        )
        .await
        .unwrap();
    let [stored] = first.calls.as_slice() else {
        panic!("one call")
    };
    store.put(stored.clone());
    // A fresh instance (nothing cached) gets the late payout.
    let mut later = test_pipeline(samples(), Duration::from_millis(10), store.clone());
    let late = later
        .process(
            &[arroyo_record(
                r#"{"call":{"id":"ar_s","payout":"$9.25"}}"#,
                1,
            )],
            0,
            &shutdown,
        )
        .await
        .unwrap();
    assert!(late.dead_letters.is_empty(), "{:?}", late.dead_letters);
    let [merged] = late.calls.as_slice() else {
        panic!("one call: {:?}", late.calls)
    };
    assert_eq!(merged.id, stored.id);
    assert_eq!(merged.caller, stored.caller, "the stored fields stay");
    assert_eq!(merged.started_at, stored.started_at);
    assert_eq!(merged.payout.unwrap().to_string(), "9.25");
    assert!(merged.version > stored.version);
}

/// The caller's stored calls (a history read from the store on a cache miss) make a
/// new call a repeat, and a late older call re-decides a stored one.
#[tokio::test]
async fn stored_histories_decide_repeats() {
    let store = Arc::new(MemoryStore::default());
    let (_stop, shutdown) = Shutdown::new();
    let mut first = test_pipeline(samples(), Duration::from_millis(10), store.clone());
    let earlier = first
        .process(
            &[arroyo_record(
                r#"{"call":{"id":"ar_1","caller":{"number":"4155552671"},"started_at":"2026-11-20T10:00:00Z","duration":120}}"#,
                0,
            )],
            0,
            &shutdown,
        )
        .await
        .unwrap();
    for call in &earlier.calls {
        store.put(call.clone());
    }
    let mut second = test_pipeline(samples(), Duration::from_millis(10), store.clone());
    let next = second
        .process(
            &[arroyo_record(
                r#"{"call":{"id":"ar_2","caller":{"number":"4155552671"},"started_at":"2026-11-22T10:00:00Z","duration":120}}"#,
                1,
            )],
            0,
            &shutdown,
        )
        .await
        .unwrap();
    let repeat = next
        .calls
        .iter()
        .find(|c| c.external_id.as_deref() == Some("ar_2"))
        .unwrap();
    assert_eq!(repeat.repeat_of, Some(earlier.calls[0].id), "{repeat:?}");
    assert_eq!(repeat.status, "repeat");
}
