use std::fmt;

use chrono::{DateTime, Utc};
use schemas::call::{row_version, to_whole_seconds, RawPosition};
use schemas::integration::CanonicalField;
use schemas::{CallId, CallRecord, Money, RawEnvelope, E164};

use super::coerce::{self, CoerceError};
use super::compiled::{CompiledMapping, CompiledRule};

/// Longest slice of an offending value quoted back in an error.
const MAX_QUOTED_VALUE: usize = 120;

/// One field that could not be filled: which field, by which rule, from what value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub rule: String,
    pub value: Option<String>,
    pub problem: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.field, self.rule)?;
        if let Some(value) = &self.value {
            write!(f, " value {value}")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// Why a record did not become a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    pub errors: Vec<FieldError>,
}

/// Maps one raw record. `processed_at` is passed in so a batch shares one clock read.
pub fn map_record(
    mapping: &CompiledMapping,
    envelope: &RawEnvelope,
    position: RawPosition,
    processed_at: DateTime<Utc>,
) -> Result<CallRecord, Rejection> {
    let record: serde_json::Value =
        serde_json::from_str(envelope.payload.get()).map_err(|e| Rejection {
            reason: format!("payload is not valid JSON: {e}"),
            errors: vec![],
        })?;
    if !record.is_object() {
        return Err(Rejection {
            reason: "record is not a JSON object".to_owned(),
            errors: vec![],
        });
    }
    let mut fields = Fields::default();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for rule in &mapping.rules {
        let Some(value) = rule.value(&record) else {
            continue;
        };
        if let Err(problem) = fields.fill(mapping, rule, &value) {
            let error = FieldError {
                field: rule.field.name(),
                rule: rule.source.describe(),
                value: Some(quote(&value)),
                problem: problem.0,
            };
            if rule.field.is_required() {
                errors.push(error);
            } else {
                warnings.push(error.to_string());
            }
        }
    }
    for (field, present) in [
        (CanonicalField::Caller, fields.caller.is_some()),
        (CanonicalField::StartedAt, fields.started_at.is_some()),
    ] {
        if !present && !errors.iter().any(|e| e.field == field.name()) {
            let rule = mapping
                .rules
                .iter()
                .find(|r| r.field == field)
                .map(|r| r.source.describe())
                .unwrap_or_else(|| "no rule".to_owned());
            errors.push(FieldError {
                field: field.name(),
                rule,
                value: None,
                problem: "required but missing".to_owned(),
            });
        }
    }
    let (Some(caller), Some(started), true) = (
        fields.caller.clone(),
        fields.started_at.clone(),
        errors.is_empty(),
    ) else {
        let names: Vec<&str> = errors.iter().map(|e| e.field).collect();
        return Err(Rejection {
            reason: format!("required field(s) {} could not be mapped", names.join(", ")),
            errors,
        });
    };

    let integration = &mapping.integration;
    let started_at = to_whole_seconds(started.instant);
    let id = match &fields.external_id {
        Some(external) => CallId::from_external(&integration.client_id, external),
        None => CallId::from_natural_key(
            &integration.client_id,
            caller.as_str(),
            fields.called.as_ref().map(E164::as_str).unwrap_or(""),
            started_at.timestamp(),
            fields.duration_s,
        ),
    };
    let status = fields
        .status
        .map(|s| s.to_lowercase())
        .unwrap_or_else(|| derived_status(fields.payout));
    Ok(CallRecord {
        id,
        version: row_version(envelope.received_at, integration.version),
        account: integration.account.clone(),
        client_id: integration.client_id.clone(),
        source: envelope.source,
        external_id: fields.external_id,
        caller,
        called: fields.called,
        started_at,
        local_tz: started.zone,
        duration_s: fields.duration_s,
        payout: fields.payout,
        revenue: fields.revenue,
        currency: fields
            .currency
            .or(fields.currency_from_amount)
            .unwrap_or_else(|| integration.currency.clone()),
        zip: fields.zip,
        city: fields.city,
        state: fields.state,
        campaign: fields.campaign,
        publisher: fields.publisher,
        buyer: fields.buyer,
        tags: fields.tags,
        status,
        is_duplicate: false,
        cm_call_id: fields.cm_call_id,
        warnings,
        received_at: to_whole_seconds(envelope.received_at),
        processed_at: to_whole_seconds(processed_at),
        raw: position,
        mapping_version: integration.version,
    })
}

/// Until qualification rules exist (per-integration thresholds), a call with a
/// positive payout is qualified, a zero payout is not, and no payout is unknown.
fn derived_status(payout: Option<Money>) -> String {
    match payout {
        Some(p) if p.is_positive() => "qualified",
        Some(_) => "unqualified",
        None => "unknown",
    }
    .to_owned()
}

fn quote(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if text.len() <= MAX_QUOTED_VALUE {
        return text;
    }
    let mut end = MAX_QUOTED_VALUE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

#[derive(Default)]
struct Fields {
    external_id: Option<String>,
    caller: Option<E164>,
    called: Option<E164>,
    started_at: Option<coerce::Stamped>,
    duration_s: Option<u32>,
    payout: Option<Money>,
    revenue: Option<Money>,
    currency: Option<String>,
    currency_from_amount: Option<String>,
    zip: Option<String>,
    city: Option<String>,
    state: Option<String>,
    campaign: Option<String>,
    publisher: Option<String>,
    buyer: Option<String>,
    tags: Vec<String>,
    status: Option<String>,
    cm_call_id: Option<String>,
}

impl Fields {
    fn fill(
        &mut self,
        mapping: &CompiledMapping,
        rule: &CompiledRule,
        value: &serde_json::Value,
    ) -> Result<(), CoerceError> {
        use CanonicalField as F;
        match rule.field {
            F::ExternalId => self.external_id = coerce::text(value)?,
            F::Caller => self.caller = coerce::phone(value, mapping.region)?,
            F::Called => self.called = coerce::phone(value, mapping.region)?,
            F::StartedAt => {
                self.started_at = coerce::timestamp(value, mapping.zone, rule.format.as_deref())?
            }
            F::DurationS => self.duration_s = coerce::duration_seconds(value)?,
            F::Payout | F::Revenue => {
                let amount = coerce::money(value)?;
                let (money, currency) = match amount {
                    Some((m, c)) => (Some(m), c),
                    None => (None, None),
                };
                if currency.is_some() {
                    self.currency_from_amount = currency;
                }
                if rule.field == F::Payout {
                    self.payout = money;
                } else {
                    self.revenue = money;
                }
            }
            F::Currency => {
                self.currency = match coerce::text(value)? {
                    Some(code)
                        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()) =>
                    {
                        Some(code.to_ascii_uppercase())
                    }
                    Some(other) => {
                        return Err(CoerceError::new(format!(
                            "{other:?} is not an ISO 4217 currency code"
                        )))
                    }
                    None => None,
                }
            }
            F::Zip => self.zip = coerce::zip(value)?,
            F::City => self.city = coerce::text(value)?,
            F::State => self.state = coerce::text(value)?,
            F::Campaign => self.campaign = coerce::text(value)?,
            F::Publisher => self.publisher = coerce::text(value)?,
            F::Buyer => self.buyer = coerce::text(value)?,
            F::Tags => self.tags = coerce::tags(value)?,
            F::Status => self.status = coerce::text(value)?,
            F::CmCallId => self.cm_call_id = coerce::text(value)?,
        }
        Ok(())
    }
}
