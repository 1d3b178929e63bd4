use std::borrow::Cow;
use std::collections::HashMap;

use chrono_tz::Tz;
use phonenumber::country::Id as Region;
use schemas::integration::CanonicalField;
use schemas::path_tree::PathTree;
use schemas::rule::{is_present, ValueSource};
use schemas::{Integration, IntegrationError};

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
    /// Borrowed from the record or the rule where it can be.
    pub fn value<'v>(
        &'v self,
        record: &'v serde_json::Value,
    ) -> Option<Cow<'v, serde_json::Value>> {
        let value = self
            .source
            .extract(record)
            .filter(|v| is_present(v))
            .or_else(|| self.default.as_ref().map(Cow::Borrowed))?;
        let Some(map) = &self.map else {
            return Some(value);
        };
        let key = match &*value {
            serde_json::Value::String(s) => s.trim().to_lowercase(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => return Some(value),
        };
        Some(map.get(&key).map_or(value, Cow::Borrowed))
    }
}

/// An integration ready to map records: rules parsed, zone and region resolved.
#[derive(Debug, Clone)]
pub struct CompiledMapping {
    pub integration: Integration,
    pub zone: Tz,
    pub region: Region,
    pub rules: Vec<CompiledRule>,
    /// The parts of a record the rules read: all a record is parsed into.
    pub reads: PathTree,
    /// How the partner writes numbers in text.
    pub decimal_separator: schemas::integration::DecimalSeparator,
    /// Whether `1.234` under the `.` convention is worth a warning (a currency or
    /// region where partners write decimal commas).
    pub decimal_comma_likely: bool,
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
            let source = ValueSource::compile(rule)
                .map_err(|e| invalid(&at, e.to_string()))?
                .ok_or_else(|| {
                    invalid(
                        &at,
                        "needs one of `path`, `first_of`, `join` or `static`".into(),
                    )
                })?;
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
        let reads = PathTree::of(rules.iter().flat_map(|r| r.source.paths()));
        Ok(Self {
            integration: integration.clone(),
            zone,
            region,
            rules,
            reads,
            decimal_separator: integration.decimal_separator,
            decimal_comma_likely: schemas::integration::decimal_comma_likely(
                &integration.currency,
                &integration.default_region,
            ),
        })
    }
}
