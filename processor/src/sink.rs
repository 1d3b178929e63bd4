//! Durable writes of one batch, retried until they succeed or the process is asked
//! to stop. Nothing here commits offsets: the pipeline does that after `write`.

use std::time::Duration;

use runtime::kafka::{AckedProducer, OutgoingMessage, ProduceError};
use runtime::retry::{retry, RetryPolicy, Retryable};
use runtime::shutdown::Shutdown;
use schemas::topics::Topics;
use schemas::{CallRecord, CallRow, DeadLetter};

#[derive(Debug, thiserror::Error)]
#[error("stopped while retrying: {last_error}")]
pub struct Interrupted {
    pub last_error: String,
}

pub struct BatchSink {
    pub clickhouse: clickhouse::Client,
    pub producer: AckedProducer,
    pub topics: Topics,
    pub max_backoff: Duration,
}

impl BatchSink {
    /// Stores the calls in ClickHouse (the system of record). [`announce`](Self::announce)
    /// follows once they are stored; both happen before the commit.
    pub async fn store(
        &self,
        calls: &[CallRecord],
        shutdown: &Shutdown,
    ) -> Result<(), Interrupted> {
        if calls.is_empty() {
            return Ok(());
        }
        let rows: Vec<CallRow> = calls.iter().map(CallRow::from).collect();
        self.retry("insert calls", shutdown, || {
            insert(&self.clickhouse, "calls", &rows)
        })
        .await?;
        metrics::counter!(crate::metric_names::CLICKHOUSE_ROWS_WRITTEN_TOTAL, "table" => "calls")
            .increment(rows.len() as u64);
        Ok(())
    }

    /// Records a filter dropped, one row each (replaced, not counted twice, when a
    /// batch is written again).
    /// Keys partners' records carried that were not recorded yet this hour
    /// (crate::source_keys): rows written again after a crash replace each other.
    pub async fn store_source_keys(
        &self,
        rows: &[schemas::source_keys::SourceKeyRow],
        shutdown: &Shutdown,
    ) -> Result<(), Interrupted> {
        if rows.is_empty() {
            return Ok(());
        }
        self.retry("insert source keys", shutdown, || {
            insert(&self.clickhouse, "source_keys", rows)
        })
        .await?;
        metrics::counter!(crate::metric_names::CLICKHOUSE_ROWS_WRITTEN_TOTAL, "table" => "source_keys")
            .increment(rows.len() as u64);
        Ok(())
    }

    pub async fn store_filtered(
        &self,
        filtered: &[engine::batch::Filtered],
        shutdown: &Shutdown,
    ) -> Result<(), Interrupted> {
        if filtered.is_empty() {
            return Ok(());
        }
        let rows: Vec<FilteredRow> = filtered.iter().map(FilteredRow::from).collect();
        self.retry("insert filtered records", shutdown, || {
            insert(&self.clickhouse, "filtered_records", &rows)
        })
        .await?;
        metrics::counter!(crate::metric_names::CLICKHOUSE_ROWS_WRITTEN_TOTAL, "table" => "filtered_records")
            .increment(rows.len() as u64);
        Ok(())
    }

    /// After [`store`](Self::store), at the same time: the rollup's marks for the
    /// calls' hours, dead letters to their topic and the calls to the enriched
    /// topic that announces them. The three sends wait for the broker's acks side
    /// by side: one round trip instead of three on a call's way to the dashboard.
    pub async fn announce(
        &self,
        calls: &[CallRecord],
        dead_letters: &[DeadLetter],
        shutdown: &Shutdown,
    ) -> Result<(), Interrupted> {
        let marks = async {
            let touched = calls
                .iter()
                .map(|c| schemas::rollup::Dirty::of(&c.account, c.started_at));
            self.mark_dirty(touched, shutdown).await
        };
        let letters = async {
            if dead_letters.is_empty() {
                return Ok(());
            }
            // The topic is the durable record; `dead_letters::record` copies it into
            // ClickHouse for the API, the same way for ingest's and ours.
            let payloads: Vec<(String, Vec<u8>)> = dead_letters
                .iter()
                .map(|d| {
                    (
                        d.raw_id.to_string(),
                        serde_json::to_vec(d).unwrap_or_default(),
                    )
                })
                .collect();
            self.retry("publish dead letters", shutdown, || {
                publish(&self.producer, &self.topics.dead_letter, &payloads)
            })
            .await
        };
        let announced = async {
            if calls.is_empty() {
                return Ok(());
            }
            let payloads: Vec<(String, Vec<u8>)> = calls
                .iter()
                .map(|c| (c.id.to_string(), serde_json::to_vec(c).unwrap_or_default()))
                .collect();
            self.retry("publish enriched calls", shutdown, || {
                publish(&self.producer, &self.topics.enriched, &payloads)
            })
            .await
        };
        tokio::try_join!(marks, letters, announced)?;
        Ok(())
    }

    /// Retires the old `calls_by_time` positions of moved calls.
    pub async fn retire_moved(
        &self,
        moved: &[schemas::call::MovedCallRow],
        shutdown: &Shutdown,
    ) -> Result<(), Interrupted> {
        if moved.is_empty() {
            return Ok(());
        }
        self.retry("retire moved calls", shutdown, || {
            insert(&self.clickhouse, "calls_by_time", moved)
        })
        .await?;
        let touched = moved
            .iter()
            .map(|m| schemas::rollup::Dirty::of(&m.account, m.started_at));
        self.mark_dirty(touched, shutdown).await
    }

