//! Copies the dead-letter topic into ClickHouse's `dead_letters` table, so the API
//! can list refused records whichever stage refused them. Its own consumer group;
//! commits after the insert, like the main loop.

use std::time::Duration;

use rdkafka::consumer::StreamConsumer;
use rdkafka::message::{Message, OwnedMessage};
use runtime::kafka::group_consumer;
use runtime::shutdown::Shutdown;
use schemas::{DeadLetter, DeadLetterRow};

use crate::pipeline::{commit, next_batch, ProcessorError};
use crate::sink::{insert, BatchSink};

pub const GROUP: &str = "deadletter-recorder";

pub async fn record(
    kafka: &runtime::kafka::KafkaConfig,
    sink: &BatchSink,
    max_records: usize,
    max_wait: Duration,
    shutdown: Shutdown,
) -> Result<(), ProcessorError> {
    let consumer: StreamConsumer = group_consumer(kafka, GROUP, &[&sink.topics.dead_letter])?;
    let mut stop = shutdown.clone();
    loop {
        let batch: Vec<OwnedMessage> = tokio::select! {
            _ = stop.wait() => break,
            batch = next_batch(&consumer, max_records, max_wait) => batch,
        };
        let rows: Vec<DeadLetterRow> = batch
            .iter()
            .filter_map(|m| match serde_json::from_slice::<DeadLetter>(m.payload().unwrap_or_default()) {
                Ok(letter) => Some(DeadLetterRow::from(&letter)),
                Err(error) => {
                    tracing::error!(%error, partition = m.partition(), offset = m.offset(), "unreadable dead letter skipped");
                    metrics::counter!("deadletter_unreadable_total").increment(1);
                    None
                }
            })
            .collect();
        if !rows.is_empty() {
            let written = sink
                .retry("insert dead letters", &shutdown, || {
                    insert(&sink.clickhouse, "dead_letters", &rows)
                })
                .await;
            if written.is_err() {
                break;
            }
            metrics::counter!("clickhouse_rows_written_total", "table" => "dead_letters")
                .increment(rows.len() as u64);
        }
        commit(&consumer, &batch);
    }
    Ok(())
}
