//! Conditions compiled for one integration: each path a slot of the mapping's
//! reader, each pattern compiled once (`schemas::condition` says what they mean).

use std::borrow::Cow;

use regex::Regex;
use schemas::condition::{decimal, Condition};
use serde_json::Value;

/// Reads the value of one of the mapping's extra paths, by slot.
pub type Lookup<'a> = dyn Fn(usize) -> Option<Cow<'a, Value>> + 'a;

#[derive(Debug, Clone)]
pub enum Compiled {
    All(Vec<Compiled>),
    Any(Vec<Compiled>),
    Not(Box<Compiled>),
    Test { slot: usize, test: Test },
}

#[derive(Debug, Clone)]
pub enum Test {
    Equals(Value),
    In(Vec<Value>),
    Exists(bool),
    Matches(Regex),
    Compare(std::cmp::Ordering, bool, i128),
}

impl Compiled {
    /// `condition` compiled; `slot_of` gives each path its reader slot.
    pub fn of(
        condition: &Condition,
        slot_of: &mut dyn FnMut(&str) -> usize,
    ) -> Result<Self, String> {
        if !condition.all.is_empty() {
            return Ok(Self::All(
                condition
                    .all
                    .iter()
                    .map(|c| Self::of(c, slot_of))
                    .collect::<Result<_, _>>()?,
            ));
        }
        if !condition.any.is_empty() {
            return Ok(Self::Any(
                condition
                    .any
                    .iter()
                    .map(|c| Self::of(c, slot_of))
                    .collect::<Result<_, _>>()?,
            ));
        }
        if let Some(inner) = &condition.not {
            return Ok(Self::Not(Box::new(Self::of(inner, slot_of)?)));
        }
        let path = condition
            .path
            .as_deref()
            .ok_or("a condition needs a path")?;
        let number = |v: &Value| decimal(v).ok_or_else(|| format!("{v} is not a number"));
        use std::cmp::Ordering::{Greater, Less};
        let test = if let Some(value) = &condition.equals {
            Test::Equals(value.clone())
        } else if let Some(values) = &condition.one_of {
            Test::In(values.clone())
        } else if let Some(exists) = condition.exists {
            Test::Exists(exists)
        } else if let Some(pattern) = &condition.matches {
            Test::Matches(compile_regex(pattern)?)
        } else if let Some(v) = &condition.gt {
            Test::Compare(Greater, false, number(v)?)
        } else if let Some(v) = &condition.gte {
            Test::Compare(Greater, true, number(v)?)
        } else if let Some(v) = &condition.lt {
            Test::Compare(Less, false, number(v)?)
        } else if let Some(v) = &condition.lte {
            Test::Compare(Less, true, number(v)?)
        } else {
            return Err("a condition's path needs a test".into());
        };
        Ok(Self::Test {
            slot: slot_of(path),
            test,
        })
    }

    pub fn holds(&self, lookup: &Lookup<'_>) -> bool {
        match self {
            Self::All(all) => all.iter().all(|c| c.holds(lookup)),
            Self::Any(any) => any.iter().any(|c| c.holds(lookup)),
            Self::Not(inner) => !inner.holds(lookup),
            Self::Test { slot, test } => {
                let value = lookup(*slot).filter(|v| schemas::rule::is_present(v));
                match (test, value) {
                    (Test::Exists(wanted), value) => value.is_some() == *wanted,
                    (_, None) => false,
                    (Test::Equals(expected), Some(value)) => same(&value, expected),
                    (Test::In(list), Some(value)) => list.iter().any(|e| same(&value, e)),
                    (Test::Matches(pattern), Some(value)) => {
                        text(&value).is_some_and(|t| pattern.is_match(&t))
                    }
                    (Test::Compare(side, or_equal, bound), Some(value)) => decimal(&value)
                        .is_some_and(|v| {
                            let ordering = v.cmp(bound);
                            ordering == *side || (*or_equal && ordering.is_eq())
                        }),
                }
            }
        }
    }
}

/// A pattern with a bound on its compiled size (a definition cannot make the
/// processor build a huge automaton).
pub fn compile_regex(pattern: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("not a regular expression: {e}"))
}

/// Text of a scalar: strings trimmed, numbers and booleans as written.
pub fn text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => Some(Cow::Borrowed(s.trim())),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        _ => None,
    }
}

/// Equal as numbers when both are numbers, else as text ignoring case.
fn same(value: &Value, expected: &Value) -> bool {
    if let (Some(a), Some(b)) = (decimal(value), decimal(expected)) {
        return a == b;
    }
    match (text(value), text(expected)) {
        (Some(a), Some(b)) => a.to_lowercase() == b.to_lowercase(),
        _ => value == expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn holds(condition: Value, record: &Value) -> bool {
        let condition: Condition = serde_json::from_value(condition).unwrap();
        let mut paths: Vec<String> = Vec::new();
        let compiled = Compiled::of(&condition, &mut |p: &str| {
            paths.push(p.to_owned());
            paths.len() - 1
        })
        .unwrap();
        let parsed: Vec<_> = paths
            .iter()
            .map(|p| schemas::path::FieldPath::parse(p).unwrap())
            .collect();
        compiled.holds(&|slot: usize| parsed[slot].lookup(record))
    }

    #[test]
    fn each_test_and_combinator() {
        let record = json!({"status": " Sale ", "duration": "45", "campaign": "QA", "tags": [], "caller": "+15550100"});
        assert!(holds(json!({"path": "status", "equals": "sale"}), &record));
        assert!(holds(json!({"path": "duration", "equals": 45}), &record));
        assert!(holds(
            json!({"path": "campaign", "in": ["Test", "qa"]}),
            &record
        ));
        assert!(holds(json!({"path": "tags", "exists": false}), &record));
        assert!(holds(json!({"path": "missing", "exists": false}), &record));
        assert!(!holds(json!({"path": "missing", "equals": "x"}), &record));
        assert!(holds(
            json!({"path": "caller", "matches": "^\\+1555"}),
            &record
        ));
        assert!(holds(json!({"path": "duration", "gte": 45}), &record));
        assert!(!holds(json!({"path": "duration", "gt": "45.0"}), &record));
        assert!(holds(json!({"path": "duration", "lt": 45.5}), &record));
        assert!(
            !holds(json!({"path": "status", "lt": 5}), &record),
            "text is no number"
        );
        assert!(holds(
            json!({"all": [{"path": "campaign", "equals": "QA"}, {"not": {"path": "buyer", "exists": true}}]}),
            &record
        ));
        assert!(holds(
            json!({"any": [{"path": "campaign", "equals": "x"}, {"path": "status", "equals": "SALE"}]}),
            &record
        ));
    }
}
