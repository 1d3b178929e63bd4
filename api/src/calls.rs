//! `GET /api/calls`: newest first, filtered, keyset-paginated; and
//! `GET /api/calls/export.csv`: every call the same filters select, streamed as CSV.
//!
//! Filters (see `filter`): `client_id`, `account`, `from`, `to`, `source`, `status`,
//! `duplicate`, `caller`, `campaign`, `state`, `attr` (`NAME=VALUE`). Pages: `limit` (default 50), `cursor`
//! (from the previous page's `next_cursor`). Each call is one row in its latest version,
//! however often it was delivered or corrected (see `call_pages` for how a page is
//! read).

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use runtime::http::{json, Body, Problem};
use schemas::{CallRecord, CallRow};

use crate::call_pages::{page, Cursor, Order};
use crate::filter::{CallFilter, FilterParams};
use serde::{Deserialize, Serialize};

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
    attr: Option<String>,
    /// Export only: attributes to give a column each (`recordingUrl,publisherSubId`),
    /// after the `attributes` column that holds them all.
    attribute_columns: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

impl CallsQuery {
    fn filter(&self, scope: &runtime::access::Scope) -> Result<CallFilter, Problem> {
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
            attr: self.attr.clone(),
        };
        CallFilter::parse(&params, scope.account())
    }
}

/// The filter of a `/api/calls` query string, for `scope` (fuzzing).
pub fn filter_of(
    query: Option<&str>,
    scope: &runtime::access::Scope,
) -> Result<CallFilter, Problem> {
    let params: CallsQuery = parse(query)?;
    params.filter(scope)
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
    scope: &runtime::access::Scope,
) -> Result<Response<Body>, Problem> {
    let params: CallsQuery = parse(query)?;
    if params.attribute_columns.is_some() {
        return Err(bad_parameter(
            "attribute_columns",
            "is for the CSV export; the JSON answer has every attribute",
        ));
    }
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

    // One extra row tells whether another page exists.
    let mut rows = page(
        client,
        &filter,
        cursor,
        limit as usize + 1,
        Order::NewestFirst,
    )
    .await
    .map_err(storage_error)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = more
        .then(|| rows.last())
        .flatten()
        .map(|last| Cursor::after(last).encode());
    let calls = records(rows)?;
    Ok(json(StatusCode::OK, &CallsPage { calls, next_cursor }))
}

/// Stored rows as call records. A row this api cannot read (only a load that
/// bypassed the processor writes one) is said, not skipped: no call silently goes
/// missing from an answer.
pub fn records(rows: Vec<CallRow>) -> Result<Vec<CallRecord>, Problem> {
    rows.into_iter()
        .map(CallRecord::try_from)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            tracing::error!(error = %e, "a stored call could not be read");
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "bad_row", e.to_string())
        })
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

/// `GET /api/calls/export.csv`: the filtered calls, oldest first, streamed a page at
/// a time, so an export of millions of rows holds a few pages in memory. A ClickHouse
/// failure mid-stream ends the file with a `# export interrupted` line, since the 200
/// was already sent.
pub async fn export(
    client: &clickhouse::Client,
    query: Option<&str>,
    scope: &runtime::access::Scope,
) -> Result<Response<Body>, Problem> {
    let params: CallsQuery = parse(query)?;
    if params.limit.is_some() || params.cursor.is_some() {
        return Err(bad_parameter(
            "limit",
            "the export has no pages: it streams every call the filters select",
        ));
    }
    let filter = params.filter(scope)?;
    let attribute_columns = attribute_columns(params.attribute_columns.as_deref())?;
    // The first page is read before answering, so a ClickHouse outage is a 503, not
    // a 200 with a broken file.
    let first = page(client, &filter, None, EXPORT_CHUNK, Order::OldestFirst)
        .await
        .map_err(storage_error)?;
    // Pages are read by a task of its own and handed over through a small channel:
    // the client's pace sets ClickHouse's, memory stays at a few pages.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(4);
    let client = client.clone();
    tokio::spawn(async move {
        let mut header = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::new());
        let named = attribute_columns
            .iter()
            .map(|name| format!("{}{name}", crate::aggregates::plan::ATTRIBUTE_PREFIX));
        let _ = header.write_record(
            EXPORT_COLUMNS
                .iter()
                .map(|c| (*c).to_owned())
                .chain(std::iter::once("attributes".to_owned()))
                .chain(named),
        );
        let header = Bytes::from(header.into_inner().unwrap_or_default());
        if sender.send(header).await.is_err() {
            return;
        }
        let mut next = Ok(first);
        loop {
            let mut writer = csv::WriterBuilder::new()
                .terminator(csv::Terminator::CRLF)
                .from_writer(Vec::new());
            let (calls, failure) = match next {
                Ok(calls) => (calls, None),
                Err(error) => (vec![], Some(error)),
            };
            let rows = calls.len();
            for row in &calls {
                let _ = writer.write_record(export_record(row, &attribute_columns));
            }
            let mut bytes = writer.into_inner().unwrap_or_default();
            if let Some(error) = &failure {
                // The status line is long gone: say so in the file itself.
                tracing::error!(%error, "export interrupted by ClickHouse");
                bytes.extend_from_slice(
                    b"# export interrupted: ClickHouse failed; the file is incomplete, export again\r\n",
                );
            }
            metrics::counter!(crate::metric_names::API_EXPORT_ROWS_TOTAL).increment(rows as u64);
            let last = rows < EXPORT_CHUNK || failure.is_some();
            if (!bytes.is_empty() && sender.send(Bytes::from(bytes)).await.is_err()) || last {
                return;
            }
            let after = calls.last().map(Cursor::after);
            next = page(&client, &filter, after, EXPORT_CHUNK, Order::OldestFirst).await;
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

/// Most attributes the export gives a column each.
const MAX_ATTRIBUTE_COLUMNS: usize = 20;

/// The `attribute_columns` asked for, each a name an attribute can have.
fn attribute_columns(list: Option<&str>) -> Result<Vec<String>, Problem> {
    let names: Vec<String> = list
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    if names.len() > MAX_ATTRIBUTE_COLUMNS {
        return Err(bad_parameter(
            "attribute_columns",
            format!("at most {MAX_ATTRIBUTE_COLUMNS} attributes"),
        ));
    }
    for name in &names {
        if let Some(problem) = schemas::attribute::name_problem(name) {
            return Err(bad_parameter(
                "attribute_columns",
                format!("{name:?}: the name {problem}"),
            ));
        }
    }
    Ok(names)
}

/// A row's attributes as one JSON object of name → value text, for the export's
/// `attributes` column (empty when it has none).
fn attributes_text(row: &CallRow) -> String {
    if row.attr_keys.is_empty() {
        return String::new();
    }
    let object: serde_json::Map<String, serde_json::Value> = row
        .attr_keys
        .iter()
        .zip(&row.attr_values)
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    serde_json::Value::Object(object).to_string()
}

fn export_record(row: &CallRow, attribute_columns: &[String]) -> Vec<String> {
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
        attributes_text(row),
    ]
    .into_iter()
    .chain(attribute_columns.iter().map(|name| {
        row.attr_keys
            .iter()
            .position(|k| k == name)
            .and_then(|i| row.attr_values.get(i).cloned())
            .unwrap_or_default()
    }))
    .collect()
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
