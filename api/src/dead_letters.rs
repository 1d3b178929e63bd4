//! `GET /api/dead-letters`: refused records, newest first, with reason, field
//! errors and the payload as received. Parameters: `client_id`, `reason_group`,
//! `limit`.
//!
//! `GET /api/dead-letters/groups`: the same records counted by integration, stage
//! and reason group (the reason with its numbers and call ids blanked, so "line 1
//! column 7" and "line 3 column 2" are one group), with how many of them are stored
//! as calls since (replayed after a fix). Parameters: `client_id`, `from`, `to`
//! (default: the last 7 days, by failure time).
//!
//! An account token reads only rows of its account: the query filters on the
//! account (rows recorded before dead letters carried one: on the account's client
//! ids, which stay its own), and every row read is checked again before it is shown.

use http::{Response, StatusCode};
use runtime::http::{json, Body, Problem};
use schemas::{ClientId, DeadLetterRow};
use serde::Deserialize;

use crate::calls::storage_error;
use crate::query::{bad_parameter, parse};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLettersQuery {
    client_id: Option<String>,
    /// Only letters whose reason falls into this group (as `/groups` names it).
    reason_group: Option<String>,
    limit: Option<u32>,
}

/// The reason of a dead letter with what differs from record to record blanked:
/// numbers (positions, values) become `#`, the call id of "call X" becomes `…`.
/// The same expression groups and filters, so a group's letters are those listed.
const REASON_GROUP: &str =
    "replaceRegexpAll(replaceRegexpAll(reason, '[0-9]+', '#'), 'call [^ ,;:]+', 'call …')";

/// The SQL that limits dead letters to what `scope` may read: rows of its account,
/// and rows recorded before dead letters carried one by its client ids (which stay
/// its own). Empty for an admin.
fn account_clause(scope: &runtime::access::Scope, visible: Option<&Vec<String>>) -> String {
    match (scope.account(), visible) {
        (Some(account), Some(visible)) => {
            let account = runtime::clickhouse::string_list([account]);
            if visible.is_empty() {
                format!(" AND account = {account}")
            } else {
                format!(
                    " AND (account = {account} OR (account = '' AND client_id IN ({})))",
                    runtime::clickhouse::string_list(visible.iter().map(String::as_str))
                )
            }
        }
        _ => String::new(),
    }
}

/// Whether a row with this account and client id is `scope`'s (the second check,
/// after the query's own clause).
fn is_mine(
    scope: &runtime::access::Scope,
    visible: Option<&Vec<String>>,
    account: &str,
    client_id: &str,
) -> bool {
    let mine = match scope.account() {
        None => true,
        Some(mine) if !account.is_empty() => account == mine,
        Some(_) => visible.is_some_and(|visible| visible.iter().any(|c| c == client_id)),
    };
    if !mine {
        crate::filter::withheld("dead_letters");
    }
    mine
}

pub async fn list(
    client: &clickhouse::Client,
    max_page: u32,
    query: Option<&str>,
    scope: &runtime::access::Scope,
    registry: &runtime::registry::IntegrationRegistry,
) -> Result<Response<Body>, Problem> {
    let visible_clients = scope.client_ids(registry);
    let params: DeadLettersQuery = parse(query)?;
    let limit = params.limit.unwrap_or(50);
    if limit == 0 || limit > max_page {
        return Err(bad_parameter(
            "limit",
            format!("must be between 1 and {max_page}"),
        ));
    }
    let mut sql = "SELECT raw_id, client_id, source, stage, reason, errors, received_at, failed_at, raw_partition, raw_offset, payload, account, payload_bytes, payload_sha256 \
                   FROM dead_letters FINAL WHERE 1"
        .to_owned();
    if let Some(client_id) = &params.client_id {
        ClientId::parse(client_id).map_err(|e| bad_parameter("client_id", e.to_string()))?;
        sql.push_str(" AND client_id = ?");
    }
    if params.reason_group.is_some() {
        sql.push_str(&format!(" AND {REASON_GROUP} = ?"));
    }
    sql.push_str(&account_clause(scope, visible_clients.as_ref()));
    sql.push_str(" ORDER BY failed_at DESC, toString(raw_id) DESC LIMIT ?");
    let mut q = client.query(&sql);
    if let Some(client_id) = &params.client_id {
        q = q.bind(client_id.as_str());
    }
    if let Some(group) = &params.reason_group {
        q = q.bind(group.as_str());
    }
    let rows: Vec<DeadLetterRow> = q.bind(limit).fetch_all().await.map_err(storage_error)?;
    let letters: Vec<serde_json::Value> = rows
        .into_iter()
        .filter(|row| {
            is_mine(
                scope,
                visible_clients.as_ref(),
                &row.account,
                &row.client_id,
            )
        })
        .map(|row| {
            serde_json::json!({
                "raw_id": row.raw_id,
                "client_id": row.client_id,
                "source": row.source.as_str(),
                "stage": row.stage,
                "reason": row.reason,
                "errors": row.errors,
                "received_at": row.received_at,
                "failed_at": row.failed_at,
                "raw_partition": (row.raw_partition >= 0).then_some(row.raw_partition),
                "raw_offset": (row.raw_offset >= 0).then_some(row.raw_offset),
                "payload": row.payload,
                // A record too large for its dead letter: `payload` is its start.
                "payload_truncated": (row.payload_bytes > 0).then(|| serde_json::json!({
                    "bytes": row.payload_bytes,
                    "sha256": row.payload_sha256,
                })),
            })
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "dead_letters": letters }),
    ))
}

