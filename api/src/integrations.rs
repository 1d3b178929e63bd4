//! `/api/integrations`: integration definitions and their health.
//!
//! | method | path                                   | what                                  |
//! |--------|----------------------------------------|---------------------------------------|
//! | GET    | /api/integrations                      | every visible integration with health |
//! | POST   | /api/integrations                      | create (version 1) or update (higher version) |
//! | POST   | /api/integrations/{id}/enable, /disable | a new version with `enabled` set     |
//! | DELETE | /api/integrations/{id}                 | delete (a tombstone on the topic)     |
//!
//! Health includes `poll`, the last run of a polled integration as the ingest instance
//! that polls it published it (`poll.status`, compacted).
//!
//! Writes go to the compacted integrations topic that every binary tails, so a change
//! is live everywhere within moments, as with `cmctl integrations publish`. An
//! account token sees and changes only its account's integrations. Secrets (webhook
//! tokens and signing secrets, poll credentials) are never returned: listings show
//! `auth` and `poll.auth` as their scheme only.

use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use runtime::http::{json, read_body, require_json, Body, Problem};
use runtime::kafka::{AckedProducer, KafkaConfig};
use runtime::registry::IntegrationRegistry;
use schemas::Integration;
use serde::Deserialize;

use crate::config::HealthConfig;
use runtime::access::Scope;

