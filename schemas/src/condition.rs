//! Conditions on a partner record, for filters (`mapping.filters`) and for rules
//! that apply only sometimes (`when`, `cases`). Declarative, no code: a test of one
//! path, or `all` / `any` / `not` of conditions.
//!
//! ```json
//! {"path": "status", "equals": "sale"}
//! {"path": "campaign", "in": ["Test", "QA"]}
//! {"path": "recordingUrl", "exists": true}
//! {"path": "callerId", "matches": "^\\+1555"}
//! {"path": "duration", "gte": 30}
//! {"all": [{"path": "type", "equals": "pre-call"}, {"not": {"path": "buyer", "exists": true}}]}
//! ```
//!
//! `equals` and `in` compare text with text case-insensitively after trimming, and
//! numbers as numbers (`"30"` equals `30`); `gt`, `gte`, `lt`, `lte` compare
//! decimals exactly (never floats); `matches` is a regular expression (the `regex`
//! crate's syntax: no look-around, linear time) searched in the value's text. A
//! test of a path the record lacks is false (`exists: false` is true).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::path::FieldPath;

/// Most conditions nested in one (a guard against definitions that are mostly
/// conditions).
pub const MAX_DEPTH: usize = 8;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub all: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub any: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<Value>,
    #[serde(default, rename = "in", skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<Value>,
}

impl Condition {
    /// The first problem, as (place, problem); `place` is where this condition sits
    /// (`mapping.filters[0].when`).
    pub fn problem(&self, place: &str) -> Option<(String, String)> {
        self.problem_at(place, 0)
    }

    fn problem_at(&self, place: &str, depth: usize) -> Option<(String, String)> {
        let bad = |problem: String| Some((place.to_owned(), problem));
        if depth > MAX_DEPTH {
            return bad(format!("nests conditions deeper than {MAX_DEPTH}"));
        }
        let tests = [
            self.equals.is_some(),
            self.one_of.is_some(),
            self.exists.is_some(),
            self.matches.is_some(),
            self.gt.is_some(),
            self.gte.is_some(),
            self.lt.is_some(),
            self.lte.is_some(),
        ]
        .iter()
        .filter(|t| **t)
        .count();
        let combinators = [
            !self.all.is_empty(),
            !self.any.is_empty(),
            self.not.is_some(),
        ]
        .iter()
        .filter(|c| **c)
        .count();
        match (self.path.as_ref(), combinators) {
            (Some(path), 0) => {
                if let Err(e) = FieldPath::parse(path) {
                    return Some((format!("{place}.path"), e.to_string()));
                }
                if tests != 1 {
                    return bad(
                        "a path needs exactly one test: equals, in, exists, matches, gt, gte, lt or lte".into(),
                    );
                }
                if let Some(pattern) = &self.matches {
                    if let Err(e) = regex::RegexBuilder::new(pattern)
                        .size_limit(1 << 20)
                        .build()
                    {
                        return Some((
                            format!("{place}.matches"),
                            format!("not a regular expression: {e}"),
                        ));
                    }
                }
                for (name, bound) in [
                    ("gt", &self.gt),
                    ("gte", &self.gte),
                    ("lt", &self.lt),
                    ("lte", &self.lte),
                ] {
                    if bound.as_ref().is_some_and(|b| decimal(b).is_none()) {
                        return Some((format!("{place}.{name}"), "must be a number".into()));
                    }
                }
                None
            }
            (None, 1) if tests == 0 => {
                for (name, list) in [("all", &self.all), ("any", &self.any)] {
                    for (i, inner) in list.iter().enumerate() {
                        if let Some(p) =
                            inner.problem_at(&format!("{place}.{name}[{i}]"), depth + 1)
                        {
                            return Some(p);
                        }
                    }
                }
                self.not
                    .as_ref()
                    .and_then(|inner| inner.problem_at(&format!("{place}.not"), depth + 1))
            }
            _ => bad("needs either a path with one test, or one of all, any and not".into()),
        }
    }

    /// Every path this condition reads, nested ones included.
    pub fn paths(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.path.iter().map(String::as_str).collect();
        for inner in self.all.iter().chain(&self.any).chain(self.not.as_deref()) {
            out.extend(inner.paths());
        }
        out
    }
}

/// A number or numeric text as an exact decimal: (units, scale) normalised to four
/// places, as money is (`Decimal(18,4)`); `None` when it is not a number.
pub fn decimal(value: &Value) -> Option<i128> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        _ => return None,
    };
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(&text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || whole.len() > 30
        || fraction.len() > 4 && fraction[4..].bytes().any(|b| b != b'0')
    {
        return None;
    }
    let mut units: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    for i in 0..4 {
        units = units.checked_mul(10)?;
        if let Some(d) = fraction.as_bytes().get(i) {
            units += i128::from(d - b'0');
        }
    }
    Some(if negative { -units } else { units })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn condition(value: Value) -> Condition {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn problems_name_their_place() {
        let place = |value: Value| condition(value).problem("when").map(|p| p.0);
        assert_eq!(place(json!({"path": "a", "equals": 1})), None);
        assert_eq!(place(json!({"path": "a"})).as_deref(), Some("when"));
        assert_eq!(
            place(json!({"path": "a", "equals": 1, "exists": true})).as_deref(),
            Some("when")
        );
        assert_eq!(
            place(json!({"path": "a..b", "exists": true})).as_deref(),
            Some("when.path")
        );
        assert_eq!(
            place(json!({"all": [{"path": "a", "exists": true}, {"path": "b", "matches": "("}]}))
                .as_deref(),
            Some("when.all[1].matches")
        );
        assert_eq!(
            place(json!({"not": {"path": "a", "gte": "x"}})).as_deref(),
            Some("when.not.gte")
        );
        assert_eq!(
            place(json!({"all": [], "any": []})).as_deref(),
            Some("when")
        );
        let mut deep = json!({"path": "a", "exists": true});
        for _ in 0..10 {
            deep = json!({"not": deep});
        }
        assert_eq!(
            place(deep).as_deref(),
            Some("when.not.not.not.not.not.not.not.not.not")
        );
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(decimal(&json!("12.5")), Some(125_000));
        assert_eq!(decimal(&json!(-0.0001)), Some(-1));
        assert_eq!(decimal(&json!("30")), Some(300_000));
        assert_eq!(decimal(&json!("1.23456")), None);
        assert_eq!(decimal(&json!("abc")), None);
        assert_eq!(decimal(&json!(".5")), Some(5_000));
    }
}
