//! The hourly rollups: counts and sums per account, UTC hour and status
//! (`calls_hourly`), and per dimension value, account, UTC hour and status
//! (`calls_hourly_dims`), recomputed from `calls_by_time FINAL` for every (account, hour) whose
//! calls changed. Writers (`BatchSink`) publish the touched pairs to the one-partition
//! `rollup.dirty` topic after their rows are stored; this worker (one instance at a
//! time, by group assignment) recomputes them in order. A recompute's version is the
//! topic offset, so later recomputes win, and each writes a marker row (status '')
//! so readers can keep only the newest version of an hour even if its calls all left.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::message::Message;
use runtime::kafka::{group_reader, KafkaConfig};
use runtime::shutdown::Shutdown;
use schemas::rollup::{Dirty, DIMENSIONS};

use crate::sink::BatchSink;

pub const GROUP: &str = "rollup";
/// (account, hour) pairs per recompute statement.
const PAIRS_PER_STATEMENT: usize = 500;

pub async fn run(
    kafka: &KafkaConfig,
    sink: &BatchSink,
    max_records: usize,
    max_wait: Duration,
    shutdown: Shutdown,
) -> Result<(), crate::error::ProcessorError> {
    let mut reader = group_reader(kafka, GROUP, &[&sink.topics.rollup_dirty])?;
    let mut stop = shutdown.clone();
    loop {
        let batch = tokio::select! {
            _ = stop.wait() => break,
            batch = reader.next_batch(max_records, max_wait) => batch,
        };
        let dirty: BTreeSet<Dirty> = batch
            .iter()
            .filter_map(|m| serde_json::from_slice::<Dirty>(m.payload()?).ok())
            .collect();
        let version = batch.iter().map(|m| m.offset()).max().unwrap_or(0).max(0) as u64 + 1;
        let pairs: Vec<Dirty> = dirty.into_iter().collect();
        for chunk in pairs.chunks(PAIRS_PER_STATEMENT) {
            for sql in recompute(chunk, version) {
                let written = sink
                    .retry("recompute rollup", &shutdown, || {
                        let query = sink.clickhouse.query(&sql);
                        async move { query.execute().await }
                    })
                    .await;
                if let Err(interrupted) = written {
                    return crate::error::ProcessorError::unless_shutdown(&shutdown, interrupted);
                }
            }
        }
        metrics::counter!(crate::metric_names::PROCESSOR_ROLLUP_HOURS_TOTAL)
            .increment(pairs.len() as u64);
        reader.commit(&batch);
    }
    Ok(())
}

/// What every rollup row sums, over `calls_by_time` rows.
/// In the tables' column order (`linked` last, migration 11): inserted by position.
const MEASURES: &str = "count() AS calls, sum(ifNull(payout, toDecimal64(0, 4))) AS payout, \
     sum(ifNull(revenue, toDecimal64(0, 4))) AS revenue, sum(ifNull(duration_s, 0)) AS total_duration_s, \
     count(duration_s) AS duration_count, sum(linked) AS linked";
/// A marker row's measures.
const NO_MEASURES: &str =
    "0 AS calls, toDecimal128(0, 4) AS payout, toDecimal128(0, 4) AS revenue, \
     0 AS total_duration_s, 0 AS duration_count, 0 AS linked";

