//! `GET /api/aggregates`: counts, sums and durations of calls by time bucket and up
//! to three dimensions, over any time range, in any zone.
//!
//! Answered by the smallest table that holds the answer (see `plan`): an hourly
//! rollup, or `calls_by_time` (sorted by account and start time, one row per call
//! version; `FINAL` and `deleted = 0` keep each call's latest version at its current
//! place), so a query reads only the range asked for, of the account asked for.

use chrono::{DateTime, Duration, Utc};
use http::{Response, StatusCode};
use runtime::http::{json, Body, Problem};
use schemas::ClientId;
use serde::{Deserialize, Serialize};

use crate::filter::instant;
pub use plan::Plan;
use plan::DIMENSIONS;

mod merge;
pub mod plan;
use crate::query::{bad_parameter, parse};

/// Most result rows an answer carries; more is a 400 asking for a narrower query.
const MAX_ROWS: usize = 10_000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AggregatesQuery {
    from: Option<String>,
    to: Option<String>,
    /// `hour`, `day`, `month` or `none` (default `day`).
    bucket: Option<String>,
    /// IANA zone the buckets are cut in (default UTC).
    tz: Option<String>,
    /// Comma-separated dimensions.
    group_by: Option<String>,
    /// Only calls of this integration, source, ...: one value per dimension.
    client_id: Option<String>,
    source: Option<String>,
    campaign: Option<String>,
    publisher: Option<String>,
    state: Option<String>,
    status: Option<String>,
    buyer: Option<String>,
    /// Only calls whose custom attribute has a value: `NAME=VALUE`.
    attr: Option<String>,
    account: Option<String>,
    /// Read the calls themselves even when the rollup could answer.
    exact: Option<bool>,
}

/// A row of any of the statements `plan` writes (columns in this order).
#[derive(Debug, Default, clickhouse::Row, Deserialize)]
pub struct AggRow {
    bucket: String,
    client_id: String,
    source: String,
    campaign: String,
    publisher: String,
    status: String,
    state: String,
    buyer: String,
    /// The attribute grouped by (`attr.NAME`), if any.
    attribute: String,
    calls: u64,
    qualified: u64,
    unqualified: u64,
    repeat: u64,
    duplicate: u64,
    payout: String,
    revenue: String,
    total_duration_s: u64,
    /// Calls with a duration (what the average divides by).
    duration_count: u64,
    /// Calls linked to a CallMatrix call (`cm_call_id` set).
    linked: u64,
}

#[derive(Serialize)]
struct Answer {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: String,
    tz: String,
    group_by: Vec<String>,
    /// The filters applied, by dimension.
    filters: serde_json::Map<String, serde_json::Value>,
    /// Which table answered: `calls_hourly` or `calls_hourly_dims` (the rollups) or
    /// `calls_by_time` (the calls).
    table: &'static str,
    /// `calls_by_time` when the partial hours at the range's ends were read from the
    /// calls and added to the rollup's whole hours.
    #[serde(skip_serializing_if = "Option::is_none")]
    edges_from: Option<&'static str>,
    rows: Vec<serde_json::Value>,
}

