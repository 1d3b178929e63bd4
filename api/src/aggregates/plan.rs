//! Which table answers an aggregate query, and the SQL that asks it.
//!
//! The dimensions a query touches are those it groups by and those it narrows to a
//! value (`source=csv`, `client_id=arroyo`, ...), status aside: every rollup row is
//! per status already, so grouping by status or narrowing to one costs nothing.
//!
//! - `calls_hourly` (per account, UTC hour and status) when it touches none;
//! - `calls_hourly_dims` (per dimension value, account, UTC hour and status) when it
//!   touches one (grouped by it, narrowed to a value of it, or both);
//! - `calls_by_time` (every call) when it touches two or more, and whenever the range
//!   is not whole hours in a zone whose offset is whole hours, or `exact=true`.
//!
//! A range that ends (or starts) inside an hour, as every "last N days" up to now
//! does, is answered in two parts when a rollup holds its whole hours: the rollup for
//! those, and `calls_by_time` for the partial hours at its ends ([`Plan::edges`]);
//! `merge` adds the two up.
//!
//! A custom attribute (`group_by=attr.publisherSubId`, `attr=publisherSubId=pub-7`)
//! is read from `calls_by_time`'s attribute arrays: no rollup holds attributes.
//!
//! Every value is inlined as an escaped literal (accounts, filter values, attribute
//! names, the zone) or an integer; dimension names come from [`DIMENSIONS`] or are
//! `attr.` and a name `schemas::attribute::name_problem` accepts.

use runtime::clickhouse::string_list;

/// How a query names a custom attribute as a dimension: `attr.NAME`.
pub const ATTRIBUTE_PREFIX: &str = "attr.";

