//! Which table answers an aggregate query, and the SQL that asks it.
//!
//! - `calls_hourly` (per account, UTC hour and status) when the query groups by
//!   status or nothing and names no integration;
//! - `calls_hourly_dims` (per dimension value, account, UTC hour and status) when it
//!   groups by one other dimension (and maybe status), or names one integration and
//!   groups by nothing else than status or the integration;
//! - `calls_by_time` (every call) otherwise, and whenever the range is not whole hours
//!   in a zone whose offset is whole hours, or `exact=true`.
//!
//! Every value is inlined as an escaped literal (accounts, integrations, the zone) or
//! an integer; dimension names come from [`DIMENSIONS`] only.

use runtime::clickhouse::string_list;

/// Dimensions a query may group by (column names of `calls_by_time`).
pub const DIMENSIONS: &[&str] = &[
    "client_id",
    "source",
    "campaign",
    "publisher",
    "status",
    "state",
];

/// A checked query: what to read, and how to cut it.
#[derive(Debug)]
pub struct Plan<'a> {
    /// [from, to) in Unix seconds.
    pub from: i64,
    pub to: i64,
    /// An IANA zone name, already checked.
    pub tz: &'a str,
    /// `hour`, `day`, `month` or `none`, already checked.
    pub bucket: &'a str,
    /// Dimensions from [`DIMENSIONS`], at most three.
    pub group_by: &'a [String],
    pub account: Option<&'a str>,
    pub client_id: Option<&'a str>,
    /// Whether [from, to) are whole hours in `tz` (so each UTC hour falls into one
    /// local bucket).
    pub whole_hours: bool,
    pub exact: bool,
    /// Rows asked for (one more than an answer may carry, to notice too many).
    pub limit: usize,
}

/// The table that answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Hourly,
    /// The rollup of one dimension.
    HourlyDims(&'static str),
    Calls,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Hourly => "calls_hourly",
            Table::HourlyDims(_) => "calls_hourly_dims",
            Table::Calls => "calls_by_time",
        }
    }
}