/// An aggregates request, checked: every value the plan puts into SQL is one of a
/// known set or parsed (zone, instants, client id); the account comes from the
/// token where it has one.
#[derive(Debug)]
pub struct Request {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub tz: String,
    pub bucket: String,
    pub group_by: Vec<String>,
    pub account: Option<String>,
    /// (dimension, value) pairs the calls must have, each checked.
    pub filters: Vec<(&'static str, String)>,
    /// (attribute name, value) the calls must have, the name checked.
    pub attribute_filter: Option<(String, String)>,
    pub whole_hours: bool,
    /// Whether the zone's offset is whole hours at `from` and `to` (so each UTC hour
    /// falls into one local bucket, and a rollup can answer the range's whole hours).
    pub zone_whole_hours: bool,
    pub exact: bool,
}

impl Request {
    /// Parses and checks the query string at `now`; a 400 names the parameter.
    pub fn parse(
        query: Option<&str>,
        scope: &runtime::access::Scope,
        now: DateTime<Utc>,
    ) -> Result<Self, Problem> {
        let params: AggregatesQuery = parse(query)?;
        scope.check_account(params.account.as_deref())?;
        let to = params
            .to
            .as_deref()
            .map(|t| instant("to", t))
            .transpose()?
            .unwrap_or(now);
        let from = match params.from.as_deref() {
            Some(t) => instant("from", t)?,
            None => to
                .checked_sub_signed(Duration::days(30))
                .ok_or_else(|| bad_parameter("to", "too early to count 30 days back from"))?,
        };
        if from >= to {
            return Err(bad_parameter("from", "must be before `to`"));
        }
        let tz = params.tz.clone().unwrap_or_else(|| "UTC".to_owned());
        let zone: chrono_tz::Tz = tz
            .parse()
            .map_err(|_| bad_parameter("tz", format!("{tz:?} is not an IANA time zone")))?;
        let bucket = params.bucket.clone().unwrap_or_else(|| "day".to_owned());
        if !["hour", "day", "month", "none"].contains(&bucket.as_str()) {
            return Err(bad_parameter("bucket", "must be hour, day, month or none"));
        }
        let group_by: Vec<String> = params
            .group_by
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_owned)
            .collect();
        for dimension in &group_by {
            if let Some(name) = dimension.strip_prefix(plan::ATTRIBUTE_PREFIX) {
                if let Some(problem) = schemas::attribute::name_problem(name) {
                    return Err(bad_parameter(
                        "group_by",
                        format!("{dimension:?}: an attribute's name {problem}"),
                    ));
                }
            } else if !DIMENSIONS.contains(&dimension.as_str()) {
                return Err(bad_parameter(
                    "group_by",
                    format!(
                        "{dimension:?} is not one of {}, or attr.NAME for a custom attribute",
                        DIMENSIONS.join(", ")
                    ),
                ));
            }
        }
        let attributes = group_by
            .iter()
            .filter(|d| d.starts_with(plan::ATTRIBUTE_PREFIX))
            .count();
        if attributes > 1 {
            return Err(bad_parameter(
                "group_by",
                "at most one attribute (attr.NAME)",
            ));
        }
        if group_by.len() > 3 {
            return Err(bad_parameter("group_by", "at most 3 dimensions"));
        }
        let filters = filters(&params)?;
        let attribute_filter = params
            .attr
            .as_deref()
            .map(crate::filter::attribute_filter)
            .transpose()?;
        let account = scope
            .account()
            .map(str::to_owned)
            .or(params.account.clone());
        let whole_offset = |t: DateTime<Utc>| {
            use chrono::{Offset, TimeZone};
            zone.offset_from_utc_datetime(&t.naive_utc())
                .fix()
                .local_minus_utc()
                % 3600
                == 0
        };
        let whole_hours = |t: DateTime<Utc>| t.timestamp() % 3600 == 0 && whole_offset(t);
        Ok(Self {
            from,
            to,
            whole_hours: whole_hours(from) && whole_hours(to),
            zone_whole_hours: whole_offset(from) && whole_offset(to),
            tz,
            bucket,
            group_by,
            account,
            filters,
            attribute_filter,
            exact: params.exact == Some(true),
        })
    }

    /// The plan that answers it.
    pub fn plan(&self) -> Plan<'_> {
        Plan {
            from: self.from.timestamp(),
            to: self.to.timestamp(),
            tz: &self.tz,
            bucket: &self.bucket,
            group_by: &self.group_by,
            account: self.account.as_deref(),
            filters: &self.filters,
            attribute_filter: self
                .attribute_filter
                .as_ref()
                .map(|(name, value)| (name.as_str(), value.as_str())),
            whole_hours: self.whole_hours,
            exact: self.exact,
            edges: None,
            limit: MAX_ROWS + 1,
        }
    }

    /// For a range that starts or ends inside an hour: its whole hours, when a rollup
    /// answers them, and the plan for its partial hours at the ends. `None` when one
    /// statement answers (whole hours already, `exact`, a zone with a half-hour
    /// offset, no whole hour inside, or a query no rollup holds).
    pub fn split(&self) -> Option<(Plan<'_>, Plan<'_>)> {
        if self.exact || self.whole_hours || !self.zone_whole_hours {
            return None;
        }
        let (from, to) = (self.from.timestamp(), self.to.timestamp());
        let inner_from = from.div_euclid(3600) * 3600 + if from % 3600 == 0 { 0 } else { 3600 };
        let inner_to = to.div_euclid(3600) * 3600;
        if inner_from >= inner_to {
            return None;
        }
        let middle = Plan {
            from: inner_from,
            to: inner_to,
            whole_hours: true,
            ..self.plan()
        };
        if middle.table() == plan::Table::Calls {
            return None;
        }
        let edges = Plan {
            edges: Some((inner_from, inner_to)),
            ..self.plan()
        };
        Some((middle, edges))
    }
}

