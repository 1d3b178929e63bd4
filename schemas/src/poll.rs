//! Polling a partner's REST API: what to call, how to page, where the records are,
//! and which field of a record moves the since-date (cursor) forward.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::path::FieldPath;
use crate::webhook_auth::Secret;

/// `Debug` masks secret headers and query values (and the URL's user-info): an
/// integration in a log line never carries a credential.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollConfig {
    /// Time between the start of one run and the next.
    pub interval_s: u64,
    #[serde(default = "default_method")]
    pub method: String,
    /// The endpoint; the query is added to it.
    pub url: String,
    /// Query parameters; `{since}` (and `{until}`, when set) are replaced by the
    /// cursor formatted with `since_format`.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// chrono format (`%Y-%m-%dT%H:%M:%SZ`), or `epoch_s` / `epoch_ms`.
    #[serde(default = "default_since_format")]
    pub since_format: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Header and query parameter names whose values are credentials, besides the
    /// usual ones (`Authorization`, `X-Api-Key`, `api_key`, `token`, ...; see
    /// `schemas::redact`): masked wherever the configuration or a request is shown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_names: Vec<String>,
    #[serde(default)]
    pub auth: Option<PollAuth>,
    /// Where the records are in a response: a path to an array (`data`,
    /// `report.records`); empty when the response is the array.
    #[serde(default)]
    pub records_path: String,
    #[serde(default)]
    pub paging: Paging,
    /// The record field holding when the partner last changed it (what the since
    /// parameter filters on). The cursor advances to the largest value seen.
    pub cursor_field: String,
    /// Re-read this much before the cursor each run, for records the partner
    /// changed late or served out of order; the deterministic ids make it harmless.
    #[serde(default = "default_overlap_s")]
    pub overlap_s: u64,
    /// Where the first run starts (RFC 3339).
    pub initial_since: String,
    /// When `{until}` is in the query: the widest window one request asks for, so a
    /// backfill is split into windows.
    #[serde(default)]
    pub window_s: Option<u64>,
    #[serde(default = "default_timeout_s")]
    pub timeout_s: u64,
    /// Most pages one run reads before it stops (and continues next run).
    #[serde(default = "default_max_pages")]
    pub max_pages: u32,
    /// Without paging: the most records the partner returns in one response. A
    /// response that holds this many may have left records out, so the run ends as
    /// if `max_pages` was reached (the cursor moves only if the records came in
    /// `cursor_field` order, and the next run continues from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_limit: Option<u64>,
    /// Attempts per request on 429, 5xx and network errors before the run gives up.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The partner account this integration's requests count against: every
    /// integration with the same budget name shares one rate.
    #[serde(default)]
    pub budget: Option<Budget>,
}

impl std::fmt::Debug for PollConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::redact::{is_secret_name, redact_url, MASK};
        let masked = |map: &BTreeMap<String, String>| -> BTreeMap<String, String> {
            map.iter()
                .map(|(k, v)| {
                    let shown = if is_secret_name(k, &self.secret_names) {
                        MASK
                    } else {
                        v
                    };
                    (k.clone(), shown.to_owned())
                })
                .collect()
        };
        f.debug_struct("PollConfig")
            .field("interval_s", &self.interval_s)
            .field("method", &self.method)
            .field("url", &redact_url(&self.url, &self.secret_names))
            .field("query", &masked(&self.query))
            .field("since_format", &self.since_format)
            .field("headers", &masked(&self.headers))
            .field("secret_names", &self.secret_names)
            .field("auth", &self.auth)
            .field("records_path", &self.records_path)
            .field("paging", &self.paging)
            .field("cursor_field", &self.cursor_field)
            .field("overlap_s", &self.overlap_s)
            .field("initial_since", &self.initial_since)
            .field("window_s", &self.window_s)
            .field("timeout_s", &self.timeout_s)
            .field("max_pages", &self.max_pages)
            .field("page_limit", &self.page_limit)
            .field("max_attempts", &self.max_attempts)
            .field("budget", &self.budget)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PollAuth {
    ApiKeyHeader { header: String, key: Secret },
    Bearer { token: Secret },
    Basic { user: String, password: Secret },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Paging {
    /// One request per run.
    #[default]
    None,
    /// The response names the next cursor; sent back as a query parameter.
    NextCursor { cursor_path: String, param: String },
    /// The response names the next page's full URL.
    NextUrl { url_path: String },
    /// `param` = 1, 2, 3 ... until a page has no records.
    PageNumber {
        param: String,
        #[serde(default = "one")]
        start: u64,
    },
    /// `param` = 0, limit, 2·limit ... until a page has fewer than `limit` records.
    Offset {
        param: String,
        limit_param: String,
        limit: u64,
    },
}

fn one() -> u64 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub account: String,
    pub per_second: u32,
    #[serde(default)]
    pub burst: Option<u32>,
}

fn default_method() -> String {
    "GET".to_owned()
}
fn default_since_format() -> String {
    "%Y-%m-%dT%H:%M:%SZ".to_owned()
}
fn default_overlap_s() -> u64 {
    300
}
fn default_timeout_s() -> u64 {
    30
}
fn default_max_pages() -> u32 {
    1000
}
fn default_max_attempts() -> u32 {
    5
}

