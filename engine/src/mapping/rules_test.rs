//! Each kind of rule on a small record: fallbacks, defaults, value maps, wildcards.

use chrono::{TimeZone, Utc};
use schemas::call::RawPosition;
use schemas::{ClientId, Integration, RawEnvelope, Source};
use serde_json::json;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::{map_record, CompiledMapping};

fn integration(fields: serde_json::Value) -> Integration {
    serde_json::from_value(json!({
        "client_id": "rules", "account": "acme", "name": "rules", "source": "webhook", "version": 1,
        "timezone": "America/New_York",
        "mapping": {"fields": fields}
    }))
    .unwrap()
}

fn map(fields: serde_json::Value, record: serde_json::Value) -> schemas::CallRecord {
    map_with(&integration(fields), record)
}

fn map_with(integration: &Integration, record: serde_json::Value) -> schemas::CallRecord {
    integration.validate().unwrap();
    let compiled = CompiledMapping::compile(integration).unwrap();
    let at = Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap();
    let envelope = RawEnvelope {
        raw_id: Uuid::nil(),
        client_id: ClientId::parse("rules").unwrap(),
        source: Source::Webhook,
        received_at: at,
        idempotency_key: "k".into(),
        integration_version: 1,
        payload: RawValue::from_string(record.to_string()).unwrap(),
    };
    let position = RawPosition {
        raw_id: Uuid::nil(),
        topic: "t".into(),
        partition: 0,
        offset: 0,
    };
    map_record(&compiled, &envelope, position, at).unwrap()
}

fn base() -> serde_json::Map<String, serde_json::Value> {
    let fields = json!({
        "caller": {"first_of": ["caller.mobile", "caller.home", "ani"]},
        "started_at": {"path": "start"}
    });
    fields.as_object().unwrap().clone()
}

#[test]
fn first_of_takes_the_first_non_blank_path() {
    let call = map(
        json!(base()),
        json!({"caller": {"mobile": "  ", "home": null}, "ani": "4155552671", "start": "2026-11-20T10:00:00Z"}),
    );
    assert_eq!(call.caller.as_ref().unwrap().as_str(), "+14155552671");
    let call = map(
        json!(base()),
        json!({"caller": {"mobile": "3125550142"}, "ani": "4155552671", "start": "2026-11-20T10:00:00Z"}),
    );
    assert_eq!(call.caller.as_ref().unwrap().as_str(), "+13125550142");
}

#[test]
fn default_applies_only_when_nothing_was_sent() {
    let mut fields = base();
    fields.insert(
        "campaign".into(),
        json!({"path": "campaign", "default": "Unassigned"}),
    );
    let record = |campaign: serde_json::Value| json!({"ani": "4155552671", "start": "2026-11-20T10:00:00Z", "campaign": campaign});
    assert_eq!(
        map(json!(fields), record(json!(null))).campaign.as_deref(),
        Some("Unassigned")
    );
    assert_eq!(
        map(json!(fields), record(json!(""))).campaign.as_deref(),
        Some("Unassigned")
    );
    assert_eq!(
        map(json!(fields), record(json!("Auto")))
            .campaign
            .as_deref(),
        Some("Auto")
    );
}

#[test]
fn value_map_is_case_insensitive_and_passes_unknown_words_through() {
    let mut fields = base();
    fields.insert(
        "status".into(),
        json!({"path": "Status", "map": {"Converted": "qualified", "short call": "unqualified"}}),
    );
    let record = |status: &str| json!({"ani": "4155552671", "start": "2026-11-20T10:00:00Z", "Status": status});
    let converted = map(json!(fields), record("CONVERTED "));
    assert_eq!(
        (
            converted.partner_status.as_deref(),
            converted.status.as_str()
        ),
        (Some("qualified"), "qualified"),
        "a word mapped onto our vocabulary decides qualification"
    );
    assert_eq!(
        map(json!(fields), record("Short Call")).status,
        "unqualified"
    );
    let unknown = map(json!(fields), record("Voicemail"));
    assert_eq!(unknown.partner_status.as_deref(), Some("Voicemail"));
    assert_eq!(
        unknown.status, "unqualified",
        "no payout, no rule: not qualified"
    );
}

#[test]
fn wildcards_collect_array_elements() {
    let mut fields = base();
    fields.insert("tags".into(), json!({"path": "labels[*].name"}));
    fields.insert(
        "publisher".into(),
        json!({"join": ["legs[*].carrier"], "separator": " > "}),
    );
    let call = map(
        json!(fields),
        json!({
            "ani": "4155552671", "start": "2026-11-20T10:00:00Z",
            "labels": [{"name": "auto"}, {"name": "ca"}, {"other": 1}],
            "legs": [{"carrier": "A"}, {"carrier": "B"}]
        }),
    );
    assert_eq!(call.tags, ["auto", "ca"]);
    assert_eq!(call.publisher.as_deref(), Some("A > B"));
}

