//! `GET /api/aggregates`: counts, sums and durations of calls by time bucket and up
//! to three dimensions, over any time range, in any zone.
//!
//! Read from `calls_by_time` (sorted by account and start time, one row per call
//! version; `FINAL` and `deleted = 0` keep each call's latest version at its current
//! place), so a query reads only the range asked for, of the account asked for.

use chrono::{DateTime, Duration, Utc};
use http::{Response, StatusCode};
use runtime::http::{json, Body, Problem};
use schemas::ClientId;
use serde::{Deserialize, Serialize};

use crate::filter::instant;
use crate::query::{bad_parameter, parse};

/// Dimensions a query may group by (column names, inlined from this list only).
const DIMENSIONS: &[&str] = &[
    "client_id",
    "source",
    "campaign",
    "publisher",
    "status",
    "state",
];
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
    client_id: Option<String>,
    account: Option<String>,
    /// Read the calls themselves even when the rollup could answer.
    exact: Option<bool>,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct AggRow {
    bucket: String,
    client_id: String,
    source: String,
    campaign: String,
    publisher: String,
    status: String,
    state: String,
    calls: u64,
    qualified: u64,
    unqualified: u64,
    repeat: u64,
    duplicate: u64,
    payout: String,
    revenue: String,
    total_duration_s: u64,
    avg_duration_s: f64,
}

#[derive(Serialize)]
struct Answer {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: String,
    tz: String,
    group_by: Vec<String>,
    /// Which table answered: `calls_hourly` (the rollup) or `calls_by_time`.
    table: &'static str,
    rows: Vec<serde_json::Value>,
}

