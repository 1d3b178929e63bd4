//! Integration definitions: who the partner is, which account it belongs to, and how
//! its records map onto the canonical call. Validated when loaded, with errors that
//! name the integration and the rule.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::call::source_text;
use crate::path::FieldPath;
use crate::{ClientId, Source};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IntegrationError {
    #[error("integration {client_id}: {field}: {problem}")]
    Invalid {
        client_id: String,
        field: String,
        problem: String,
    },
}

/// One partner feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Integration {
    /// Appears in the webhook URL: `/api/integrations/webhook/{client_id}`.
    pub client_id: ClientId,
    /// The platform account whose reporting these calls belong to.
    pub account: String,
    /// Human name for dashboards.
    pub name: String,
    /// How records arrive.
    #[serde(with = "source_text")]
    pub source: Source,
    /// Disabled integrations refuse new records (webhooks answer 403).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Increases with every change; rows record the mapping version they were made with.
    pub version: u32,
    /// ISO region for numbers written without a country code.
    #[serde(default = "default_region")]
    pub default_region: String,
    /// IANA zone applied to partner timestamps that carry no offset.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Currency of amounts that do not name one.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// How the partner writes numbers in text: `"."` (`1,234.50`, the default) or
    /// `","` (`1.234,50`, as European partners and spreadsheets do). A value that only
    /// makes sense in the other convention is a field error, never another number.
    #[serde(default, skip_serializing_if = "DecimalSeparator::is_default")]
    pub decimal_separator: DecimalSeparator,
    /// How its CSV files are written (imports): separator, quoting, header row,
    /// encoding. Defaults: detected separator, RFC 4180 quoting, UTF-8.
    #[serde(
        default,
        skip_serializing_if = "crate::csv_dialect::CsvDialect::is_default"
    )]
    pub csv: crate::csv_dialect::CsvDialect,
    pub mapping: Mapping,
    /// Repeat, qualification and CallMatrix-duplicate rules; defaults when absent.
    #[serde(default)]
    pub enrichment: crate::enrichment::EnrichmentRules,
    /// How webhook requests prove they come from the partner. Absent: any request
    /// to the integration's URL is accepted (the URL is then the only secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<crate::webhook_auth::WebhookAuth>,
    /// Webhook requests per second; beyond it, 429 with `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::webhook_auth::RateLimit>,
    /// The partner API to poll, for integrations whose records are fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<crate::poll::PollConfig>,
    /// Deleted: the definition is gone (no records accepted, nothing listed), but the
    /// client id stays reserved to its account, so no other account can take it over
    /// along with the rows, dead letters and events already keyed by it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

impl Integration {
    /// The marker a deletion leaves: a new version, disabled, deleted, without
    /// credentials.
    pub fn deletion(&self) -> Self {
        Self {
            version: self.version.saturating_add(1),
            enabled: false,
            deleted: true,
            auth: None,
            rate_limit: None,
            poll: None,
            ..self.clone()
        }
    }
}

/// The decimal mark of numbers written as text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DecimalSeparator {
    /// `1,234.50`.
    #[default]
    #[serde(rename = ".")]
    Dot,
    /// `1.234,50`.
    #[serde(rename = ",")]
    Comma,
}

impl DecimalSeparator {
    pub fn is_default(&self) -> bool {
        *self == Self::Dot
    }
}

/// Whether an integration's currency or default region suggests a partner that
/// writes decimal commas: then `1.234` under the `.` convention deserves a warning.
pub fn decimal_comma_likely(currency: &str, region: &str) -> bool {
    const CURRENCIES: &[&str] = &[
        "EUR", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF", "RON", "BGN", "TRY", "RUB", "UAH", "ISK",
        "BRL", "ARS", "CLP", "COP", "IDR",
    ];
    const REGIONS: &[&str] = &[
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IS", "IT",
        "LV", "LT", "LU", "NL", "NO", "PL", "PT", "RO", "RU", "RS", "SK", "SI", "ES", "SE", "TR",
        "UA", "BR", "AR", "CL", "CO", "ID",
    ];
    CURRENCIES.contains(&currency.to_ascii_uppercase().as_str())
        || REGIONS.contains(&region.to_ascii_uppercase().as_str())
}

