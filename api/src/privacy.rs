//! `GET` and `PUT /api/privacy/retention`: an account's retention policy
//! (`schemas::retention`) and its recent runs. `GET /api/privacy/erasures`: the
//! account's erasure receipts (`schemas::erasure`); `POST /api/privacy/erasures`
//! asks for one (as `cmctl privacy erase` does); `POST
//! /api/privacy/suppression-lifts` takes a suppressed caller off the suppression
//! list (as `cmctl privacy lift` does). An account token reads and sets its
//! own account's, an admin any (`account=`); a viewer reads. A change is recorded
//! in the audit trail first, then published (the policies topic, the erasures
//! topic), where the processor's workers apply it: the api's ClickHouse user only
//! reads.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use runtime::access::Scope;
use runtime::http::{json, read_body, require_json, Body, Problem};
use runtime::kafka::AckedProducer;
use runtime::table::CompactedTable;
use schemas::audit::Actor;
use schemas::retention::{RetentionPolicy, RetentionRun};
use serde::Deserialize;

use crate::query::{bad_parameter, parse};

/// Runs listed with a policy.
const RUNS_SHOWN: u32 = 20;

pub struct Privacy {
    pub policies: CompactedTable<RetentionPolicy>,
    /// The suppression list (`schemas::suppression`), to show an account its own.
    pub suppressions: CompactedTable<schemas::suppression::Suppression>,
    pub producer: AckedProducer,
    pub topic: String,
    /// Where erasure orders go: the raw topic, under the caller's key
    /// (`schemas::topics::ERASE_HEADER`; `processor/src/erasure_orders.rs`).
    pub raw_topic: String,
    pub audit: crate::audit::Auditor,
}

/// The body of `POST /api/privacy/erasures`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ErasureBody {
    /// The caller, in any spelling.
    number: String,
    /// Where a number without its country code is read (ISO 3166 code).
    #[serde(default = "default_region")]
    region: String,
    /// Required with an admin token; an account token's own otherwise.
    account: Option<String>,
    /// Also store the caller's later records without the number
    /// (`schemas::suppression`); by default an erasure is not a block list.
    #[serde(default)]
    suppress: bool,
}

/// The body of `POST /api/privacy/suppression-lifts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LiftBody {
    /// The suppressed caller, in any spelling.
    number: String,
    #[serde(default = "default_region")]
    region: String,
    /// Required with an admin token; an account token's own otherwise.
    account: Option<String>,
}

fn default_region() -> String {
    "US".to_owned()
}

/// A JSON body of at most 4 KiB; one that does not read as `T` is a 422 with `code`.
async fn small_json<T: serde::de::DeserializeOwned>(
    request: Request<Incoming>,
    code: &'static str,
) -> Result<T, Problem> {
    require_json(&request)?;
    let body = read_body(request, 4096, runtime::http::BODY_TIMEOUT).await?;
    serde_json::from_slice(&body)
        .map_err(|e| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string()))
}

fn invalid_erasure(field: &str, problem: impl Into<String>) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_erasure", problem)
        .with_detail("field", field)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountQuery {
    account: Option<String>,
}

/// The account asked about: the token's own, or (admin) the one named.
fn account_of(scope: &Scope, asked: Option<&str>) -> Result<String, Problem> {
    scope.check_account(asked)?;
    scope
        .account()
        .or(asked)
        .map(str::to_owned)
        .ok_or_else(|| bad_parameter("account", "required with an admin token"))
}

