//! Issue 38's custom attributes: a Ringba-shaped record keeps `recordingUrl`,
//! `publisherSubId` and `tag:` values as typed attributes; bad values are warnings,
//! never a lost call; a later record adds or corrects them, an older one only fills
//! what is missing; definitions that cannot work are refused by name.

use chrono::{TimeZone, Utc};
use schemas::attribute::{AttributeType, AttributeValue, MAX_ATTRIBUTES, MAX_CALL_BYTES};
use schemas::call::RawPosition;
use schemas::{CallRecord, ClientId, Integration, IntegrationError, RawEnvelope, Source};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{assemble, map_fields, CompiledMapping};

fn definition(attributes: Value) -> Value {
    json!({
        "client_id": "ringba_acme", "account": "acme", "name": "ringba", "source": "webhook",
        "version": 1, "timezone": "America/New_York",
        "mapping": {
            "fields": {
                "external_id": {"path": "inboundCallId"},
                "caller": {"path": "inboundPhoneNumber"},
                "started_at": {"path": "callDt"}
            },
            "attributes": attributes
        }
    })
}

fn integration(attributes: Value) -> Integration {
    let integration: Integration = serde_json::from_value(definition(attributes)).unwrap();
    integration.validate().unwrap();
    integration
}

fn refusal(attributes: Value) -> (String, String) {
    let integration: Integration = serde_json::from_value(definition(attributes)).unwrap();
    match integration.validate() {
        Err(IntegrationError::Invalid { field, problem, .. }) => (field, problem),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn ringba() -> Integration {
    integration(json!({
        "recordingUrl": {"path": "recordingUrl"},
        "publisherSubId": {"path": "publisherSubId"},
        "tag:User:sub5": {"path": "[\"tag:User:sub5\"]"},
        "tag:User:gclid": {"path": "[\"tag:User:gclid\"]"},
        "payout_share": {"path": "share", "type": "number"},
        "consent": {"path": "consent", "type": "boolean"},
        "clicked_at": {"path": "clickedAt", "type": "time"}
    }))
}

fn envelope(record: &Value, received_s: i64) -> RawEnvelope {
    RawEnvelope {
        raw_id: Uuid::nil(),
        client_id: ClientId::parse("ringba_acme").unwrap(),
        source: Source::Webhook,
        received_at: Utc.timestamp_opt(1_795_000_000 + received_s, 0).unwrap(),
        idempotency_key: "k".into(),
        integration_version: 1,
        payload: RawValue::from_string(record.to_string()).unwrap(),
    }
}

fn map_over(
    integration: &Integration,
    record: Value,
    base: Option<&CallRecord>,
    received_s: i64,
) -> CallRecord {
    let compiled = CompiledMapping::compile(integration).unwrap();
    let envelope = envelope(&record, received_s);
    let mapped = map_fields(&compiled, &envelope).unwrap();
    let position = RawPosition {
        raw_id: Uuid::nil(),
        topic: "t".into(),
        partition: 0,
        offset: 0,
    };
    assemble(
        &compiled,
        &envelope,
        mapped,
        base,
        position,
        envelope.received_at,
    )
    .unwrap()
}

fn record(extra: Value) -> Value {
    let mut record = json!({
        "inboundCallId": "RGB1", "inboundPhoneNumber": "+14155552671", "callDt": 1795000000000i64
    });
    for (k, v) in extra.as_object().unwrap() {
        record[k] = v.clone();
    }
    record
}

fn value<'a>(call: &'a CallRecord, name: &str) -> Option<(AttributeType, &'a str)> {
    call.attributes
        .get(name)
        .map(|AttributeValue { kind, value }| (*kind, value.as_str()))
}

#[test]
fn a_ringba_record_keeps_its_attributes_typed() {
    let call = map_over(
        &ringba(),
        record(json!({
            "recordingUrl": "https://media.ringba.com/recording-public?v=v1&k=abc",
            "publisherSubId": "pub-7",
            "tag:User:sub5": "fb_lookalike",
            "tag:User:gclid": "Cj0KCQiA",
            "share": "12.50",
            "consent": "yes",
            "clickedAt": "2026-11-20 09:58:00"
        })),
        None,
        0,
    );
    assert_eq!(
        value(&call, "recordingUrl"),
        Some((
            AttributeType::String,
            "https://media.ringba.com/recording-public?v=v1&k=abc"
        ))
    );
    assert_eq!(
        value(&call, "publisherSubId"),
        Some((AttributeType::String, "pub-7"))
    );
    assert_eq!(
        value(&call, "tag:User:sub5"),
        Some((AttributeType::String, "fb_lookalike"))
    );
    assert_eq!(
        value(&call, "tag:User:gclid"),
        Some((AttributeType::String, "Cj0KCQiA"))
    );
    assert_eq!(
        value(&call, "payout_share"),
        Some((AttributeType::Number, "12.5"))
    );
    assert_eq!(
        value(&call, "consent"),
        Some((AttributeType::Boolean, "true"))
    );
    // In the integration's zone, as any partner time without an offset.
    assert_eq!(
        value(&call, "clicked_at"),
        Some((AttributeType::Time, "2026-11-20T14:58:00Z"))
    );
    assert!(call.warnings.is_empty(), "{:?}", call.warnings);
    // The row ClickHouse stores gives the same call back.
    let row = schemas::CallRow::from(&call);
    assert_eq!(row.attr_keys.len(), 7);
    assert_eq!(
        CallRecord::try_from(row).unwrap().attributes,
        call.attributes
    );
}

#[test]
fn a_bad_attribute_is_a_warning_and_the_call_is_kept() {
    let call = map_over(
        &ringba(),
        record(json!({"share": "twelve", "consent": "maybe", "publisherSubId": {"nested": 1}})),
        None,
        0,
    );
    assert!(call.attributes.is_empty(), "{:?}", call.attributes);
    let warnings = call.warnings.join("\n");
    for expected in [
        "attributes.payout_share (path share) value \"twelve\": \"twelve\" is not a number",
        "attributes.consent",
        "attributes.publisherSubId",
    ] {
        assert!(warnings.contains(expected), "{expected} in {warnings}");
    }
}

#[test]
fn a_call_over_the_byte_limit_keeps_what_fits_and_says_what_not() {
    let many: serde_json::Map<String, Value> = (0..10)
        .map(|i| (format!("a{i}"), json!({"path": format!("v{i}")})))
        .collect();
    let integration = integration(Value::Object(many));
    let values: serde_json::Map<String, Value> = (0..10)
        .map(|i| (format!("v{i}"), json!("x".repeat(2000))))
        .collect();
    let call = map_over(&integration, record(Value::Object(values)), None, 0);
    let kept: usize = call
        .attributes
        .iter()
        .map(|(k, v)| k.len() + v.value.len())
        .sum();
    assert!(kept <= MAX_CALL_BYTES, "{kept}");
    assert_eq!(call.attributes.len(), 8);
    let left_out = call
        .warnings
        .iter()
        .filter(|w| w.contains("would be over 16384 bytes"))
        .count();
    assert_eq!(left_out, 2, "{:?}", call.warnings);
}

#[test]
fn a_later_record_adds_and_corrects_an_older_one_only_fills() {
    let integration = ringba();
    let first = map_over(
        &integration,
        record(json!({"publisherSubId": "pub-7", "tag:User:sub5": "a"})),
        None,
        10,
    );
    let later = map_over(
        &integration,
        record(json!({"publisherSubId": "pub-8", "recordingUrl": "https://r/1.mp3"})),
        Some(&first),
        20,
    );
    assert_eq!(
        value(&later, "publisherSubId"),
        Some((AttributeType::String, "pub-8"))
    );
    assert_eq!(
        value(&later, "recordingUrl"),
        Some((AttributeType::String, "https://r/1.mp3"))
    );
    assert_eq!(
        value(&later, "tag:User:sub5"),
        Some((AttributeType::String, "a")),
        "kept"
    );
    let older = map_over(
        &integration,
        record(json!({"publisherSubId": "pub-6", "consent": true})),
        Some(&later),
        5,
    );
    assert_eq!(
        value(&older, "publisherSubId"),
        Some((AttributeType::String, "pub-8"))
    );
    assert_eq!(
        value(&older, "consent"),
        Some((AttributeType::Boolean, "true")),
        "filled"
    );
}

#[test]
fn attributes_take_every_rule_a_field_takes() {
    let integration = integration(json!({
        "ext": {"path": "dialed", "extract": "ext\\.?\\s*(\\d+)"},
        "lead": {"template": "{publisherName}/{subId}"},
        "bonus": {"type": "number", "cases": [
            {"when": {"path": "disposition", "equals": "sale"}, "static": "5"}
        ], "static": "0"},
        "vip": {"type": "boolean", "path": "vip", "when": {"path": "campaign", "equals": "VIP"}}
    }));
    let call = map_over(
        &integration,
        record(
            json!({"dialed": "800-555-0100 ext. 42", "publisherName": "acme", "subId": "s9",
                      "disposition": "sale", "vip": true, "campaign": "Other"}),
        ),
        None,
        0,
    );
    assert_eq!(value(&call, "ext"), Some((AttributeType::String, "42")));
    assert_eq!(
        value(&call, "lead"),
        Some((AttributeType::String, "acme/s9"))
    );
    assert_eq!(value(&call, "bonus"), Some((AttributeType::Number, "5")));
    assert_eq!(value(&call, "vip"), None, "its when did not hold");
}

#[test]
fn definitions_that_cannot_work_are_refused_by_name() {
    let (field, problem) = refusal(json!({"a b": {"path": "x"}}));
    assert_eq!(field, "mapping.attributes.a b");
    assert!(problem.contains("not allowed"), "{problem}");
    let (field, problem) = refusal(json!({"x": {}}));
    assert_eq!(field, "mapping.attributes.x");
    assert!(problem.contains("needs one of"), "{problem}");
    let (field, _) = refusal(json!({"x": {"path": "a..b"}}));
    assert_eq!(field, "mapping.attributes.x");
    let (field, _) = refusal(json!({"x": {"path": "a", "extract": "("}}));
    assert_eq!(field, "mapping.attributes.x.extract");
    let too_many: serde_json::Map<String, Value> = (0..=MAX_ATTRIBUTES)
        .map(|i| (format!("a{i}"), json!({"path": "x"})))
        .collect();
    let (field, problem) = refusal(Value::Object(too_many));
    assert_eq!(field, "mapping.attributes");
    assert!(problem.contains("at most 50"), "{problem}");
    let unknown_type: Result<Integration, _> =
        serde_json::from_value(definition(json!({"x": {"path": "x", "type": "float"}})));
    assert!(unknown_type
        .unwrap_err()
        .to_string()
        .contains("unknown variant `float`"));
    // A canonical field has its own type.
    let mut typed = definition(json!({}));
    typed["mapping"]["fields"]["caller"]["type"] = json!("number");
    let typed: Integration = serde_json::from_value(typed).unwrap();
    assert!(
        matches!(typed.validate(), Err(IntegrationError::Invalid { field, .. }) if field == "mapping.fields.caller.type")
    );
}
