//! The filters `GET /api/calls` and its CSV export share: parsed from the query,
//! turned into SQL with bound values (never text pasted into a statement).

use chrono::{DateTime, Utc};
use schemas::{ClientId, Source};
use serde::Deserialize;

use crate::query::bad_parameter;
use runtime::http::Problem;

/// A row of another account caught by the second check after a read: left out of
/// the answer, and said loudly (it means a lookup went wrong).
pub fn withheld(table: &'static str) {
    tracing::error!(
        table,
        "a row of another account reached an answer; left out"
    );
    metrics::counter!(crate::metric_names::API_ROWS_WITHHELD_TOTAL, "table" => table).increment(1);
}

/// The filter parameters, as they come in.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterParams {
    pub client_id: Option<String>,
    pub account: Option<String>,
    /// Calls started at or after (RFC 3339).
    pub from: Option<String>,
    /// Calls started before (RFC 3339).
    pub to: Option<String>,
    pub source: Option<String>,
    pub status: Option<String>,
    pub duplicate: Option<bool>,
    /// E.164, or a US number in any format.
    pub caller: Option<String>,
    pub campaign: Option<String>,
    pub state: Option<String>,
    /// A custom attribute's value: `NAME=VALUE`.
    pub attr: Option<String>,
}

/// A value bound to a `?` of the statement, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    Number(i64),
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct CallFilter {
    conditions: Vec<String>,
    binds: Vec<Bind>,
    /// The caller asked for, normalised: a page of one caller's calls is read from
    /// the table sorted by caller.
    caller: Option<String>,
    /// `from` and `to` in Unix seconds, to bound the windows a page is looked for in.
    from: Option<i64>,
    to: Option<i64>,
    /// The token's account: every row read back is checked against it again.
    scope_account: Option<String>,
}

impl CallFilter {
    /// Whether a row read back (by id, after the filtered id lookup) belongs to the
    /// token's account: a second check, so an id list that went wrong can never show
    /// another account's call.
    pub fn allows(&self, account: &str) -> bool {
        let allowed = self
            .scope_account
            .as_deref()
            .is_none_or(|mine| mine == account);
        if !allowed {
            withheld("calls");
        }
        allowed
    }

    /// Whether the filter limits the rows to the token's account (when it has one).
    pub fn is_scoped(&self) -> bool {
        let Some(mine) = &self.scope_account else {
            return true;
        };
        self.conditions
            .iter()
            .zip(&self.binds)
            .any(|(condition, bind)| {
                condition == "account = ?" && *bind == Bind::Text(mine.clone())
            })
    }

    pub fn parse(params: &FilterParams, account_scope: Option<&str>) -> Result<Self, Problem> {
        let mut filter = Self {
            scope_account: account_scope.map(str::to_owned),
            ..Self::default()
        };
        if let Some(client_id) = &params.client_id {
            ClientId::parse(client_id).map_err(|e| bad_parameter("client_id", e.to_string()))?;
            filter.push("client_id = ?", Bind::Text(client_id.clone()));
        }
        if let Some(account) = account_scope.or(params.account.as_deref()) {
            filter.push("account = ?", Bind::Text(account.to_owned()));
        }
        if let Some(from) = &params.from {
            let from = instant("from", from)?.timestamp();
            filter.push("started_at >= toDateTime(?)", Bind::Number(from));
            filter.from = Some(from);
        }
        if let Some(to) = &params.to {
            let to = instant("to", to)?.timestamp();
            filter.push("started_at < toDateTime(?)", Bind::Number(to));
            filter.to = Some(to);
        }
        if let Some(source) = &params.source {
            let source = match source.as_str() {
                "webhook" => Source::Webhook,
                "poll" => Source::Poll,
                "csv" => Source::Csv,
                _ => return Err(bad_parameter("source", "must be webhook, poll or csv")),
            };
            filter.push("source = ?", Bind::Text(source.as_str().to_owned()));
        }
        if let Some(status) = &params.status {
            if !["qualified", "unqualified", "repeat", "duplicate"].contains(&status.as_str()) {
                return Err(bad_parameter(
                    "status",
                    "must be qualified, unqualified, repeat or duplicate",
                ));
            }
            filter.push("status = ?", Bind::Text(status.clone()));
        }
        if let Some(duplicate) = params.duplicate {
            // A call's status is `duplicate` exactly when it is one; said this way,
            // the condition also holds on `calls_by_time`, which has no is_duplicate.
            filter.push(
                "(status = 'duplicate') = ?",
                Bind::Number(i64::from(duplicate)),
            );
        }
        if let Some(caller) = &params.caller {
            let number = schemas::E164::parse(caller, phonenumber::country::Id::US)
                .map_err(|e| bad_parameter("caller", e.to_string()))?;
            filter.push("caller = ?", Bind::Text(number.to_string()));
            filter.caller = Some(number.to_string());
        }
        for (name, value) in [("campaign", &params.campaign), ("state", &params.state)] {
            if let Some(value) = value {
                filter.push(&format!("{name} = ?"), Bind::Text(value.clone()));
            }
        }
        if let Some(attr) = &params.attr {
            let (name, value) = attribute_filter(attr)?;
            // The name is checked to letters, digits and `_-.:`, so it is written as
            // a literal; the value is bound. Both `calls` and `calls_by_time` have
            // the arrays.
            let name = runtime::clickhouse::string_list([name.as_str()]);
            filter.push(
                &format!("attr_values[indexOf(attr_keys, {name})] = ?"),
                Bind::Text(value),
            );
        }
        Ok(filter)
    }

