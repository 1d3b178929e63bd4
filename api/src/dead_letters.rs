//! `GET /api/dead-letters`: refused records, newest first, with reason, field
//! errors and the payload as received. Parameters: `client_id`, `limit`.
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
    limit: Option<u32>,
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
    let mut sql = "SELECT raw_id, client_id, source, stage, reason, errors, received_at, failed_at, raw_partition, raw_offset, payload, account \
                   FROM dead_letters FINAL WHERE 1"
        .to_owned();
    if let Some(client_id) = &params.client_id {
        ClientId::parse(client_id).map_err(|e| bad_parameter("client_id", e.to_string()))?;
        sql.push_str(" AND client_id = ?");
    }
    if let (Some(account), Some(visible)) = (scope.account(), &visible_clients) {
        let account = runtime::clickhouse::string_list([account]);
        if visible.is_empty() {
            sql.push_str(&format!(" AND account = {account}"));
        } else {
            sql.push_str(&format!(
                " AND (account = {account} OR (account = '' AND client_id IN ({})))",
                runtime::clickhouse::string_list(visible.iter().map(String::as_str))
            ));
        }
    }
    sql.push_str(" ORDER BY failed_at DESC, toString(raw_id) DESC LIMIT ?");
    let mut q = client.query(&sql);
    if let Some(client_id) = &params.client_id {
        q = q.bind(client_id.as_str());
    }
    let rows: Vec<DeadLetterRow> = q.bind(limit).fetch_all().await.map_err(storage_error)?;
    let letters: Vec<serde_json::Value> = rows
        .into_iter()
        .filter(|row| {
            // Rows recorded before dead letters carried their account are the
            // account's by client id (which stays its own).
            let mine = match scope.account() {
                None => true,
                Some(account) if !row.account.is_empty() => row.account == account,
                Some(_) => visible_clients
                    .as_ref()
                    .is_some_and(|visible| visible.contains(&row.client_id)),
            };
            if !mine {
                crate::filter::withheld("dead_letters");
            }
            mine
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
            })
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "dead_letters": letters }),
    ))
}
