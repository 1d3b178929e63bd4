//! The poll request's template syntax: `{name}` or `{name:format}` inside a query
//! value, a header value or a string of the JSON body, replaced when each request
//! is made. No code runs; a template is text with named holes.
//!
//! | name     | value                                                           |
//! |----------|-----------------------------------------------------------------|
//! | `since`  | the window's start (cursor minus overlap), as `since_format` or `:format` |
//! | `until`  | the window's end, likewise (needs `window_s`)                    |
//! | `page`   | the page number (paging `page_number`)                           |
//! | `offset` | records skipped so far (paging `offset`)                         |
//! | `limit`  | the page size (paging `offset`)                                  |
//! | `token`  | the next page's token: a cursor from the body or a header, or the last record's field (paging `next_cursor`, `header_cursor`, `last_record`) |
//!
//! A format is a chrono `strftime` pattern or `epoch_s` / `epoch_ms`. `{{` and `}}`
//! are literal braces. A value that has no value yet (the token on the first page)
//! leaves its query parameter or header out, and its body key out. A body string
//! that is exactly one number-valued hole (`"{offset}"`, `"{since:epoch_ms}"`)
//! becomes a JSON number.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// The variables a template may name.
pub const NAMES: [&str; 6] = ["since", "until", "page", "offset", "limit", "token"];

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Hole {
        name: String,
        format: Option<String>,
    },
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// What the variables are for one request.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// The default time format (`poll.since_format`).
    pub time_format: String,
    pub page: Option<u64>,
    pub offset: Option<u64>,
    pub limit: Option<u64>,
    pub token: Option<String>,
}

/// A template's value: text, or a number when it is one number-valued hole.
#[derive(Debug, Clone, PartialEq)]
pub enum Rendered {
    Text(String),
    Number(i64),
    /// A hole had no value: leave the parameter, header or key out.
    Absent,
}

impl Template {
    /// Parses `text`; the error says what is wrong and at which character.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        for piece in crate::braces::split(text)? {
            let (inner, at) = match piece {
                crate::braces::Braced::Text(text) => {
                    pieces.push(Piece::Text(text));
                    continue;
                }
                crate::braces::Braced::Hole { inner, at } => (inner, at),
            };
            let (name, format) = match inner.split_once(':') {
                Some((name, format)) => (name.trim(), Some(format.to_owned())),
                None => (inner.trim(), None),
            };
            if !NAMES.contains(&name) {
                return Err(format!(
                    "unknown variable {{{name}}} at character {at}; known: {}",
                    NAMES.join(", ")
                ));
            }
            if let Some(format) = &format {
                if !matches!(name, "since" | "until") {
                    return Err(format!(
                        "{{{name}}} takes no format (only since and until do)"
                    ));
                }
                check_time_format(format)
                    .map_err(|problem| format!("{{{name}:{format}}}: {problem}"))?;
            }
            pieces.push(Piece::Hole {
                name: name.to_owned(),
                format,
            });
        }
        Ok(Self { pieces })
    }

    /// The variables this template names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Hole { name, .. } => Some(name.as_str()),
            Piece::Text(_) => None,
        })
    }

    pub fn render(&self, vars: &Vars) -> Rendered {
        if let [Piece::Hole { name, format }] = self.pieces.as_slice() {
            let format = format.as_deref().unwrap_or(&vars.time_format);
            if let Some(number) = vars.number(name, format) {
                return Rendered::Number(number);
            }
        }
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Hole { name, format } => {
                    let format = format.as_deref().unwrap_or(&vars.time_format);
                    match vars.text(name, format) {
                        Some(value) => out.push_str(&value),
                        None => return Rendered::Absent,
                    }
                }
            }
        }
        Rendered::Text(out)
    }

    /// As text (a number printed), `None` when a hole had no value.
    pub fn render_text(&self, vars: &Vars) -> Option<String> {
        match self.render(vars) {
            Rendered::Text(text) => Some(text),
            Rendered::Number(n) => Some(n.to_string()),
            Rendered::Absent => None,
        }
    }
}

impl Vars {
    fn number(&self, name: &str, format: &str) -> Option<i64> {
        let time = |t: Option<DateTime<Utc>>| match format {
            "epoch_s" => t.map(|t| t.timestamp()),
            "epoch_ms" => t.map(|t| t.timestamp_millis()),
            _ => None,
        };
        let count = |n: Option<u64>| n.and_then(|n| i64::try_from(n).ok());
        match name {
            "since" => time(self.since),
            "until" => time(self.until),
            "page" => count(self.page),
            "offset" => count(self.offset),
            "limit" => count(self.limit),
            _ => None,
        }
    }

    fn text(&self, name: &str, format: &str) -> Option<String> {
        match name {
            "since" => self.since.map(|t| format_time(t, format)),
            "until" => self.until.map(|t| format_time(t, format)),
            "page" => self.page.map(|n| n.to_string()),
            "offset" => self.offset.map(|n| n.to_string()),
            "limit" => self.limit.map(|n| n.to_string()),
            "token" => self.token.clone(),
            _ => None,
        }
    }
}

