//! `extract`: a regular expression searched in the value's text; its first group
//! (or the whole match) is the value (`"ext\\.?\\s*(\\d+)"` on `"ext. 204"` is
//! `204`). No match: the field is absent.

use std::borrow::Cow;

use regex::Regex;
use serde_json::Value;

use super::{Step, StepContext};
use crate::mapping::condition::{compile_regex, text};

#[derive(Debug)]
pub struct Extract(Regex);

impl Extract {
    pub fn new(pattern: &str) -> Result<Self, String> {
        compile_regex(pattern).map(Self)
    }
}

impl Step for Extract {
    fn apply<'v>(
        &self,
        value: Cow<'v, Value>,
        _ctx: &StepContext,
    ) -> Result<Option<Cow<'v, Value>>, String> {
        let Some(text) = text(&value) else {
            return Err("extract: the value is not text".into());
        };
        let Some(captures) = self.0.captures(&text) else {
            return Ok(None);
        };
        let found = captures
            .get(1)
            .or_else(|| captures.get(0))
            .map_or("", |m| m.as_str());
        Ok(Some(Cow::Owned(Value::String(found.to_owned()))))
    }
}