fn enabled_by_default() -> bool {
    true
}
fn default_region() -> String {
    "US".to_owned()
}
fn default_timezone() -> String {
    "UTC".to_owned()
}
fn default_currency() -> String {
    "USD".to_owned()
}

/// The canonical fields a mapping can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CanonicalField {
    ExternalId,
    Caller,
    Called,
    StartedAt,
    DurationS,
    ConnectedDurationS,
    Connected,
    Payout,
    Revenue,
    Currency,
    Zip,
    City,
    State,
    Campaign,
    Publisher,
    Buyer,
    Tags,
    Status,
    CmCallId,
}

impl CanonicalField {
    pub fn name(self) -> &'static str {
        match self {
            Self::ExternalId => "external_id",
            Self::Caller => "caller",
            Self::Called => "called",
            Self::StartedAt => "started_at",
            Self::DurationS => "duration_s",
            Self::ConnectedDurationS => "connected_duration_s",
            Self::Connected => "connected",
            Self::Payout => "payout",
            Self::Revenue => "revenue",
            Self::Currency => "currency",
            Self::Zip => "zip",
            Self::City => "city",
            Self::State => "state",
            Self::Campaign => "campaign",
            Self::Publisher => "publisher",
            Self::Buyer => "buyer",
            Self::Tags => "tags",
            Self::Status => "status",
            Self::CmCallId => "cm_call_id",
        }
    }

    /// A record without these cannot become a call and is dead-lettered.
    pub fn is_required(self) -> bool {
        matches!(self, Self::Caller | Self::StartedAt)
    }
}

/// Partner shape → canonical call.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub fields: BTreeMap<CanonicalField, FieldRule>,
    /// Records dropped on purpose (test calls, pre-call pings, another campaign's
    /// traffic): the first filter whose condition holds drops the record, counted
    /// under its `reason`; never a dead letter, never silent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Filter>,
    /// Custom attributes by name (`recordingUrl`, `tag:User:sub5`): any rule a field
    /// takes, plus its `type` (string, number, boolean or time; default string).
    /// At most [`crate::attribute::MAX_ATTRIBUTES`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, FieldRule>,
}

/// Most filters one integration has.
pub const MAX_FILTERS: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Why records are dropped (`test call`, `pre-call ping`): what the count is kept
    /// under. At most 64 characters.
    pub reason: String,
    pub when: crate::condition::Condition,
}

/// One value a rule picks when its condition holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub when: crate::condition::Condition,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "static")]
    pub static_value: Option<serde_json::Value>,
}

/// A regular-expression replacement on a value's text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replace {
    pub pattern: String,
    /// The replacement; `$1` or `${name}` are the pattern's groups.
    pub with: String,
}

/// Arithmetic on exact decimals (four places, as money), never floats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compute {
    pub op: ComputeOp,
    /// Two or more operands, left to right.
    pub args: Vec<ComputeArg>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComputeOp {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComputeArg {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "static")]
    pub static_value: Option<serde_json::Value>,
}

/// The seconds from one instant to another (a duration from start and end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Between {
    pub start: String,
    pub end: String,
}