#[derive(Clone)]
pub struct IntegrationsApi {
    pub registry: IntegrationRegistry,
    pub producer: AckedProducer,
    pub kafka: KafkaConfig,
    pub clickhouse: clickhouse::Client,
    /// Each polled integration's last run, published by whichever ingest polled it.
    pub polls: runtime::table::CompactedTable<serde_json::Value>,
    pub health: HealthConfig,
    /// Deliveries ingest refused, per integration (`crate::refusals`).
    pub refusals: crate::refusals::RecentRefusals,
    /// Every change is recorded here first (`crate::audit`).
    pub audit: crate::audit::Auditor,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct Activity {
    account: String,
    client_id: String,
    last_received: u32,
    calls_24h: u64,
    duplicates_24h: u64,
    linked_24h: u64,
    /// Days of the past 7 with records in this hour of day (UTC), before this hour.
    usual_days: u64,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct LastRecord {
    account: String,
    client_id: String,
    last_received: u32,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct FilteredCount {
    account: String,
    client_id: String,
    reason: String,
    records: u64,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct Dead {
    /// Empty on dead letters recorded before they carried the account.
    account: String,
    client_id: String,
    dead_24h: u64,
}

impl IntegrationsApi {
    pub async fn list(&self, scope: &Scope) -> Result<Response<Body>, Problem> {
        let visible: Vec<std::sync::Arc<Integration>> = self
            .registry
            .all()
            .into_iter()
            .filter(|i| scope.account().is_none_or(|a| a == i.account))
            .collect();
        // Figures are read for the token's account only, and matched to its
        // integrations by (account, client id).
        let (and_account, dead_of) = match scope.account() {
            Some(account) => {
                let account = runtime::clickhouse::string_list([account]);
                (
                    format!(" AND account = {account}"),
                    format!(" AND account IN ({account}, '')"),
                )
            }
            None => (String::new(), String::new()),
        };
        // Only the last 7 days' records are counted: `calls` is sorted by (client_id,
        // id), so a filter on the receive time is what keeps this from reading every
        // id ever stored (1.5 s over the 10M-call bench database, benches/README.md).
        let mut activity: Vec<Activity> = self
            .clickhouse
            .query(&format!(
                // Calls, not rows: read without FINAL, a call stored in several
                // versions (late fields, corrections) is several rows until they merge.
                "SELECT account, client_id, toUInt32(max(received_at)) AS last_received, \
                 uniqExactIf(id, received_at >= now() - 86400) AS calls_24h, \
                 uniqExactIf(id, received_at >= now() - 86400 AND is_duplicate = 1) AS duplicates_24h, \
                 uniqExactIf(id, received_at >= now() - 86400 AND cm_call_id != '') AS linked_24h, \
                 uniqExactIf(toDate(received_at), received_at < toStartOfHour(now()) \
                 AND toHour(received_at) = toHour(now(), 'UTC')) AS usual_days \
                 FROM calls WHERE received_at >= now() - 7 * 86400{and_account} GROUP BY account, client_id"
            ))
            .fetch_all()
            .await
            .map_err(crate::calls::storage_error)?;
        // The last record of integrations quiet for a week: by client id, the key's
        // first column, so only their rows are read.
        let quiet: Vec<&str> = visible
            .iter()
            .map(|i| i.client_id.as_str())
            .filter(|c| !activity.iter().any(|a| a.client_id == *c))
            .collect();
        if !quiet.is_empty() {
            let last: Vec<LastRecord> = self
                .clickhouse
                .query(&format!(
                    "SELECT account, client_id, toUInt32(max(received_at)) AS last_received FROM calls \
                     WHERE client_id IN ({}){and_account} GROUP BY account, client_id",
                    runtime::clickhouse::string_list(quiet.iter().copied())
                ))
                .fetch_all()
                .await
                .map_err(crate::calls::storage_error)?;
            activity.extend(last.into_iter().map(|l| Activity {
                account: l.account,
                client_id: l.client_id,
                last_received: l.last_received,
                calls_24h: 0,
                duplicates_24h: 0,
                linked_24h: 0,
                usual_days: 0,
            }));
        }
        let dead: Vec<Dead> = self
            .clickhouse
            .query(&format!(
                "SELECT account, client_id, count() AS dead_24h FROM dead_letters \
                    WHERE failed_at >= now() - 86400{dead_of} GROUP BY account, client_id"
            ))
            .fetch_all()
            .await
            .map_err(crate::calls::storage_error)?;
        // Records the mappings' filters dropped on purpose, per reason (one row per
        // record: a batch written twice is not counted twice).
        let filtered: Vec<FilteredCount> = self
            .clickhouse
            .query(&format!(
                "SELECT account, client_id, reason, uniqExact(raw_id) AS records FROM filtered_records \
                 WHERE received_at >= now() - 86400{and_account} GROUP BY account, client_id, reason"
            ))
            .fetch_all()
            .await
            .map_err(crate::calls::storage_error)?;
        // Drift (crate::drift): fields that stopped being filled, new keys and
        // types, new status words; each with the first record that showed it.
        let window_s = self.health.drift_window_s;
        let fills: Vec<crate::drift::FillCounts> = self
            .clickhouse
            .query(&crate::drift::fill_query(window_s, &and_account))
            .fetch_all()
            .await
            .map_err(crate::calls::storage_error)?;
        let keys: Vec<crate::drift::KeySeen> = self
            .clickhouse
            .query(&crate::drift::keys_query(window_s, &and_account))
            .fetch_all()
            .await
            .map_err(crate::calls::storage_error)?;
        let statuses: Vec<crate::drift::NewStatus> = self
            .clickhouse
            .query(&crate::drift::statuses_query(window_s, &and_account))
            .fetch_all()
            .await
            .map_err(crate::calls::storage_error)?;
        let since = chrono::Utc::now().timestamp() - window_s as i64;
        let mut drifts: std::collections::HashMap<&str, Vec<crate::drift::Drift>> =
            Default::default();
        for integration in &visible {
            let (client, account) = (integration.client_id.as_str(), integration.account.as_str());
            let mut found = Vec::new();
            if let Some(counts) = fills
                .iter()
                .find(|f| f.client_id == client && f.account == account)
            {
                for mut drift in crate::drift::drifted(integration, counts) {
                    if let crate::drift::Drift::Fill { field, .. } = &drift {
                        if let Some(sql) = crate::drift::first_without(field, window_s) {
                            let call = self
                                .clickhouse
                                .query(&sql)
                                .bind(client)
                                .bind(account)
                                .fetch_optional::<String>()
                                .await
                                .map_err(crate::calls::storage_error)?;
                            drift.set_call(call);
                        }
                    }
                    found.push(drift);
                }
                let news: Vec<&crate::drift::NewStatus> = statuses
                    .iter()
                    .filter(|s| s.client_id == client && s.account == account)
                    .collect();
                found.extend(crate::drift::status_drifts(counts, &news));
            }
            let mine: Vec<&crate::drift::KeySeen> = keys
                .iter()
                .filter(|k| k.client_id == client && k.account == account)
                .collect();
            for mut drift in crate::drift::key_drifts(&mine, since) {
                if let Some(raw) = drift.wants_call_of().map(str::to_owned) {
                    let first = mine.iter().find(|k| k.raw_id == raw).map_or(0, |k| k.first);
                    let call = self
                        .clickhouse
                        .query(crate::drift::CALL_OF_RAW)
                        .bind(client)
                        .bind(account)
                        .bind(first)
                        .bind(first)
                        .bind(raw.as_str())
                        .fetch_optional::<String>()
                        .await
                        .map_err(crate::calls::storage_error)?;
                    drift.set_call(call);
                }
                found.push(drift);
            }
            if !found.is_empty() {
                drifts.insert(client, found);
            }
        }
        let now = chrono::Utc::now().timestamp();
        let rows: Vec<serde_json::Value> = visible
            .iter()
            .map(|integration| {
                let client = integration.client_id.as_str();
                let account = integration.account.as_str();
                let seen = activity.iter().find(|a| a.client_id == client && a.account == account);
                let dead_24h: u64 = dead
                    .iter()
                    .filter(|d| d.client_id == client && (d.account == account || d.account.is_empty()))
                    .map(|d| d.dead_24h)
                    .sum();
                let calls_24h = seen.map_or(0, |s| s.calls_24h);
                let filtered_24h: serde_json::Map<String, serde_json::Value> = filtered
                    .iter()
                    .filter(|f| f.client_id == client && f.account == account)
                    .map(|f| (f.reason.clone(), f.records.into()))
                    .collect();
                let drift = drifts.get(client).cloned().unwrap_or_default();
                let alert = match alert(
                    integration.enabled,
                    seen.map(|s| now - i64::from(s.last_received)),
                    seen.map_or(0, |s| s.usual_days),
                    (calls_24h, dead_24h),
                    &self.health,
                ) {
                    "ok" if !drift.is_empty() => "drift",
                    other => other,
                };
                serde_json::json!({
                    "integration": redacted(integration),
                    "health": {
                        "alert": alert,
                        "last_record_at": seen.and_then(|s| chrono::DateTime::from_timestamp(i64::from(s.last_received), 0)),
                        "calls_24h": calls_24h,
                        "usual_days_at_this_hour": seen.map_or(0, |s| s.usual_days),
                        "dead_letters_24h": dead_24h,
                        "filtered_24h": filtered_24h,
                        "drift": drift,
                        "error_rate_24h": if calls_24h + dead_24h == 0 { 0.0 } else { dead_24h as f64 / (calls_24h + dead_24h) as f64 },
                        "callmatrix_duplicates_24h": seen.map_or(0, |s| s.duplicates_24h),
                        "linked_to_callmatrix_24h": seen.map_or(0, |s| s.linked_24h),
                        "poll": self.polls.get(client).map(|p| (*p).clone()),
                        "refused_last_hour": self.refusals.last_hour(&integration.client_id),
                    }
                })
            })
            .collect();
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "integrations": rows }),
        ))
    }