    pub fn caller(&self) -> Option<&str> {
        self.caller.as_deref()
    }

    /// [from, to) in Unix seconds, as far as the query bounds it.
    pub fn range(&self) -> (Option<i64>, Option<i64>) {
        (self.from, self.to)
    }

    fn push(&mut self, condition: &str, bind: Bind) {
        self.conditions.push(condition.to_owned());
        self.binds.push(bind);
    }

    /// ` AND ...` for each condition (empty when there is none).
    pub fn sql(&self) -> String {
        self.conditions
            .iter()
            .map(|c| format!(" AND {c}"))
            .collect()
    }

    /// Binds the values, in the order of `sql()`'s placeholders.
    pub fn bind(&self, mut query: clickhouse::query::Query) -> clickhouse::query::Query {
        for bind in &self.binds {
            query = match bind {
                Bind::Text(text) => query.bind(text.as_str()),
                Bind::Number(n) => query.bind(*n),
            };
        }
        query
    }
}

/// `attr=NAME=VALUE`, checked: a 400 names what is wrong with it.
pub fn attribute_filter(text: &str) -> Result<(String, String), Problem> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(bad_parameter("attr", "must be NAME=VALUE"));
    };
    if let Some(problem) = schemas::attribute::name_problem(name) {
        return Err(bad_parameter(
            "attr",
            format!("the name {name:?} {problem}"),
        ));
    }
    if value.len() > schemas::attribute::MAX_VALUE_BYTES {
        return Err(bad_parameter(
            "attr",
            format!(
                "the value is longer than {} bytes, longer than any kept",
                schemas::attribute::MAX_VALUE_BYTES
            ),
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// An RFC 3339 query parameter; a bad one is a 400 naming it.
/// The span ClickHouse `DateTime` holds (Unix seconds as a UInt32). An instant
/// outside it would wrap around inside `toDateTime(?)` and select the wrong calls.
const DATETIME_SPAN: std::ops::RangeInclusive<i64> = 0..=4_294_967_295;

pub fn instant(name: &str, text: &str) -> Result<DateTime<Utc>, Problem> {
    let instant = DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| bad_parameter(name, "must be an RFC 3339 time, e.g. 2026-11-20T00:00:00Z"))?;
    if !DATETIME_SPAN.contains(&instant.timestamp()) {
        return Err(bad_parameter(
            name,
            "must be between 1970-01-01T00:00:00Z and 2106-02-07T06:28:15Z",
        ));
    }
    Ok(instant)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the hostile-request corpus: `to=0001-01-01T00:00:00Z` was accepted,
    /// and `toDateTime` of a negative number wraps around.
    #[test]
    fn an_instant_clickhouse_cannot_hold_is_refused() {
        for text in [
            "0001-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2106-02-07T06:28:16Z",
        ] {
            let problem = instant("to", text).unwrap_err();
            assert!(
                format!("{problem:?}").contains("between"),
                "{text}: {problem:?}"
            );
        }
        assert!(instant("to", "1970-01-01T00:00:00Z").is_ok());
    }

    #[test]
    fn every_filter_becomes_a_bound_condition() {
        let params = FilterParams {
            client_id: Some("arroyo".into()),
            account: Some("ignored-when-scoped".into()),
            from: Some("2026-11-20T00:00:00Z".into()),
            to: Some("2026-11-21T00:00:00-05:00".into()),
            source: Some("csv".into()),
            status: Some("repeat".into()),
            duplicate: Some(false),
            caller: Some("(415) 555-2671".into()),
            campaign: Some("Auto CA".into()),
            state: Some("CA".into()),
            attr: Some("tag:User:sub5=it's = fine?".into()),
        };
        let filter = CallFilter::parse(&params, Some("acme")).unwrap();
        assert!(
            filter
                .sql()
                .contains("AND attr_values[indexOf(attr_keys, 'tag:User:sub5')] = ?"),
            "{}",
            filter.sql()
        );
        assert!(
            filter.binds.contains(&Bind::Text("it's = fine?".into())),
            "the value is bound, split at the first ="
        );
        assert_eq!(filter.sql().matches('?').count(), filter.binds.len());
        assert!(
            filter.binds.contains(&Bind::Text("acme".into())),
            "the scope wins"
        );
        assert!(
            filter.binds.contains(&Bind::Text("+14155552671".into())),
            "the caller is normalised"
        );
        assert!(
            filter
                .binds
                .contains(&Bind::Number(1_795_219_200 + 5 * 3600)),
            "to is converted to UTC"
        );
    }

    #[test]
    fn bad_values_name_the_parameter() {
        for (params, name) in [
            (
                FilterParams {
                    from: Some("yesterday".into()),
                    ..Default::default()
                },
                "from",
            ),
            (
                FilterParams {
                    source: Some("fax".into()),
                    ..Default::default()
                },
                "source",
            ),
            (
                FilterParams {
                    status: Some("great".into()),
                    ..Default::default()
                },
                "status",
            ),
            (
                FilterParams {
                    caller: Some("not a number".into()),
                    ..Default::default()
                },
                "caller",
            ),
            (
                FilterParams {
                    attr: Some("publisherSubId".into()),
                    ..Default::default()
                },
                "attr",
            ),
            (
                FilterParams {
                    attr: Some("it's=1".into()),
                    ..Default::default()
                },
                "attr",
            ),
        ] {
            let problem = CallFilter::parse(&params, None).unwrap_err();
            assert!(
                problem.message.contains(name),
                "{name}: {}",
                problem.message
            );
        }
    }
}