/// How one canonical field is filled: from a path in the record, or a fixed value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    /// Where the value sits: `call.caller.number`, `legs[0].to`, `["Caller Phone"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Fallbacks: the first of these paths that holds a non-blank value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_of: Option<Vec<String>>,
    /// Several paths joined into one text value with `separator` (e.g. a date column
    /// and a time column); missing parts are skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<Vec<String>>,
    /// Separator for `join` (default one space).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    /// A constant, used when the partner never sends this field.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "static")]
    pub static_value: Option<serde_json::Value>,
    /// Used when the path(s) hold nothing. Coerced like a partner value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// Partner words → our words, matched case-insensitively after trimming
    /// (`{"Converted": "qualified"}`); values not listed pass through unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<BTreeMap<String, serde_json::Value>>,
    /// An explicit chrono format for timestamps that no built-in form matches, or
    /// `spreadsheet_serial` for spreadsheet serial dates (`45987.5`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Source: text with paths in it, `"{publisher}/{sub1}"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Source: arithmetic on decimal operands (`{"op": "mul", "args": [{"path":
    /// "revenue"}, {"static": "0.3"}]}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute: Option<Compute>,
    /// Source: the seconds between two instants (for a duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub between: Option<Between>,
    /// The rule applies only when this holds; otherwise the field is as if absent
    /// (its `default` applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<crate::condition::Condition>,
    /// The first case whose condition holds gives the value (its `path` or
    /// `static`); when none holds, the rule's own source does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cases: Option<Vec<Case>>,
    /// A regular expression searched in the value's text: its first group (or the
    /// whole match) becomes the value; no match makes the field absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<String>,
    /// A regular-expression replacement on the value's text (after `extract`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace: Option<Replace>,
    /// An attribute's type (attributes only; canonical fields have theirs).
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub value_type: Option<crate::attribute::AttributeType>,
}

/// Largest integration definition (its JSON) any binary takes: every instance of
/// every binary holds every definition. The api's per-account limit is lower
/// (`limits.definition_bytes`).
pub const MAX_DEFINITION_BYTES: usize = 1024 * 1024;

/// The first problem of one field's (or attribute's) rule, as (place, problem):
/// exactly one source, valid paths, patterns, conditions and map keys.
fn field_rule_problem(rule: &FieldRule, at: &str) -> Option<(String, String)> {
    let sources = [
        rule.path.is_some(),
        rule.first_of.is_some(),
        rule.join.is_some(),
        rule.static_value.is_some(),
        rule.template.is_some(),
        rule.compute.is_some(),
        rule.between.is_some(),
    ];
    match sources.iter().filter(|s| **s).count() {
        0 if rule.cases.as_ref().is_some_and(|c| !c.is_empty()) => {}
        0 => {
            return Some((
                at.to_owned(),
                "needs one of `path`, `first_of`, `join`, `static`, `template`, `compute`, `between` or `cases`".into(),
            ))
        }
        1 => {}
        _ => {
            return Some((
                at.to_owned(),
                "has more than one of `path`, `first_of`, `join`, `static`, `template`, `compute` and `between`; pick one"
                    .into(),
            ))
        }
    }
    if let Some(problem) = rule_problem(rule, at) {
        return Some(problem);
    }
    let paths = rule
        .path
        .iter()
        .chain(rule.first_of.iter().flatten())
        .chain(rule.join.iter().flatten());
    for path in paths {
        if let Err(e) = FieldPath::parse(path) {
            return Some((at.to_owned(), e.to_string()));
        }
    }
    if rule.join.as_ref().is_some_and(|j| j.is_empty())
        || rule.first_of.as_ref().is_some_and(|f| f.is_empty())
    {
        return Some((at.to_owned(), "lists no paths".into()));
    }
    if rule.static_value.is_some() && rule.default.is_some() {
        return Some((at.to_owned(), "a `static` value needs no `default`".into()));
    }
    if let Some(map) = &rule.map {
        let mut seen = std::collections::BTreeSet::new();
        for key in map.keys() {
            let folded = key.trim().to_lowercase();
            if folded.is_empty() {
                return Some((at.to_owned(), "`map` has an empty key".into()));
            }
            if !seen.insert(folded) {
                return Some((
                    at.to_owned(),
                    format!("`map` lists {key:?} twice (keys match case-insensitively)"),
                ));
            }
        }
    }
    None
}

