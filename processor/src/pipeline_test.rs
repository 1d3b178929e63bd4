//! The batch step against the in-memory keyed state and store: what it makes of
//! records, with and without stored calls, without a broker or a database.

use super::*;
use crate::state::{CallerNames, Changelog, KeyedState, MemoryEngine};
use crate::store::MemoryStore;
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

/// What a batch reads and writes besides its records: ClickHouse's twin and an
/// in-memory keyed state (partitions 0 to 7 taken as caught up; nothing is ever
/// written to a changelog here: no broker).
#[derive(Clone)]
struct World {
    store: Arc<MemoryStore>,
    state: Arc<KeyedState>,
}

impl Default for World {
    fn default() -> Self {
        let kafka = runtime::kafka::KafkaConfig::new("127.0.0.1:1", "");
        let producer = runtime::kafka::AckedProducer::new(&kafka).unwrap();
        let state = KeyedState::with_engine(
            Arc::new(MemoryEngine::default()),
            Changelog::new(producer, &kafka),
            CallerNames::new(""),
            45,
            1000,
        );
        state.assume_ready(&(0..8).collect::<Vec<_>>(), 0);
        Self {
            store: Arc::default(),
            state: Arc::new(state),
        }
    }
}

/// A pipeline over `integrations` and `world`.
fn test_pipeline(
    integrations: Vec<schemas::Integration>,
    wait: Duration,
    world: World,
) -> Pipeline<MemoryStore> {
    Pipeline {
        registry: IntegrationRegistry::fixed(integrations),
        registry_wait: wait,
        store: world.store,
        state: world.state,
        standby: None,
        max_backoff: wait,
        mappings: HashMap::new(),
        enricher: Enricher {
            managed: Arc::new(HashMap::new()),
        },
        parking: crate::config::ParkingConfig::default(),
        max_message_bytes: schemas::limits::DEFAULT_MAX_MESSAGE_BYTES,
        source_keys: Default::default(),
        erasing: Vec::new(),
        suppressions: crate::suppressions::Suppressions::new(
            runtime::table::CompactedTable::fixed([]),
            String::new(),
        ),
        suppressing: Vec::new(),
    }
}

fn samples() -> Vec<schemas::Integration> {
    serde_json::from_str(include_str!("../../deploy/integrations/samples.json")).unwrap()
}

/// Virtual time (paused clock): the batch costs one registry wait, not one per record.
#[tokio::test(start_paused = true)]
async fn an_unknown_integration_costs_one_wait_per_batch() {
    let wait = Duration::from_secs(5);
    let mut pipeline = test_pipeline(vec![], wait, World::default());
    let batch: Vec<OwnedMessage> = (0..100).map(|n| raw_message("gone", n)).collect();
    let started = tokio::time::Instant::now();
    let (_stop, shutdown) = Shutdown::new();
    let (processed, _) = pipeline.process(&batch, 0, None, &shutdown).await.unwrap();
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
    let mut pipeline = test_pipeline(samples(), Duration::from_millis(10), World::default());
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
    let (processed, _) = pipeline.process(&batch, 0, None, &shutdown).await.unwrap();
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
    assert_eq!(late.caller.as_ref().unwrap().as_str(), "+14155552671");
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
    let mut pipeline = test_pipeline(samples(), Duration::from_millis(10), World::default());
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
    let (processed, _) = pipeline
        .process(&[message], 0, None, &shutdown)
        .await
        .unwrap();
    assert!(processed.calls.is_empty());
    let [forward] = processed.forwards.as_slice() else {
        panic!("one forward")
    };
    assert_eq!(forward.key, "acme-leads|+14155552671");
    assert_eq!(
        forward.payload,
        envelope.to_json(),
        "the envelope travels unchanged"
    );
    assert_eq!(forward.partition, None, "the partition count was not known");
}