impl PollConfig {
    /// The first problem, as (field path under `poll`, problem).
    pub fn problem(&self) -> Option<(String, String)> {
        let bad = |field: &str, problem: &str| Some((format!("poll.{field}"), problem.to_owned()));
        // Bounds on every number: times are added to instants, and a huge one
        // panicked the shared poll scheduler (chrono's `Duration::seconds` range).
        for (field, value, max) in [
            ("interval_s", self.interval_s, 7 * 86_400),
            ("overlap_s", self.overlap_s, 30 * 86_400),
            ("timeout_s", self.timeout_s, 3_600),
            ("window_s", self.window_s.unwrap_or(0), 366 * 86_400),
            ("max_pages", u64::from(self.max_pages), 100_000),
            ("max_attempts", u64::from(self.max_attempts), 20),
            ("page_limit", self.page_limit.unwrap_or(0), 1_000_000),
        ] {
            if value > max {
                return Some((format!("poll.{field}"), format!("must be at most {max}")));
            }
        }
        if self.interval_s < 10 {
            return bad("interval_s", "must be at least 10");
        }
        if !matches!(self.method.as_str(), "GET" | "POST") {
            return bad("method", "must be GET or POST");
        }
        if !(self.url.starts_with("https://") || self.url.starts_with("http://"))
            || self.url.contains('?')
        {
            return bad(
                "url",
                "must be an http(s) URL without a query (put it in `query`)",
            );
        }
        if chrono::DateTime::parse_from_rfc3339(&self.initial_since).is_err() {
            return bad("initial_since", "must be an RFC 3339 time");
        }
        if !self.records_path.is_empty() && FieldPath::parse(&self.records_path).is_err() {
            return bad("records_path", "is not a valid path");
        }
        if FieldPath::parse(&self.cursor_field).is_err() {
            return bad("cursor_field", "is not a valid path");
        }
        if self.timeout_s == 0 || self.max_pages == 0 || self.max_attempts == 0 {
            return bad(
                "timeout_s",
                "timeout_s, max_pages and max_attempts must be positive",
            );
        }
        if self.page_limit == Some(0) {
            return bad("page_limit", "must be positive");
        }
        if self.page_limit.is_some() && !matches!(self.paging, Paging::None) {
            return bad(
                "page_limit",
                "is for paging `none` only (with paging, the pages say whether more remain)",
            );
        }
        let until = self.query.values().any(|v| v.contains("{until}"));
        if until && self.window_s.is_none_or(|w| w == 0) {
            return bad(
                "window_s",
                "must be set (and positive) when the query uses {until}",
            );
        }
        if let Some(budget) = &self.budget {
            if budget.account.trim().is_empty() || budget.per_second == 0 {
                return bad("budget", "needs an account name and a positive per_second");
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn ringpartner() -> PollConfig {
        serde_json::from_value(serde_json::json!({
            "interval_s": 300,
            "url": "https://api.ringpartner.example/v2/calls",
            "query": {"updated_since": "{since}", "page_size": "100"},
            "auth": {"type": "api_key_header", "header": "X-Api-Key", "key": "k_123"},
            "records_path": "data",
            "paging": {"type": "next_cursor", "cursor_path": "next_cursor", "param": "cursor"},
            "cursor_field": "UpdatedAt",
            "initial_since": "2026-11-01T00:00:00Z",
            "budget": {"account": "ringpartner-acme", "per_second": 1}
        }))
        .unwrap()
    }

    #[test]
    fn a_typical_config_is_valid_and_keeps_its_secret_out_of_debug() {
        let mut config = ringpartner();
        assert_eq!(config.problem(), None);
        assert!(!format!("{config:?}").contains("k_123"));
        config
            .headers
            .insert("X-Api-Key".into(), "hdr_s3cret".into());
        config
            .headers
            .insert("X-Account".into(), "acct_s3cret".into());
        config
            .query
            .insert("access_token".into(), "qry_s3cret".into());
        config.secret_names.push("X-Account".into());
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("updated_since"), "{shown}");
    }

    /// Issue "Prove it under faults": `interval_s` of u64::MAX was accepted and
    /// panicked the scheduler that polls every integration.
    #[test]
    fn every_number_is_bounded() {
        for (field, edit) in [
            (
                "poll.interval_s",
                (|c: &mut PollConfig| c.interval_s = u64::MAX) as fn(&mut PollConfig),
            ),
            ("poll.overlap_s", |c| c.overlap_s = u64::MAX),
            ("poll.timeout_s", |c| c.timeout_s = u64::MAX),
            ("poll.window_s", |c| c.window_s = Some(u64::MAX)),
            ("poll.max_pages", |c| c.max_pages = u32::MAX),
            ("poll.max_attempts", |c| c.max_attempts = u32::MAX),
            ("poll.page_limit", |c| {
                c.paging = Paging::None;
                c.page_limit = Some(u64::MAX)
            }),
        ] {
            let mut config = ringpartner();
            edit(&mut config);
            assert_eq!(config.problem().map(|p| p.0), Some(field.to_owned()));
        }
    }

    #[test]
    fn problems_name_the_field() {
        let mut config = ringpartner();
        config.url = "https://x/calls?a=1".into();
        assert_eq!(config.problem().unwrap().0, "poll.url");
        let mut config = ringpartner();
        config.query.insert("to".into(), "{until}".into());
        assert_eq!(config.problem().unwrap().0, "poll.window_s");
        let mut config = ringpartner();
        config.initial_since = "yesterday".into();
        assert_eq!(config.problem().unwrap().0, "poll.initial_since");
    }
}