    /// Create or update: the body is a whole integration definition.
    pub async fn save(
        &self,
        scope: &Scope,
        actor: &schemas::audit::Actor,
        request: Request<Incoming>,
        limits: &crate::limits::LimitsConfig,
    ) -> Result<Response<Body>, Problem> {
        require_json(&request)?;
        let body = read_body(
            request,
            limits.definition_bytes,
            runtime::http::BODY_TIMEOUT,
        )
        .await?;
        let integration: Integration = serde_json::from_slice(&body).map_err(|e| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_integration",
                e.to_string(),
            )
        })?;
        if integration.deleted {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_integration",
                "deleted: delete with DELETE /api/integrations/{clientId}",
            ));
        }
        scope.may_define(
            &self.registry,
            integration.client_id.as_str(),
            &integration.account,
        )?;
        // A deleted integration's marker counts: a re-created one takes a higher version.
        let current = self.registry.latest(integration.client_id.as_str());
        let live = current.as_ref().is_some_and(|c| !c.deleted);
        if !live {
            let owned = self
                .registry
                .owned_by(&integration.account)
                .iter()
                .filter(|client| self.registry.find(client).is_some())
                .count();
            if owned >= limits.integrations as usize {
                return Err(Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "account_limit",
                    format!(
                        "account {:?} has {owned} integrations; at most {} (limits.integrations = {}); delete one first",
                        integration.account, limits.integrations, limits.integrations
                    ),
                )
                .with_detail("limit", "limits.integrations")
                .with_detail("value", limits.integrations));
            }
        }
        if let Some(current) = &current {
            if integration.version <= current.version {
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    "stale_version",
                    format!("version must be above the current {} (rows record the version that made them)", current.version),
                )
                .with_detail("current_version", current.version));
            }
        }
        let before = current.as_deref().filter(|c| !c.deleted);
        let action = if before.is_some() {
            schemas::audit::AuditAction::IntegrationUpdated
        } else {
            schemas::audit::AuditAction::IntegrationCreated
        };
        self.audit
            .record(actor, action, before, &integration, None)
            .await?;
        self.publish(&integration).await?;
        let status = if current.is_some_and(|c| !c.deleted) {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        Ok(json(
            status,
            &serde_json::json!({"client_id": integration.client_id, "version": integration.version}),
        ))
    }

    /// Enable or disable: a new version of the current definition.
    pub async fn set_enabled(
        &self,
        scope: &Scope,
        actor: &schemas::audit::Actor,
        client: &str,
        enabled: bool,
    ) -> Result<Response<Body>, Problem> {
        let mut integration = (*self.visible(scope, client)?).clone();
        integration.enabled = enabled;
        integration.version += 1;
        let action = if enabled {
            schemas::audit::AuditAction::IntegrationEnabled
        } else {
            schemas::audit::AuditAction::IntegrationDisabled
        };
        self.audit
            .record(actor, action, None, &integration, None)
            .await?;
        self.publish(&integration).await?;
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({"client_id": integration.client_id, "version": integration.version, "enabled": enabled}),
        ))
    }

    pub async fn delete(
        &self,
        scope: &Scope,
        actor: &schemas::audit::Actor,
        client: &str,
    ) -> Result<Response<Body>, Problem> {
        let integration = self.visible(scope, client)?;
        self.audit
            .record(
                actor,
                schemas::audit::AuditAction::IntegrationDeleted,
                None,
                &integration,
                None,
            )
            .await?;
        runtime::registry::delete(&self.producer, &self.kafka, &integration)
            .await
            .map_err(unavailable)?;
        // Read-your-writes, as for saves: answer once this instance has seen the delete.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.registry.get(&integration.client_id).is_some()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({"client_id": integration.client_id, "deleted": true}),
        ))
    }

    /// `GET /api/integrations/{clientId}/refusals`: the deliveries ingest refused,
    /// newest first, for the integration's account (or an admin).
    pub fn refused(&self, scope: &Scope, client: &str) -> Result<Response<Body>, Problem> {
        let integration = self.visible(scope, client)?;
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({
                "client_id": integration.client_id,
                "refusals": self.refusals.of(&integration.client_id),
            }),
        ))
    }

    fn visible(&self, scope: &Scope, client: &str) -> Result<std::sync::Arc<Integration>, Problem> {
        // Another account's integration is indistinguishable from a missing one.
        scope.integration(&self.registry, client)
    }

    /// Publishes, then waits (briefly) until this instance's registry has the new
    /// version, so the caller reads its own write from this api.
    async fn publish(&self, integration: &Integration) -> Result<(), Problem> {
        self.send(integration).await?;
        self.registry
            .wait_for(
                &integration.client_id,
                integration.version,
                Duration::from_secs(5),
            )
            .await;
        Ok(())
    }

    async fn send(&self, integration: &Integration) -> Result<(), Problem> {
        runtime::registry::publish(&self.producer, &self.kafka, integration)
            .await
            .map_err(|error| match error {
                runtime::registry::RegistryError::Invalid(invalid) => Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_integration",
                    invalid.to_string(),
                ),
                other => unavailable(other),
            })
    }
}

