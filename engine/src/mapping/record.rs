use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use schemas::call::{row_version, to_whole_seconds, Change, RawPosition};
use schemas::callmatrix::MatchMethod;
use schemas::integration::CanonicalField;
use schemas::{CallId, CallRecord, Money, RawEnvelope, E164};

use super::coerce::{self, CoerceError};
use super::compiled::{Chosen, CompiledMapping, CompiledRule, Target};
use crate::enrich;

/// Longest slice of an offending value quoted back in an error.
const MAX_QUOTED_VALUE: usize = 120;

/// One field that could not be filled: which field, by which rule, from what value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `payout`, or `attributes.recordingUrl`.
    pub field: Cow<'static, str>,
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
    /// Set when the record is a later part of a call not stored (yet): it may be
    /// waiting for its call, and is worth another try later.
    pub unknown_call: Option<CallId>,
    /// Set when a filter of the mapping dropped the record on purpose, to its
    /// reason: counted, never a dead letter.
    pub filtered: Option<String>,
}

/// What one record says about a call: its coerced fields and the warnings, before
/// they are combined with what is already known about the call (see [`assemble`]).
#[derive(Clone)]
pub struct MappedFields {
    fields: Fields,
    warnings: Vec<String>,
    /// The call's id, from the partner's call id or else the natural key: the record
    /// may be a later part of a call already stored.
    pub call_id: Option<CallId>,
}

impl MappedFields {
    /// Whether the record names its caller (a number, or a withheld one).
    pub fn has_caller(&self) -> bool {
        self.fields.caller.is_some()
    }

    /// When the record says its call started, if it says.
    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        self.fields.started_at.as_ref().map(|s| s.instant)
    }
}

/// Maps one raw record onto a call with nothing known about it before.
/// `processed_at` is passed in so a batch shares one clock read.
pub fn map_record(
    mapping: &CompiledMapping,
    envelope: &RawEnvelope,
    position: RawPosition,
    processed_at: DateTime<Utc>,
) -> Result<CallRecord, Rejection> {
    let mapped = map_fields(mapping, envelope)?;
    assemble(mapping, envelope, mapped, None, position, processed_at)
}

