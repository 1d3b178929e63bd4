//! Late fields: a later record of the same call is assembled over the call as it
//! stands, keeping what it does not say.

use chrono::{Duration, TimeZone, Utc};
use schemas::call::RawPosition;
use schemas::{ClientId, Integration, RawEnvelope, Source};
use serde_json::json;
use serde_json::value::RawValue;
use uuid::Uuid;

use schemas::CallRecord;

use super::{assemble, map_fields, map_record, CompiledMapping, Rejection};

fn arroyo() -> CompiledMapping {
    let all: Vec<Integration> =
        serde_json::from_str(include_str!("../../../deploy/integrations/samples.json")).unwrap();
    CompiledMapping::compile(
        all.iter()
            .find(|i| i.client_id.as_str() == "arroyo")
            .unwrap(),
    )
    .unwrap()
}

fn envelope(record: serde_json::Value, minutes_later: i64) -> RawEnvelope {
    RawEnvelope {
        raw_id: Uuid::from_u128(minutes_later as u128),
        client_id: ClientId::parse("arroyo").unwrap(),
        source: Source::Webhook,
        received_at: Utc.with_ymd_and_hms(2026, 11, 20, 23, 0, 0).unwrap()
            + Duration::minutes(minutes_later),
        idempotency_key: String::new(),
        integration_version: 1,
        payload: RawValue::from_string(record.to_string()).unwrap(),
    }
}

fn position() -> RawPosition {
    RawPosition {
        raw_id: Uuid::nil(),
        topic: "t".into(),
        partition: 0,
        offset: 0,
    }
}

/// `record`, received `minutes_later`, assembled over `base`.
fn merge_onto(
    mapping: &CompiledMapping,
    base: Option<&CallRecord>,
    record: serde_json::Value,
    minutes_later: i64,
) -> Result<CallRecord, Rejection> {
    let late = envelope(record, minutes_later);
    let mapped = map_fields(mapping, &late)?;
    assemble(mapping, &late, mapped, base, position(), Utc::now())
}

fn original() -> serde_json::Value {
    json!({"call": {"id": "ar_1", "caller": {"number": "(415) 555-2671", "zip": "94103"}, "tracking_number": "8885550100",
                    "started_at": "2026-11-20T14:03:22-08:00", "duration": "4:12", "tags": ["auto"],
                    "campaign": {"name": "Auto CA"}}})
}

#[test]
fn a_late_payout_updates_the_call_and_keeps_the_rest() {
    let mapping = arroyo();
    let first = map_record(&mapping, &envelope(original(), 0), position(), Utc::now()).unwrap();
    assert_eq!((first.payout, first.status.as_str()), (None, "unqualified"));

    let late = json!({"call": {"id": "ar_1", "payout": "$60.00"}});
    let mapped = map_fields(&mapping, &envelope(late.clone(), 30)).unwrap();
    assert_eq!(mapped.call_id, Some(first.id));
    let merged = merge_onto(&mapping, Some(&first), late, 30).unwrap();
    assert_eq!(merged.id, first.id, "the same call, not a second one");
    assert!(merged.version > first.version, "a new version that wins");
    assert_eq!(merged.payout.unwrap().to_string(), "60.00");
    assert_eq!(
        merged.status, "qualified",
        "status follows the merged payout"
    );
    assert_eq!(merged.caller, first.caller);
    assert_eq!(
        (merged.started_at, merged.local_tz.as_str()),
        (first.started_at, "America/Los_Angeles")
    );
    assert_eq!(
        (
            merged.duration_s,
            merged.tags.clone(),
            merged.campaign.clone()
        ),
        (
            Some(252),
            vec!["auto".to_owned()],
            Some("Auto CA".to_owned())
        )
    );
}

#[test]
fn a_correction_overrides_only_what_it_says() {
    let mapping = arroyo();
    let first = map_record(&mapping, &envelope(original(), 0), position(), Utc::now()).unwrap();
    let correction =
        json!({"call": {"id": "ar_1", "duration": "5:00", "tags": ["auto", "corrected"]}});
    let merged = merge_onto(&mapping, Some(&first), correction, 5).unwrap();
    assert_eq!(merged.duration_s, Some(300));
    assert_eq!(merged.tags, ["auto", "corrected"]);
    assert_eq!(merged.zip.as_deref(), Some("94103"));
}

#[test]
fn a_partial_record_of_an_unknown_call_is_rejected_with_the_reason() {
    let mapping = arroyo();
    let late = json!({"call": {"id": "ar_nobody", "payout": "$60.00"}});
    let rejection = merge_onto(&mapping, None, late, 30).unwrap_err();
    assert!(
        rejection.reason.contains("no earlier record of call"),
        "{}",
        rejection.reason
    );
    let fields: Vec<_> = rejection.errors.iter().map(|e| e.field).collect();
    assert_eq!(fields, ["caller", "started_at"]);
}

#[test]
fn a_present_but_bad_required_field_rejects_even_with_a_base() {
    let mapping = arroyo();
    let late = envelope(
        json!({"call": {"id": "ar_1", "caller": {"number": "not provided"}}}),
        30,
    );
    let rejection = map_fields(&mapping, &late)
        .err()
        .expect("a bad caller is never merged");
    assert!(rejection.errors[0].to_string().contains("not provided"));
}

#[test]
fn a_partner_status_word_survives_a_late_payout() {
    let mapping = arroyo();
    let mut first = map_record(&mapping, &envelope(original(), 0), position(), Utc::now()).unwrap();
    first.partner_status = Some("Converted".into());
    let late = json!({"call": {"id": "ar_1", "payout": "0"}});
    let merged = merge_onto(&mapping, Some(&first), late, 30).unwrap();
    assert_eq!(merged.partner_status.as_deref(), Some("Converted"));
    assert_eq!(
        merged.status, "unqualified",
        "no rule names the word, so the payout decides"
    );
    assert_eq!(merged.event, schemas::call::Change::Updated);
}
