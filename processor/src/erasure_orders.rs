//! Erasure orders (`schemas::erasure::ErasureOrder`), in two steps:
//!
//! 1. The order goes to the raw topic under the caller's key
//!    (`schemas::topics::ERASE_HEADER`; the api's `POST /api/privacy/erasures`,
//!    `cmctl privacy erase`), so the partition keeping the caller meets it in order
//!    with the caller's records: the pipeline erases the caller from its keyed state
//!    ([`erase_state`]: the caller's window goes, its calls are kept as ClickHouse
//!    will hold them), logged with the batch, so a later record of an erased call
//!    merges over the erased call and cannot bring the number back. Once that batch
//!    is stored, the order goes on to the erasures topic ([`forward`]).
//! 2. The erasure worker ([`run`]) carries it out in ClickHouse with the processor's
//!    writer credentials (the api's ClickHouse user only reads): `erasure::erase`
//!    (idempotent for its id, so an order read again after a crash finishes the work
//!    and changes nothing twice), then a tombstone for its key, so the number it
//!    holds leaves the topic at compaction, then the commit. An order that fails for
//!    good gets a receipt saying so, so the account sees it; an unreadable one is
//!    logged with its position and counted. On a ClickHouse cluster the mutations
//!    change every shard (`crate::mutations`).

use std::time::Duration;

use chrono::Utc;
use rdkafka::message::{Message, OwnedMessage};
use runtime::kafka::group_reader;
use runtime::shutdown::Shutdown;
use schemas::erasure::{ErasureOrder, ErasureReceipt};

use crate::error::ProcessorError;
use crate::mutations::Mutations;
use crate::sink::{insert, BatchSink, Interrupted};
use crate::state::{BatchWrites, KeyedState, StateError};

pub const GROUP: &str = "erasure-worker";

/// Orders read at a time: each is minutes of mutations at most, and they are rare.
const ORDERS_PER_BATCH: usize = 16;

pub async fn run(
    kafka: &runtime::kafka::KafkaConfig,
    sink: &BatchSink,
    mutation_wait: Duration,
    target: &Mutations,
    shutdown: Shutdown,
) -> Result<(), ProcessorError> {
    let topic = kafka.topics().erasures;
    let mut reader = group_reader(kafka, GROUP, &[&topic])?;
    let mut stop = shutdown.clone();
    loop {
        let batch: Vec<OwnedMessage> = tokio::select! {
            _ = stop.wait() => break,
            batch = reader.next_batch(ORDERS_PER_BATCH, Duration::from_millis(200)) => batch,
        };
        for message in &batch {
            // A tombstone of an order done earlier.
            let Some(payload) = message.payload() else {
                continue;
            };
            let order: ErasureOrder = match serde_json::from_slice(payload) {
                Ok(order) => order,
                Err(error) => {
                    tracing::error!(%error, partition = message.partition(), offset = message.offset(), "unreadable erasure order skipped");
                    metrics::counter!(crate::metric_names::PROCESSOR_ERASURE_ORDERS_TOTAL, "outcome" => "unreadable").increment(1);
                    continue;
                }
            };
            let topics_retention = crate::erasure::topics_retention(kafka).await;
            if let Err(interrupted) = carry_out(
                sink,
                &order,
                mutation_wait,
                target,
                topics_retention,
                &shutdown,
            )
            .await
            {
                return ProcessorError::unless_shutdown(&shutdown, interrupted);
            }
            let key = order.id.to_string();
            let removed = sink
                .retry("remove a done erasure order", &shutdown, || {
                    sink.producer.send_tombstone(&topic, key.as_bytes())
                })
                .await;
            if let Err(interrupted) = removed {
                return ProcessorError::unless_shutdown(&shutdown, interrupted);
            }
        }
        reader.commit(&batch);
    }
    Ok(())
}

/// Erases, or records why it could not: `Err` only when stopped (the order is read
/// again at the next start).
async fn carry_out(
    sink: &BatchSink,
    order: &ErasureOrder,
    mutation_wait: Duration,
    target: &Mutations,
    topics_retention: Option<Duration>,
    shutdown: &Shutdown,
) -> Result<(), Interrupted> {
    let failed = {
        let erased = sink
            .retry("erase a caller", shutdown, || {
                crate::erasure::erase(
                    target,
                    order.id,
                    &order.account,
                    &order.number,
                    &order.requested_by,
                    mutation_wait,
                    topics_retention,
                )
            })
            .await;
        match erased {
            Ok(_) => {
                metrics::counter!(crate::metric_names::PROCESSOR_ERASURE_ORDERS_TOTAL, "outcome" => "erased").increment(1);
                return Ok(());
            }
            Err(_) if shutdown.is_triggered() => {
                return Err(Interrupted {
                    last_error: "stopping".into(),
                })
            }
            Err(failed) => format!("failed: {}", failed.last_error),
        }
    };
    tracing::error!(erasure = %order.id, account = %order.account, outcome = %failed, "erasure order not carried out");
    metrics::counter!(crate::metric_names::PROCESSOR_ERASURE_ORDERS_TOTAL, "outcome" => "failed")
        .increment(1);
    let now = schemas::call::to_whole_seconds(Utc::now());
    let receipt = ErasureReceipt {
        id: order.id,
        account: order.account.clone(),
        requested_by: order.requested_by.clone(),
        started_at: now,
        finished_at: now,
        places: Vec::new(),
        rows: Vec::new(),
        outcome: failed,
        topics_clear_by: chrono::DateTime::<Utc>::UNIX_EPOCH,
    };
    sink.retry("record a failed erasure", shutdown, || {
        insert(&sink.clickhouse, "erasures", std::slice::from_ref(&receipt))
    })
    .await
}

