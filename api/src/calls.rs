//! `GET /api/calls`: newest first, filtered, keyset-paginated; and
//! `GET /api/calls/export.csv`: every call the same filters select, streamed as CSV.
//!
//! Filters (see `filter`): `client_id`, `account`, `from`, `to`, `source`, `status`,
//! `duplicate`, `caller`, `campaign`, `state`. Pages: `limit` (default 50), `cursor`
//! (from the previous page's `next_cursor`). Rows are read with `FINAL`, so a call
//! delivered several times, or corrected, is one row in its latest version.

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use runtime::http::{json, Body, Problem};
use schemas::call::CALL_COLUMNS;
use schemas::{CallRecord, CallRow};

use crate::filter::{CallFilter, FilterParams};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::query::{bad_parameter, parse};

const DEFAULT_PAGE: u32 = 50;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallsQuery {
    client_id: Option<String>,
    account: Option<String>,
    from: Option<String>,
    to: Option<String>,
    source: Option<String>,
    status: Option<String>,
    duplicate: Option<bool>,
    caller: Option<String>,
    campaign: Option<String>,
    state: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

impl CallsQuery {
    fn filter(&self, scope: &crate::access::Scope) -> Result<CallFilter, Problem> {
        scope.check_account(self.account.as_deref())?;
        let params = FilterParams {
            client_id: self.client_id.clone(),
            account: self.account.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            source: self.source.clone(),
            status: self.status.clone(),
            duplicate: self.duplicate,
            caller: self.caller.clone(),
            campaign: self.campaign.clone(),
            state: self.state.clone(),
        };
        CallFilter::parse(&params, scope.account())
    }
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
    let params: CallsQuery = parse(query)?;
    // An account token only ever reads its own account's rows.
    let filter = params.filter(scope)?;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > max_page {
        return Err(bad_parameter(
            "limit",
            format!("must be between 1 and {max_page}"),
        ));
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
    let mut sql = format!(
        "SELECT {CALL_COLUMNS} FROM calls FINAL WHERE 1{}",
        filter.sql()
    );
    if cursor.is_some() {
        sql.push_str(" AND (started_at < ? OR (started_at = ? AND toString(id) < ?))");
    }
    sql.push_str(" ORDER BY started_at DESC, toString(id) DESC LIMIT ?");
    let mut q = filter.bind(client.query(&sql));
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

/// Columns of the CSV export, in order.
const EXPORT_COLUMNS: &[&str] = &[
    "id",
    "client_id",
    "account",
    "source",
    "external_id",
    "caller",
    "called",
    "started_at",
    "local_tz",
    "duration_s",
    "connected_duration_s",
    "payout",
    "revenue",
    "currency",
    "zip",
    "city",
    "state",
    "campaign",
    "publisher",
    "buyer",
    "status",
    "qualified",
    "is_duplicate",
    "cm_call_id",
    "match_method",
    "repeat_of",
    "repeat_of_started_at",
    "partner_status",
];

/// Rows per chunk of the streamed export.
const EXPORT_CHUNK: usize = 1000;

/// `GET /api/calls/export.csv`: the filtered calls, oldest first, streamed in chunks
/// as ClickHouse sends them, so an export of millions of rows holds a few chunks in
/// memory. A ClickHouse failure mid-stream ends the file with a `# export
/// interrupted` line, since the 200 was already sent.
pub async fn export(
    client: &clickhouse::Client,
    query: Option<&str>,
    scope: &crate::access::Scope,
) -> Result<Response<Body>, Problem> {
    let params: CallsQuery = parse(query)?;
    if params.limit.is_some() || params.cursor.is_some() {
        return Err(bad_parameter(
            "limit",
            "the export has no pages: it streams every call the filters select",
        ));
    }
    let filter = params.filter(scope)?;
    let sql = format!(
        "SELECT {CALL_COLUMNS} FROM calls FINAL WHERE 1{} ORDER BY started_at, toString(id)",
        filter.sql()
    );
    let mut cursor = filter
        .bind(client.query(&sql))
        .fetch::<CallRow>()
        .map_err(storage_error)?;
    // The cursor is read by a task of its own and handed over in chunks through a
    // small channel: the client's pace sets ClickHouse's, memory stays at a few chunks.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let header = Bytes::from(format!("{}\r\n", EXPORT_COLUMNS.join(",")));
        if sender.send(header).await.is_err() {
            return;
        }
        loop {
            let mut writer = csv::WriterBuilder::new()
                .terminator(csv::Terminator::CRLF)
                .from_writer(Vec::new());
            let mut rows = 0;
            let mut failure = None;
            while rows < EXPORT_CHUNK {
                match cursor.next().await {
                    Ok(Some(row)) => {
                        let _ = writer.write_record(export_record(&row));
                        rows += 1;
                    }
                    Ok(None) => break,
                    Err(error) => {
                        failure = Some(error);
                        break;
                    }
                }
            }
            let mut bytes = writer.into_inner().unwrap_or_default();
            if let Some(error) = &failure {
                // The status line is long gone: say so in the file itself.
                tracing::error!(%error, "export interrupted by ClickHouse");
                bytes.extend_from_slice(
                    b"# export interrupted: ClickHouse failed; the file is incomplete, export again\r\n",
                );
            }
            metrics::counter!("api_export_rows_total").increment(rows as u64);
            let last = rows < EXPORT_CHUNK || failure.is_some();
            if (!bytes.is_empty() && sender.send(Bytes::from(bytes)).await.is_err()) || last {
                return;
            }
        }
    });
    let chunks = futures::stream::unfold(receiver, |mut receiver| async move {
        let bytes = receiver.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(bytes)), receiver))
    });
    let mut response = Response::new(StreamBody::new(chunks).boxed());
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(
        CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"calls.csv\""),
    );
    Ok(response)
}

fn export_record(row: &CallRow) -> Vec<String> {
    let money = |units: Option<i64>| {
        units
            .and_then(schemas::Money::from_units)
            .map(|m| m.to_string())
            .unwrap_or_default()
    };
    let number = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_default();
    vec![
        row.id.to_string(),
        row.client_id.clone(),
        row.account.clone(),
        row.source.as_str().to_owned(),
        row.external_id.clone(),
        row.caller.clone(),
        row.called.clone(),
        row.started_at.to_rfc3339(),
        row.local_tz.clone(),
        number(row.duration_s),
        number(row.connected_duration_s),
        money(row.payout),
        money(row.revenue),
        row.currency.clone(),
        row.zip.clone(),
        row.city.clone(),
        row.state.clone(),
        row.campaign.clone(),
        row.publisher.clone(),
        row.buyer.clone(),
        row.status.clone(),
        row.qualified.to_string(),
        row.is_duplicate.to_string(),
        row.cm_call_id.clone(),
        row.match_method.clone(),
        row.repeat_of.clone(),
        row.repeat_of_started_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
        row.partner_status.clone(),
    ]
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
