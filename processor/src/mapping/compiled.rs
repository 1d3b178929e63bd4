use std::collections::HashMap;

use chrono_tz::Tz;
use phonenumber::country::Id as Region;
use schemas::integration::CanonicalField;
use schemas::{FieldPath, Integration, IntegrationError};

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

    /// The raw value for this rule in `record`; `None` when absent.
    pub fn extract(&self, record: &serde_json::Value) -> Option<serde_json::Value> {
        match self {
            ValueSource::Path(path) => path.lookup(record),
            ValueSource::FirstOf(paths) => paths
                .iter()
                .filter_map(|p| p.lookup(record))
                .find(is_present),
            ValueSource::Static(value) => Some(value.clone()),
            ValueSource::Join { paths, separator } => {
                let mut parts = Vec::new();
                for value in paths.iter().filter_map(|p| p.lookup(record)) {
                    match value {
                        // A wildcard path contributes every element.
                        serde_json::Value::Array(items) => {
                            parts.extend(items.iter().filter_map(part_text))
                        }
                        other => parts.extend(part_text(&other)),
                    }
                }
                (!parts.is_empty()).then(|| serde_json::Value::String(parts.join(separator)))
            }
        }
    }
}

/// Null, blank text and empty arrays count as "not sent".
fn is_present(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => false,
        serde_json::Value::String(s) => !s.trim().is_empty(),
        serde_json::Value::Array(items) => !items.is_empty(),
        _ => true,
    }
}

fn part_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub field: CanonicalField,
    pub source: ValueSource,
    pub default: Option<serde_json::Value>,
    /// Keys folded to lower case.
    pub map: Option<HashMap<String, serde_json::Value>>,
    pub format: Option<String>,
}

impl CompiledRule {
    /// The value to coerce: the source's, else the default, then through the map.
    pub fn value(&self, record: &serde_json::Value) -> Option<serde_json::Value> {
        let value = self
            .source
            .extract(record)
            .filter(is_present)
            .or_else(|| self.default.clone())?;
        let Some(map) = &self.map else {
            return Some(value);
        };
        let key = match &value {
            serde_json::Value::String(s) => s.trim().to_lowercase(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => return Some(value),
        };
        Some(map.get(&key).cloned().unwrap_or(value))
    }
}

/// An integration ready to map records: rules parsed, zone and region resolved.
#[derive(Debug, Clone)]
pub struct CompiledMapping {
    pub integration: Integration,
    pub zone: Tz,
    pub region: Region,
    pub rules: Vec<CompiledRule>,
}

impl CompiledMapping {
    pub fn compile(integration: &Integration) -> Result<Self, IntegrationError> {
        integration.validate()?;
        let invalid = |field: &str, problem: String| IntegrationError::Invalid {
            client_id: integration.client_id.to_string(),
            field: field.to_owned(),
            problem,
        };
        let zone: Tz = integration
            .timezone
            .parse()
            .map_err(|_| invalid("timezone", "not an IANA zone".into()))?;
        let region = schemas::phone::region(&integration.default_region)
            .map_err(|e| invalid("default_region", e.to_string()))?;
        let mut rules = Vec::with_capacity(integration.mapping.fields.len());
        for (field, rule) in &integration.mapping.fields {
            let at = format!("mapping.fields.{}", field.name());
            let parse = |p: &String| FieldPath::parse(p).map_err(|e| invalid(&at, e.to_string()));
            let source = if let Some(path) = &rule.path {
                ValueSource::Path(parse(path)?)
            } else if let Some(paths) = &rule.first_of {
                ValueSource::FirstOf(paths.iter().map(parse).collect::<Result<_, _>>()?)
            } else if let Some(paths) = &rule.join {
                ValueSource::Join {
                    paths: paths.iter().map(parse).collect::<Result<_, _>>()?,
                    separator: rule.separator.clone().unwrap_or_else(|| " ".to_owned()),
                }
            } else {
                ValueSource::Static(rule.static_value.clone().unwrap_or_default())
            };
            rules.push(CompiledRule {
                field: *field,
                source,
                default: rule.default.clone(),
                map: rule.map.as_ref().map(|map| {
                    map.iter()
                        .map(|(k, v)| (k.trim().to_lowercase(), v.clone()))
                        .collect()
                }),
                format: rule.format.clone(),
            });
        }
        Ok(Self {
            integration: integration.clone(),
            zone,
            region,
            rules,
        })
    }
}