/// The first problem of a rule's conditions, patterns and computations, as
/// (place, problem).
fn rule_problem(rule: &FieldRule, at: &str) -> Option<(String, String)> {
    let regex_problem = |pattern: &str, place: String| {
        regex::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .err()
            .map(|e| (place, format!("not a regular expression: {e}")))
    };
    if let Some(problem) = rule
        .when
        .as_ref()
        .and_then(|w| w.problem(&format!("{at}.when")))
    {
        return Some(problem);
    }
    for (i, case) in rule.cases.iter().flatten().enumerate() {
        let place = format!("{at}.cases[{i}]");
        if let Some(problem) = case.when.problem(&format!("{place}.when")) {
            return Some(problem);
        }
        match (&case.path, &case.static_value) {
            (Some(path), None) => {
                if let Err(e) = FieldPath::parse(path) {
                    return Some((format!("{place}.path"), e.to_string()));
                }
            }
            (None, Some(_)) => {}
            _ => return Some((place, "needs one of `path` and `static`".into())),
        }
    }
    if let Some(problem) = rule
        .extract
        .as_ref()
        .and_then(|p| regex_problem(p, format!("{at}.extract")))
    {
        return Some(problem);
    }
    if let Some(problem) = rule
        .replace
        .as_ref()
        .and_then(|r| regex_problem(&r.pattern, format!("{at}.replace.pattern")))
    {
        return Some(problem);
    }
    if let Some(compute) = &rule.compute {
        if compute.args.len() < 2 || compute.args.len() > 8 {
            return Some((format!("{at}.compute.args"), "needs 2 to 8 operands".into()));
        }
        for (i, arg) in compute.args.iter().enumerate() {
            let place = format!("{at}.compute.args[{i}]");
            match (&arg.path, &arg.static_value) {
                (Some(path), None) => {
                    if let Err(e) = FieldPath::parse(path) {
                        return Some((place, e.to_string()));
                    }
                }
                (None, Some(value)) if crate::condition::decimal(value).is_some() => {}
                (None, Some(_)) => {
                    return Some((place, "a static operand must be a number".into()))
                }
                _ => return Some((place, "needs one of `path` and `static`".into())),
            }
        }
    }
    if let Some(between) = &rule.between {
        for (name, path) in [("start", &between.start), ("end", &between.end)] {
            if let Err(e) = FieldPath::parse(path) {
                return Some((format!("{at}.between.{name}"), e.to_string()));
            }
        }
    }
    if let Some(text) = &rule.template {
        let source = FieldRule {
            template: Some(text.clone()),
            ..FieldRule::empty()
        };
        if let Err(e) = crate::rule::ValueSource::compile(&source) {
            return Some((format!("{at}.template"), e.to_string()));
        }
    }
    None
}

impl FieldRule {
    /// A rule with nothing set (a base for `..` in code and tests).
    pub fn empty() -> Self {
        Self {
            path: None,
            first_of: None,
            join: None,
            separator: None,
            static_value: None,
            default: None,
            map: None,
            format: None,
            template: None,
            compute: None,
            between: None,
            when: None,
            cases: None,
            extract: None,
            replace: None,
            value_type: None,
        }
    }
}

impl Integration {
    /// What a definition must meet to be published (created or changed), beyond
    /// [`validate`](Self::validate): webhooks need a way to be trusted, so `auth`
    /// is required (`{"scheme": "none"}` says so explicitly), and the definition
    /// fits [`MAX_DEFINITION_BYTES`]. Definitions published before `auth` was
    /// required still load (health shows them as unauthenticated).
    pub fn validate_for_publish(&self) -> Result<(), IntegrationError> {
        self.validate()?;
        if self.deleted {
            return Ok(());
        }
        let invalid = |field: &str, problem: String| IntegrationError::Invalid {
            client_id: self.client_id.to_string(),
            field: field.to_owned(),
            problem,
        };
        // A disabled integration takes no webhook, so it may be published (disabled
        // or re-versioned) without `auth`.
        if self.enabled && self.auth.is_none() {
            return Err(invalid(
                "auth",
                "is required: a bearer token or Standard Webhooks secrets, or {\"scheme\": \"none\"} \
                 to accept webhooks from anyone who knows the URL (unsafe)"
                    .into(),
            ));
        }
        let size = serde_json::to_vec(self).map_or(0, |v| v.len());
        if size > MAX_DEFINITION_BYTES {
            return Err(invalid(
                "(definition)",
                format!("is {size} bytes; at most {MAX_DEFINITION_BYTES}"),
            ));
        }
        Ok(())
    }