pub async fn aggregates(
    client: &clickhouse::Client,
    query: Option<&str>,
    scope: &runtime::access::Scope,
) -> Result<Response<Body>, Problem> {
    let request = Request::parse(query, scope, Utc::now())?;
    let (rows, table, edges) = match request.split() {
        Some((middle, edges)) => {
            let (whole, partial) = tokio::try_join!(read(client, &middle), read(client, &edges))?;
            let table = middle.table();
            (
                merge::merge(vec![whole, partial], &request.group_by),
                table,
                Some(plan::Table::Calls.name()),
            )
        }
        None => {
            let plan = request.plan();
            (read(client, &plan).await?, plan.table(), None)
        }
    };
    if rows.len() > MAX_ROWS {
        return Err(bad_parameter(
            "bucket",
            format!(
                "more than {MAX_ROWS} rows: a coarser bucket, fewer dimensions or a shorter range"
            ),
        ));
    }
    let rows = rows
        .into_iter()
        .map(|row| {
            let mut out = serde_json::json!({
                "calls": row.calls, "qualified": row.qualified, "unqualified": row.unqualified,
                "repeat": row.repeat, "duplicate": row.duplicate, "payout": trim_money(&row.payout),
                "revenue": trim_money(&row.revenue), "total_duration_s": row.total_duration_s,
                "avg_duration_s": if row.duration_count == 0 { 0.0 } else {
                    (row.total_duration_s as f64 / row.duration_count as f64 * 10.0).round() / 10.0
                },
                "linked_to_callmatrix": row.linked,
            });
            if request.bucket != "none" {
                out["bucket"] = row.bucket.clone().into();
            }
            for dimension in &request.group_by {
                out[dimension.as_str()] = row.dimension(dimension).into();
            }
            out
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &Answer {
            table: table.name(),
            edges_from: edges,
            from: request.from,
            to: request.to,
            bucket: request.bucket.clone(),
            tz: request.tz.clone(),
            group_by: request.group_by.clone(),
            filters: request
                .filters
                .iter()
                .map(|(d, v)| ((*d).to_owned(), v.clone().into()))
                .chain(request.attribute_filter.iter().map(|(name, value)| {
                    (
                        format!("{}{name}", plan::ATTRIBUTE_PREFIX),
                        value.clone().into(),
                    )
                }))
                .collect(),
            rows,
        },
    ))
}

/// The rows `plan` answers, timed by the table it reads.
async fn read(client: &clickhouse::Client, plan: &Plan<'_>) -> Result<Vec<AggRow>, Problem> {
    let table = plan.table();
    let started = std::time::Instant::now();
    let rows = client
        .query(&plan.sql(table))
        .fetch_all()
        .await
        .map_err(crate::calls::storage_error)?;
    metrics::histogram!(crate::metric_names::API_AGGREGATE_SECONDS, "table" => table.name())
        .record(started.elapsed().as_secs_f64());
    Ok(rows)
}

impl AggRow {
    /// The value of a dimension column (empty when not grouped by it).
    fn dimension(&self, name: &str) -> &str {
        match name {
            "client_id" => &self.client_id,
            "source" => &self.source,
            "campaign" => &self.campaign,
            "publisher" => &self.publisher,
            "status" => &self.status,
            "buyer" => &self.buyer,
            "state" => &self.state,
            _ => &self.attribute,
        }
    }
}

/// Longest value a filter may name (campaigns and publishers are partner text).
const MAX_FILTER_CHARS: usize = 200;

/// The filters asked for, in `DIMENSIONS` order; a 400 names a value that no call
/// can have (an unknown source or status, a malformed client id).
fn filters(params: &AggregatesQuery) -> Result<Vec<(&'static str, String)>, Problem> {
    let asked = [
        ("client_id", &params.client_id),
        ("source", &params.source),
        ("campaign", &params.campaign),
        ("publisher", &params.publisher),
        ("status", &params.status),
        ("state", &params.state),
        ("buyer", &params.buyer),
    ];
    let mut filters = Vec::new();
    for (dimension, value) in asked {
        let Some(value) = value else { continue };
        let known: &[&str] = match dimension {
            "source" => &["webhook", "poll", "csv"],
            "status" => &["qualified", "unqualified", "repeat", "duplicate"],
            _ => &[],
        };
        if !known.is_empty() && !known.contains(&value.as_str()) {
            return Err(bad_parameter(
                dimension,
                format!("{value:?} is not one of {}", known.join(", ")),
            ));
        }
        if dimension == "client_id" {
            ClientId::parse(value).map_err(|e| bad_parameter("client_id", e.to_string()))?;
        }
        if value.chars().count() > MAX_FILTER_CHARS {
            return Err(bad_parameter(
                dimension,
                format!("longer than {MAX_FILTER_CHARS} characters"),
            ));
        }
        filters.push((dimension, value.clone()));
    }
    Ok(filters)
}

/// `"1234.5000"` → `"1234.50"`: money with two decimals, as everywhere else.
fn trim_money(text: &str) -> String {
    match text.split_once('.') {
        Some((whole, fraction)) => format!("{whole}.{:0<2}", &fraction[..fraction.len().min(2)]),
        None => format!("{text}.00"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_has_two_decimals() {
        assert_eq!(trim_money("1234.5000"), "1234.50");
        assert_eq!(trim_money("0"), "0.00");
        assert_eq!(trim_money("-3.1"), "-3.10");
    }
}