fn unavailable(error: runtime::registry::RegistryError) -> Problem {
    tracing::warn!(%error, "integration change not stored");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "broker_unavailable",
        "the change could not be stored; retry",
    )
    .retry_after(3)
}

/// The definition without secrets: auth schemes only, secret poll headers and query
/// parameters masked (the usual credential names and `poll.secret_names`), URLs
/// without user-info.
pub(crate) fn redacted(integration: &Integration) -> serde_json::Value {
    schemas::redact::integration(integration)
}

/// The health alert, first match wins: `disabled`; `silent` (no record for
/// `silence_minutes` at an hour of day it sent at on `usual_days` of the past week);
/// `never_sent`; `failing` (a tenth or more of the last 24 h dead-lettered); `ok`.
fn alert(
    enabled: bool,
    quiet_s: Option<i64>,
    usual_days: u64,
    (calls_24h, dead_24h): (u64, u64),
    health: &HealthConfig,
) -> &'static str {
    let silence = i64::try_from(health.silence_minutes * 60).unwrap_or(i64::MAX);
    match quiet_s {
        _ if !enabled => "disabled",
        Some(quiet) if quiet >= silence && usual_days >= health.usual_days => "silent",
        None => "never_sent",
        _ if dead_24h > 0 && dead_24h * 10 >= calls_24h + dead_24h => "failing",
        _ => "ok",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_means_quiet_at_a_usual_hour() {
        let health = HealthConfig::default();
        let hour = 3600;
        // Quiet for two hours at an hour it sent at on 3 of the last 7 days.
        assert_eq!(alert(true, Some(2 * hour), 3, (0, 0), &health), "silent");
        // Not a usual hour: two days of seven is not a habit.
        assert_eq!(alert(true, Some(2 * hour), 2, (0, 0), &health), "ok");
        // Usual hour, but it sent 59 minutes ago.
        assert_eq!(alert(true, Some(59 * 60), 7, (0, 0), &health), "ok");
        let strict = HealthConfig {
            silence_minutes: 30,
            usual_days: 1,
            ..HealthConfig::default()
        };
        assert_eq!(alert(true, Some(31 * 60), 1, (0, 0), &strict), "silent");
        assert_eq!(alert(false, Some(2 * hour), 7, (0, 0), &health), "disabled");
        assert_eq!(alert(true, None, 0, (0, 0), &health), "never_sent");
    }

    #[test]
    fn failing_means_a_tenth_dead_lettered() {
        let health = HealthConfig::default();
        assert_eq!(alert(true, Some(60), 0, (90, 10), &health), "failing");
        assert_eq!(alert(true, Some(60), 0, (91, 9), &health), "ok");
        assert_eq!(alert(true, Some(60), 0, (0, 0), &health), "ok");
    }

    #[test]
    fn listings_never_show_secrets() {
        let integration: Integration = serde_json::from_value(serde_json::json!({
            "client_id": "x", "account": "a", "name": "X", "source": "webhook", "version": 1,
            "mapping": {"fields": {"caller": {"path": "c"}, "started_at": {"path": "s"}}},
            "auth": {"scheme": "bearer", "tokens": ["tok_secret_0123456789abcdefghij"]},
            "poll": {"interval_s": 60, "url": "https://p.example/calls", "cursor_field": "u",
                     "initial_since": "2026-11-01T00:00:00Z",
                     "auth": {"type": "bearer", "token": "poll_secret_token"},
                     "headers": {"X-Api-Key": "hdr_secret", "X-Partner-Account": "acct_secret", "Accept": "json"},
                     "query": {"access_token": "qry_secret", "since": "{since}"},
                     "secret_names": ["X-Partner-Account"]}
        }))
        .unwrap();
        let shown = redacted(&integration).to_string();
        assert!(!shown.contains("_secret"), "{shown}");
        assert!(shown.contains("\"scheme\":\"bearer\""));
        assert!(
            shown.contains("\"Accept\":\"json\"") && shown.contains("{since}"),
            "{shown}"
        );
        // Issue 35: token authenticators and POST bodies.
        let integration: Integration = serde_json::from_value(serde_json::json!({
            "client_id": "x", "account": "a", "name": "X", "source": "poll", "version": 1,
            "mapping": {"fields": {"caller": {"path": "c"}, "started_at": {"path": "s"}}},
            "poll": {"interval_s": 60, "url": "https://p.example/calls", "cursor_field": "u",
                     "initial_since": "2026-11-01T00:00:00Z", "method": "POST",
                     "auth": {"type": "oauth2", "token_url": "https://p.example/token",
                              "client_id": "cid", "client_secret": "oauth_secret",
                              "refresh_token": "refresh_secret"},
                     "body": {"reportStart": "{since}", "filter": {"apiKey": "body_secret"}}}
        }))
        .unwrap();
        let shown = redacted(&integration).to_string();
        assert!(!shown.contains("_secret"), "{shown}");
        assert!(
            shown.contains("\"type\":\"oauth2\"") && shown.contains("{since}"),
            "{shown}"
        );
    }
}
