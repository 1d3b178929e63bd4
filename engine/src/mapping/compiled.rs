use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use super::condition::Compiled;
use super::steps::Step;
use schemas::path::FieldPath;

use chrono_tz::Tz;
use phonenumber::country::Id as Region;
use schemas::attribute::AttributeType;
use schemas::integration::{CanonicalField, FieldRule};
use schemas::rule::{is_present, ValueSource};
use schemas::rule_reader::RuleReader;
use schemas::{Integration, IntegrationError};

/// What a rule fills: a canonical field, or a custom attribute of a type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Field(CanonicalField),
    Attribute { name: String, kind: AttributeType },
}

impl Target {
    /// How errors and previews name it: `payout`, `attributes.recordingUrl`.
    pub fn name(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Self::Field(field) => field.name().into(),
            Self::Attribute { name, .. } => format!("attributes.{name}").into(),
        }
    }

    pub fn is_required(&self) -> bool {
        matches!(self, Self::Field(field) if field.is_required())
    }
}

#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub target: Target,
    pub source: ValueSource,
    pub default: Option<serde_json::Value>,
    /// Keys folded to lower case.
    pub map: Option<HashMap<String, serde_json::Value>>,
    pub format: Option<String>,
    /// The rule applies only when this holds.
    pub when: Option<Compiled>,
    /// The first case that holds gives the value instead of `source`.
    pub cases: Vec<(Compiled, CaseValue)>,
    /// What is done to the value after it is found (compute, between, extract,
    /// replace), in order.
    pub steps: Vec<Arc<dyn Step>>,
}

/// A case's value: one of the mapping's extra paths, by slot, or a constant.
#[derive(Debug, Clone)]
pub enum CaseValue {
    Slot(usize),
    Static(serde_json::Value),
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

/// Where a rule's value comes from for one record.
pub enum Chosen<'v> {
    /// `when` does not hold: the field is as if absent.
    Skipped,
    /// A case holds: its value.
    Case(Option<Cow<'v, serde_json::Value>>),
    /// The rule's own source.
    Source,
}

impl CompiledRule {
    /// Whether the rule applies to this record, and whether a case gives its value.
    pub fn chosen<'v>(&'v self, lookup: &super::condition::Lookup<'v>) -> Chosen<'v> {
        if self.when.as_ref().is_some_and(|w| !w.holds(lookup)) {
            return Chosen::Skipped;
        }
        for (when, value) in &self.cases {
            if when.holds(lookup) {
                return Chosen::Case(match value {
                    CaseValue::Slot(slot) => lookup(*slot),
                    CaseValue::Static(value) => Some(Cow::Borrowed(value)),
                });
            }
        }
        Chosen::Source
    }

    /// `value` through the rule's steps (compute, between, extract, replace).
    pub fn stepped<'v>(
        &self,
        value: Option<Cow<'v, serde_json::Value>>,
        ctx: &super::steps::StepContext,
    ) -> Result<Option<Cow<'v, serde_json::Value>>, String> {
        let mut value = value;
        for step in &self.steps {
            value = match value {
                Some(v) => step.apply(v, ctx)?,
                None => return Ok(None),
            };
        }
        Ok(value)
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
    /// Paths read by conditions and cases, after the rules' in the reader (slot
    /// `n` is reader rule `rules.len() + n`).
    pub extra: Vec<ValueSource>,
    /// `mapping.filters`: the first that holds drops the record under its reason.
    pub filters: Vec<(String, Compiled)>,
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
        let mut extra_paths: Vec<String> = Vec::new();
        let mut slot_of = |path: &str| match extra_paths.iter().position(|p| p == path) {
            Some(slot) => slot,
            None => {
                extra_paths.push(path.to_owned());
                extra_paths.len() - 1
            }
        };
        let mut filters = Vec::new();
        for (i, filter) in integration.mapping.filters.iter().enumerate() {
            let when = Compiled::of(&filter.when, &mut slot_of)
                .map_err(|e| invalid(&format!("mapping.filters[{i}].when"), e))?;
            filters.push((filter.reason.trim().to_owned(), when));
        }
        let targets = integration
            .mapping
            .fields
            .iter()
            .map(|(field, rule)| (Target::Field(*field), rule))
            .chain(integration.mapping.attributes.iter().map(|(name, rule)| {
                let kind = rule.value_type.unwrap_or_default();
                let name = name.clone();
                (Target::Attribute { name, kind }, rule)
            }));
        for (target, rule) in targets {
            let at = match &target {
                Target::Field(field) => format!("mapping.fields.{}", field.name()),
                Target::Attribute { name, .. } => format!("mapping.attributes.{name}"),
            };
            let compiled = compile_rule(target, rule, &at, &mut slot_of)
                .map_err(|(place, problem)| invalid(&place, problem))?;
            rules.push(compiled);
        }
        let extra = extra_paths
            .iter()
            .map(|p| FieldPath::parse(p).map(ValueSource::Path))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("mapping", e.to_string()))?;
        let reader = RuleReader::of(rules.iter().map(|r| &r.source).chain(&extra));
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
            extra,
            filters,
        })
    }
}

/// One rule ready to run, at `at` (`mapping.fields.payout`); its conditions' and
/// cases' paths get slots from `slot_of`. An error is (place, problem).
fn compile_rule(
    target: Target,
    rule: &FieldRule,
    at: &str,
    slot_of: &mut dyn FnMut(&str) -> usize,
) -> Result<CompiledRule, (String, String)> {
    let has_cases = rule.cases.as_ref().is_some_and(|c| !c.is_empty());
    let source = match ValueSource::compile(rule).map_err(|e| (at.to_owned(), e.to_string()))? {
        Some(source) => source,
        // Only cases: when none holds, the field is absent.
        None if has_cases => ValueSource::Static(serde_json::Value::Null),
        None => {
            return Err((
                at.to_owned(),
                "needs one of `path`, `first_of`, `join` or `static`".into(),
            ))
        }
    };
    let when = rule
        .when
        .as_ref()
        .map(|w| Compiled::of(w, slot_of))
        .transpose()
        .map_err(|e| (format!("{at}.when"), e))?;
    let mut cases = Vec::new();
    for (i, case) in rule.cases.iter().flatten().enumerate() {
        let when =
            Compiled::of(&case.when, slot_of).map_err(|e| (format!("{at}.cases[{i}].when"), e))?;
        let value = match (&case.path, &case.static_value) {
            (Some(path), _) => CaseValue::Slot(slot_of(path)),
            (None, Some(value)) => CaseValue::Static(value.clone()),
            (None, None) => CaseValue::Static(serde_json::Value::Null),
        };
        cases.push((when, value));
    }
    let steps = super::steps::steps(rule).map_err(|e| (at.to_owned(), e))?;
    Ok(CompiledRule {
        target,
        source,
        default: rule.default.clone(),
        map: rule.map.as_ref().map(|map| {
            map.iter()
                .map(|(k, v)| (k.trim().to_lowercase(), v.clone()))
                .collect()
        }),
        format: rule.format.clone(),
        when,
        cases,
        steps,
    })
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