/// Dimensions a query may group by (column names of `calls_by_time`), besides one
/// attribute (`attr.NAME`).
pub const DIMENSIONS: &[&str] = &[
    "client_id",
    "source",
    "campaign",
    "publisher",
    "status",
    "state",
    "buyer",
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
    /// (dimension from [`DIMENSIONS`], value): only calls with that value, at most
    /// one per dimension.
    pub filters: &'a [(&'static str, String)],
    /// (attribute name, value): only calls whose attribute has that value.
    pub attribute_filter: Option<(&'a str, &'a str)>,
    /// Whether [from, to) are whole hours in `tz` (so each UTC hour falls into one
    /// local bucket).
    pub whole_hours: bool,
    pub exact: bool,
    /// `Some((a, b))`: read only [from, a) and [b, to), the partial hours at the ends
    /// of a range whose whole hours [a, b) a rollup answers (`calls_by_time` only).
    pub edges: Option<(i64, i64)>,
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
    /// The attribute grouped by, if one is.
    fn grouped_attribute(&self) -> Option<&str> {
        self.group_by
            .iter()
            .find_map(|d| d.strip_prefix(ATTRIBUTE_PREFIX))
    }

    pub fn table(&self) -> Table {
        if self.exact
            || !self.whole_hours
            || self.attribute_filter.is_some()
            || self.grouped_attribute().is_some()
        {
            return Table::Calls;
        }
        let mut touched: Vec<&str> = self
            .group_by
            .iter()
            .map(String::as_str)
            .chain(self.filters.iter().map(|(d, _)| *d))
            .filter(|d| *d != "status")
            .collect();
        touched.sort_unstable();
        touched.dedup();
        match touched.as_slice() {
            [] => Table::Hourly,
            [one] => schemas::rollup::DIMENSIONS
                .iter()
                .find(|d| *d == one)
                .map_or(Table::Calls, |d| Table::HourlyDims(d)),
            _ => Table::Calls,
        }
    }

    /// ` AND column = 'value'` for each filter, as `table` names the column.
    fn narrowed(&self, table: Table) -> String {
        let attribute = self
            .attribute_filter
            .map(|(name, value)| {
                format!(
                    " AND attr_values[indexOf(attr_keys, {})] = {}",
                    string_list([name]),
                    string_list([value])
                )
            })
            .unwrap_or_default();
        let narrowed: String = self
            .filters
            .iter()
            .map(|(dimension, value)| {
                let value = string_list([value.as_str()]);
                match table {
                    Table::HourlyDims(d) if d == *dimension => format!(" AND value = {value}"),
                    Table::Calls => format!(" AND toString({dimension}) = {value}"),
                    // Only status is left: `table` was chosen so.
                    _ => format!(" AND {dimension} = {value}"),
                }
            })
            .collect();
        narrowed + &attribute
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
        let attribute = match (table, self.grouped_attribute()) {
            (Table::Calls, Some(name)) => {
                format!("attr_values[indexOf(attr_keys, {})]", string_list([name]))
            }
            _ => "''".to_owned(),
        };
        let columns = format!("{columns}, {attribute} AS d_attr");
        let keys: Vec<String> = std::iter::once("bucket".to_owned())
            .chain(
                self.group_by
                    .iter()
                    .map(|d| match d.strip_prefix(ATTRIBUTE_PREFIX) {
                        Some(_) => "d_attr".to_owned(),
                        None => format!("d_{d}"),
                    }),
            )
            .collect();
        let keys = keys.join(", ");
        let range = match (table, self.edges) {
            (Table::Calls, Some((inner_from, inner_to))) => format!(
                "(({time} >= toDateTime({}) AND {time} < toDateTime({inner_from})) \
                 OR ({time} >= toDateTime({inner_to}) AND {time} < toDateTime({})))",
                self.from, self.to
            ),
            _ => format!(
                "{time} >= toDateTime({}) AND {time} < toDateTime({})",
                self.from, self.to
            ),
        };
        let account = self
            .account
            .map(|a| format!(" AND account = {}", string_list([a])))
            .unwrap_or_default();
        let tail = format!(" GROUP BY {keys} ORDER BY {keys} LIMIT {}", self.limit);
        let narrowed = self.narrowed(table);
        match table {
            Table::Calls => {
                format!(
                    "SELECT {bucket} AS bucket, {columns}, count() AS calls, \
                     countIf(status = 'qualified') AS qualified, countIf(status = 'unqualified') AS unqualified, \
                     countIf(status = 'repeat') AS repeat, countIf(status = 'duplicate') AS duplicate, \
                     toString(sum(ifNull(payout, toDecimal64(0, 4)))) AS payout, \
                     toString(sum(ifNull(revenue, toDecimal64(0, 4)))) AS revenue, \
                     sum(ifNull(duration_s, 0)) AS total_duration_s, \
                     count(duration_s) AS duration_count, sum(linked) AS linked \
                     FROM calls_by_time FINAL WHERE deleted = 0 AND {range}{account}{narrowed}{tail}"
                )
            }
            Table::Hourly | Table::HourlyDims(_) => {
                let name = table.name();
                let versions_of = match table {
                    Table::HourlyDims(d) => format!(" AND dimension = '{d}'"),
                    _ => String::new(),
                };
                let rows_of = format!("{versions_of}{narrowed}");
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
                     sum(duration_count) AS r_duration_count, sum(linked) AS r_linked \
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

    fn plan<'a>(group_by: &'a [String], filters: &'a [(&'static str, String)]) -> Plan<'a> {
        Plan {
            from: 1_767_225_600,
            to: 1_798_761_600,
            tz: "America/New_York",
            bucket: "month",
            group_by,
            account: None,
            filters,
            attribute_filter: None,
            whole_hours: true,
            exact: false,
            edges: None,
            limit: 10_001,
        }
    }

    fn dims(names: &[&str]) -> Vec<String> {
        names.iter().map(|d| (*d).to_owned()).collect()
    }

    fn only(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        pairs.iter().map(|(d, v)| (*d, (*v).to_owned())).collect()
    }

    #[test]
    fn each_query_goes_to_the_smallest_table_that_holds_it() {
        let arroyo: &[(&str, &str)] = &[("client_id", "arroyo")];
        type Filters<'a> = &'a [(&'static str, &'a str)];
        let cases: &[(&[&str], Filters, Table)] = &[
            (&[], &[], Table::Hourly),
            (&["status"], &[], Table::Hourly),
            (&[], &[("status", "repeat")], Table::Hourly),
            (&["campaign"], &[], Table::HourlyDims("campaign")),
            (&["status", "state"], &[], Table::HourlyDims("state")),
            (&["campaign", "state"], &[], Table::Calls),
            (&[], arroyo, Table::HourlyDims("client_id")),
            (
                &["status", "client_id"],
                arroyo,
                Table::HourlyDims("client_id"),
            ),
            (&["campaign"], arroyo, Table::Calls),
            (
                &["campaign"],
                &[("campaign", "spring"), ("status", "qualified")],
                Table::HourlyDims("campaign"),
            ),
            (&[], &[("source", "csv")], Table::HourlyDims("source")),
            (&[], &[("source", "csv"), ("publisher", "p1")], Table::Calls),
            (&["publisher"], &[("source", "csv")], Table::Calls),
        ];
        for (group_by, filters, expected) in cases {
            let group_by = dims(group_by);
            let filters = only(filters);
            assert_eq!(
                plan(&group_by, &filters).table(),
                *expected,
                "{group_by:?} {filters:?}"
            );
        }
        let group_by = dims(&["status"]);
        let exact = Plan {
            exact: true,
            ..plan(&group_by, &[])
        };
        assert_eq!(exact.table(), Table::Calls);
        let partial = Plan {
            whole_hours: false,
            ..plan(&group_by, &[])
        };
        assert_eq!(partial.table(), Table::Calls);
    }

    #[test]
    fn a_dimension_rollup_reads_its_dimension_and_newest_versions_only() {
        let group_by = dims(&["campaign", "status"]);
        let plan = plan(&group_by, &[]);
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
    fn a_filter_narrows_the_rows_read_but_not_the_versions_kept() {
        // The newest recompute of an hour is found over all its rows: narrowed to a
        // status, an hour whose newest version has none of it would otherwise fall
        // back to an older version that had some.
        let group_by = dims(&[]);
        let filters = only(&[("source", "csv"), ("status", "repeat")]);
        let plan = plan(&group_by, &filters);
        let sql = plan.sql(plan.table());
        let (outer, versions) = sql.split_once("IN (SELECT").unwrap();
        assert!(
            outer.contains("AND value = 'csv' AND status = 'repeat'"),
            "{sql}"
        );
        assert!(
            !versions.contains("repeat") && !versions.contains("csv"),
            "{sql}"
        );
        let calls = plan.sql(Table::Calls);
        assert!(
            calls.contains("AND toString(source) = 'csv' AND toString(status) = 'repeat'"),
            "{calls}"
        );
    }

    #[test]
    fn the_edges_of_a_range_are_its_partial_hours_only() {
        let group_by = dims(&["status"]);
        let edges = Plan {
            from: 1_767_225_600 - 1_800,
            to: 1_767_240_000 + 900,
            edges: Some((1_767_225_600, 1_767_240_000)),
            whole_hours: false,
            ..plan(&group_by, &[])
        };
        assert_eq!(edges.table(), Table::Calls);
        let sql = edges.sql(Table::Calls);
        assert!(
            sql.contains("((started_at >= toDateTime(1767223800) AND started_at < toDateTime(1767225600)) \
                          OR (started_at >= toDateTime(1767240000) AND started_at < toDateTime(1767240900)))"),
            "{sql}"
        );
        // A rollup's statement ignores them: it is asked for the whole hours.
        let middle = Plan {
            edges: Some((1, 2)),
            ..plan(&group_by, &[])
        };
        assert!(!middle.sql(Table::Hourly).contains("OR ("));
    }

    #[test]
    fn the_sql_sent_is_the_sql_checked_on_current_clickhouse() {
        let status = dims(&["status"]);
        let campaign = dims(&["campaign", "status"]);
        let none = dims(&[]);
        let arroyo = only(&[("client_id", "arroyo")]);
        let narrowed = only(&[("campaign", "spring"), ("status", "qualified")]);
        let plans = [
            plan(&status, &[]),
            plan(&campaign, &[]),
            Plan {
                account: Some("acme"),
                bucket: "day",
                ..plan(&none, &arroyo)
            },
            Plan {
                exact: true,
                bucket: "hour",
                ..plan(&campaign, &[])
            },
            plan(&campaign, &narrowed),
            Plan {
                exact: true,
                ..plan(&campaign, &narrowed)
            },
            Plan {
                whole_hours: false,
                edges: Some((1_767_229_200, 1_798_758_000)),
                ..plan(&campaign, &narrowed)
            },
        ];
        let by_attribute = dims(&["attr.tag:User:sub5", "status"]);
        let plans: Vec<Plan> = plans
            .into_iter()
            .chain([
                plan(&by_attribute, &[]),
                Plan {
                    attribute_filter: Some(("publisherSubId", "pub-7")),
                    ..plan(&campaign, &[])
                },
            ])
            .collect();
        let statements: Vec<String> = plans.iter().map(|p| p.sql(p.table())).collect();
        runtime::clickhouse::check_sql_snapshot("aggregates", &statements).unwrap();
    }

    #[test]
    fn an_attribute_is_read_from_the_calls_arrays() {
        let group_by = dims(&["attr.publisherSubId", "status"]);
        let grouped = plan(&group_by, &[]);
        assert_eq!(grouped.table(), Table::Calls, "no rollup holds attributes");
        let sql = grouped.sql(grouped.table());
        assert!(
            sql.contains("attr_values[indexOf(attr_keys, 'publisherSubId')] AS d_attr"),
            "{sql}"
        );
        assert!(sql.contains("GROUP BY bucket, d_attr, d_status"), "{sql}");
        let none = dims(&[]);
        let narrowed = Plan {
            attribute_filter: Some(("tag:User:sub5", "it's")),
            ..plan(&none, &[])
        };
        assert_eq!(narrowed.table(), Table::Calls);
        let sql = narrowed.sql(Table::Calls);
        assert!(
            sql.contains(r"AND attr_values[indexOf(attr_keys, 'tag:User:sub5')] = 'it\'s'"),
            "{sql}"
        );
        assert!(sql.contains("'' AS d_attr"), "{sql}");
    }

    #[test]
    fn values_are_escaped_literals() {
        let group_by = dims(&[]);
        let filters = only(&[("client_id", "x'y")]);
        let hostile = Plan {
            account: Some("o'brien?"),
            ..plan(&group_by, &filters)
        };
        let sql = hostile.sql(Table::Calls);
        assert!(sql.contains(r"account = 'o\'brien??'"), "{sql}");
        assert!(sql.contains(r"toString(client_id) = 'x\'y'"), "{sql}");
        let rolled = hostile.sql(hostile.table());
        assert!(rolled.contains(r"value = 'x\'y'"), "{rolled}");
        assert_eq!(
            rolled.matches(r"account = 'o\'brien??'").count(),
            2,
            "{rolled}"
        );
    }
}