/// Which way each conditional rule went for a record, for previews: `(field,
/// "when did not hold" | "case N" | "its source")`, only rules with a `when` or
/// `cases`; and the filter that would drop it, if one would.
pub fn trace_rules(
    mapping: &CompiledMapping,
    envelope: &RawEnvelope,
) -> (Vec<(Cow<'static, str>, String)>, Option<String>) {
    let Ok(Some(record)) = mapping.reader.read(envelope.payload.get()) else {
        return (Vec::new(), None);
    };
    let lookup = |slot: usize| {
        mapping
            .reader
            .extract(&record, mapping.rules.len() + slot, &mapping.extra[slot])
    };
    let filtered = mapping
        .filters
        .iter()
        .find(|(_, when)| when.holds(&lookup))
        .map(|(reason, _)| reason.clone());
    let mut taken = Vec::new();
    for rule in &mapping.rules {
        if rule.when.is_none() && rule.cases.is_empty() {
            continue;
        }
        let way = if rule.when.as_ref().is_some_and(|w| !w.holds(&lookup)) {
            "when did not hold".to_owned()
        } else {
            match rule.cases.iter().position(|(when, _)| when.holds(&lookup)) {
                Some(n) => format!("case {}", n + 1),
                None => "its source".to_owned(),
            }
        };
        taken.push((rule.target.name(), way));
    }
    (taken, filtered)
}

/// Reads and coerces every mapped field of a record. A required field that is
/// present but cannot be coerced rejects the record; one that is absent may still
/// come from an earlier record of the same call.
pub fn map_fields(
    mapping: &CompiledMapping,
    envelope: &RawEnvelope,
) -> Result<MappedFields, Rejection> {
    let not_json = |e: serde_json::Error| Rejection {
        reason: format!("payload is not valid JSON: {e}"),
        errors: vec![],
        unknown_call: None,
        filtered: None,
    };
    let Some(record) = mapping
        .reader
        .read(envelope.payload.get())
        .map_err(not_json)?
    else {
        return Err(Rejection {
            reason: "record is not a JSON object".to_owned(),
            errors: vec![],
            unknown_call: None,
            filtered: None,
        });
    };
    let lookup = |slot: usize| {
        mapping
            .reader
            .extract(&record, mapping.rules.len() + slot, &mapping.extra[slot])
    };
    if let Some((reason, _)) = mapping.filters.iter().find(|(_, when)| when.holds(&lookup)) {
        return Err(Rejection {
            reason: format!("filtered: {reason}"),
            errors: vec![],
            unknown_call: None,
            filtered: Some(reason.clone()),
        });
    }
    let mut fields = Fields::default();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let step_context = super::steps::StepContext { zone: mapping.zone };
    for (n, rule) in mapping.rules.iter().enumerate() {
        let raw = match rule.chosen(&lookup) {
            Chosen::Skipped => None,
            Chosen::Case(value) => value,
            Chosen::Source => mapping.reader.extract(&record, n, &rule.source),
        };
        let value = match rule.stepped(rule.value(raw), &step_context) {
            Ok(value) => value,
            Err(problem) => {
                let error = FieldError {
                    field: rule.target.name(),
                    rule: rule.source.describe(),
                    value: None,
                    problem,
                };
                if rule.target.is_required() {
                    errors.push(error);
                } else {
                    warnings.push(error.to_string());
                }
                continue;
            }
        };
        let Some(value) = value else {
            continue;
        };
        if let Err(problem) = fields.fill(mapping, rule, &value) {
            let error = FieldError {
                field: rule.target.name(),
                rule: rule.source.describe(),
                value: Some(quote(&value)),
                problem: problem.0,
            };
            if rule.target.is_required() {
                errors.push(error);
            } else {
                warnings.push(error.to_string());
            }
        }
    }
    if !errors.is_empty() {
        errors.extend(missing_required(
            mapping,
            fields.required_present(),
            &errors,
        ));
        return Err(required_rejection(errors, None));
    }
    warnings.append(&mut fields.notes);
    let client = &mapping.integration.client_id;
    let call_id = match (&fields.external_id, &fields.caller, &fields.started_at) {
        (Some(external), _, _) => Some(CallId::from_external(client, external)),
        (None, Some(caller), Some(started)) => Some(natural_key(
            client,
            caller.number(),
            fields.called.as_ref(),
            started.instant,
        )),
        _ => None,
    };
    Ok(MappedFields {
        fields,
        warnings,
        call_id,
    })
}

/// The call after this record: its fields over `base`, the call as known before
/// (stored, or from an earlier record in the same batch). Fields the record does
/// not carry keep the base's values, so a late payout or a correction updates the
/// call instead of creating a second one.
pub fn assemble(
    mapping: &CompiledMapping,
    envelope: &RawEnvelope,
    mapped: MappedFields,
    base: Option<&CallRecord>,
    position: RawPosition,
    processed_at: DateTime<Utc>,
) -> Result<CallRecord, Rejection> {
    let MappedFields {
        fields,
        warnings,
        call_id,
    } = mapped;
    // A record received before the stored row's newest record (clock skew between
    // ingest replicas, a forwarded late field, a replay interleaving partitions)
    // only fills what the row lacks; a newer one overrides what it says. A record
    // mapped by a newer mapping version is newer: a replay after a mapping change
    // must replace what the old mapping made.
    let integration = &mapping.integration;
    let stale = base.is_some_and(|b| {
        (integration.version, to_whole_seconds(envelope.received_at))
            < (b.mapping_version, b.received_at)
    });
    let required_present = fields.required_present();
    let caller = pick(
        stale,
        fields.caller,
        base.map(|b| coerce::Caller::from(b.caller.clone())),
    );
    let started = pick(
        stale,
        fields.started_at,
        base.map(|b| coerce::Stamped {
            instant: b.started_at,
            zone: b.local_tz.clone(),
            warning: None,
        }),
    );
    let (Some(caller), Some(started)) = (caller, started) else {
        let errors = missing_required(mapping, required_present, &[]);
        return Err(required_rejection(
            errors,
            call_id.filter(|_| base.is_none()),
        ));
    };
    let started_at = to_whole_seconds(started.instant);
    let called = pick(stale, fields.called, base.and_then(|b| b.called.clone()));
    let duration_s = pick(stale, fields.duration_s, base.and_then(|b| b.duration_s));
    let id = call_id.unwrap_or_else(|| {
        natural_key(
            &integration.client_id,
            caller.number(),
            called.as_ref(),
            started_at,
        )
    });
    let keep = |new: Option<String>, old: fn(&CallRecord) -> &Option<String>| {
        pick(stale, new, base.and_then(|b| old(b).clone()))
    };
    let payout = pick(stale, fields.payout, base.and_then(|b| b.payout));
    let revenue = pick(stale, fields.revenue, base.and_then(|b| b.revenue));
    // The currency belongs to the amounts: a stale record's only where the row had
    // no amount of its own.
    let said_currency = fields.currency.or(fields.currency_from_amount);
    let row_currency = base
        .filter(|b| !stale || b.payout.is_some() || b.revenue.is_some())
        .map(|b| b.currency.clone());
    let currency = if stale {
        row_currency.or(said_currency)
    } else {
        said_currency.or(row_currency)
    };
    // Never a lower version than the row it is merged over: it would lose.
    let own_version = row_version(envelope.received_at, integration.version);
    let version = base.map_or(own_version, |b| {
        own_version.max(b.version.saturating_add(1))
    });
    let received_at = to_whole_seconds(envelope.received_at);
    // A partner's echo of our routed call id links the call; otherwise any link
    // made earlier stays until the duplicate check runs again.
    let echoed = fields.cm_call_id.is_some();
    let mut call = CallRecord {
        id,
        version,
        account: integration.account.clone(),
        client_id: integration.client_id.clone(),
        source: envelope.source,
        external_id: keep(fields.external_id, |b| &b.external_id),
        caller: caller.number().cloned(),
        called,
        started_at,
        local_tz: started.zone,
        duration_s,
        connected_duration_s: pick(
            stale,
            fields.connected_duration_s,
            base.and_then(|b| b.connected_duration_s),
        ),
        connected: pick(stale, fields.connected, base.and_then(|b| b.connected)),
        payout,
        revenue,
        currency: currency.unwrap_or_else(|| integration.currency.clone()),
        zip: keep(fields.zip, |b| &b.zip),
        city: keep(fields.city, |b| &b.city),
        state: keep(fields.state, |b| &b.state),
        campaign: keep(fields.campaign, |b| &b.campaign),
        publisher: keep(fields.publisher, |b| &b.publisher),
        buyer: keep(fields.buyer, |b| &b.buyer),
        tags: match base {
            Some(b) if fields.tags.is_empty() || (stale && !b.tags.is_empty()) => b.tags.clone(),
            _ => fields.tags,
        },
        status: String::new(),
        is_duplicate: echoed || base.is_some_and(|b| b.is_duplicate),
        cm_call_id: keep(fields.cm_call_id, |b| &b.cm_call_id),
        warnings,
        received_at: base.map_or(received_at, |b| received_at.max(b.received_at)),
        processed_at: to_whole_seconds(processed_at),
        raw: position,
        mapping_version: integration.version,
        // A partner's own word stays until the partner sends another.
        partner_status: keep(fields.status, |b| &b.partner_status),
        qualified: false,
        repeat_of: base.and_then(|b| b.repeat_of),
        repeat_of_started_at: base.and_then(|b| b.repeat_of_started_at),
        match_method: if echoed {
            Some(MatchMethod::EchoedId)
        } else {
            base.and_then(|b| b.match_method)
        },
        match_start_delta_s: base.and_then(|b| b.match_start_delta_s),
        match_duration_delta_s: base.and_then(|b| b.match_duration_delta_s),
        tz_source: String::new(),
        attributes: merged_attributes(stale, fields.attributes, base),
        // A record that names its caller brings the number back; otherwise the
        // stored call's retention hash stays.
        caller_hash: if caller.number().is_some() {
            None
        } else {
            base.and_then(|b| b.caller_hash.clone())
        },
        event: if base.is_some() {
            Change::Updated
        } else {
            Change::Created
        },
    };
    enrich::place(&mut call, &integration.timezone);
    call.qualified = enrich::qualify(&call, &integration.enrichment);
    enrich::settle_status(&mut call);
    Ok(call)
}

/// A call's id when the partner sends none: caller (empty when withheld), called
/// number and start (whole seconds). Not the duration: a partner that sends an
/// "in progress" record and then the completed one sends one call, and the two
/// must merge.
fn natural_key(
    client: &schemas::ClientId,
    caller: Option<&E164>,
    called: Option<&E164>,
    started: DateTime<Utc>,
) -> CallId {
    CallId::from_natural_key(
        client,
        caller.map(E164::as_str).unwrap_or(""),
        called.map(E164::as_str).unwrap_or(""),
        started.timestamp(),
    )
}

/// The call's attributes after this record: the base's, with the record's over
/// them (or, for a `stale` record, only those the base lacks).
fn merged_attributes(
    stale: bool,
    new: schemas::attribute::Attributes,
    base: Option<&CallRecord>,
) -> schemas::attribute::Attributes {
    let Some(base) = base.filter(|b| !b.attributes.is_empty()) else {
        return new;
    };
    let mut merged = base.attributes.clone();
    for (name, value) in new {
        if !stale || !merged.contains_key(&name) {
            merged.insert(name, value);
        }
    }
    merged
}

/// The newer record's value, else the other's: the record's own (`new`) unless it
/// is `stale`, older than the row it is merged over.
fn pick<T>(stale: bool, new: Option<T>, old: Option<T>) -> Option<T> {
    if stale {
        old.or(new)
    } else {
        new.or(old)
    }
}

/// An error for each required field neither filled nor already in `errors`.
fn missing_required(
    mapping: &CompiledMapping,
    (has_caller, has_started): (bool, bool),
    errors: &[FieldError],
) -> Vec<FieldError> {
    [
        (CanonicalField::Caller, has_caller),
        (CanonicalField::StartedAt, has_started),
    ]
    .into_iter()
    .filter(|(field, present)| !present && !errors.iter().any(|e| e.field == field.name()))
    .map(|(field, _)| FieldError {
        field: field.name().into(),
        rule: mapping
            .rules
            .iter()
            .find(|r| r.target == Target::Field(field))
            .map(|r| r.source.describe())
            .unwrap_or_else(|| "no rule".to_owned()),
        value: None,
        problem: "required but missing".to_owned(),
    })
    .collect()
}

fn required_rejection(errors: Vec<FieldError>, unknown_call: Option<CallId>) -> Rejection {
    let names: Vec<&str> = errors.iter().map(|e| e.field.as_ref()).collect();
    let reason = match unknown_call {
        Some(id) => format!(
            "required field(s) {} missing, and no earlier record of call {id} to take them from",
            names.join(", ")
        ),
        None => format!("required field(s) {} could not be mapped", names.join(", ")),
    };
    Rejection {
        reason,
        errors,
        unknown_call,
        filtered: None,
    }
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

#[derive(Default, Clone)]
struct Fields {
    /// Warnings about values that were read, but read with a risk (an ambiguous
    /// number): they go on the row and show in the preview.
    notes: Vec<String>,
    external_id: Option<String>,
    caller: Option<coerce::Caller>,
    called: Option<E164>,
    started_at: Option<coerce::Stamped>,
    duration_s: Option<u32>,
    connected_duration_s: Option<u32>,
    connected: Option<bool>,
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
    attributes: schemas::attribute::Attributes,
    /// Bytes of `attributes` (names and values), against the per-call limit.
    attribute_bytes: usize,
}

impl Fields {
    /// Whether the record filled the caller and the start, the two fields a call
    /// cannot be without.
    fn required_present(&self) -> (bool, bool) {
        (self.caller.is_some(), self.started_at.is_some())
    }

    fn fill(
        &mut self,
        mapping: &CompiledMapping,
        rule: &CompiledRule,
        value: &serde_json::Value,
    ) -> Result<(), CoerceError> {
        use CanonicalField as F;
        let field = match &rule.target {
            Target::Field(field) => *field,
            Target::Attribute { name, kind } => {
                return self.fill_attribute(mapping, rule, name, *kind, value)
            }
        };
        match field {
            F::ExternalId => self.external_id = coerce::text(value)?,
            F::Caller => self.caller = coerce::caller(value, mapping.region)?,
            F::Called => self.called = coerce::phone(value, mapping.region)?,
            F::StartedAt => {
                self.started_at = coerce::timestamp(value, mapping.zone, rule.format.as_deref())?;
                if let Some(warning) = self.started_at.as_ref().and_then(|s| s.warning.clone()) {
                    self.notes
                        .push(format!("started_at {}: {warning}", rule.source.describe()));
                }
            }
            F::DurationS => {
                self.duration_s = coerce::duration_seconds(value, mapping.decimal_separator)?
            }
            F::ConnectedDurationS => {
                self.connected_duration_s =
                    coerce::duration_seconds(value, mapping.decimal_separator)?
            }
            F::Connected => self.connected = coerce::boolean(value)?,
            F::Payout | F::Revenue => {
                let amount = coerce::money(
                    value,
                    mapping.decimal_separator,
                    &mapping.integration.currency,
                )?;
                if amount.as_ref().is_some_and(|a| a.ambiguous) && mapping.decimal_comma_likely {
                    self.notes.push(format!(
                        "{} {}: {} was read as {} with the decimal_separator \".\"; a partner writing decimal commas (the integration's currency or region suggests one) means {}: set decimal_separator to \",\" if so",
                        field.name(),
                        rule.source.describe(),
                        quote(value),
                        amount.as_ref().map_or_else(String::new, |a| a.money.to_string()),
                        coerce::grouped_reading(value).unwrap_or_default(),
                    ));
                }
                let (money, currency) = match amount {
                    Some(a) => (Some(a.money), a.currency),
                    None => (None, None),
                };
                if currency.is_some() {
                    self.currency_from_amount = currency;
                }
                if field == F::Payout {
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
            F::Zip => {
                self.zip = coerce::zip(value)?.map(|read| {
                    self.notes.extend(read.warning);
                    read.code
                })
            }
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

    /// A custom attribute: its type's canonical text, within the call's byte limit.
    fn fill_attribute(
        &mut self,
        mapping: &CompiledMapping,
        rule: &CompiledRule,
        name: &str,
        kind: schemas::attribute::AttributeType,
        value: &serde_json::Value,
    ) -> Result<(), CoerceError> {
        let Some(text) = coerce::attribute(
            value,
            kind,
            mapping.zone,
            rule.format.as_deref(),
            mapping.decimal_separator,
        )?
        else {
            return Ok(());
        };
        let bytes = name.len() + text.len();
        if self.attribute_bytes + bytes > schemas::attribute::MAX_CALL_BYTES {
            return Err(CoerceError::new(format!(
                "the call's attributes would be over {} bytes; this one is left out",
                schemas::attribute::MAX_CALL_BYTES
            )));
        }
        self.attribute_bytes += bytes;
        self.attributes.insert(
            name.to_owned(),
            schemas::attribute::AttributeValue { kind, value: text },
        );
        Ok(())
    }
}
