//! Durable writes of one batch, retried until they succeed or the process is asked
//! to stop. Nothing here commits offsets: the pipeline does that after `write`.

use std::time::Duration;

use runtime::kafka::AckedProducer;
use runtime::shutdown::Shutdown;
use schemas::topics::Topics;
use schemas::{CallRecord, CallRow, DeadLetter};

#[derive(Debug, thiserror::Error)]
#[error("stopped while retrying a write: {last_error}")]
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
    /// Calls to ClickHouse first (the system of record), then dead letters to their
    /// topic, then the calls to the enriched topic that announces them.
    pub async fn write(
        &self,
        calls: &[CallRecord],
        dead_letters: &[DeadLetter],
        shutdown: &Shutdown,
    ) -> Result<(), Interrupted> {
        if !calls.is_empty() {
            let rows: Vec<CallRow> = calls.iter().map(CallRow::from).collect();
            self.retry("insert calls", shutdown, || {
                insert(&self.clickhouse, "calls", &rows)
            })
            .await?;
            metrics::counter!("clickhouse_rows_written_total", "table" => "calls")
                .increment(rows.len() as u64);
            let touched = calls
                .iter()
                .map(|c| crate::rollup::Dirty::of(&c.account, c.started_at));
            self.mark_dirty(touched, shutdown).await?;
        }
        if !dead_letters.is_empty() {
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
            .await?;
        }
        if !calls.is_empty() {
            let payloads: Vec<(String, Vec<u8>)> = calls
                .iter()
                .map(|c| (c.id.to_string(), serde_json::to_vec(c).unwrap_or_default()))
                .collect();
            self.retry("publish enriched calls", shutdown, || {
                publish(&self.producer, &self.topics.enriched, &payloads)
            })
            .await?;
        }
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
            .map(|m| crate::rollup::Dirty::of(&m.account, m.started_at));
        self.mark_dirty(touched, shutdown).await
    }

    /// Tells the rollup worker which (account, hour) pairs changed, after the rows
    /// are stored and before the caller commits, so no change escapes the rollup.
    async fn mark_dirty(
        &self,
        touched: impl Iterator<Item = crate::rollup::Dirty>,
        shutdown: &Shutdown,
    ) -> Result<(), Interrupted> {
        let pairs: std::collections::BTreeSet<crate::rollup::Dirty> = touched.collect();
        let messages: Vec<(String, Vec<u8>)> = pairs
            .iter()
            .map(|d| (d.account.clone(), serde_json::to_vec(d).unwrap_or_default()))
            .collect();
        self.retry("mark rollup hours", shutdown, || {
            publish(&self.producer, &self.topics.rollup_dirty, &messages)
        })
        .await
    }

    /// Re-publishes records to the raw topic under their caller key.
    pub async fn forward(
        &self,
        forwards: &[(String, Vec<u8>)],
        shutdown: &Shutdown,
    ) -> Result<(), Interrupted> {
        if forwards.is_empty() {
            return Ok(());
        }
        self.retry("forward to the caller's partition", shutdown, || {
            publish(&self.producer, &self.topics.raw, forwards)
        })
        .await
    }

    /// The rows `sql` selects, retried like a write.
    pub async fn fetch<T>(
        &self,
        what: &str,
        sql: &str,
        shutdown: &Shutdown,
    ) -> Result<Vec<T>, Interrupted>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        self.retry(what, shutdown, || {
            let query = self.clickhouse.query(sql);
            async move { query.fetch_all::<T>().await.map_err(|e| e.to_string()) }
        })
        .await
    }

    pub async fn retry<T, F, Fut>(
        &self,
        what: &str,
        shutdown: &Shutdown,
        mut attempt: F,
    ) -> Result<T, Interrupted>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        let mut backoff = Duration::from_millis(100);
        loop {
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) => {
                    metrics::counter!("processor_write_retries_total", "write" => what.to_owned())
                        .increment(1);
                    tracing::warn!(%error, write = what, retry_in_ms = backoff.as_millis() as u64, "write failed; retrying");
                    if shutdown.is_triggered() {
                        return Err(Interrupted { last_error: error });
                    }
                    let mut waiter = shutdown.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = waiter.wait() => return Err(Interrupted { last_error: error }),
                    }
                    backoff = (backoff * 2).min(self.max_backoff);
                }
            }
        }
    }
}

pub async fn insert<T>(client: &clickhouse::Client, table: &str, rows: &[T]) -> Result<(), String>
where
    T: clickhouse::RowOwned + clickhouse::RowWrite,
{
    let mut insert = client.insert::<T>(table).await.map_err(|e| e.to_string())?;
    for row in rows {
        insert.write(row).await.map_err(|e| e.to_string())?;
    }
    insert.end().await.map_err(|e| e.to_string())
}

async fn publish(
    producer: &AckedProducer,
    topic: &str,
    payloads: &[(String, Vec<u8>)],
) -> Result<(), String> {
    producer
        .send_pairs(topic, payloads)
        .await
        .map_err(|e| e.to_string())
}