/// After the raw topic gained partitions, a caller's older records still sit in the
/// partition the old count sent them to, while its new records go to the one the
/// new count gives. The older ones are forwarded to the new partition, not decided
/// where they are: a caller's calls are decided by one partition's owner only.
#[tokio::test]
async fn a_record_outside_its_callers_partition_is_forwarded_there() {
    let key = "acme-leads|+14155552671";
    let home = schemas::topics::partition_for(key.as_bytes(), 4);
    let before = schemas::topics::partition_for(key.as_bytes(), 2);
    assert_ne!(home, before, "this caller moves when 2 partitions become 4");
    let in_partition = |partition: i32| {
        let record = arroyo_record(
            r#"{"call":{"id":"ar_1","caller":{"number":"4155552671"},"started_at":"2026-11-20T10:00:00Z"}}"#,
            1,
        );
        OwnedMessage::new(
            record.payload().map(<[u8]>::to_vec),
            record.key().map(<[u8]>::to_vec),
            "calls.raw".into(),
            Timestamp::NotAvailable,
            partition,
            1,
            None,
        )
    };
    let mut pipeline = test_pipeline(samples(), Duration::from_millis(10), World::default());
    let (_stop, shutdown) = Shutdown::new();

    let (old, _) = pipeline
        .process(&[in_partition(before)], 0, Some(4), &shutdown)
        .await
        .unwrap();
    assert!(
        old.calls.is_empty(),
        "decided outside its caller's partition"
    );
    let [forward] = old.forwards.as_slice() else {
        panic!("one forward, got {:?}", old.forwards)
    };
    assert_eq!((forward.key.as_str(), forward.partition), (key, Some(home)));

    let (new, _) = pipeline
        .process(&[in_partition(home)], 0, Some(4), &shutdown)
        .await
        .unwrap();
    assert!(new.forwards.is_empty());
    assert_eq!(new.calls.len(), 1, "decided in its caller's partition");

    // While the count is not known (it could not be read), the key alone decides.
    let (unknown, _) = pipeline
        .process(&[in_partition(before)], 0, None, &shutdown)
        .await
        .unwrap();
    assert!(unknown.forwards.is_empty());
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

/// One record through a fresh instance (what it knows of the past is in the
/// world's keyed state); the batch's calls are then stored, as the sink would.
async fn through_fresh_instance(world: &World, payload: &str, offset: i64) -> Processed {
    let pipeline = test_pipeline(samples(), Duration::from_millis(10), world.clone());
    stored_after(pipeline, world, &[arroyo_record(payload, offset)]).await
}

/// `batch` through `pipeline`; its calls are then stored, as the sink would.
async fn stored_after(
    mut pipeline: Pipeline<MemoryStore>,
    world: &World,
    batch: &[OwnedMessage],
) -> Processed {
    let (_stop, shutdown) = Shutdown::new();
    let (processed, _) = pipeline.process(batch, 0, None, &shutdown).await.unwrap();
    for call in &processed.calls {
        world.store.put(call.clone());
    }
    processed
}

/// A late field for a call stored by an earlier batch: merged over the stored
/// version (kept in the state), as a newer version of the same call.
#[tokio::test]
async fn a_late_field_merges_onto_the_stored_call() {
    let world = World::default();
    let first = through_fresh_instance(
        &world,
        r#"{"call":{"id":"ar_s","caller":{"number":"4155552671"},"started_at":"2026-11-20T10:00:00Z"}}"#,
        0,
    )
    .await;
    let [stored] = first.calls.as_slice() else {
        panic!("one call")
    };
    let late =
        through_fresh_instance(&world, r#"{"call":{"id":"ar_s","payout":"$9.25"}}"#, 1).await;
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

/// A batch decided but never stored (the process died, or a store failed and the
/// pipeline restarted) leaves nothing in the state: decided again, it meets the
/// call as it was stored, so a move still retires the old position. The state held
/// the undone batch's version before, and the old position stayed in
/// `calls_by_time` beside the new one (seen in the cluster kill test).
#[tokio::test]
async fn a_batch_decided_but_not_logged_is_forgotten_at_a_restart() {
    let world = World::default();
    through_fresh_instance(
        &world,
        r#"{"call":{"id":"ar_m","caller":{"number":"4155552671"},"started_at":"2026-11-20T10:00:00Z"}}"#,
        0,
    )
    .await;
    world.state.assume_logged().unwrap();
    let correction = r#"{"call":{"id":"ar_m","caller":{"number":"4155552671"},"started_at":"2026-11-20T12:00:00Z"}}"#;
    let decided = through_fresh_instance(&world, correction, 1).await;
    assert_eq!(
        decided.moved.len(),
        1,
        "the first decision retires the old start"
    );
    // The batch is not logged: the pipeline restarts (as after a failed store).
    world.state.forget();
    world.state.assume_ready(&(0..8).collect::<Vec<_>>(), 0);
    let again = through_fresh_instance(&world, correction, 1).await;
    assert_eq!(
        again.moved.len(),
        1,
        "decided again, the call is where it was stored: {:?}",
        again.moved
    );
    assert_eq!(
        again.moved[0].started_at.to_rfc3339(),
        "2026-11-20T10:00:00+00:00"
    );
}

/// The caller's kept calls make a new call a repeat, and a late older call
/// re-decides a stored one: its next version, built over the stored version, comes
/// out of the batch as an update.
#[tokio::test]
async fn kept_histories_decide_repeats() {
    let world = World::default();
    let call = |id: &str, day: u32| {
        format!(
            r#"{{"call":{{"id":"{id}","caller":{{"number":"4155552671"}},"started_at":"2026-11-{day}T10:00:00Z","duration":120}}}}"#
        )
    };
    let earlier = through_fresh_instance(&world, &call("ar_1", 20), 0).await;
    let first = earlier.calls[0].clone();
    let next = through_fresh_instance(&world, &call("ar_2", 22), 1).await;
    let repeat = next
        .calls
        .iter()
        .find(|c| c.external_id.as_deref() == Some("ar_2"))
        .unwrap();
    assert_eq!(repeat.repeat_of, Some(first.id), "{repeat:?}");
    assert_eq!(repeat.status, "repeat");

    let backfill = through_fresh_instance(&world, &call("ar_0", 18), 2).await;
    let oldest = backfill
        .calls
        .iter()
        .find(|c| c.external_id.as_deref() == Some("ar_0"))
        .unwrap();
    assert_eq!(oldest.repeat_of, None, "the oldest call is the first");
    let redecided = backfill
        .calls
        .iter()
        .find(|c| c.id == first.id)
        .expect("the stored ar_1, re-decided");
    assert_eq!(redecided.repeat_of, Some(oldest.id));
    assert_eq!(redecided.event, schemas::call::Change::Updated);
    assert!(redecided.version > first.version);
    assert_eq!(
        redecided.started_at, first.started_at,
        "built over the stored version"
    );
}

/// A pipeline whose managed numbers hold arroyo's tracking number.
fn pipeline_on_managed_number(world: &World) -> Pipeline<MemoryStore> {
    let mut pipeline = test_pipeline(samples(), Duration::from_millis(10), world.clone());
    let number = schemas::E164::parse("+18885550100", phonenumber::country::Id::US).unwrap();
    let managed = schemas::callmatrix::ManagedNumber {
        number: number.clone(),
        account: "acme-leads".into(),
        campaign: String::new(),
        active: true,
    };
    pipeline.enricher.managed = Arc::new(HashMap::from([(number.as_str().to_owned(), managed)]));
    pipeline
}

fn relink_request(id: CallId, offset: i64) -> OwnedMessage {
    let request = RelinkRequest {
        client_id: ClientId::parse("arroyo").unwrap(),
        id,
    };
    let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
        key: schemas::topics::RELINK_HEADER,
        value: Some("1"),
    });
    OwnedMessage::new(
        Some(serde_json::to_vec(&request).unwrap()),
        Some(b"acme-leads|+14155552671".to_vec()),
        "calls.raw".into(),
        Timestamp::NotAvailable,
        0,
        offset,
        Some(headers),
    )
}

/// A CmCall as the linker sends it to its caller's partition.
fn cm_call_message(id: &str, started_at: chrono::DateTime<Utc>, offset: i64) -> OwnedMessage {
    let call = CmCall {
        cm_call_id: id.into(),
        caller: schemas::E164::parse("+14155552671", phonenumber::country::Id::US).unwrap(),
        called: schemas::E164::parse("+18885550100", phonenumber::country::Id::US).unwrap(),
        started_at,
        duration_s: 120,
        payout: None,
        account: Some("acme-leads".into()),
    };
    let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
        key: schemas::topics::CM_CALL_HEADER,
        value: Some("1"),
    });
    OwnedMessage::new(
        Some(serde_json::to_vec(&call).unwrap()),
        Some(b"acme-leads|+14155552671".to_vec()),
        "calls.raw".into(),
        Timestamp::NotAvailable,
        0,
        offset,
        Some(headers),
    )
}

