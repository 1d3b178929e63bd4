//! Poll workers: each polled integration is run by exactly one ingest instance at a
//! time, every `poll.interval_s`, from its stored cursor.
//!
//! Assignment: instances join the consumer group of the `poll.leases` topic
//! ([`leases`]); an integration belongs to the instance assigned partition
//! `hash(client id) mod partitions`. Kafka moves partitions when instances come and
//! go, so a dead instance's integrations are picked up by the others.
//!
//! Cursors live in the compacted `poll.cursors` topic, written only after every
//! record of the run was acknowledged, and read by every instance.

mod auth;
mod budget;
mod decoders;
mod dry_run;
mod leases;
mod paging;
mod request;
pub mod run;
pub mod sink;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use runtime::kafka::{AckedProducer, ConsumerError, KafkaConfig, OutgoingMessage};
use runtime::registry::IntegrationRegistry;
use runtime::shutdown::Shutdown;
use runtime::table::{CompactedTable, TableError};
use schemas::keys::KeyRulesCache;
use schemas::topics::Topics;
use schemas::{ClientId, Integration};
use serde::{Deserialize, Serialize};

pub use self::auth::TokenCache;
pub use self::budget::Budgets;
pub use self::dry_run::DryRun;
pub use self::leases::{Leases, GROUP};
pub use self::request::ShownRequest;
use self::run::{RunContext, RunReport, Start};
use self::sink::KafkaSink;
use crate::outbound::Outbound;

/// How poll workers reach partners: through the outbound guard, pages capped, runs
/// in flight bounded per instance and per account.
pub struct PollFetch {
    pub outbound: Outbound,
    pub max_page_bytes: u64,
    pub limits: Arc<crate::limits::IngestLimits>,
    /// Where the poller's loops report (ingest's `/healthz`).
    pub workers: runtime::workers::Workers,
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
    #[error(transparent)]
    Table(#[from] TableError),
}

/// A stored cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub since: DateTime<Utc>,
    pub written_at: DateTime<Utc>,
    /// Where paging resumes (`last_record`: the last record's field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Records of a file read so far (`new_rows_only`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

/// What `GET /api/polls` says about one integration.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PollStatus {
    pub client_id: String,
    pub running: bool,
    pub last_started: Option<DateTime<Utc>>,
    pub last_finished: Option<DateTime<Utc>>,
    pub last_ok: Option<bool>,
    pub last_records: u64,
    pub last_pages: u64,
    pub last_requests: u64,
    pub cursor: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub next_run: Option<DateTime<Utc>>,
    /// Where paging resumes (`last_record`), as stored with the cursor.
    #[serde(skip)]
    pub token: Option<String>,
    /// Records of the file read so far (`new_rows_only`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

#[derive(Clone)]
pub struct Poller {
    registry: IntegrationRegistry,
    producer: AckedProducer,
    topics: Topics,
    key_rules: KeyRulesCache,
    outbound: Outbound,
    max_page_bytes: u64,
    record_limits: schemas::limits::RecordLimits,
    cursors: CompactedTable<Cursor>,
    budgets: Budgets,
    tokens: TokenCache,
    leases: Leases,
    statuses: Arc<Mutex<HashMap<ClientId, PollStatus>>>,
    triggered: Arc<Mutex<HashSet<ClientId>>>,
    limits: Arc<crate::limits::IngestLimits>,
    /// Runs in flight on this instance (`limits.polls_in_flight`).
    running: Arc<tokio::sync::Semaphore>,
}

impl Poller {
    pub async fn start(
        kafka: &KafkaConfig,
        registry: IntegrationRegistry,
        producer: AckedProducer,
        key_rules: KeyRulesCache,
        fetch: PollFetch,
        initial_load: Duration,
        shutdown: Shutdown,
    ) -> Result<Self, PollError> {
        let topics = kafka.topics();
        let cursors = CompactedTable::start(
            kafka,
            &topics.poll_cursors,
            "poll-cursors",
            initial_load,
            shutdown.clone(),
            |_, bytes| serde_json::from_slice::<Cursor>(bytes).map_err(|e| e.to_string()),
        )
        .await?;
        let leases =
            Leases::start(kafka, producer.clone(), &fetch.workers, shutdown.clone()).await?;
        let poller = Self {
            registry,
            producer,
            topics,
            key_rules,
            outbound: fetch.outbound,
            max_page_bytes: fetch.max_page_bytes,
            record_limits: kafka.record_limits(),
            cursors,
            budgets: Budgets::default(),
            tokens: TokenCache::default(),
            leases,
            statuses: Arc::default(),
            triggered: Arc::default(),
            running: Arc::new(tokio::sync::Semaphore::new(
                fetch.limits.config.polls_in_flight as usize,
            )),
            limits: fetch.limits,
        };
        let scheduler = poller.clone();
        fetch
            .workers
            .supervise("poll-scheduler", shutdown.clone(), move || {
                let (scheduler, shutdown) = (scheduler.clone(), shutdown.clone());
                async move {
                    scheduler.schedule(shutdown).await;
                    Ok::<(), String>(())
                }
            });
        Ok(poller)
    }

