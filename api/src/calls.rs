//! `GET /api/calls`: newest first, filtered, keyset-paginated.
//!
//! Parameters: `client_id`, `account`, `limit` (default 50), `cursor` (from the
//! previous page's `next_cursor`). Rows are read with `FINAL`, so a call delivered
//! several times, or corrected, is one row in its latest version.

use http::{Response, StatusCode};
use runtime::http::{json, Body, Problem};
use schemas::call::CALL_COLUMNS;
use schemas::{CallRecord, CallRow, ClientId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::query::{bad_parameter, parse};

const DEFAULT_PAGE: u32 = 50;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallsQuery {
    client_id: Option<String>,
    account: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Position after the last row of a page: `(started_at, id)` of that row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    started_at: u32,
    id: Uuid,
}

impl Cursor {
    fn encode(&self) -> String {
        format!("{}.{}", self.started_at, self.id.simple())
    }

    fn decode(text: &str) -> Option<Self> {
        let (seconds, id) = text.split_once('.')?;
        Some(Self {
            started_at: seconds.parse().ok()?,
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

#[derive(Serialize)]
struct CallsPage {
    calls: Vec<CallRecord>,
    next_cursor: Option<String>,
}

pub async fn list(
    client: &clickhouse::Client,
    max_page: u32,
    query: Option<&str>,
    scope: &crate::access::Scope,
) -> Result<Response<Body>, Problem> {
    let mut params: CallsQuery = parse(query)?;
    scope.check_account(params.account.as_deref())?;
    if let Some(mine) = scope.account() {
        // An account token only ever reads its own account's rows.
        params.account = Some(mine.to_owned());
    }
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > max_page {
        return Err(bad_parameter(
            "limit",
            format!("must be between 1 and {max_page}"),
        ));
    }
    if let Some(client_id) = &params.client_id {
        ClientId::parse(client_id).map_err(|e| bad_parameter("client_id", e.to_string()))?;
    }
    let cursor = match &params.cursor {
        Some(text) => Some(
            Cursor::decode(text)
                .ok_or_else(|| bad_parameter("cursor", "is not a cursor this API issued"))?,
        ),
        None => None,
    };

    // `toString(id)` orders ids the same way in the filter and the sort, on every
    // ClickHouse version (UUID's own order differs between versions).
    let mut sql = format!("SELECT {CALL_COLUMNS} FROM calls FINAL WHERE 1");
    if params.client_id.is_some() {
        sql.push_str(" AND client_id = ?");
    }
    if params.account.is_some() {
        sql.push_str(" AND account = ?");
    }
    if cursor.is_some() {
        sql.push_str(" AND (started_at < ? OR (started_at = ? AND toString(id) < ?))");
    }
    sql.push_str(" ORDER BY started_at DESC, toString(id) DESC LIMIT ?");
    let mut q = client.query(&sql);
    if let Some(client_id) = &params.client_id {
        q = q.bind(client_id.as_str());
    }
    if let Some(account) = &params.account {
        q = q.bind(account.as_str());
    }
    if let Some(cursor) = cursor {
        q = q
            .bind(cursor.started_at)
            .bind(cursor.started_at)
            .bind(cursor.id.to_string());
    }
    // One extra row tells whether another page exists.
    q = q.bind(limit + 1);
    let mut rows: Vec<CallRow> = q.fetch_all().await.map_err(storage_error)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = more.then(|| rows.last()).flatten().map(|last| {
        Cursor {
            started_at: last.started_at.timestamp() as u32,
            id: last.id,
        }
        .encode()
    });
    let calls = rows
        .into_iter()
        .map(CallRecord::try_from)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "bad_row", e.to_string()))?;
    Ok(json(StatusCode::OK, &CallsPage { calls, next_cursor }))
}

pub fn storage_error(error: clickhouse::error::Error) -> Problem {
    tracing::error!(%error, "ClickHouse query failed");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        "ClickHouse did not answer; retry shortly",
    )
    .retry_after(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_junk() {
        let cursor = Cursor {
            started_at: 1_795_212_202,
            id: Uuid::from_u128(7),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        for junk in [
            "",
            "abc",
            "12.",
            ".abc",
            "-1.00000000000000000000000000000007",
            "1.xyz",
        ] {
            assert_eq!(Cursor::decode(junk), None, "{junk}");
        }
    }
}
