use std::borrow::Cow;
use std::collections::HashMap;

use chrono_tz::Tz;
use phonenumber::country::Id as Region;
use schemas::integration::CanonicalField;
use schemas::rule::{is_present, ValueSource};
use schemas::rule_reader::RuleReader;
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
    /// The value to coerce: the source's (`raw`, as the mapping's reader found it),
    /// else the default, then through the map. Borrowed where it can be.
    pub fn value<'v>(
        &'v self,
        raw: Option<Cow<'v, serde_json::Value>>,
    ) -> Option<Cow<'v, serde_json::Value>> {
        let value = raw
            .filter(|v| is_present(v))
            .or_else(|| self.default.as_ref().map(Cow::Borrowed))?;
        let Some(map) = &self.map else {
            return Some(value);
        };
        // Folded to lower case only when folding changes it: most values are matched
        // without an allocation.
        let owned: String;
        let key: &str = match &*value {
            serde_json::Value::String(s) if !folds_to_itself(s.trim()) => {
                owned = s.trim().to_lowercase();
                &owned
            }
            serde_json::Value::String(s) => s.trim(),
            serde_json::Value::Number(n) => {
                owned = n.to_string();
                &owned
            }
            serde_json::Value::Bool(b) => {
                if *b {
                    "true"
                } else {
                    "false"
                }
            }
            _ => return Some(value),
        };
        Some(map.get(key).map_or(value, Cow::Borrowed))
    }
}

/// Whether `text.to_lowercase()` is `text`: every char its own lower case (the one
/// rule `str::to_lowercase` adds, a final sigma, applies to an upper-case char).
fn folds_to_itself(text: &str) -> bool {
    text.chars().all(|c| {
        let mut lower = c.to_lowercase();
        lower.next() == Some(c) && lower.next().is_none()
    })
}

/// An integration ready to map records: rules parsed, zone and region resolved.
#[derive(Debug, Clone)]
pub struct CompiledMapping {
    pub integration: Integration,
    pub zone: Tz,
    pub region: Region,
    pub rules: Vec<CompiledRule>,
    /// The rules, in order, compiled into one read of a record.
    pub reader: RuleReader,
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
        let reader = RuleReader::of(rules.iter().map(|r| &r.source));
        Ok(Self {
            integration: integration.clone(),
            zone,
            region,
            reader,
            rules,
            decimal_separator: integration.decimal_separator,
            decimal_comma_likely: schemas::integration::decimal_comma_likely(
                &integration.currency,
                &integration.default_region,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_value_is_folded_exactly_when_folding_changes_it(text in "\\PC{0,8}") {
            prop_assert_eq!(folds_to_itself(&text), text.to_lowercase() == text);
        }
    }

    #[test]
    fn title_case_letters_and_sigma_are_folded() {
        for text in ["ǅ", "ΑΣ", "Ab", "ß"] {
            assert_eq!(folds_to_itself(text), text.to_lowercase() == text, "{text}");
        }
    }
}
