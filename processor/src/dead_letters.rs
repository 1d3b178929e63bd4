//! Copies the dead-letter topic into ClickHouse's `dead_letters` table, so the API
//! can list refused records whichever stage refused them, and announces them as
//! `integration.error` events (one per integration per batch, with the count and
//! the first reason) so dashboards see a failing integration as it fails. Its own
//! consumer group; commits after the insert, like the main loop.

use std::time::Duration;

use rdkafka::message::{Message, OwnedMessage};
use runtime::kafka::group_reader;
use runtime::shutdown::Shutdown;
use schemas::{DeadLetter, DeadLetterRow};

use crate::error::ProcessorError;
use crate::sink::{insert, BatchSink};

pub const GROUP: &str = "deadletter-recorder";

pub async fn record(
    kafka: &runtime::kafka::KafkaConfig,
    sink: &BatchSink,
    registry: &runtime::registry::IntegrationRegistry,
    max_records: usize,
    max_wait: Duration,
    shutdown: Shutdown,
) -> Result<(), ProcessorError> {
    let mut reader = group_reader(kafka, GROUP, &[&sink.topics.dead_letter])?;
    let mut stop = shutdown.clone();
    loop {
        let batch: Vec<OwnedMessage> = tokio::select! {
            _ = stop.wait() => break,
            batch = reader.next_batch(max_records, max_wait) => batch,
        };
        let letters: Vec<DeadLetter> = batch
            .iter()
            .filter_map(|m| match serde_json::from_slice::<DeadLetter>(m.payload().unwrap_or_default()) {
                Ok(letter) => Some(letter),
                Err(error) => {
                    tracing::error!(%error, partition = m.partition(), offset = m.offset(), "unreadable dead letter skipped");
                    metrics::counter!(crate::metric_names::DEADLETTER_UNREADABLE_TOTAL).increment(1);
                    None
                }
            })
            .collect();
        // The account is stamped here, in one place, from the registry (deleted
        // integrations included: their ids stay their account's).
        let rows: Vec<DeadLetterRow> = letters
            .iter()
            .map(|letter| DeadLetterRow {
                account: registry
                    .owner(letter.client_id.as_str())
                    .unwrap_or_default(),
                ..DeadLetterRow::from(letter)
            })
            .collect();
        if !rows.is_empty() {
            let written = sink
                .retry("insert dead letters", &shutdown, || {
                    insert(&sink.clickhouse, "dead_letters", &rows)
                })
                .await;
            if let Err(interrupted) = written {
                return ProcessorError::unless_shutdown(&shutdown, interrupted);
            }
            metrics::counter!(crate::metric_names::CLICKHOUSE_ROWS_WRITTEN_TOTAL, "table" => "dead_letters")
                .increment(rows.len() as u64);
            let events = error_events(&letters, registry);
            // Best effort: the dead letters are stored; a lost announcement is not.
            if let Err(error) = sink
                .producer
                .send_pairs(&sink.topics.enriched, &events)
                .await
            {
                tracing::warn!(%error, "integration.error events not published");
            }
        }
        reader.commit(&batch);
    }
    Ok(())
}

/// One `integration.error` event per integration in `letters`.
fn error_events(
    letters: &[DeadLetter],
    registry: &runtime::registry::IntegrationRegistry,
) -> Vec<(String, Vec<u8>)> {
    let mut by_client: std::collections::BTreeMap<&str, (usize, &DeadLetter)> = Default::default();
    for letter in letters {
        by_client
            .entry(letter.client_id.as_str())
            .or_insert((0, letter))
            .0 += 1;
    }
    by_client
        .into_iter()
        .map(|(client, (count, first))| {
            let account = registry
                .get(&first.client_id)
                .map(|i| i.account.clone())
                .unwrap_or_default();
            let event = serde_json::json!({
                "event": "integration.error",
                "client_id": client,
                "account": account,
                "dead_letters": count,
                "stage": first.stage.as_str(),
                "reason": first.reason,
                "failed_at": first.failed_at,
            });
            (client.to_owned(), event.to_string().into_bytes())
        })
        .collect()
}