    /// Whether webhooks to this integration are accepted from anyone: `auth` says
    /// `none`, or the definition predates `auth` being required.
    pub fn accepts_anyone(&self) -> bool {
        self.auth
            .as_ref()
            .is_none_or(|a| matches!(a, crate::webhook_auth::WebhookAuth::None {}))
    }

    /// Checks what serde cannot: names resolve, rules are complete.
    pub fn validate(&self) -> Result<(), IntegrationError> {
        let invalid = |field: &str, problem: String| IntegrationError::Invalid {
            client_id: self.client_id.to_string(),
            field: field.to_owned(),
            problem,
        };
        if self.version == 0 || self.version > crate::call::MAX_MAPPING_VERSION {
            return Err(invalid(
                "version",
                format!("must be between 1 and {}", crate::call::MAX_MAPPING_VERSION),
            ));
        }
        if self.account.trim().is_empty() {
            return Err(invalid("account", "must not be empty".into()));
        }
        if self.timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(invalid(
                "timezone",
                format!("{:?} is not an IANA time zone", self.timezone),
            ));
        }
        if crate::phone::region(&self.default_region).is_err() {
            return Err(invalid(
                "default_region",
                format!("{:?} is not an ISO 3166 region code", self.default_region),
            ));
        }
        if let Some((field, problem)) = self.enrichment.problem() {
            return Err(invalid(&field, problem));
        }
        let access = [
            self.auth.as_ref().and_then(|a| a.problem()),
            self.rate_limit.as_ref().and_then(|r| r.problem()),
            self.poll.as_ref().and_then(|p| p.problem()),
            self.csv.problem(),
        ];
        if let Some((field, problem)) = access.into_iter().flatten().next() {
            return Err(invalid(&field, problem));
        }
        if self.mapping.filters.len() > MAX_FILTERS {
            return Err(invalid(
                "mapping.filters",
                format!("at most {MAX_FILTERS} filters"),
            ));
        }
        for (i, filter) in self.mapping.filters.iter().enumerate() {
            let reason = filter.reason.trim();
            if reason.is_empty() || reason.chars().count() > 64 {
                return Err(invalid(
                    &format!("mapping.filters[{i}].reason"),
                    "must be 1 to 64 characters".into(),
                ));
            }
            if let Some((place, problem)) =
                filter.when.problem(&format!("mapping.filters[{i}].when"))
            {
                return Err(invalid(&place, problem));
            }
        }
        for required in [CanonicalField::Caller, CanonicalField::StartedAt] {
            if !self.mapping.fields.contains_key(&required) {
                return Err(invalid(
                    &format!("mapping.fields.{}", required.name()),
                    "is required".into(),
                ));
            }
        }
        for (field, rule) in &self.mapping.fields {
            let at = format!("mapping.fields.{}", field.name());
            if rule.value_type.is_some() {
                return Err(invalid(
                    &format!("{at}.type"),
                    "only attributes take a `type`; a canonical field has its own".into(),
                ));
            }
            if let Some((place, problem)) = field_rule_problem(rule, &at) {
                return Err(invalid(&place, problem));
            }
            if *field == CanonicalField::ExternalId
                && (rule.default.is_some() || rule.map.is_some())
            {
                // A default would make every record without an id one call; both
                // would also hide the partner's id from the partition key.
                return Err(invalid(
                    &at,
                    "the call id takes no `default` or `map`".into(),
                ));
            }
        }
        if self.mapping.attributes.len() > crate::attribute::MAX_ATTRIBUTES {
            return Err(invalid(
                "mapping.attributes",
                format!(
                    "at most {} attributes; this mapping has {}",
                    crate::attribute::MAX_ATTRIBUTES,
                    self.mapping.attributes.len()
                ),
            ));
        }
        for (name, rule) in &self.mapping.attributes {
            let at = format!("mapping.attributes.{name}");
            if let Some(problem) = crate::attribute::name_problem(name) {
                return Err(invalid(&at, format!("the name {problem}")));
            }
            if let Some((place, problem)) = field_rule_problem(rule, &at) {
                return Err(invalid(&place, problem));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arroyo() -> Integration {
        serde_json::from_value(serde_json::json!({
            "client_id": "arroyo",
            "account": "acme-leads",
            "name": "Arroyo",
            "source": "webhook",
            "version": 1,
            "mapping": {"fields": {
                "caller": {"path": "call.caller.number"},
                "started_at": {"path": "call.started_at"},
                "currency": {"static": "USD"}
            }}
        }))
        .unwrap()
    }

    #[test]
    fn defaults_apply() {
        let integration = arroyo();
        assert!(integration.enabled);
        assert_eq!(integration.timezone, "UTC");
        integration.validate().unwrap();
    }

    #[test]
    fn unknown_canonical_field_is_refused_by_name() {
        let err = serde_json::from_value::<Mapping>(serde_json::json!({
            "fields": {"callr": {"path": "x"}}
        }))
        .unwrap_err();
        assert!(err.to_string().contains("callr"), "{err}");
    }

    #[test]
    fn validation_names_the_bad_rule() {
        let mut integration = arroyo();
        integration.timezone = "Mars/Olympus".into();
        let err = integration.validate().unwrap_err().to_string();
        assert!(err.contains("arroyo") && err.contains("timezone"), "{err}");

        let mut integration = arroyo();
        integration.mapping.fields.remove(&CanonicalField::Caller);
        let err = integration.validate().unwrap_err().to_string();
        assert!(err.contains("mapping.fields.caller"), "{err}");

        let mut integration = arroyo();
        integration
            .mapping
            .fields
            .get_mut(&CanonicalField::StartedAt)
            .unwrap()
            .path = Some("call..started_at".into());
        let err = integration.validate().unwrap_err().to_string();
        assert!(
            err.contains("started_at") && err.contains("position 5"),
            "{err}"
        );
    }

    #[test]
    fn rule_kinds_are_validated_by_name() {
        let mut integration = arroyo();
        let rule = integration
            .mapping
            .fields
            .get_mut(&CanonicalField::Currency)
            .unwrap();
        rule.map = Some(
            [
                ("usd".to_owned(), "USD".into()),
                ("USD ".to_owned(), "USD".into()),
            ]
            .into(),
        );
        let err = integration.validate().unwrap_err().to_string();
        assert!(
            err.contains("mapping.fields.currency") && err.contains("twice"),
            "{err}"
        );

        let mut integration = arroyo();
        let rule = integration
            .mapping
            .fields
            .get_mut(&CanonicalField::Caller)
            .unwrap();
        rule.first_of = Some(vec!["a".into()]);
        let err = integration.validate().unwrap_err().to_string();
        assert!(
            err.contains("mapping.fields.caller") && err.contains("more than one"),
            "{err}"
        );

        let mut integration = arroyo();
        let rule = integration
            .mapping
            .fields
            .get_mut(&CanonicalField::Caller)
            .unwrap();
        rule.path = None;
        rule.first_of = Some(vec!["a".into(), "b[x]".into()]);
        let err = integration.validate().unwrap_err().to_string();
        assert!(err.contains("b[x]"), "{err}");
    }
}
