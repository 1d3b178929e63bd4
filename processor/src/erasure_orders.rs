//! The erasure worker: carries out the erasure orders the api publishes
//! (`POST /api/privacy/erasures`, `schemas::erasure::ErasureOrder`) with the
//! processor's writer credentials (the api's ClickHouse user only reads). One order
//! at a time, in order; each is `erasure::erase` (idempotent for its id, so an order
//! read again after a crash finishes the work and changes nothing twice), then a
//! tombstone for its key, so the number it holds leaves the topic at compaction,
//! then the commit. An order that fails for good (or cannot be carried out here: a
//! ClickHouse cluster) gets a receipt saying so, so the account sees it; an
//! unreadable one is logged with its position and counted.

use std::time::Duration;

use chrono::Utc;
use rdkafka::message::{Message, OwnedMessage};
use runtime::kafka::group_reader;
use runtime::shutdown::Shutdown;
use schemas::erasure::{ErasureOrder, ErasureReceipt};

use crate::error::ProcessorError;
use crate::sink::{insert, BatchSink};

pub const GROUP: &str = "erasure-worker";

/// Orders read at a time: each is minutes of mutations at most, and they are rare.
const ORDERS_PER_BATCH: usize = 16;

pub async fn run(
    kafka: &runtime::kafka::KafkaConfig,
    sink: &BatchSink,
    mutation_wait: Duration,
    cluster: bool,
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
            if let Err(interrupted) =
                carry_out(sink, &order, mutation_wait, cluster, &shutdown).await
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
    cluster: bool,
    shutdown: &Shutdown,
) -> Result<(), crate::sink::Interrupted> {
    let failed = if cluster {
        "not done: erasure on a ClickHouse cluster is not implemented yet (docs/privacy.md)"
            .to_owned()
    } else {
        let erased = sink
            .retry("erase a caller", shutdown, || {
                crate::erasure::erase(
                    &sink.clickhouse,
                    order.id,
                    &order.account,
                    &order.number,
                    &order.requested_by,
                    mutation_wait,
                )
            })
            .await;
        match erased {
            Ok(_) => {
                metrics::counter!(crate::metric_names::PROCESSOR_ERASURE_ORDERS_TOTAL, "outcome" => "erased").increment(1);
                return Ok(());
            }
            Err(_) if shutdown.is_triggered() => {
                return Err(crate::sink::Interrupted {
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
    };
    sink.retry("record a failed erasure", shutdown, || {
        insert(&sink.clickhouse, "erasures", std::slice::from_ref(&receipt))
    })
    .await
}
