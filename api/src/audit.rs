//! The audit trail's api side (`schemas::audit`): [`Auditor::record`] writes an entry
//! to the audit topic before the change it records is published (so no change goes
//! unrecorded; a change whose publish then fails answers 5xx and has an entry with no
//! effect), and `GET /api/audit` reads `audit_log`, newest first, limited to the
//! token's account in the query itself.

use chrono::Utc;
use http::{Request, Response, StatusCode};
use runtime::access::{Scope, Tokens};
use runtime::http::{json, Body, Problem};
use runtime::kafka::AckedProducer;
use schemas::audit::{Actor, AuditAction, AuditEntry, AuditRow, Change};
use schemas::Integration;
use serde::Deserialize;
use uuid::Uuid;

use crate::filter::instant;
use crate::query::{bad_parameter, parse};

/// Writes entries to the audit topic.
#[derive(Clone)]
pub struct Auditor {
    pub producer: AckedProducer,
    pub topic: String,
}

impl Auditor {
    /// Writes one entry (keyed by client id, so one integration's entries stay in
    /// order); an error is a 503: the change it was for must not go ahead.
    pub async fn record(
        &self,
        actor: &Actor,
        action: AuditAction,
        before: Option<&Integration>,
        after: &Integration,
        detail: Option<serde_json::Value>,
    ) -> Result<(), Problem> {
        let changes: Vec<Change> = match action {
            AuditAction::IntegrationCreated | AuditAction::IntegrationUpdated => {
                schemas::audit::definition_changes(before, after)
            }
            _ => Vec::new(),
        };
        self.write(AuditEntry {
            id: Uuid::new_v4(),
            at: Utc::now(),
            account: after.account.clone(),
            client_id: after.client_id.to_string(),
            action,
            actor: actor.clone(),
            version: after.version,
            changes,
            detail,
        })
        .await
    }

    /// Records a change of an account's retention policy.
    pub async fn record_retention(
        &self,
        actor: &Actor,
        before: Option<&schemas::retention::RetentionPolicy>,
        after: &schemas::retention::RetentionPolicy,
    ) -> Result<(), Problem> {
        let shown = |p: &schemas::retention::RetentionPolicy| {
            let mut value = serde_json::to_value(p).unwrap_or_default();
            if let Some(fields) = value.as_object_mut() {
                fields.remove("updated_at");
            }
            value
        };
        let before = before.map(shown);
        self.write(AuditEntry {
            id: Uuid::new_v4(),
            at: Utc::now(),
            account: after.account.clone(),
            client_id: String::new(),
            action: AuditAction::RetentionChanged,
            actor: actor.clone(),
            version: 0,
            changes: schemas::audit::changes(before.as_ref(), &shown(after)),
            detail: None,
        })
        .await
    }

    /// Records an erasure asked for (its id, never the number).
    pub async fn record_erasure(
        &self,
        actor: &Actor,
        account: &str,
        erasure: Uuid,
    ) -> Result<(), Problem> {
        self.write(AuditEntry::caller_erased(account, actor, erasure))
            .await
    }

    /// Writes an entry made elsewhere (`crate::token_audit`).
    pub async fn write_entry(&self, entry: AuditEntry) -> Result<(), Problem> {
        self.write(entry).await
    }

    async fn write(&self, entry: AuditEntry) -> Result<(), Problem> {
        let action = entry.action;
        let payload = serde_json::to_vec(&entry)
            .map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "audit", e.to_string()))?;
        self.producer
            .send_pairs(&self.topic, &[(entry.client_id.clone(), payload)])
            .await
            .map_err(|error| {
                tracing::error!(%error, client_id = %entry.client_id, action = action.as_str(), "audit entry not written; the change is refused");
                metrics::counter!(crate::metric_names::API_AUDIT_FAILURES_TOTAL).increment(1);
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "audit_unavailable",
                    "the change could not be recorded in the audit trail; nothing was changed, retry shortly",
                )
                .retry_after(2)
            })?;
        metrics::counter!(crate::metric_names::API_AUDIT_ENTRIES_TOTAL, "action" => action.as_str())
            .increment(1);
        Ok(())
    }
}