/// The statements that recompute `pairs` at `version`, in order: per dimension value
/// and its markers (`calls_hourly_dims`), then per status and its markers
/// (`calls_hourly`). Account names are escaped; hours are integers.
pub fn recompute(pairs: &[Dirty], version: u64) -> [String; 4] {
    let tuples: Vec<String> = pairs
        .iter()
        .map(|d| {
            format!(
                "({}, {})",
                runtime::clickhouse::string_list([d.account.as_str()]),
                d.hour
            )
        })
        .collect();
    let tuples = tuples.join(", ");
    // Each pair's own hour, as a range of the sorting key (account, started_at): the
    // read is those hours' rows, whatever the table holds around them. (One range
    // from the first hour to the last read every hour between: a batch of calls
    // spread over a month read the month, 3 s a recompute with 10M calls stored.)
    let hours: Vec<String> = pairs
        .iter()
        .map(|d| {
            format!(
                "(account = {} AND started_at >= toDateTime({}) AND started_at < toDateTime({}))",
                runtime::clickhouse::string_list([d.account.as_str()]),
                d.hour,
                d.hour + 3600
            )
        })
        .collect();
    let touched = format!("WHERE deleted = 0 AND ({})", hours.join(" OR "));
    let dimension_values = DIMENSIONS
        .iter()
        .map(|name| format!("('{name}', toString({name}))"))
        .collect::<Vec<_>>()
        .join(", ");
    let dimension_names = DIMENSIONS
        .iter()
        .map(|name| format!("'{name}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let values = format!(
        "INSERT INTO calls_hourly_dims \
         SELECT tupleElement(dv, 1) AS dimension, account, toStartOfHour(started_at) AS hour, \
         tupleElement(dv, 2) AS value, status, {version} AS version, {MEASURES} \
         FROM calls_by_time FINAL ARRAY JOIN [{dimension_values}] AS dv {touched} \
         GROUP BY dimension, account, hour, value, status"
    );
    let value_markers = format!(
        "INSERT INTO calls_hourly_dims \
         SELECT dimension, tupleElement(t, 1) AS account, toDateTime(tupleElement(t, 2)) AS hour, '' AS value, \
         '' AS status, {version} AS version, {NO_MEASURES} \
         FROM (SELECT arrayJoin([{tuples}]) AS t) ARRAY JOIN [{dimension_names}] AS dimension"
    );
    let statuses = format!(
        "INSERT INTO calls_hourly \
         SELECT account, toStartOfHour(started_at) AS hour, status, {version} AS version, {MEASURES} \
         FROM calls_by_time FINAL {touched} GROUP BY account, hour, status"
    );
    let status_markers = format!(
        "INSERT INTO calls_hourly \
         SELECT tupleElement(t, 1) AS account, toDateTime(tupleElement(t, 2)) AS hour, '' AS status, {version} AS version, \
         {NO_MEASURES} FROM (SELECT arrayJoin([{tuples}]) AS t)"
    );
    [values, value_markers, statuses, status_markers]
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_pair_is_its_account_and_utc_hour() {
        let at = chrono::Utc
            .with_ymd_and_hms(2026, 11, 20, 22, 3, 22)
            .unwrap();
        assert_eq!(Dirty::of("acme", at).hour, at.timestamp() - (3 * 60 + 22));
    }

    #[test]
    fn the_sql_sent_is_the_sql_checked_on_current_clickhouse() {
        let pairs = [Dirty {
            account: "acme".into(),
            hour: 1_795_212_000,
        }];
        runtime::clickhouse::check_sql_snapshot("rollup", &recompute(&pairs, 7)).unwrap();
    }

    #[test]
    fn statements_name_every_pair_and_escape_accounts() {
        let pairs = [
            Dirty {
                account: "acme".into(),
                hour: 7200,
            },
            Dirty {
                account: "o'brien?".into(),
                hour: 3600,
            },
        ];
        let statements = recompute(&pairs, 42);
        for sql in &statements {
            assert!(sql.contains("42 AS version"), "{sql}");
        }
        let [values, value_markers, statuses, status_markers] = &statements;
        for sql in [value_markers, status_markers] {
            assert!(
                sql.contains("('acme', 7200)") && sql.contains(r"('o\'brien??', 3600)"),
                "{sql}"
            );
        }
        for sql in [values, statuses] {
            assert!(
                sql.contains("(account = 'acme' AND started_at >= toDateTime(7200) AND started_at < toDateTime(10800))")
                    && sql.contains(r"(account = 'o\'brien??' AND started_at >= toDateTime(3600) AND started_at < toDateTime(7200))"),
                "{sql}"
            );
            assert!(
                !sql.contains("toDateTime(3600) AND started_at < toDateTime(10800)"),
                "one range per hour, not one over all: {sql}"
            );
        }
        for name in DIMENSIONS {
            assert!(values.contains(&format!("('{name}', ")), "{values}");
            assert!(
                value_markers.contains(&format!("'{name}'")),
                "{value_markers}"
            );
        }
    }
}