    /// Whether this instance holds `client`'s lease now.
    pub fn owns(&self, client: &ClientId) -> bool {
        self.leases
            .holds(lease_partition(client, self.leases.partitions()))
    }

    pub fn statuses(&self) -> Vec<PollStatus> {
        let mut all: Vec<PollStatus> = self.lock_statuses().values().cloned().collect();
        all.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        all
    }

    /// One page of `integration`'s poll (or of `draft`), from its stored cursor,
    /// stored nowhere (see [`dry_run`](self::dry_run)).
    pub async fn dry_run(
        &self,
        integration: &Integration,
        draft: Option<&schemas::poll::PollConfig>,
    ) -> Option<DryRun> {
        let poll = draft.or(integration.poll.as_ref())?;
        let stored = self.cursors.get(integration.client_id.as_str());
        let since = stored.as_ref().map(|c| c.since).unwrap_or_else(|| {
            DateTime::parse_from_rfc3339(&poll.initial_since)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|_| Utc::now())
        });
        let start = Start {
            since,
            token: stored.as_ref().and_then(|c| c.token.clone()),
            rows: stored.as_ref().and_then(|c| c.rows),
        };
        let ctx = self.context();
        Some(dry_run::dry_run(ctx, integration, poll, start).await)
    }

    fn context(&self) -> RunContext<'_> {
        RunContext {
            outbound: &self.outbound,
            max_page_bytes: self.max_page_bytes,
            budgets: &self.budgets,
            tokens: &self.tokens,
            trace: None,
        }
    }

    /// Asks for a run of `client` now. `false` when another instance holds it.
    pub fn trigger(&self, client: &ClientId) -> bool {
        if !self.owns(client) {
            return false;
        }
        self.lock_triggered().insert(client.clone());
        true
    }

    async fn schedule(&self, mut shutdown: Shutdown) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tick.tick() => {}
            }
            let now = Utc::now();
            let integrations = self.registry.all();
            self.report_late(&integrations, now);
            for integration in integrations {
                let Some(poll) = &integration.poll else {
                    continue;
                };
                if !integration.enabled || !self.owns(&integration.client_id) {
                    continue;
                }
                // A slot of the instance's and of the account's, or the run waits
                // (still due) for the next tick.
                let Ok(slot) = self.running.clone().try_acquire_owned() else {
                    break;
                };
                let Some(account_slot) = self.limits.poll(&integration.account) else {
                    continue;
                };
                let triggered = self.lock_triggered().remove(&integration.client_id);
                let due = {
                    let mut statuses = self.lock_statuses();
                    let status = statuses
                        .entry(integration.client_id.clone())
                        .or_insert_with(|| PollStatus {
                            client_id: integration.client_id.to_string(),
                            ..PollStatus::default()
                        });
                    let due = !status.running
                        && (triggered || status.next_run.is_none_or(|at| at <= now));
                    if due {
                        status.running = true;
                        status.last_started = Some(now);
                        status.next_run =
                            Some(now + chrono::Duration::seconds(poll.interval_s as i64));
                    }
                    due
                };
                if due {
                    let (poller, integration) = (self.clone(), integration.clone());
                    tokio::spawn(async move {
                        poller.run_guarded(&integration).await;
                        drop((slot, account_slot));
                    });
                }
            }
        }
    }

    /// `ingest_poll_late_seconds` for every polled integration: how long its next
    /// run has been due without starting (slots taken by other runs, or the last
    /// run still going past its interval); 0 where this instance does not hold it,
    /// so the maximum over instances is the truth.
    fn report_late(&self, integrations: &[Arc<Integration>], now: DateTime<Utc>) {
        let statuses = self.lock_statuses();
        for integration in integrations {
            if integration.poll.is_none() {
                continue;
            }
            let client = &integration.client_id;
            let late = if integration.enabled && self.owns(client) {
                statuses
                    .get(client)
                    .and_then(|status| status.next_run)
                    .map_or(0.0, |due| late_seconds(due, now))
            } else {
                0.0
            };
            metrics::gauge!(crate::metric_names::INGEST_POLL_LATE_SECONDS, "client_id" => client.to_string())
                .set(late);
        }
    }

    /// [`run_one`](Self::run_one), and if it panics the integration is not left
    /// "running" (and never polled again): it is marked failed and scheduled.
    async fn run_guarded(&self, integration: &Integration) {
        use futures::FutureExt;
        let ran = std::panic::AssertUnwindSafe(self.run_one(integration))
            .catch_unwind()
            .await;
        if ran.is_err() {
            tracing::error!(client_id = %integration.client_id, "poll run panicked; it will run again when due");
            let mut statuses = self.lock_statuses();
            if let Some(status) = statuses.get_mut(&integration.client_id) {
                status.running = false;
                status.last_ok = Some(false);
                status.last_error = Some("the run failed unexpectedly (logged)".into());
            }
        }
    }

    async fn run_one(&self, integration: &Integration) {
        let Some(poll) = &integration.poll else {
            return;
        };
        let stored = self.cursors.get(integration.client_id.as_str());
        let last_known = self
            .lock_statuses()
            .get(&integration.client_id)
            .and_then(|s| s.cursor);
        let initial = DateTime::parse_from_rfc3339(&poll.initial_since)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|_| Utc::now());
        let since = [stored.as_ref().map(|c| c.since), last_known]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(initial);
        // What was stored with the cursor counts only with the cursor it was stored
        // with (a newer in-memory cursor means this instance ran since).
        let (token, rows) = match (&stored, last_known) {
            (Some(c), known) if known.is_none_or(|k| k <= c.since) => (c.token.clone(), c.rows),
            _ => self
                .lock_statuses()
                .get(&integration.client_id)
                .map(|s| (s.token.clone(), s.rows))
                .unwrap_or_default(),
        };
        let key_rules = self.key_rules.get(integration);
        let ctx = self.context();
        let sink = KafkaSink {
            producer: &self.producer,
            raw_topic: &self.topics.raw,
            dead_letter_topic: &self.topics.dead_letter,
            record_limits: self.record_limits,
            limits: &self.limits,
            key_rules: &key_rules,
        };
        let start = Start { since, token, rows };
        let started = std::time::Instant::now();
        let outcome = run::run(&ctx, &sink, integration, poll, start, Utc::now()).await;
        let (report, error) = match outcome {
            Ok(report) => match self.store_cursor(&integration.client_id, &report).await {
                Ok(()) => (report, None),
                Err(error) => (report, Some(error)),
            },
            Err((error, report)) => (report, Some(error)),
        };
        metrics::histogram!(crate::metric_names::INGEST_POLL_RUN_SECONDS)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!(crate::metric_names::INGEST_POLL_RUNS_TOTAL, "outcome" => if error.is_some() { "failed" } else { "ok" })
            .increment(1);
        if let Some(error) = &error {
            tracing::warn!(client_id = %integration.client_id, %error, records = report.records, "poll run gave up");
            self.announce_failure(integration, error).await;
        } else {
            tracing::info!(client_id = %integration.client_id, records = report.records, pages = report.pages, cursor = ?report.cursor, "poll run done");
        }
        let snapshot = {
            let mut statuses = self.lock_statuses();
            let status = statuses.get_mut(&integration.client_id);
            if let Some(status) = status {
                status.running = false;
                status.last_finished = Some(Utc::now());
                status.last_ok = Some(error.is_none());
                status.last_records = report.records;
                status.last_pages = report.pages;
                status.last_requests = report.requests;
                if error.is_none() {
                    status.cursor = report.cursor;
                    status.token = report.token.clone();
                    status.rows = report.rows;
                }
                status.last_error = error;
                Some(status.clone())
            } else {
                None
            }
        };
        // Every instance's api shows it (integration health), whatever instance polled.
        if let Some(status) = snapshot {
            let pair = [(
                integration.client_id.to_string(),
                serde_json::to_vec(&status).unwrap_or_default(),
            )];
            if let Err(error) = self
                .producer
                .send_pairs(&self.topics.poll_status, &pair)
                .await
            {
                tracing::warn!(%error, "poll status not published");
            }
        }
    }

    /// An `integration.error` event for dashboards (best effort; the status keeps it).
    async fn announce_failure(&self, integration: &Integration, error: &str) {
        let event = serde_json::json!({
            "event": "integration.error",
            "client_id": integration.client_id,
            "account": integration.account,
            "dead_letters": 0,
            "stage": "poll",
            "reason": error,
            "failed_at": Utc::now(),
        });
        let pair = [(
            integration.client_id.to_string(),
            event.to_string().into_bytes(),
        )];
        if let Err(error) = self.producer.send_pairs(&self.topics.enriched, &pair).await {
            tracing::warn!(%error, "poll failure event not published");
        }
    }

    async fn store_cursor(&self, client: &ClientId, report: &RunReport) -> Result<(), String> {
        let Some(since) = report.cursor else {
            return Ok(());
        };
        let payload = serde_json::to_vec(&Cursor {
            since,
            written_at: Utc::now(),
            token: report.token.clone(),
            rows: report.rows,
        })
        .unwrap_or_default();
        let message = [OutgoingMessage {
            key: client.as_str().as_bytes(),
            payload: &payload,
            headers: &[],
            partition: None,
        }];
        self.producer
            .send_all(&self.topics.poll_cursors, &message)
            .await
            .map_err(|e| format!("storing the cursor: {e}"))
    }

    fn lock_statuses(&self) -> std::sync::MutexGuard<'_, HashMap<ClientId, PollStatus>> {
        match self.statuses.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn lock_triggered(&self) -> std::sync::MutexGuard<'_, HashSet<ClientId>> {
        match self.triggered.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Seconds past `due` at `now`; 0 before it. A run starts on the scheduler's