/// Who sent `request`: the token's identity (never the token), its role, and the
/// address it came from (with `X-Forwarded-For`, when a proxy set one).
pub fn actor<B>(tokens: &Tokens, scope: &Scope, identity: String, request: &Request<B>) -> Actor {
    let peer = request
        .extensions()
        .get::<runtime::http::Peer>()
        .map(|p| p.0.to_string())
        .unwrap_or_default();
    let forwarded = request
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(200).collect::<String>());
    Actor {
        name: identity,
        role: if tokens.is_open() {
            "open".to_owned()
        } else {
            scope.role().to_owned()
        },
        from: match forwarded {
            Some(forwarded) => format!("{peer} (x-forwarded-for: {forwarded})"),
            None => peer,
        },
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    client_id: Option<String>,
    account: Option<String>,
    /// Entries at or after (RFC 3339).
    from: Option<String>,
    /// Entries before (RFC 3339).
    to: Option<String>,
    action: Option<String>,
    limit: Option<u32>,
}

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// `GET /api/audit`: entries, newest first.
pub async fn list(
    client: &clickhouse::Client,
    query: Option<&str>,
    scope: &Scope,
) -> Result<Response<Body>, Problem> {
    let params: AuditQuery = parse(query)?;
    scope.check_account(params.account.as_deref())?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(bad_parameter(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let mut sql = String::from(
        "SELECT account, at, id, at_ms, seq, client_id, action, actor, role, source, version, changes, detail \
         FROM audit_log FINAL WHERE 1",
    );
    let mut binds: Vec<String> = Vec::new();
    let mut numbers: Vec<i64> = Vec::new();
    // The token's account, in the statement: the one shared place (`Scope`) says
    // which, and another account's rows are never read.
    if let Some(account) = scope.account().or(params.account.as_deref()) {
        sql.push_str(" AND account = ?");
        binds.push(account.to_owned());
    }
    if let Some(client_id) = &params.client_id {
        schemas::ClientId::parse(client_id)
            .map_err(|e| bad_parameter("client_id", e.to_string()))?;
        sql.push_str(" AND client_id = ?");
        binds.push(client_id.clone());
    }
    if let Some(action) = &params.action {
        // Every action the trail records (`caller.erased` was missing from a list
        // kept here by hand: filtering by it was refused).
        let actions: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        if !actions.contains(&action.as_str()) {
            return Err(bad_parameter(
                "action",
                format!("must be one of {}", actions.join(", ")),
            ));
        }
        sql.push_str(" AND action = ?");
        binds.push(action.clone());
    }
    let range: [(&str, &Option<String>, &str); 2] = [
        ("from", &params.from, " AND at >= toDateTime(?)"),
        ("to", &params.to, " AND at < toDateTime(?)"),
    ];
    let mut range_sql = String::new();
    for (name, value, condition) in range {
        if let Some(value) = value {
            numbers.push(instant(name, value)?.timestamp());
            range_sql.push_str(condition);
        }
    }
    sql.push_str(&range_sql);
    // One row per id: api instances started together may each record the same
    // token change (the same id, written at two times, `crate::token_audit`).
    sql.push_str(&format!(
        " ORDER BY at DESC, seq DESC LIMIT 1 BY id LIMIT {limit}"
    ));
    let mut statement = client.query(&sql);
    for bind in &binds {
        statement = statement.bind(bind.as_str());
    }
    for number in &numbers {
        statement = statement.bind(*number);
    }
    let rows: Vec<AuditRow> = statement
        .fetch_all()
        .await
        .map_err(crate::calls::storage_error)?;
    let entries: Vec<serde_json::Value> = rows
        .into_iter()
        .filter(|row| {
            // A second check on what was read, as for calls.
            let mine = scope.permits(&row.account);
            if !mine {
                crate::filter::withheld("audit_log");
            }
            mine
        })
        .map(|row| {
            serde_json::json!({
                "id": row.id,
                "at": chrono::DateTime::<Utc>::from_timestamp_millis(i64::try_from(row.at_ms).unwrap_or_default()).unwrap_or(row.at),
                "account": row.account,
                "client_id": row.client_id,
                "action": row.action,
                "actor": {"name": row.actor, "role": row.role, "from": row.source},
                "version": row.version,
                "changes": serde_json::from_str::<serde_json::Value>(&row.changes).unwrap_or_default(),
                "detail": serde_json::from_str::<serde_json::Value>(&row.detail).ok(),
            })
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "entries": entries }),
    ))
}
