//! A local copy caught up longer ago than the changelog keeps its tombstones is not
//! caught up from its checkpoint (it could miss an erasure that compaction has
//! since removed): it is dropped and restored from the start. Decided before the
//! changelog is asked anything, so no broker is needed here.

use std::sync::Arc;

use chrono::{Duration, Utc};

use super::*;

fn state_with_copy(caught_up_at: Option<chrono::DateTime<Utc>>) -> (KeyedState, Arc<MemoryEngine>) {
    let kafka = runtime::kafka::KafkaConfig::new("127.0.0.1:1", "");
    let producer =
        runtime::kafka::AckedProducer::new(&kafka).expect("a producer (connects lazily)");
    let engine = Arc::new(MemoryEngine::default());
    let mut writes = vec![
        (0, (b"hsomeone".to_vec(), Some(b"{}".to_vec()))),
        (
            0,
            (CHECKPOINT.to_vec(), Some(42_i64.to_be_bytes().to_vec())),
        ),
    ];
    if let Some(at) = caught_up_at {
        writes.push((
            0,
            (
                CHECKPOINT_AT.to_vec(),
                Some(at.timestamp().to_be_bytes().to_vec()),
            ),
        ));
    }
    engine.apply(&writes).expect("writes");
    let state = KeyedState::with_engine(
        engine.clone(),
        Changelog::new(producer, &kafka),
        CallerNames::new(""),
        45,
        1000,
    );
    (state, engine)
}

#[tokio::test]
async fn a_copy_older_than_the_tombstones_is_restored_from_the_start() {
    let (state, engine) = state_with_copy(Some(Utc::now() - Duration::days(2)));
    assert_eq!(state.valid_checkpoint(0).await.expect("decided"), 0);
    assert_eq!(
        engine.get(0, b"hsomeone").expect("read"),
        None,
        "the copy was kept"
    );
}

#[tokio::test]
async fn a_copy_without_its_time_is_restored_from_the_start() {
    // Written by a processor from before the time was kept.
    let (state, engine) = state_with_copy(None);
    assert_eq!(state.valid_checkpoint(0).await.expect("decided"), 0);
    assert_eq!(engine.get(0, b"hsomeone").expect("read"), None);
}

#[test]
fn every_checkpoint_written_carries_its_time() {
    let before = Utc::now().timestamp();
    let writes = checkpoint_writes(3, 7);
    assert_eq!(
        writes[0],
        (3, (CHECKPOINT.to_vec(), Some(7_i64.to_be_bytes().to_vec())))
    );
    let (partition, (key, value)) = &writes[1];
    assert_eq!((*partition, key.as_slice()), (3, CHECKPOINT_AT));
    let at = i64::from_be_bytes(
        value
            .as_deref()
            .expect("a time")
            .try_into()
            .expect("8 bytes"),
    );
    assert!(at >= before && at <= Utc::now().timestamp());
    // And the copy's age limit leaves the changelog's tombstones time to spare.
    assert!(COPY_MAX_AGE.as_millis() < u128::from(schemas::topics::STATE_DELETE_RETENTION_MS));
}