impl Privacy {
    pub async fn get(
        &self,
        clickhouse: &clickhouse::Client,
        query: Option<&str>,
        scope: &Scope,
    ) -> Result<Response<Body>, Problem> {
        let params: AccountQuery = parse(query)?;
        let account = account_of(scope, params.account.as_deref())?;
        let policy = self.policies.get(&account);
        let runs: Vec<RetentionRun> = clickhouse
            .query(&format!(
                "SELECT account, started_at, finished_at, personal_cutoff, dead_letter_cutoff, calls_changed, \
                 dead_letters_deleted, outcome FROM retention_runs WHERE account = ? \
                 ORDER BY started_at DESC LIMIT {RUNS_SHOWN}"
            ))
            .bind(account.as_str())
            .fetch_all()
            .await
            .map_err(crate::calls::storage_error)?;
        let at = |seconds: u32| {
            (seconds > 0)
                .then(|| chrono::DateTime::<chrono::Utc>::from_timestamp(i64::from(seconds), 0))
                .flatten()
        };
        let runs: Vec<serde_json::Value> = runs
            .iter()
            .map(|run| {
                serde_json::json!({
                    "started_at": run.started_at,
                    "finished_at": run.finished_at,
                    "personal_cutoff": at(run.personal_cutoff),
                    "dead_letter_cutoff": at(run.dead_letter_cutoff),
                    "calls_changed": run.calls_changed,
                    "dead_letters_deleted": run.dead_letters_deleted,
                    "outcome": run.outcome,
                })
            })
            .collect();
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({
                "account": account,
                "policy": policy.as_deref(),
                "default": "without a policy, everything is kept",
                "runs": runs,
            }),
        ))
    }

    /// `GET /api/privacy/erasures`: the account's erasure receipts, newest first
    /// (who asked, when, rows changed per place; never the number).
    pub async fn erasures(
        &self,
        clickhouse: &clickhouse::Client,
        query: Option<&str>,
        scope: &Scope,
    ) -> Result<Response<Body>, Problem> {
        let params: AccountQuery = parse(query)?;
        let account = account_of(scope, params.account.as_deref())?;
        let receipts: Vec<schemas::erasure::ErasureReceipt> = clickhouse
            .query(&format!(
                "SELECT id, account, requested_by, started_at, finished_at, places, rows, outcome, \
                 topics_clear_by FROM erasures WHERE account = ? ORDER BY started_at DESC LIMIT {RUNS_SHOWN}"
            ))
            .bind(account.as_str())
            .fetch_all()
            .await
            .map_err(crate::calls::storage_error)?;
        let receipts: Vec<serde_json::Value> = receipts
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id,
                    "requested_by": r.requested_by,
                    "started_at": r.started_at,
                    "finished_at": r.finished_at,
                    "rows_changed": r.places.iter().zip(&r.rows).map(|(p, n)| (p.clone(), serde_json::json!(n))).collect::<serde_json::Map<_, _>>(),
                    "outcome": r.outcome,
                    // When the topics hold none of the caller's records written
                    // before the erasure (their retention); null: not known.
                    "topics_clear_by": schemas::erasure::known_time(r.topics_clear_by),
                })
            })
            .collect();
        // Callers kept out of later calls: by the erasure that asked (never a number).
        let mut suppressions: Vec<_> = self
            .suppressions
            .values()
            .into_iter()
            .filter(|s| s.account == account)
            .collect();
        suppressions.sort_by_key(|s| std::cmp::Reverse(s.requested_at));
        let suppressions: Vec<serde_json::Value> = suppressions
            .iter()
            .map(|s| {
                serde_json::json!({
                    "erasure": s.erasure,
                    "requested_by": s.requested_by,
                    "requested_at": s.requested_at,
                })
            })
            .collect();
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({
                "account": account,
                "erasures": receipts,
                "suppressions": suppressions,
            }),
        ))
    }

    /// `POST /api/privacy/erasures`: records the order in the audit trail (its id,
    /// never the number), publishes it for the processor's erasure worker and
    /// answers 202 with the id; the receipt appears in `GET /api/privacy/erasures`
    /// when the work is done.
    pub async fn request_erasure(
        &self,
        scope: &Scope,
        actor: &Actor,
        request: Request<Incoming>,
    ) -> Result<Response<Body>, Problem> {
        let asked: ErasureBody = small_json(request, "invalid_erasure").await?;
        let account = account_of(scope, asked.account.as_deref())?;
        let region = schemas::phone::region(asked.region.trim())
            .map_err(|e| invalid_erasure("region", e.to_string()))?;
        let number = schemas::E164::parse(&asked.number, region)
            .map_err(|e| invalid_erasure("number", e.to_string()))?;
        let order = schemas::erasure::ErasureOrder {
            id: uuid::Uuid::new_v4(),
            account,
            number: number.as_str().to_owned(),
            requested_by: actor.name.clone(),
            requested_at: chrono::Utc::now(),
            clickhouse: true,
            suppress: asked.suppress,
        };
        self.audit
            .record_erasure(actor, &order.account, order.id)
            .await?;
        let payload = serde_json::to_vec(&order).unwrap_or_default();
        self.producer
            .send_keyed(
                &self.raw_topic,
                &order.raw_key(),
                &payload,
                &schemas::erasure::RAW_HEADERS,
            )
            .await
            .map_err(|error| {
                tracing::error!(%error, erasure = %order.id, "erasure order not published");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "broker_unavailable",
                    "the erasure could not be ordered; retry shortly (the audit trail holds an order that was not sent)",
                )
                .retry_after(2)
            })?;
        Ok(json(
            StatusCode::ACCEPTED,
            &serde_json::json!({
                "id": order.id,
                "account": order.account,
                "status": "ordered",
                "suppress": order.suppress,
                "receipts": format!("/api/privacy/erasures?account={}", order.account),
            }),
        ))
    }

    /// `POST /api/privacy/suppression-lifts`: records the lift in the audit trail
    /// (its id, never the number), publishes it on the raw topic under the caller's
    /// key and answers 202. The caller's records after it are stored with their
    /// number; the entry leaves the list in `GET /api/privacy/erasures` once the
    /// caller's partition has met the lift. The api cannot tell whether the caller
    /// is suppressed (the list holds keyed hashes, and the key is the processor's):
    /// a lift of a caller not on the list changes nothing
    /// (`processor_suppression_lifts_total{outcome="not_suppressed"}`).
    pub async fn lift_suppression(
        &self,
        scope: &Scope,
        actor: &Actor,
        request: Request<Incoming>,
    ) -> Result<Response<Body>, Problem> {
        let asked: LiftBody = small_json(request, "invalid_lift").await?;
        let account = account_of(scope, asked.account.as_deref())?;
        let invalid = |field: &str, problem: String| {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_lift", problem)
                .with_detail("field", field)
        };
        let region = schemas::phone::region(asked.region.trim())
            .map_err(|e| invalid("region", e.to_string()))?;
        let number = schemas::E164::parse(&asked.number, region)
            .map_err(|e| invalid("number", e.to_string()))?;
        let lift = schemas::suppression::SuppressionLift {
            id: uuid::Uuid::new_v4(),
            account,
            number: number.as_str().to_owned(),
            requested_by: actor.name.clone(),
            requested_at: chrono::Utc::now(),
        };
        self.audit
            .write_entry(schemas::audit::AuditEntry::suppression_lifted(
                &lift.account,
                actor,
                lift.id,
            ))
            .await?;
        let payload = serde_json::to_vec(&lift).unwrap_or_default();
        self.producer
            .send_keyed(
                &self.raw_topic,
                &lift.raw_key(),
                &payload,
                &schemas::suppression::RAW_HEADERS,
            )
            .await
            .map_err(|error| {
                tracing::error!(%error, lift = %lift.id, "suppression lift not published");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "broker_unavailable",
                    "the lift could not be ordered; retry shortly (the audit trail holds a lift that was not sent)",
                )
                .retry_after(2)
            })?;
        Ok(json(
            StatusCode::ACCEPTED,
            &serde_json::json!({
                "id": lift.id,
                "account": lift.account,
                "status": "ordered",
                "suppressions": format!("/api/privacy/erasures?account={}", lift.account),
            }),
        ))
    }

    pub async fn put(
        &self,
        scope: &Scope,
        actor: &Actor,
        request: Request<Incoming>,
    ) -> Result<Response<Body>, Problem> {
        let mut policy: RetentionPolicy = small_json(request, "invalid_policy").await?;
        account_of(scope, Some(&policy.account))?;
        if let Some((field, problem)) = policy.problem() {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_policy",
                format!("{field}: {problem}"),
            )
            .with_detail("field", field));
        }
        policy.updated_at = Some(chrono::Utc::now());
        let before = self.policies.get(&policy.account);
        self.audit
            .record_retention(actor, before.as_deref(), &policy)
            .await?;
        let payload = serde_json::to_vec(&policy).unwrap_or_default();
        self.producer
            .send_pairs(&self.topic, &[(policy.account.clone(), payload)])
            .await
            .map_err(|error| {
                tracing::error!(%error, "retention policy not published");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "broker_unavailable",
                    "the policy could not be published; retry shortly",
                )
                .retry_after(2)
            })?;
        Ok(json(StatusCode::OK, &policy))
    }
}
