//! `GET` and `PUT /api/privacy/retention`: an account's retention policy
//! (`schemas::retention`) and its recent runs. `GET /api/privacy/erasures`: the
//! account's erasure receipts (`schemas::erasure`; `cmctl privacy erase` erases). An account token reads and sets its
//! own account's, an admin any (`account=`); a viewer reads. Setting one is recorded
//! in the audit trail first, then published to the policies topic, which the
//! processor's retention worker applies.

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
    pub producer: AckedProducer,
    pub topic: String,
    pub audit: crate::audit::Auditor,
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
                "SELECT id, account, requested_by, started_at, finished_at, places, rows, outcome \
                 FROM erasures WHERE account = ? ORDER BY started_at DESC LIMIT {RUNS_SHOWN}"
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
                })
            })
            .collect();
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "account": account, "erasures": receipts }),
        ))
    }

    pub async fn put(
        &self,
        scope: &Scope,
        actor: &Actor,
        request: Request<Incoming>,
    ) -> Result<Response<Body>, Problem> {
        require_json(&request)?;
        let body = read_body(request, 4096, runtime::http::BODY_TIMEOUT).await?;
        let mut policy: RetentionPolicy = serde_json::from_slice(&body).map_err(|e| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_policy",
                e.to_string(),
            )
        })?;
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
