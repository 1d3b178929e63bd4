//! `replace`: every match of a regular expression in the value's text replaced
//! (`$1`, `${name}` are its groups).

use std::borrow::Cow;

use regex::Regex;
use serde_json::Value;

use super::{Step, StepContext};
use crate::mapping::condition::{compile_regex, text};

#[derive(Debug)]
pub struct Replace {
    pattern: Regex,
    with: String,
}

impl Replace {
    pub fn new(pattern: &str, with: &str) -> Result<Self, String> {
        Ok(Self {
            pattern: compile_regex(pattern)?,
            with: with.to_owned(),
        })
    }
}

impl Step for Replace {
    fn apply<'v>(
        &self,
        value: Cow<'v, Value>,
        _ctx: &StepContext,
    ) -> Result<Option<Cow<'v, Value>>, String> {
        let Some(text) = text(&value) else {
            return Err("replace: the value is not text".into());
        };
        let replaced = self
            .pattern
            .replace_all(&text, self.with.as_str())
            .into_owned();
        Ok(Some(Cow::Owned(Value::String(replaced))))
    }
}
