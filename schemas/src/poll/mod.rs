//! Polling a partner's REST API: what to call (a request template: method, query,
//! headers and JSON body), how to sign in, how to page, how the answer is written,
//! where the records are, and which field of a record moves the since-date (cursor)
//! forward.

mod auth;
mod paging;
pub mod template;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::path::FieldPath;

pub use auth::PollAuth;
pub use paging::{Paging, Stop};
use template::Template;

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
    /// Query parameters, each a template (`{since}`, `{until}`, `{page}`, …; see
    /// [`template`]).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// How `{since}` and `{until}` are written unless the template says
    /// (`{since:%d/%m/%Y}`): chrono format (`%Y-%m-%dT%H:%M:%SZ`), or `epoch_s` /
    /// `epoch_ms`.
    #[serde(default = "default_since_format")]
    pub since_format: String,
    /// Header values are templates too.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body (POST only); its strings are templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// How the answer is written: `json` (default), `ndjson` (a record per line) or
    /// `csv` (the integration's `csv` dialect; a record per row). Compressed answers
    /// (gzip, deflate, zstd) are read decoded, capped at `outbound.max_page_bytes`
    /// decoded bytes.
    #[serde(default, skip_serializing_if = "ResponseFormat::is_json")]
    pub format: ResponseFormat,
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
    /// When a window has no more pages besides what the paging style says.
    #[serde(default, skip_serializing_if = "Stop::is_empty")]
    pub stop: Stop,
    /// For a file re-read whole on a schedule (a CSV URL, a Google Sheet's CSV
    /// export): send only the records after the ones sent before, by position. The
    /// count is stored with the cursor; a file that got shorter is read whole again
    /// (its records' ids make that harmless).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub new_rows_only: bool,
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
        let secret_names = self.all_secret_names();
        let masked = |map: &BTreeMap<String, String>| -> BTreeMap<String, String> {
            map.iter()
                .map(|(k, v)| {
                    let shown = if is_secret_name(k, &secret_names) {
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
            .field("url", &redact_url(&self.url, &secret_names))
            .field("query", &masked(&self.query))
            .field("since_format", &self.since_format)
            .field("headers", &masked(&self.headers))
            .field("body", &self.body)
            .field("format", &self.format)
            .field("secret_names", &self.secret_names)
            .field("auth", &self.auth)
            .field("records_path", &self.records_path)
            .field("paging", &self.paging)
            .field("stop", &self.stop)
            .field("new_rows_only", &self.new_rows_only)
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

/// How a poll answer is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseFormat {
    #[default]
    Json,
    Ndjson,
    Csv,
}

impl ResponseFormat {
    pub fn is_json(&self) -> bool {
        *self == Self::Json
    }
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
        if let Some(problem) = self.template_problem() {
            return Some(problem);
        }
        if self.uses("until") && self.window_s.is_none_or(|w| w == 0) {
            return bad(
                "window_s",
                "must be set (and positive) when a template uses {until}",
            );
        }
        if let Some(problem) = self.auth.as_ref().and_then(PollAuth::problem) {
            return Some(problem);
        }
        for (name, path) in self.paging.paths().into_iter().chain(self.stop.paths()) {
            if FieldPath::parse(path).is_err() {
                let section =
                    if name.ends_with("_path") && !matches!(name, "cursor_path" | "url_path") {
                        "stop"
                    } else {
                        "paging"
                    };
                return Some((
                    format!("poll.{section}.{name}"),
                    "is not a valid path".into(),
                ));
            }
        }
        if let Some((variable, param)) = self.paging.feeds() {
            if param.is_none() && !self.uses(variable) {
                return bad(
                    "paging.param",
                    &format!("set it, or use {{{variable}}} in the query, a header or the body"),
                );
            }
        }
        if let Paging::Offset { limit: 0, .. } = self.paging {
            return bad("paging.limit", "must be positive");
        }
        if self.format != ResponseFormat::Json && !self.records_path.is_empty() {
            return bad(
                "records_path",
                "must be empty when the answer is ndjson or csv (each line or row is a record)",
            );
        }
        if self.new_rows_only && !matches!(self.paging, Paging::None) {
            return bad(
                "new_rows_only",
                "is for a file read whole (paging none): pages are not positions",
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

impl PollConfig {
    /// Every template of the request, with its place (`poll.query.from`,
    /// `poll.headers.X-Day`, `poll.body.reportStart`).
    fn templates(&self) -> Vec<(String, &str)> {
        let mut all: Vec<(String, &str)> = Vec::new();
        for (k, v) in &self.query {
            all.push((format!("poll.query.{k}"), v));
        }
        for (k, v) in &self.headers {
            all.push((format!("poll.headers.{k}"), v));
        }
        if let Some(body) = &self.body {
            for (place, text) in template::body_templates(body) {
                all.push((format!("poll.{place}"), text));
            }
        }
        all
    }

    fn template_problem(&self) -> Option<(String, String)> {
        if let Err(problem) = template::check_time_format(&self.since_format) {
            return Some(("poll.since_format".into(), problem));
        }
        if self.body.is_some() && self.method != "POST" {
            return Some(("poll.body".into(), "needs method POST".into()));
        }
        let fed = self.paging.feeds().map(|(variable, _)| variable);
        for (place, text) in self.templates() {
            let template = match Template::parse(text) {
                Ok(template) => template,
                Err(problem) => return Some((place, problem)),
            };
            for name in template.names() {
                let needs = match name {
                    "page" => "page_number",
                    "offset" | "limit" => "offset",
                    "token" => "next_cursor, header_cursor or last_record",
                    _ => continue,
                };
                let ok = match name {
                    "limit" => fed == Some("offset"),
                    other => fed == Some(other),
                };
                if !ok {
                    return Some((place, format!("{{{name}}} needs paging {needs}")));
                }
            }
        }
        None
    }

    /// Whether any template names `variable`.
    pub fn uses(&self, variable: &str) -> bool {
        self.templates()
            .iter()
            .any(|(_, text)| Template::parse(text).is_ok_and(|t| t.names().any(|n| n == variable)))
    }

    /// `secret_names` and the query parameter the auth writes.
    pub fn all_secret_names(&self) -> Vec<String> {
        let mut names = self.secret_names.clone();
        if let Some(param) = self.auth.as_ref().and_then(PollAuth::query_param) {
            names.push(param.to_owned());
        }
        names
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

    /// Issue 35: a request template's problems name their place.
    #[test]
    fn template_problems_name_their_place() {
        let problem = |edit: fn(&mut PollConfig)| {
            let mut config = ringpartner();
            edit(&mut config);
            config.problem()
        };
        let (place, why) = problem(|c| {
            c.method = "POST".into();
            c.body = Some(serde_json::json!({"report": {"start": "{sinse}"}}));
        })
        .unwrap();
        assert_eq!(place, "poll.body.report.start");
        assert!(why.contains("unknown variable {sinse}"), "{why}");
        let (place, _) = problem(|c| c.body = Some(serde_json::json!({"a": 1}))).unwrap();
        assert_eq!(place, "poll.body");
        let (place, why) = problem(|c| {
            c.query.insert("page".into(), "{page}".into());
        })
        .unwrap();
        assert_eq!(place, "poll.query.page");
        assert!(why.contains("needs paging page_number"), "{why}");
        let (place, _) = problem(|c| {
            c.paging = Paging::Offset {
                param: None,
                limit_param: None,
                limit: 100,
            }
        })
        .unwrap();
        assert_eq!(place, "poll.paging.param");
        let (place, _) = problem(|c| {
            c.headers.insert("X-Day".into(), "{until:%Y-%m-%d}".into());
        })
        .unwrap();
        assert_eq!(place, "poll.window_s");
        let (place, _) = problem(|c| c.since_format = "%Q".into()).unwrap();
        assert_eq!(place, "poll.since_format");
        let (place, _) = problem(|c| {
            c.auth = Some(PollAuth::ApiKeyHeader {
                header: "Bad Header".into(),
                key: crate::webhook_auth::Secret::new("k"),
                format: None,
            })
        })
        .unwrap();
        assert_eq!(place, "poll.auth.header");
        let (place, _) = problem(|c| {
            c.paging = Paging::None;
            c.stop.total_path = Some("a..b".into());
        })
        .unwrap();
        assert_eq!(place, "poll.stop.total_path");
        let (place, _) = problem(|c| c.format = ResponseFormat::Csv).unwrap();
        assert_eq!(place, "poll.records_path");
        // The same paging written with templates instead of params is valid.
        let mut config = ringpartner();
        config.method = "POST".into();
        config.paging = Paging::Offset {
            param: None,
            limit_param: None,
            limit: 100,
        };
        config.body = Some(serde_json::json!({"offset": "{offset}", "size": "{limit}"}));
        assert_eq!(config.problem(), None);
    }

    #[test]
    fn a_query_key_is_masked_wherever_the_config_is_shown() {
        let mut config = ringpartner();
        config.auth = Some(PollAuth::ApiKeyQuery {
            param: "oauth_token".into(),
            key: crate::webhook_auth::Secret::new("q_s3cret"),
        });
        config.url = "https://api.example/x".into();
        config.query.insert("oauth_token".into(), "q_s3cret".into());
        let shown = format!("{config:?}");
        assert!(!shown.contains("q_s3cret"), "{shown}");
        assert!(config
            .all_secret_names()
            .contains(&"oauth_token".to_owned()));
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