/// The groups statement over the letters `filter` keeps.
fn groups_sql(filter: &str) -> String {
    // Stored since: the record (same raw id) is a call now, as after a replay
    // following a mapping fix. Looked up among the calls of the integrations that
    // have letters in the range only (`calls` is sorted by client id).
    format!(
        "SELECT account, client_id, stage, {REASON_GROUP} AS reason_group, any(reason) AS sample_reason, \
         count() AS letters, countIf(raw_id IN (SELECT raw_id FROM calls WHERE client_id IN \
         (SELECT client_id FROM dead_letters WHERE {filter}))) AS stored_since, \
         toUInt32(min(failed_at)) AS first_failed_at, toUInt32(max(failed_at)) AS last_failed_at \
         FROM dead_letters FINAL WHERE {filter} \
         GROUP BY account, client_id, stage, reason_group ORDER BY letters DESC, client_id, reason_group LIMIT {MAX_GROUPS}"
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupsQuery {
    client_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct GroupRow {
    account: String,
    client_id: String,
    stage: String,
    reason_group: String,
    /// One of the group's reasons as written (an alias other than `reason`: in
    /// ClickHouse 18.16 it would shadow the column the group expression reads).
    sample_reason: String,
    letters: u64,
    stored_since: u64,
    first_failed_at: u32,
    last_failed_at: u32,
}

/// Most groups an answer carries, biggest first.
const MAX_GROUPS: u32 = 200;

pub async fn groups(
    client: &clickhouse::Client,
    query: Option<&str>,
    scope: &runtime::access::Scope,
    registry: &runtime::registry::IntegrationRegistry,
) -> Result<Response<Body>, Problem> {
    let visible_clients = scope.client_ids(registry);
    let params: GroupsQuery = parse(query)?;
    let now = chrono::Utc::now();
    let to = params
        .to
        .as_deref()
        .map(|t| crate::filter::instant("to", t))
        .transpose()?
        .unwrap_or(now);
    let from = match params.from.as_deref() {
        Some(t) => crate::filter::instant("from", t)?,
        None => to - chrono::Duration::days(7),
    };
    if from >= to {
        return Err(bad_parameter("from", "must be before `to`"));
    }
    let mut filter = format!(
        "failed_at >= toDateTime({}) AND failed_at < toDateTime({})",
        from.timestamp(),
        to.timestamp()
    );
    if let Some(client_id) = &params.client_id {
        ClientId::parse(client_id).map_err(|e| bad_parameter("client_id", e.to_string()))?;
        filter.push_str(&format!(
            " AND client_id = {}",
            runtime::clickhouse::string_list([client_id.as_str()])
        ));
    }
    filter.push_str(&account_clause(scope, visible_clients.as_ref()));
    let sql = groups_sql(&filter);
    let rows: Vec<GroupRow> = client
        .query(&sql)
        .fetch_all()
        .await
        .map_err(storage_error)?;
    let at = |t: u32| chrono::DateTime::from_timestamp(i64::from(t), 0);
    let groups: Vec<serde_json::Value> = rows
        .into_iter()
        .filter(|g| is_mine(scope, visible_clients.as_ref(), &g.account, &g.client_id))
        .map(|g| {
            serde_json::json!({
                "client_id": g.client_id,
                "stage": g.stage,
                "reason_group": g.reason_group,
                "reason": g.sample_reason,
                "letters": g.letters,
                "stored_since": g.stored_since,
                // Records refused at the edge were never JSON: nothing to re-map.
                "replayable": g.stage == schemas::dead_letter::Stage::Mapping.as_str(),
                "first_failed_at": at(g.first_failed_at),
                "last_failed_at": at(g.last_failed_at),
            })
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "from": from, "to": to, "groups": groups }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_groups_sql_sent_is_the_sql_checked_on_current_clickhouse() {
        let scope = runtime::access::Scope::Account("acme".to_owned());
        let visible = vec!["arroyo".to_owned()];
        let filter = format!(
            "failed_at >= toDateTime(1796000000) AND failed_at < toDateTime(1796600000) AND client_id = 'arroyo'{}",
            account_clause(&scope, Some(&visible))
        );
        let sql = groups_sql(&filter);
        assert!(
            sql.contains("account = 'acme' OR (account = '' AND client_id IN ('arroyo'))"),
            "{sql}"
        );
        runtime::clickhouse::check_sql_snapshot("dead_letter_groups", &[sql]).unwrap();
    }

    #[test]
    fn rows_of_another_account_are_not_mine() {
        let scope = runtime::access::Scope::Account("acme".to_owned());
        let visible = vec!["arroyo".to_owned()];
        assert!(is_mine(&scope, Some(&visible), "acme", "arroyo"));
        assert!(!is_mine(&scope, Some(&visible), "mallory", "arroyo"));
        // Before letters carried an account: by client id.
        assert!(is_mine(&scope, Some(&visible), "", "arroyo"));
        assert!(!is_mine(&scope, Some(&visible), "", "mallory-hook"));
        assert!(is_mine(&runtime::access::Scope::All, None, "mallory", "x"));
    }
}