fn managed_call(id: &str, day: u32) -> String {
    format!(
        r#"{{"call":{{"id":"{id}","caller":{{"number":"4155552671"}},"tracking_number":"8885550100","started_at":"2026-11-{day}T10:00:00Z","duration":120}}}}"#
    )
}

/// A CmCall reaches its caller's partition (the linker sends it there): the stored
/// duplicate it completes is linked. In one batch with a record that re-decides the
/// same call's repeat (an older call of its caller, arriving late), both changes
/// land on one new version; neither is lost to the other.
#[tokio::test]
async fn a_relink_and_a_repeat_redecision_of_one_call_both_survive() {
    let world = World::default();
    let first = stored_after(
        pipeline_on_managed_number(&world),
        &world,
        &[arroyo_record(&managed_call("ar_2", 22), 0)],
    )
    .await;
    let stored = first.calls[0].clone();
    assert!(
        stored.is_duplicate && stored.cm_call_id.is_none(),
        "{stored:?}"
    );

    // Its CmCall arrives; an older call of the same caller arrives in the same
    // batch.
    let batch = [
        cm_call_message("cm_9", stored.started_at, 1),
        arroyo_record(&managed_call("ar_1", 20), 2),
    ];
    let processed = stored_after(pipeline_on_managed_number(&world), &world, &batch).await;
    let versions: Vec<&CallRecord> = processed
        .calls
        .iter()
        .filter(|c| c.id == stored.id)
        .collect();
    let [next] = versions.as_slice() else {
        panic!("one new version of the relinked call: {versions:?}")
    };
    let older = processed.calls.iter().find(|c| c.id != stored.id).unwrap();
    assert_eq!(next.cm_call_id.as_deref(), Some("cm_9"), "the link");
    assert_eq!(next.repeat_of, Some(older.id), "and the repeat decision");
    assert!(next.version > stored.version);
    assert_eq!(next.event, schemas::call::Change::Updated);
}

/// A relink that finds nothing new writes no version.
#[tokio::test]
async fn a_relink_that_changes_nothing_writes_nothing() {
    let world = World::default();
    let first = stored_after(
        pipeline_on_managed_number(&world),
        &world,
        &[arroyo_record(&managed_call("ar_2", 22), 0)],
    )
    .await;
    let relink = [relink_request(first.calls[0].id, 1)];
    let processed = stored_after(pipeline_on_managed_number(&world), &world, &relink).await;
    assert!(processed.calls.is_empty(), "{:?}", processed.calls);
}
