//! Field paths into a partner record: `call.caller.number`, `legs[0].to`,
//! `["Caller Phone"]`, `meta["a.b"]`. Parsed when an integration is validated, so a
//! typo is reported when the mapping is saved, not on the first record.

use std::borrow::Cow;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
    /// `[*]`: every element of an array.
    Wildcard,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("path {path:?} at position {position}: {problem}")]
pub struct PathError {
    pub path: String,
    pub position: usize,
    pub problem: &'static str,
}

impl FieldPath {
    pub fn parse(text: &str) -> Result<Self, PathError> {
        let error = |position, problem| PathError {
            path: text.to_owned(),
            position,
            problem,
        };
        let chars: Vec<char> = text.chars().collect();
        let mut segments = Vec::new();
        let mut i = 0;
        let mut expect_key = true;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    if expect_key {
                        return Err(error(i, "empty key before '.'"));
                    }
                    expect_key = true;
                    i += 1;
                }
                '[' => {
                    let close = chars[i..]
                        .iter()
                        .position(|c| *c == ']')
                        .map(|p| p + i)
                        .ok_or_else(|| error(i, "'[' is never closed"))?;
                    let inner: String = chars[i + 1..close].iter().collect();
                    let quoted = inner.len() >= 2
                        && ((inner.starts_with('"') && inner.ends_with('"'))
                            || (inner.starts_with('\'') && inner.ends_with('\'')));
                    if quoted {
                        segments.push(Segment::Key(inner[1..inner.len() - 1].to_owned()));
                    } else if inner.trim() == "*" {
                        segments.push(Segment::Wildcard);
                    } else {
                        let index = inner.trim().parse::<usize>().map_err(|_| {
                            error(i + 1, "expected an array index, `*` or a quoted key")
                        })?;
                        segments.push(Segment::Index(index));
                    }
                    expect_key = false;
                    i = close + 1;
                }
                _ => {
                    if !expect_key {
                        return Err(error(i, "expected '.' or '[' between segments"));
                    }
                    let start = i;
                    while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                        i += 1;
                    }
                    segments.push(Segment::Key(chars[start..i].iter().collect()));
                    expect_key = false;
                }
            }
        }
        if segments.is_empty() {
            return Err(error(0, "path is empty"));
        }
        if expect_key {
            return Err(error(chars.len(), "path ends with '.'"));
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn has_wildcard(&self) -> bool {
        self.segments.contains(&Segment::Wildcard)
    }

    /// Follows the path; `None` when any step is missing. A path with `[*]` yields
    /// an array of every match (`None` when nothing matched); any other borrows the
    /// value it found.
    pub fn lookup<'v>(&self, value: &'v serde_json::Value) -> Option<Cow<'v, serde_json::Value>> {
        if !self.has_wildcard() {
            return self
                .segments
                .iter()
                .try_fold(value, |current, segment| step(current, segment))
                .map(Cow::Borrowed);
        }
        let mut current = vec![value];
        for segment in &self.segments {
            current = match segment {
                Segment::Wildcard => current
                    .into_iter()
                    .filter_map(|v| v.as_array())
                    .flatten()
                    .collect(),
                other => current.into_iter().filter_map(|v| step(v, other)).collect(),
            };
        }
        let found: Vec<serde_json::Value> = current
            .into_iter()
            .filter(|v| !v.is_null())
            .cloned()
            .collect();
        (!found.is_empty()).then_some(Cow::Owned(serde_json::Value::Array(found)))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn step<'v>(current: &'v serde_json::Value, segment: &Segment) -> Option<&'v serde_json::Value> {
    match segment {
        Segment::Key(key) => current.get(key.as_str()),
        Segment::Index(index) => current.get(*index),
        Segment::Wildcard => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn follows_nested_keys_indices_and_quoted_keys() {
        let record = json!({
            "call": {"caller": {"number": "415"}},
            "legs": [{"to": "a"}, {"to": "b"}],
            "Caller Phone": "x",
            "meta": {"a.b": 1}
        });
        let get = |p: &str| {
            FieldPath::parse(p)
                .unwrap()
                .lookup(&record)
                .map(Cow::into_owned)
        };
        assert_eq!(get("call.caller.number"), Some(json!("415")));
        assert_eq!(get("legs[1].to"), Some(json!("b")));
        assert_eq!(get("[\"Caller Phone\"]"), Some(json!("x")));
        assert_eq!(get("Caller Phone"), Some(json!("x")));
        assert_eq!(get("meta[\"a.b\"]"), Some(json!(1)));
        assert_eq!(get("legs[5].to"), None);
        assert_eq!(get("call.nope"), None);
        assert_eq!(get("legs[*].to"), Some(json!(["a", "b"])));
        assert_eq!(get("legs[*].nope"), None);
        assert_eq!(
            get("call[*]"),
            None,
            "wildcard over a non-array matches nothing"
        );
    }

    #[test]
    fn errors_name_the_position() {
        assert_eq!(FieldPath::parse("a..b").unwrap_err().position, 2);
        assert_eq!(FieldPath::parse("a[x]").unwrap_err().position, 2);
        assert!(FieldPath::parse("a[0").is_err());
        assert!(FieldPath::parse("a.").is_err());
        assert!(FieldPath::parse("").is_err());
        assert!(FieldPath::parse(".a").is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,24}") {
            let _ = FieldPath::parse(&text);
        }
    }
}