    /// Tells the rollup worker which (account, hour) pairs changed, after the rows
    /// are stored and before the caller commits, so no change escapes the rollup.
    async fn mark_dirty(
        &self,
        touched: impl Iterator<Item = schemas::rollup::Dirty>,
        shutdown: &Shutdown,
    ) -> Result<(), Interrupted> {
        let pairs: std::collections::BTreeSet<schemas::rollup::Dirty> = touched.collect();
        if pairs.is_empty() {
            return Ok(());
        }
        let messages: Vec<(String, Vec<u8>)> = pairs
            .iter()
            .map(|d| (d.account.clone(), serde_json::to_vec(d).unwrap_or_default()))
            .collect();
        self.retry("mark rollup hours", shutdown, || {
            publish(&self.producer, &self.topics.rollup_dirty, &messages)
        })
        .await
    }

    /// Re-publishes records to the raw topic under their caller key, to the
    /// partition the batch computed for it when it knew the partition count.
    pub async fn forward(
        &self,
        forwards: &[engine::batch::Forward],
        shutdown: &Shutdown,
    ) -> Result<(), Interrupted> {
        if forwards.is_empty() {
            return Ok(());
        }
        let messages: Vec<OutgoingMessage<'_>> = forwards
            .iter()
            .map(|forward| OutgoingMessage {
                key: forward.key.as_bytes(),
                payload: &forward.payload,
                headers: &[],
                partition: forward.partition,
            })
            .collect();
        self.retry("forward to the caller's partition", shutdown, || {
            self.producer.send_all(&self.topics.raw, &messages)
        })
        .await
    }

    /// Parks records waiting for their call on the parked topic, due `delay` from
    /// now (see `parking`).
    pub async fn park(
        &self,
        parked: &[engine::batch::Parked],
        delay: Duration,
        shutdown: &Shutdown,
    ) -> Result<(), Interrupted> {
        if parked.is_empty() {
            return Ok(());
        }
        let due = (chrono::Utc::now() + delay).timestamp_millis().to_string();
        let counts: Vec<String> = parked.iter().map(|p| p.parked.to_string()).collect();
        let headers: Vec<[(&str, &[u8]); 2]> = counts
            .iter()
            .map(|count| {
                [
                    (schemas::topics::PARKED_HEADER, count.as_bytes()),
                    (schemas::topics::DUE_HEADER, due.as_bytes()),
                ]
            })
            .collect();
        let messages: Vec<OutgoingMessage<'_>> = parked
            .iter()
            .zip(&headers)
            .map(|(p, headers)| OutgoingMessage {
                key: p.key.as_deref().unwrap_or_default(),
                payload: &p.payload,
                headers,
                partition: None,
            })
            .collect();
        self.retry("park records waiting for their call", shutdown, || {
            self.producer.send_all(&self.topics.parked, &messages)
        })
        .await?;
        metrics::counter!(crate::metric_names::PROCESSOR_PARKED_TOTAL)
            .increment(parked.len() as u64);
        Ok(())
    }

    /// Retries `attempt` (see [`retry_until_stopped`]).
    pub async fn retry<T, E, F, Fut>(
        &self,
        what: &'static str,
        shutdown: &Shutdown,
        attempt: F,
    ) -> Result<T, Interrupted>
    where
        E: Retryable,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        retry_until_stopped(what, shutdown, self.max_backoff, attempt).await
    }
}

/// Retries `attempt` until it succeeds or the process stops; a permanent error ends
/// it too (the batch is not committed, and is processed again).
pub async fn retry_until_stopped<T, E, F, Fut>(
    what: &'static str,
    shutdown: &Shutdown,
    max_backoff: Duration,
    attempt: F,
) -> Result<T, Interrupted>
where
    E: Retryable,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let policy = RetryPolicy::forever(what, max_backoff);
    let started = tokio::time::Instant::now();
    let result = retry(&policy, Some(shutdown), attempt)
        .await
        .map_err(|error| Interrupted {
            last_error: error.to_string(),
        });
    // Each step's wall time, retries included: where a batch's time goes.
    metrics::histogram!(crate::metric_names::PROCESSOR_STEP_SECONDS, "step" => what)
        .record(started.elapsed().as_secs_f64());
    result
}

pub async fn insert<T>(
    client: &clickhouse::Client,
    table: &str,
    rows: &[T],
) -> Result<(), clickhouse::error::Error>
where
    T: clickhouse::RowOwned + clickhouse::RowWrite,
{
    let mut insert = client.insert::<T>(table).await?;
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await
}

async fn publish(
    producer: &AckedProducer,
    topic: &str,
    payloads: &[(String, Vec<u8>)],
) -> Result<(), ProduceError> {
    producer.send_pairs(topic, payloads).await
}

/// The `filtered_records` row (migration 15).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, clickhouse::Row)]
pub struct FilteredRow {
    pub account: String,
    pub client_id: String,
    pub reason: String,
    #[serde(with = "clickhouse::serde::uuid")]
    pub raw_id: uuid::Uuid,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub received_at: chrono::DateTime<chrono::Utc>,
}

impl From<&engine::batch::Filtered> for FilteredRow {
    fn from(f: &engine::batch::Filtered) -> Self {
        Self {
            account: f.account.clone(),
            client_id: f.client_id.to_string(),
            reason: f.reason.clone(),
            raw_id: f.raw_id,
            received_at: f.received_at,
        }
    }
}