/// one-second tick, so up to a second late is on time.
fn late_seconds(due: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    let late = (now - due).num_milliseconds() as f64 / 1000.0;
    if late > 1.0 {
        late
    } else {
        0.0
    }
}

/// FNV-1a of the client id: stable across instances and releases.
fn lease_partition(client: &ClientId, partitions: i32) -> i32 {
    let hash = client
        .as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    (hash % partitions.max(1) as u64) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_late_only_past_the_schedulers_tick() {
        let due = Utc::now();
        assert_eq!(late_seconds(due, due - chrono::Duration::seconds(30)), 0.0);
        assert_eq!(
            late_seconds(due, due + chrono::Duration::milliseconds(900)),
            0.0
        );
        assert_eq!(late_seconds(due, due + chrono::Duration::seconds(90)), 90.0);
    }

    #[test]
    fn lease_partitions_are_stable_and_spread() {
        let id = |s: &str| ClientId::parse(s).unwrap();
        assert_eq!(
            lease_partition(&id("ringpartner"), 12),
            lease_partition(&id("ringpartner"), 12)
        );
        let used: HashSet<i32> = (0..100)
            .map(|n| lease_partition(&id(&format!("c{n}")), 12))
            .collect();
        assert!(used.len() >= 10, "{used:?}");
        assert!(used.iter().all(|p| (0..12).contains(p)));
        assert_eq!(lease_partition(&id("x"), 0), 0);
    }
}