pub fn format_time(at: DateTime<Utc>, format: &str) -> String {
    match format {
        "epoch_s" => at.timestamp().to_string(),
        "epoch_ms" => at.timestamp_millis().to_string(),
        format => at.format(format).to_string(),
    }
}

/// Whether chrono can print `format` (an unknown `%` specifier makes its
/// `Display` fail, which would panic in `to_string`).
pub fn check_time_format(format: &str) -> Result<(), String> {
    use chrono::format::{Item, StrftimeItems};
    if matches!(format, "epoch_s" | "epoch_ms") {
        return Ok(());
    }
    if StrftimeItems::new(format).any(|item| matches!(item, Item::Error)) {
        return Err(format!(
            "{format:?} is not a strftime format (nor epoch_s / epoch_ms)"
        ));
    }
    Ok(())
}

/// Every template in a JSON body, with its place (`body.reportStart`,
/// `body.filters[0].value`).
pub fn body_templates(body: &Value) -> Vec<(String, &str)> {
    fn walk<'a>(value: &'a Value, place: String, out: &mut Vec<(String, &'a str)>) {
        match value {
            Value::String(text) => out.push((place, text)),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, format!("{place}[{i}]"), out);
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    walk(item, format!("{place}.{key}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(body, "body".into(), &mut out);
    out
}

/// The body with its templates rendered: a key whose template has no value is left
/// out (an array keeps a `null` in its place).
pub fn render_body(body: &Value, vars: &Vars) -> Value {
    let leaf = |text: &str| match Template::parse(text) {
        Ok(template) => match template.render(vars) {
            Rendered::Text(text) => Some(Value::String(text)),
            Rendered::Number(n) => Some(Value::from(n)),
            Rendered::Absent => None,
        },
        // Validated when saved; a template that does not parse is sent as written.
        Err(_) => Some(Value::String(text.to_owned())),
    };
    match body {
        Value::String(text) => leaf(text).unwrap_or(Value::Null),
        Value::Array(items) => Value::Array(items.iter().map(|i| render_body(i, vars)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .filter_map(|(k, v)| match v {
                    Value::String(text) => leaf(text).map(|v| (k.clone(), v)),
                    other => Some((k.clone(), render_body(other, vars))),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use serde_json::json;

    fn vars() -> Vars {
        Vars {
            since: Some(Utc.with_ymd_and_hms(2026, 11, 20, 22, 3, 22).unwrap()),
            until: Some(Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap()),
            time_format: "%Y-%m-%dT%H:%M:%SZ".into(),
            page: Some(3),
            offset: Some(200),
            limit: Some(100),
            token: None,
        }
    }

    #[test]
    fn holes_literals_and_formats() {
        let render = |t: &str| Template::parse(t).unwrap().render(&vars());
        assert_eq!(
            render("{since}"),
            Rendered::Text("2026-11-20T22:03:22Z".into())
        );
        assert_eq!(
            render("from {since:%d/%m/%Y} to {until:%d/%m/%Y}"),
            Rendered::Text("from 20/11/2026 to 21/11/2026".into())
        );
        assert_eq!(
            render("{since:epoch_ms}"),
            Rendered::Number(1_795_212_202_000)
        );
        assert_eq!(render("{offset}"), Rendered::Number(200));
        assert_eq!(render("p{page}"), Rendered::Text("p3".into()));
        assert_eq!(render("{{literal}}"), Rendered::Text("{literal}".into()));
        assert_eq!(render("after:{token}"), Rendered::Absent);
    }

    #[test]
    fn bad_templates_say_what_and_where() {
        let error = |t: &str| Template::parse(t).unwrap_err();
        assert!(error("{sinse}").contains("unknown variable {sinse} at character 0"));
        assert!(error("x {since").contains("not closed"));
        assert!(error("a } b").contains("lone `}`"));
        assert!(error("{page:%Y}").contains("takes no format"));
        assert!(error("{since:%Q}").contains("not a strftime format"));
    }

    #[test]
    fn bodies_render_typed_and_drop_absent_keys() {
        let body = json!({
            "reportStart": "{since:%Y-%m-%dT%H:%M:%SZ}",
            "reportEnd": "{until}",
            "offset": "{offset}",
            "size": 100,
            "after": "{token}",
            "filters": [{"value": "page {page}"}]
        });
        assert_eq!(
            render_body(&body, &vars()),
            json!({
                "reportStart": "2026-11-20T22:03:22Z",
                "reportEnd": "2026-11-21T00:00:00Z",
                "offset": 200,
                "size": 100,
                "filters": [{"value": "page 3"}]
            })
        );
        let places: Vec<String> = body_templates(&body).into_iter().map(|(p, _)| p).collect();
        assert!(
            places.contains(&"body.filters[0].value".to_owned()),
            "{places:?}"
        );
    }

    proptest! {
        /// Any text parses or is refused; none panics, and text without braces is
        /// itself.
        #[test]
        fn any_text_parses_or_is_refused(text in ".{0,40}") {
            if let Ok(template) = Template::parse(&text) {
                let _ = template.render(&vars());
            }
            if !text.contains(['{', '}']) {
                prop_assert_eq!(Template::parse(&text).unwrap().render(&vars()), Rendered::Text(text.clone()));
            }
        }
    }
}