pub async fn aggregates(
    client: &clickhouse::Client,
    query: Option<&str>,
    scope: &crate::access::Scope,
) -> Result<Response<Body>, Problem> {
    let params: AggregatesQuery = parse(query)?;
    scope.check_account(params.account.as_deref())?;
    let now = Utc::now();
    let to = params
        .to
        .as_deref()
        .map(|t| instant("to", t))
        .transpose()?
        .unwrap_or(now);
    let from = params
        .from
        .as_deref()
        .map(|t| instant("from", t))
        .transpose()?
        .unwrap_or(to - Duration::days(30));
    if from >= to {
        return Err(bad_parameter("from", "must be before `to`"));
    }
    let tz = params.tz.clone().unwrap_or_else(|| "UTC".to_owned());
    if tz.parse::<chrono_tz::Tz>().is_err() {
        return Err(bad_parameter(
            "tz",
            format!("{tz:?} is not an IANA time zone"),
        ));
    }
    let bucket = params.bucket.clone().unwrap_or_else(|| "day".to_owned());
    let bucket_sql = match bucket.as_str() {
        "hour" => "toString(toStartOfHour(started_at, ?))",
        "day" => "toString(toDate(started_at, ?))",
        "month" => "toString(toStartOfMonth(toDate(started_at, ?)))",
        "none" => "''",
        _ => return Err(bad_parameter("bucket", "must be hour, day, month or none")),
    };
    let group_by: Vec<String> = params
        .group_by
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(unknown) = group_by.iter().find(|d| !DIMENSIONS.contains(&d.as_str())) {
        return Err(bad_parameter(
            "group_by",
            format!("{unknown:?} is not one of {}", DIMENSIONS.join(", ")),
        ));
    }
    if group_by.len() > 3 {
        return Err(bad_parameter("group_by", "at most 3 dimensions"));
    }
    if let Some(client_id) = &params.client_id {
        ClientId::parse(client_id).map_err(|e| bad_parameter("client_id", e.to_string()))?;
    }
    let columns: String = DIMENSIONS
        .iter()
        .map(|d| {
            if group_by.iter().any(|g| g == d) {
                // Aliases must not shadow the columns: in ClickHouse an alias is
                // seen by WHERE and by countIf(status = ...) as well.
                format!("toString({d}) AS d_{d}")
            } else {
                format!("'' AS d_{d}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let account = scope
        .account()
        .map(str::to_owned)
        .or(params.account.clone());
    let keys: Vec<String> = std::iter::once("bucket".to_owned())
        .chain(group_by.iter().map(|d| format!("d_{d}")))
        .collect();
    let tail = format!(
        " GROUP BY {} ORDER BY {} LIMIT ?",
        keys.join(", "),
        keys.join(", ")
    );
    let whole_hours = |t: DateTime<Utc>| {
        use chrono::{Offset, TimeZone};
        let zone: chrono_tz::Tz = tz.parse().unwrap_or(chrono_tz::UTC);
        t.timestamp() % 3600 == 0
            && zone
                .offset_from_utc_datetime(&t.naive_utc())
                .fix()
                .local_minus_utc()
                % 3600
                == 0
    };
    // The hourly rollup answers when it holds everything asked: status as the only
    // dimension, no single integration, and whole hours in a whole-hour zone.
    let rollup = params.exact != Some(true)
        && group_by.iter().all(|d| d == "status")
        && params.client_id.is_none()
        && whole_hours(from)
        && whole_hours(to);
    let (sql, table) = if rollup {
        let bucket_on_hour = bucket_sql.replace("started_at", "hour");
        let status = if group_by.is_empty() {
            "''"
        } else {
            "toString(status)"
        };
        let account_filter = if account.is_some() {
            " AND account = ?"
        } else {
            ""
        };
        (
            format!(
                // Output aliases differ from the columns: ClickHouse would read an
                // alias `calls` inside sumIf(calls, ...) as a nested aggregate.
                "SELECT {bucket_on_hour} AS bucket, '' AS d_client_id, '' AS d_source, '' AS d_campaign, \
                 '' AS d_publisher, {status} AS d_status, '' AS d_state, sum(calls) AS r_calls, \
                 sumIf(calls, status = 'qualified') AS r_qualified, sumIf(calls, status = 'unqualified') AS r_unqualified, \
                 sumIf(calls, status = 'repeat') AS r_repeat, sumIf(calls, status = 'duplicate') AS r_duplicate, \
                 toString(sum(payout)) AS r_payout, toString(sum(revenue)) AS r_revenue, \
                 sum(total_duration_s) AS r_total_duration_s, \
                 if(sum(duration_count) = 0, 0, sum(total_duration_s) / sum(duration_count)) AS r_avg_duration_s \
                 FROM calls_hourly FINAL \
                 WHERE status != '' AND hour >= toDateTime(?) AND hour < toDateTime(?){account_filter} \
                 AND (account, hour, version) IN (SELECT account, hour, max(version) FROM calls_hourly \
                 WHERE hour >= toDateTime(?) AND hour < toDateTime(?){account_filter} GROUP BY account, hour){tail}"
            ),
            "calls_hourly",
        )
    } else {
        let mut sql = format!(
            "SELECT {bucket_sql} AS bucket, {columns}, count() AS calls, \
             countIf(status = 'qualified') AS qualified, countIf(status = 'unqualified') AS unqualified, \
             countIf(status = 'repeat') AS repeat, countIf(status = 'duplicate') AS duplicate, \
             toString(sum(ifNull(payout, toDecimal64(0, 4)))) AS payout, \
             toString(sum(ifNull(revenue, toDecimal64(0, 4)))) AS revenue, \
             sum(ifNull(duration_s, 0)) AS total_duration_s, \
             ifNull(avg(duration_s), 0) AS avg_duration_s \
             FROM calls_by_time FINAL \
             WHERE deleted = 0 AND started_at >= toDateTime(?) AND started_at < toDateTime(?)"
        );
        if account.is_some() {
            sql.push_str(" AND account = ?");
        }
        if params.client_id.is_some() {
            sql.push_str(" AND client_id = ?");
        }
        sql.push_str(&tail);
        (sql, "calls_by_time")
    };
    let mut q = client.query(&sql);
    if bucket != "none" {
        q = q.bind(tz.as_str());
    }
    let rounds = if rollup { 2 } else { 1 };
    for _ in 0..rounds {
        q = q.bind(from.timestamp()).bind(to.timestamp());
        if let Some(account) = &account {
            q = q.bind(account.as_str());
        }
    }
    if let Some(client_id) = &params.client_id {
        q = q.bind(client_id.as_str());
    }
    let started = std::time::Instant::now();
    let rows: Vec<AggRow> = q
        .bind(MAX_ROWS as u64 + 1)
        .fetch_all()
        .await
        .map_err(crate::calls::storage_error)?;
    metrics::histogram!("api_aggregate_seconds").record(started.elapsed().as_secs_f64());
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
                "avg_duration_s": (row.avg_duration_s * 10.0).round() / 10.0,
            });
            if bucket != "none" {
                out["bucket"] = row.bucket.clone().into();
            }
            for dimension in &group_by {
                let value = match dimension.as_str() {
                    "client_id" => &row.client_id,
                    "source" => &row.source,
                    "campaign" => &row.campaign,
                    "publisher" => &row.publisher,
                    "status" => &row.status,
                    _ => &row.state,
                };
                out[dimension.as_str()] = value.clone().into();
            }
            out
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &Answer {
            table,
            from,
            to,
            bucket,
            tz,
            group_by,
            rows,
        },
    ))
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
