//! Copies the audit topic into ClickHouse's `audit_log` (`schemas::audit`): the
//! trail's only writer, so the api's users cannot change it. Its own consumer group;
//! commits after the insert, like the other recorders. An entry that cannot be read
//! is counted and logged (with its position), never dropped silently.

use std::time::Duration;

use rdkafka::message::{Message, OwnedMessage};
use runtime::kafka::group_reader;
use runtime::shutdown::Shutdown;
use schemas::audit::{AuditEntry, AuditRow};

use crate::error::ProcessorError;
use crate::sink::{insert, BatchSink};

pub const GROUP: &str = "audit-recorder";

pub async fn record(
    kafka: &runtime::kafka::KafkaConfig,
    sink: &BatchSink,
    max_records: usize,
    max_wait: Duration,
    shutdown: Shutdown,
) -> Result<(), ProcessorError> {
    let topic = kafka.topics().audit;
    let mut reader = group_reader(kafka, GROUP, &[&topic])?;
    let mut stop = shutdown.clone();
    loop {
        let batch: Vec<OwnedMessage> = tokio::select! {
            _ = stop.wait() => break,
            batch = reader.next_batch(max_records, max_wait) => batch,
        };
        let rows: Vec<AuditRow> = batch
            .iter()
            .filter_map(|m| match serde_json::from_slice::<AuditEntry>(m.payload().unwrap_or_default()) {
                Ok(entry) => Some(AuditRow {
                    seq: u64::try_from(m.offset()).unwrap_or_default(),
                    ..AuditRow::from(&entry)
                }),
                Err(error) => {
                    tracing::error!(%error, partition = m.partition(), offset = m.offset(), "unreadable audit entry skipped");
                    metrics::counter!(crate::metric_names::AUDIT_UNREADABLE_TOTAL).increment(1);
                    None
                }
            })
            .collect();
        if !rows.is_empty() {
            let written = sink
                .retry("insert audit entries", &shutdown, || {
                    insert(&sink.clickhouse, "audit_log", &rows)
                })
                .await;
            if let Err(interrupted) = written {
                return ProcessorError::unless_shutdown(&shutdown, interrupted);
            }
            metrics::counter!(crate::metric_names::CLICKHOUSE_ROWS_WRITTEN_TOTAL, "table" => "audit_log")
                .increment(rows.len() as u64);
        }
        reader.commit(&batch);
    }
    Ok(())
}