/// Erases `order`'s caller (kept in `partition`) from what `writes` will stage: the
/// caller's window is removed (its key holds the number), and each of its calls the
/// state keeps, in this batch's version if it made one, is kept erased
/// (`schemas::erasure::erase_call`). Calls older than the window are ClickHouse's
/// alone, and the worker erases them there.
pub fn erase_state(
    state: &KeyedState,
    writes: &mut BatchWrites,
    partition: i32,
    order: &ErasureOrder,
) -> Result<(), StateError> {
    let Some(spellings) = schemas::erasure::spellings(&order.number) else {
        tracing::error!(erasure = %order.id, "an erasure order without a phone number; the state is left as it is");
        return Ok(());
    };
    let key = schemas::ids::caller_key(&order.account, &order.number);
    let caller = match writes
        .callers
        .iter()
        .position(|(p, k, _)| *p == partition && *k == key)
    {
        Some(at) => writes.callers.remove(at).2,
        None => state
            .callers(&[(partition, key.clone())])?
            .remove(&key)
            .unwrap_or_default(),
    };
    let ids: Vec<schemas::CallId> = caller.visits.iter().map(|v| v.id).collect();
    let mut kept = state.calls(&ids)?;
    for (_, call) in writes.calls.iter().filter(|(_, c)| ids.contains(&c.id)) {
        kept.insert(call.id, call.clone());
    }
    writes.calls.retain(|(_, c)| !ids.contains(&c.id));
    // The caller's key holds the account: these are the account's calls.
    for (_, mut call) in kept {
        schemas::erasure::erase_call(&mut call, order.id, &spellings);
        writes.calls.push((call.raw.partition, call));
    }
    // An empty window is removed from the state (and tombstoned in the changelog).
    writes
        .callers
        .push((partition, key, engine::state::CallerState::default()));
    Ok(())
}

/// Sends the orders a stored batch carried out on the keyed state on to the
/// erasure worker (those whose ClickHouse part is still to do).
pub async fn forward(
    sink: &BatchSink,
    orders: &[ErasureOrder],
    shutdown: &Shutdown,
) -> Result<(), Interrupted> {
    let pairs: Vec<(String, Vec<u8>)> = orders
        .iter()
        .filter(|o| o.clickhouse)
        .map(|o| (o.id.to_string(), serde_json::to_vec(o).unwrap_or_default()))
        .collect();
    send_keyed(
        sink,
        "forward erasure orders",
        &sink.topics.erasures,
        &pairs,
        shutdown,
    )
    .await
}

/// Publishes the suppressions a stored batch added or lifted, for every processor
/// (`crate::suppressions`). Sent again if the batch is decided again (same key).
pub async fn publish_suppressions(
    sink: &BatchSink,
    changes: &[crate::suppressions::ListChange],
    shutdown: &Shutdown,
) -> Result<(), Interrupted> {
    // One at a time, in order: a batch may add a caller and lift it again (rare:
    // an order and a lift of the same caller in one batch).
    for change in changes {
        match change {
            crate::suppressions::ListChange::Add(entry) => {
                let pairs = [(entry.key(), serde_json::to_vec(entry).unwrap_or_default())];
                send_keyed(
                    sink,
                    "publish suppressions",
                    &sink.topics.suppressions,
                    &pairs,
                    shutdown,
                )
                .await?;
            }
            crate::suppressions::ListChange::Lift(key) => {
                sink.retry("publish a lifted suppression", shutdown, || {
                    sink.producer
                        .send_tombstone(&sink.topics.suppressions, key.as_bytes())
                })
                .await?;
            }
        }
    }
    Ok(())
}

/// Sends keyed messages to `topic` until acknowledged (or stopped); nothing to send
/// is done at once.
async fn send_keyed(
    sink: &BatchSink,
    what: &'static str,
    topic: &str,
    pairs: &[(String, Vec<u8>)],
    shutdown: &Shutdown,
) -> Result<(), Interrupted> {
    if pairs.is_empty() {
        return Ok(());
    }
    sink.retry(what, shutdown, || sink.producer.send_pairs(topic, pairs))
        .await
        .map(|_| ())
}
