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
    /// Text with paths in it: `"{publisher}/{sub1}"`. Absent when any path is.
    Template {
        pieces: Vec<TemplatePiece>,
        paths: Vec<FieldPath>,
    },
    /// Several values, as an array in order (a path's value, `null` when absent, or
    /// a constant): the operands of a `compute` or the two instants of a `between`,
    /// combined by the mapping.
    Operands {
        operands: Vec<Operand>,
        paths: Vec<FieldPath>,
    },
}

#[derive(Debug, Clone)]
pub enum TemplatePiece {
    Text(String),
    /// The `n`th of the template's paths.
    Path(usize),
}

#[derive(Debug, Clone)]
pub enum Operand {
    /// The `n`th of the source's paths.
    Path(usize),
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
            ValueSource::Template { paths, .. } => {
                let list: Vec<String> = paths.iter().map(ToString::to_string).collect();
                format!("template of [{}]", list.join(", "))
            }
            ValueSource::Operands { paths, .. } => {
                let list: Vec<String> = paths.iter().map(ToString::to_string).collect();
                format!("computed from [{}]", list.join(", "))
            }
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
            ValueSource::Template { pieces, paths } => {
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        TemplatePiece::Text(text) => out.push_str(text),
                        TemplatePiece::Path(n) => {
                            let value = lookup(*n, &paths[*n])?;
                            out.push_str(&part_text(&value)?);
                        }
                    }
                }
                Some(Cow::Owned(serde_json::Value::String(out)))
            }
            ValueSource::Operands { operands, paths } => {
                Some(Cow::Owned(serde_json::Value::Array(
                    operands
                        .iter()
                        .map(|operand| match operand {
                            Operand::Path(n) => lookup(*n, &paths[*n])
                                .map_or(serde_json::Value::Null, Cow::into_owned),
                            Operand::Static(value) => value.clone(),
                        })
                        .collect(),
                )))
            }
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
            ValueSource::FirstOf(paths)
            | ValueSource::Join { paths, .. }
            | ValueSource::Template { paths, .. }
            | ValueSource::Operands { paths, .. } => paths,
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
        } else if let Some(text) = &rule.template {
            template(text)?
        } else if let Some(compute) = &rule.compute {
            operands(
                compute
                    .args
                    .iter()
                    .map(|a| (a.path.as_deref(), a.static_value.as_ref())),
            )?
        } else if let Some(between) = &rule.between {
            operands([
                (Some(between.start.as_str()), None),
                (Some(between.end.as_str()), None),
            ])?
        } else {
            return Ok(None);
        }))
    }
}

/// `"{a}-{b}"`: text and `{path}` holes (`{{` and `}}` are braces).
fn template(text: &str) -> Result<ValueSource, PathError> {
    let bad = |position, problem| PathError {
        path: text.to_owned(),
        position,
        problem,
    };
    let split = crate::braces::split(text)
        .map_err(|_| bad(0, "unbalanced `{` or `}` (write `{{` and `}}` for braces)"))?;
    let (mut pieces, mut paths) = (Vec::new(), Vec::new());
    for piece in split {
        match piece {
            crate::braces::Braced::Text(text) => pieces.push(TemplatePiece::Text(text)),
            crate::braces::Braced::Hole { inner, at } => {
                paths.push(
                    FieldPath::parse(inner.trim())
                        .map_err(|_| bad(at, "a `{…}` must hold a path"))?,
                );
                pieces.push(TemplatePiece::Path(paths.len() - 1));
            }
        }
    }
    if paths.is_empty() {
        return Err(bad(
            0,
            "a template needs at least one `{path}` (use `static` for fixed text)",
        ));
    }
    Ok(ValueSource::Template { pieces, paths })
}

/// Operands from (path, constant) pairs, each one or the other.
fn operands<'a>(
    items: impl IntoIterator<Item = (Option<&'a str>, Option<&'a serde_json::Value>)>,
) -> Result<ValueSource, PathError> {
    let (mut operands, mut paths) = (Vec::new(), Vec::new());
    for (path, constant) in items {
        match (path, constant) {
            (Some(path), _) => {
                paths.push(FieldPath::parse(path)?);
                operands.push(Operand::Path(paths.len() - 1));
            }
            (None, Some(value)) => operands.push(Operand::Static(value.clone())),
            (None, None) => operands.push(Operand::Static(serde_json::Value::Null)),
        }
    }
    Ok(ValueSource::Operands { operands, paths })
}

#[cfg(test)]
mod template_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_and_operands_read_their_paths() {
        let record = json!({"pub": "P1", "sub": 7, "a": "2.5"});
        let source = template("{pub}/{sub}").unwrap();
        assert_eq!(source.extract(&record).unwrap().into_owned(), json!("P1/7"));
        assert!(template("{pub}/{missing}")
            .unwrap()
            .extract(&record)
            .is_none());
        assert!(template("no holes").is_err());
        assert!(template("a } b").is_err());
        let static_three = json!(3);
        let source = operands([
            (Some("a"), None),
            (None, Some(&static_three)),
            (Some("nope"), None),
        ])
        .unwrap();
        assert_eq!(
            source.extract(&record).unwrap().into_owned(),
            json!(["2.5", 3, null])
        );
    }
}