impl Plan<'_> {
    pub fn table(&self) -> Table {
        if self.exact || !self.whole_hours {
            return Table::Calls;
        }
        let others: Vec<&str> = self
            .group_by
            .iter()
            .map(String::as_str)
            .filter(|d| *d != "status")
            .collect();
        let dimension = match (self.client_id, others.as_slice()) {
            (Some(_), []) | (Some(_), ["client_id"]) => "client_id",
            (Some(_), _) => return Table::Calls,
            (None, []) => return Table::Hourly,
            (None, [one]) => one,
            (None, _) => return Table::Calls,
        };
        schemas::rollup::DIMENSIONS
            .iter()
            .find(|d| **d == dimension)
            .map_or(Table::Calls, |d| Table::HourlyDims(d))
    }

    /// The statement for `table`; its columns are those of `AggRow`.
    pub fn sql(&self, table: Table) -> String {
        let tz = string_list([self.tz]);
        let time = match table {
            Table::Calls => "started_at",
            _ => "hour",
        };
        let bucket = match self.bucket {
            "hour" => format!("toString(toStartOfHour({time}, {tz}))"),
            "day" => format!("toString(toDate({time}, {tz}))"),
            "month" => format!("toString(toStartOfMonth(toDate({time}, {tz})))"),
            _ => "''".to_owned(),
        };
        let grouped = |d: &str| self.group_by.iter().any(|g| g == d);
        // Aliases must not shadow the columns: in ClickHouse an alias is seen by WHERE
        // and by countIf(status = ...) and sumIf(calls, ...) as well.
        let columns = DIMENSIONS
            .iter()
            .map(|d| {
                let column = match table {
                    _ if !grouped(d) => "''".to_owned(),
                    Table::HourlyDims(dimension) if *d == dimension => "value".to_owned(),
                    _ => format!("toString({d})"),
                };
                format!("{column} AS d_{d}")
            })
            .collect::<Vec<_>>()
            .join(", ");
        let keys: Vec<String> = std::iter::once("bucket".to_owned())
            .chain(self.group_by.iter().map(|d| format!("d_{d}")))
            .collect();
        let keys = keys.join(", ");
        let range = format!(
            "{time} >= toDateTime({}) AND {time} < toDateTime({})",
            self.from, self.to
        );
        let account = self
            .account
            .map(|a| format!(" AND account = {}", string_list([a])))
            .unwrap_or_default();
        let tail = format!(" GROUP BY {keys} ORDER BY {keys} LIMIT {}", self.limit);
        match table {
            Table::Calls => {
                let client = self
                    .client_id
                    .map(|c| format!(" AND client_id = {}", string_list([c])))
                    .unwrap_or_default();
                format!(
                    "SELECT {bucket} AS bucket, {columns}, count() AS calls, \
                     countIf(status = 'qualified') AS qualified, countIf(status = 'unqualified') AS unqualified, \
                     countIf(status = 'repeat') AS repeat, countIf(status = 'duplicate') AS duplicate, \
                     toString(sum(ifNull(payout, toDecimal64(0, 4)))) AS payout, \
                     toString(sum(ifNull(revenue, toDecimal64(0, 4)))) AS revenue, \
                     sum(ifNull(duration_s, 0)) AS total_duration_s, \
                     ifNull(avg(duration_s), 0) AS avg_duration_s \
                     FROM calls_by_time FINAL WHERE deleted = 0 AND {range}{account}{client}{tail}"
                )
            }
            Table::Hourly | Table::HourlyDims(_) => {
                let name = table.name();
                let rows_of = match (table, self.client_id) {
                    (Table::HourlyDims(d), Some(c)) => {
                        format!(" AND dimension = '{d}' AND value = {}", string_list([c]))
                    }
                    (Table::HourlyDims(d), None) => format!(" AND dimension = '{d}'"),
                    _ => String::new(),
                };
                let versions_of = match table {
                    Table::HourlyDims(d) => format!(" AND dimension = '{d}'"),
                    _ => String::new(),
                };
                // Keep each (account, hour)'s newest recompute: older ones may hold
                // values (statuses, campaigns, ...) the hour no longer has. Output
                // aliases differ from the columns (`r_`): ClickHouse would read an
                // alias `calls` inside sumIf(calls, ...) as a nested aggregate.
                format!(
                    "SELECT {bucket} AS bucket, {columns}, sum(calls) AS r_calls, \
                     sumIf(calls, status = 'qualified') AS r_qualified, sumIf(calls, status = 'unqualified') AS r_unqualified, \
                     sumIf(calls, status = 'repeat') AS r_repeat, sumIf(calls, status = 'duplicate') AS r_duplicate, \
                     toString(sum(payout)) AS r_payout, toString(sum(revenue)) AS r_revenue, \
                     sum(total_duration_s) AS r_total_duration_s, \
                     if(sum(duration_count) = 0, 0, sum(total_duration_s) / sum(duration_count)) AS r_avg_duration_s \
                     FROM {name} FINAL WHERE status != '' AND {range}{account}{rows_of} \
                     AND (account, hour, version) IN (SELECT account, hour, max(version) FROM {name} \
                     WHERE {range}{account}{versions_of} GROUP BY account, hour){tail}"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan<'a>(group_by: &'a [String], client_id: Option<&'a str>) -> Plan<'a> {
        Plan {
            from: 1_767_225_600,
            to: 1_798_761_600,
            tz: "America/New_York",
            bucket: "month",
            group_by,
            account: None,
            client_id,
            whole_hours: true,
            exact: false,
            limit: 10_001,
        }
    }

    fn dims(names: &[&str]) -> Vec<String> {
        names.iter().map(|d| (*d).to_owned()).collect()
    }

    #[test]
    fn each_query_goes_to_the_smallest_table_that_holds_it() {
        let cases: &[(&[&str], Option<&str>, Table)] = &[
            (&[], None, Table::Hourly),
            (&["status"], None, Table::Hourly),
            (&["campaign"], None, Table::HourlyDims("campaign")),
            (&["status", "state"], None, Table::HourlyDims("state")),
            (&["campaign", "state"], None, Table::Calls),
            (&[], Some("arroyo"), Table::HourlyDims("client_id")),
            (
                &["status", "client_id"],
                Some("arroyo"),
                Table::HourlyDims("client_id"),
            ),
            (&["campaign"], Some("arroyo"), Table::Calls),
        ];
        for (group_by, client, expected) in cases {
            let group_by = dims(group_by);
            assert_eq!(
                plan(&group_by, *client).table(),
                *expected,
                "{group_by:?} {client:?}"
            );
        }
        let group_by = dims(&["status"]);
        let exact = Plan {
            exact: true,
            ..plan(&group_by, None)
        };
        assert_eq!(exact.table(), Table::Calls);
        let partial = Plan {
            whole_hours: false,
            ..plan(&group_by, None)
        };
        assert_eq!(partial.table(), Table::Calls);
    }

    #[test]
    fn a_dimension_rollup_reads_its_dimension_and_newest_versions_only() {
        let group_by = dims(&["campaign", "status"]);
        let plan = plan(&group_by, None);
        let sql = plan.sql(plan.table());
        assert!(sql.contains("FROM calls_hourly_dims FINAL"), "{sql}");
        assert!(sql.contains("value AS d_campaign"), "{sql}");
        assert!(sql.contains("toString(status) AS d_status"), "{sql}");
        assert_eq!(sql.matches("dimension = 'campaign'").count(), 2, "{sql}");
        assert!(
            sql.contains("toStartOfMonth(toDate(hour, 'America/New_York'))"),
            "{sql}"
        );
        assert!(sql.ends_with("GROUP BY bucket, d_campaign, d_status ORDER BY bucket, d_campaign, d_status LIMIT 10001"));
    }

    #[test]
    fn the_sql_sent_is_the_sql_checked_on_current_clickhouse() {
        let status = dims(&["status"]);
        let campaign = dims(&["campaign", "status"]);
        let none = dims(&[]);
        let plans = [
            plan(&status, None),
            plan(&campaign, None),
            Plan {
                account: Some("acme"),
                bucket: "day",
                ..plan(&none, Some("arroyo"))
            },
            Plan {
                exact: true,
                bucket: "hour",
                ..plan(&campaign, None)
            },
        ];
        let statements: Vec<String> = plans.iter().map(|p| p.sql(p.table())).collect();
        runtime::clickhouse::check_sql_snapshot("aggregates", &statements).unwrap();
    }

    #[test]
    fn values_are_escaped_literals() {
        let group_by = dims(&[]);
        let hostile = Plan {
            account: Some("o'brien?"),
            ..plan(&group_by, Some("x'y"))
        };
        let sql = hostile.sql(Table::Calls);
        assert!(sql.contains(r"account = 'o\'brien??'"), "{sql}");
        assert!(sql.contains(r"client_id = 'x\'y'"), "{sql}");
        let rolled = hostile.sql(hostile.table());
        assert!(rolled.contains(r"value = 'x\'y'"), "{rolled}");
        assert_eq!(
            rolled.matches(r"account = 'o\'brien??'").count(),
            2,
            "{rolled}"
        );
    }
}
