//! Replays started from the api (the dashboard's replay button):
//! `POST /api/integrations/{clientId}/replay` starts one in the background and
//! answers 202 with its job; `GET /api/replays/{id}` reports its progress. The replay
//! itself is `runtime::replay`, the code `cmctl replay` runs.
//!
//! Who may: an admin token, or a token of the account that owns the integration (the
//! shared `Scope::integration` check; another account's integration is a 404, as
//! everywhere). One replay per integration at a time: a second is a 409 naming the
//! running one, since two would send every record twice (harmless, rows are
//! replaced, but twice the work). Jobs live in this api's memory; the newest
//! [`KEPT_JOBS`] are kept.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use runtime::access::Scope;
use runtime::http::{json, read_body, Body, Problem};
use runtime::kafka::KafkaConfig;
use runtime::registry::IntegrationRegistry;
use runtime::replay::{ReplayReport, ReplaySource};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Finished and running jobs remembered for `GET /api/replays/{id}`.
const KEPT_JOBS: usize = 100;

#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: Uuid,
    pub client_id: String,
    #[serde(skip)]
    pub account: String,
    pub source: ReplaySource,
    /// `running`, `done` or `failed`.
    pub state: &'static str,
    pub progress: ReplayReport,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The integration version replayed records are mapped with.
    pub integration_version: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    /// `dead_letters` (default): the records the mapping refused; `raw`: every record.
    source: Option<ReplaySource>,
}

#[derive(Clone)]
pub struct Replays {
    kafka: KafkaConfig,
    registry: IntegrationRegistry,
    jobs: Arc<Mutex<VecDeque<Job>>>,
    audit: crate::audit::Auditor,
}

/// A 409 naming the replay of `client` that runs.
fn running_problem(client: &str, job: Uuid) -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "replay_running",
        format!("a replay of {client} is running (job {job})"),
    )
    .with_detail("job", job.to_string())
}

impl Replays {
    /// The replay of `client` that runs, if one does.
    fn running(&self, client: &str) -> Option<Uuid> {
        self.lock()
            .iter()
            .find(|j| j.client_id == client && j.state == "running")
            .map(|j| j.id)
    }

    pub fn new(
        kafka: KafkaConfig,
        registry: IntegrationRegistry,
        audit: crate::audit::Auditor,
    ) -> Self {
        Self {
            kafka,
            registry,
            jobs: Arc::default(),
            audit,
        }
    }

    pub async fn start(
        &self,
        scope: &Scope,
        actor: &schemas::audit::Actor,
        client: &str,
        request: Request<Incoming>,
    ) -> Result<Response<Body>, Problem> {
        let integration = scope.integration(&self.registry, client)?;
        let body = read_body(request, 4096, runtime::http::BODY_TIMEOUT).await?;
        let asked: ReplayRequest = if body.iter().all(u8::is_ascii_whitespace) {
            ReplayRequest::default()
        } else {
            serde_json::from_slice(&body).map_err(|e| {
                Problem::new(StatusCode::BAD_REQUEST, "invalid_replay", e.to_string())
            })?
        };
        let source = asked.source.unwrap_or(ReplaySource::DeadLetters);
        // Refused before it is recorded (and checked again below, under the lock).
        if let Some(running) = self.running(client) {
            return Err(running_problem(client, running));
        }
        self.audit
            .record(
                actor,
                schemas::audit::AuditAction::ReplayStarted,
                None,
                &integration,
                Some(serde_json::json!({ "source": source })),
            )
            .await?;
        let job = {
            let mut jobs = self.lock();
            if let Some(running) = jobs
                .iter()
                .find(|j| j.client_id == client && j.state == "running")
            {
                return Err(running_problem(client, running.id));
            }
            let job = Job {
                id: Uuid::new_v4(),
                client_id: client.to_owned(),
                account: integration.account.clone(),
                source,
                state: "running",
                progress: ReplayReport::default(),
                error: None,
                started_at: Utc::now(),
                finished_at: None,
                integration_version: integration.version,
            };
            if jobs.len() >= KEPT_JOBS {
                if let Some(done) = jobs.iter().position(|j| j.state != "running") {
                    jobs.remove(done);
                }
            }
            jobs.push_back(job.clone());
            job
        };
        tracing::info!(client_id = client, job = %job.id, ?source, version = integration.version, "replay started");
        let this = self.clone();
        let id = job.id;
        tokio::spawn(async move {
            let result = runtime::replay::replay(&this.kafka, &integration, source, |report| {
                this.update(id, |job| job.progress = report.clone());
            })
            .await;
            let outcome = if result.is_ok() { "done" } else { "failed" };
            metrics::counter!(crate::metric_names::API_REPLAYS_TOTAL, "outcome" => outcome)
                .increment(1);
            this.update(id, |job| {
                job.finished_at = Some(Utc::now());
                match result {
                    Ok(report) => {
                        tracing::info!(client_id = %job.client_id, job = %id, replayed = report.replayed, read = report.read, "replay done");
                        job.progress = report;
                        job.state = "done";
                    }
                    Err(error) => {
                        tracing::warn!(client_id = %job.client_id, job = %id, %error, "replay failed");
                        job.error = Some(error.to_string());
                        job.state = "failed";
                    }
                }
            });
        });
        Ok(json(StatusCode::ACCEPTED, &job))
    }

    /// A job, if this scope may see its integration's account.
    pub fn get(&self, scope: &Scope, id: &str) -> Result<Response<Body>, Problem> {
        let missing = || {
            Problem::new(
                StatusCode::NOT_FOUND,
                "unknown_replay",
                format!("no replay {id:?}"),
            )
        };
        let id: Uuid = id.parse().map_err(|_| missing())?;
        let job = self
            .lock()
            .iter()
            .find(|j| j.id == id && scope.permits(&j.account))
            .cloned()
            .ok_or_else(missing)?;
        Ok(json(StatusCode::OK, &job))
    }

    fn update(&self, id: Uuid, change: impl FnOnce(&mut Job)) {
        if let Some(job) = self.lock().iter_mut().find(|j| j.id == id) {
            change(job);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Job>> {
        // A panic while holding the lock leaves plain data behind: keep serving it.
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