#[test]
fn a_wildcard_into_a_single_value_field_is_a_warning() {
    let mut fields = base();
    fields.insert("campaign".into(), json!({"path": "labels[*]"}));
    let call = map(
        json!(fields),
        json!({"ani": "4155552671", "start": "2026-11-20T10:00:00Z", "labels": ["a", "b"]}),
    );
    assert_eq!(call.campaign, None);
    assert!(
        call.warnings[0].contains("campaign (path labels[*])")
            && call.warnings[0].contains("array"),
        "{:?}",
        call.warnings
    );
}

/// The number convention through a whole mapping: `decimal_separator` "," reads
/// European amounts; under "." a `1.234` payout of a EUR integration is read as
/// 1.234 with a warning on the row, and a decimal-comma value is a field error
/// (a row warning for the optional payout, never a different number).
#[test]
fn number_conventions_through_a_mapping() {
    let with = |extra: serde_json::Value, payout: &str| {
        let mut integration = integration(json!({
            "caller": {"path": "ani"}, "started_at": {"path": "start"}, "payout": {"path": "payout"}
        }));
        let mut value = serde_json::to_value(&integration).unwrap();
        if let (serde_json::Value::Object(target), serde_json::Value::Object(extra)) =
            (&mut value, extra)
        {
            target.extend(extra);
        }
        integration = serde_json::from_value(value).unwrap();
        let record =
            json!({"ani": "4155552671", "start": "2026-11-20T10:00:00Z", "payout": payout});
        map_with(&integration, record)
    };
    let comma = with(
        json!({"decimal_separator": ",", "currency": "EUR"}),
        "€1.234,50",
    );
    assert_eq!(comma.payout.unwrap().to_string(), "1234.50");
    assert_eq!(comma.currency, "EUR");
    assert!(comma.warnings.is_empty(), "{:?}", comma.warnings);

    let ambiguous = with(json!({"currency": "EUR"}), "1.234");
    assert_eq!(ambiguous.payout.unwrap().to_string(), "1.234");
    let [warning] = ambiguous.warnings.as_slice() else {
        panic!("one warning: {:?}", ambiguous.warnings)
    };
    assert!(
        warning.contains("decimal_separator") && warning.contains("1234"),
        "{warning}"
    );

    let american = with(json!({}), "1.234");
    assert!(
        american.warnings.is_empty(),
        "a USD/US integration is not warned: {:?}",
        american.warnings
    );

    let slipped = with(json!({}), "1.234,5");
    assert_eq!(slipped.payout, None, "never 1.2345");
    assert!(
        slipped
            .warnings
            .iter()
            .any(|w| w.contains("decimal_separator")),
        "{:?}",
        slipped.warnings
    );
}

#[test]
fn a_withheld_caller_is_a_call_without_a_number() {
    let fields = json!({
        "external_id": {"path": "id"},
        "caller": {"path": "ani"},
        "started_at": {"path": "start"}
    });
    for word in [
        "anonymous",
        "Restricted",
        "UNAVAILABLE",
        "Private Number",
        "No Caller-ID",
        "withheld",
    ] {
        let call = map(
            fields.clone(),
            json!({"id": "w1", "ani": word, "start": "2026-11-20T10:00:00Z"}),
        );
        assert_eq!(call.caller, None, "{word}");
        assert_eq!(call.external_id.as_deref(), Some("w1"));
        assert_eq!(
            engine_key(&call),
            call.id.to_string(),
            "keyed by its own id, not a shared 'anonymous' caller"
        );
    }
}

#[test]
fn a_blank_caller_is_withheld_when_the_partner_says_so() {
    // The partner's convention (blank means withheld) is said with a default.
    let fields = json!({
        "caller": {"path": "ani", "default": "anonymous"},
        "started_at": {"path": "start"}
    });
    let call = map(fields, json!({"ani": "", "start": "2026-11-20T10:00:00Z"}));
    assert_eq!(call.caller, None);
}

fn engine_key(call: &schemas::CallRecord) -> String {
    crate::enrich::key_of(call)
}

#[test]
fn a_foreign_postal_code_gets_no_us_city_and_a_warning() {
    let fields = json!({
        "caller": {"path": "ani"},
        "started_at": {"path": "start"},
        "zip": {"path": "zip"}
    });
    let call = map(
        fields.clone(),
        json!({"ani": "4155552671", "start": "2026-11-20T10:00:00Z", "zip": "SW1A 1AA"}),
    );
    assert_eq!(call.zip.as_deref(), Some("SW1A 1AA"));
    assert_eq!((call.city, call.state), (None, None));
    assert!(
        call.warnings.iter().any(|w| w.contains("not a US ZIP")),
        "{:?}",
        call.warnings
    );
    let nine = map(
        fields,
        json!({"ani": "4155552671", "start": "2026-11-20T10:00:00Z", "zip": "941031234"}),
    );
    assert_eq!(nine.zip.as_deref(), Some("94103"));
    assert_eq!(nine.city.as_deref(), Some("San Francisco"));
}
