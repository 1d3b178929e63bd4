//! Where a mapped field's value is found in a partner record: the `path`,
//! `first_of`, `join` and `static` rules with their paths parsed once. Used by the
//! processor to map records and by ingest to find a record's partner call id (its
//! partition key), so both read records the same way.

use std::borrow::Cow;

use crate::integration::FieldRule;
use crate::path::{FieldPath, PathError};

/// Where a field's value comes from, with paths already parsed.
#[derive(Debug, Clone)]
pub enum ValueSource {
    Path(FieldPath),
    FirstOf(Vec<FieldPath>),
    Join {
        paths: Vec<FieldPath>,
        separator: String,
    },
    Static(serde_json::Value),
}

impl ValueSource {
    /// How the rule reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            ValueSource::Path(path) => format!("path {path}"),
            ValueSource::FirstOf(paths) => {
                let list: Vec<String> = paths.iter().map(ToString::to_string).collect();
                format!("first_of [{}]", list.join(", "))
            }
            ValueSource::Join { paths, .. } => {
                let list: Vec<String> = paths.iter().map(ToString::to_string).collect();
                format!("join [{}]", list.join(", "))
            }
            ValueSource::Static(_) => "static value".to_owned(),
        }
    }

    /// The raw value for this rule in `record`; `None` when absent. Borrowed from
    /// the record or the rule where it can be.
    pub fn extract<'v>(
        &'v self,
        record: &'v serde_json::Value,
    ) -> Option<Cow<'v, serde_json::Value>> {
        self.extract_with(|_, path| path.lookup(record))
    }

    /// The raw value for this rule, each of its paths (`n`th of [`Self::paths`])
    /// looked up by `lookup`: how a record read into one value per path is mapped.
    pub fn extract_with<'v>(
        &'v self,
        lookup: impl Fn(usize, &'v FieldPath) -> Option<Cow<'v, serde_json::Value>>,
    ) -> Option<Cow<'v, serde_json::Value>> {
        match self {
            ValueSource::Path(path) => lookup(0, path),
            ValueSource::FirstOf(paths) => paths
                .iter()
                .enumerate()
                .filter_map(|(n, p)| lookup(n, p))
                .find(|v| is_present(v)),
            ValueSource::Static(value) => Some(Cow::Borrowed(value)),
            ValueSource::Join { paths, separator } => {
                let mut parts = Vec::new();
                for value in paths.iter().enumerate().filter_map(|(n, p)| lookup(n, p)) {
                    match &*value {
                        // A wildcard path contributes every element.
                        serde_json::Value::Array(items) => {
                            parts.extend(items.iter().filter_map(part_text))
                        }
                        other => parts.extend(part_text(other)),
                    }
                }
                (!parts.is_empty())
                    .then(|| Cow::Owned(serde_json::Value::String(parts.join(separator))))
            }
        }
    }

    /// Every path the rule reads.
    pub fn paths(&self) -> &[FieldPath] {
        match self {
            ValueSource::Path(path) => std::slice::from_ref(path),
            ValueSource::FirstOf(paths) | ValueSource::Join { paths, .. } => paths,
            ValueSource::Static(_) => &[],
        }
    }
}

/// Null, blank text and empty arrays count as "not sent".
pub fn is_present(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => false,
        serde_json::Value::String(s) => !s.trim().is_empty(),
        serde_json::Value::Array(items) => !items.is_empty(),
        _ => true,
    }
}

/// A value as identifier text: trimmed strings, numbers and booleans as written.
pub fn part_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl ValueSource {
    /// Parses a rule's paths. `Ok(None)` for a rule with no source (refused by
    /// `Integration::validate`).
    pub fn compile(rule: &FieldRule) -> Result<Option<Self>, PathError> {
        let parse = |paths: &Vec<String>| {
            paths
                .iter()
                .map(|p| FieldPath::parse(p))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Some(if let Some(path) = &rule.path {
            ValueSource::Path(FieldPath::parse(path)?)
        } else if let Some(paths) = &rule.first_of {
            ValueSource::FirstOf(parse(paths)?)
        } else if let Some(paths) = &rule.join {
            ValueSource::Join {
                paths: parse(paths)?,
                separator: rule.separator.clone().unwrap_or_else(|| " ".to_owned()),
            }
        } else if let Some(value) = &rule.static_value {
            ValueSource::Static(value.clone())
        } else {
            return Ok(None);
        }))
    }
}
