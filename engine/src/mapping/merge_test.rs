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
    let fields: Vec<_> = rejection.errors.iter().map(|e| e.field.as_ref()).collect();
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

#[test]
fn a_record_received_earlier_but_merged_later_still_wins_over_the_stored_row() {
    // Clock skew between ingest replicas, a forwarded late field or a replay
    // interleaving partitions: the late payout's receive time is before the stored
    // row's, yet it is merged over that row and must not write a lower version.
    let mapping = arroyo();
    let stored = map_record(&mapping, &envelope(original(), 30), position(), Utc::now()).unwrap();
    let late = json!({"call": {"id": "ar_1", "payout": "$60.00"}});
    let merged = merge_onto(&mapping, Some(&stored), late, 0).unwrap();
    assert!(
        merged.version > stored.version,
        "merged version {} must replace stored {}",
        merged.version,
        stored.version
    );
    assert_eq!(
        merged.payout.unwrap().to_string(),
        "60.00",
        "the merged field is kept"
    );
    assert_eq!(merged.duration_s, stored.duration_s, "and the stored ones");
}

#[test]
fn an_older_record_does_not_overwrite_what_a_newer_one_said() {
    // The stored row holds a correction received at minute 30; a record of the same
    // call received at minute 0 and merged only now fills what the row lacks, but
    // its stale values do not replace the newer ones.
    let mapping = arroyo();
    let first = map_record(&mapping, &envelope(original(), 0), position(), Utc::now()).unwrap();
    let correction = json!({"call": {"id": "ar_1", "duration": "5:00"}});
    let stored = merge_onto(&mapping, Some(&first), correction, 30).unwrap();
    let stale = json!({"call": {"id": "ar_1", "duration": "4:12", "payout": "$60.00"}});
    let merged = merge_onto(&mapping, Some(&stored), stale, 10).unwrap();
    assert!(merged.version > stored.version);
    assert_eq!(merged.duration_s, Some(300), "the newer duration stays");
    assert_eq!(
        merged.payout.unwrap().to_string(),
        "60.00",
        "the missing payout is filled"
    );
}

fn legacy_sheet() -> CompiledMapping {
    let all: Vec<Integration> =
        serde_json::from_str(include_str!("../../../deploy/integrations/samples.json")).unwrap();
    let sheet = all
        .iter()
        .find(|i| i.client_id.as_str() == "legacy-sheet")
        .unwrap();
    CompiledMapping::compile(sheet).unwrap()
}

fn sheet_envelope(record: serde_json::Value, minutes_later: i64) -> RawEnvelope {
    RawEnvelope {
        client_id: ClientId::parse("legacy-sheet").unwrap(),
        ..envelope(record, minutes_later)
    }
}

#[test]
fn an_in_progress_and_a_completed_record_without_call_ids_are_one_call() {
    // No partner call id: the natural key (caller, called, start) names the call,
    // so the completed record, with its duration and payout, is merged over the
    // in-progress one instead of becoming a second call (and its own repeat).
    let mapping = legacy_sheet();
    let row = |length: &str, payout: &str| {
        json!({"Caller Phone": "(415) 555-2671", "Number Dialed": "888-555-0100",
               "Date": "2026-11-20", "Time": "14:03:22", "Call Length": length,
               "Payout": payout, "ZIP": "94103", "Campaign": "Auto"})
    };
    let progress = sheet_envelope(row("0", ""), 0);
    let fields = map_fields(&mapping, &progress).unwrap();
    let id = fields.call_id.expect("a natural-key record names its call");
    let stored = assemble(&mapping, &progress, fields, None, position(), Utc::now()).unwrap();
    assert_eq!(stored.id, id);

    let done = sheet_envelope(row("4:12", "$60.00"), 5);
    let fields = map_fields(&mapping, &done).unwrap();
    assert_eq!(
        fields.call_id,
        Some(id),
        "the completed record names the same call"
    );
    let merged = assemble(
        &mapping,
        &done,
        fields,
        Some(&stored),
        position(),
        Utc::now(),
    )
    .unwrap();
    assert_eq!(merged.id, stored.id);
    assert!(merged.version > stored.version);
    assert_eq!(merged.duration_s, Some(252));
    assert_eq!(merged.payout.unwrap().to_string(), "60.00");
}

#[test]
fn a_replay_under_a_newer_mapping_replaces_what_the_old_mapping_made() {
    // The stored row was merged from a record received at minute 30 under mapping
    // v1; the replay of the minute-0 record under v2 is older by receive time but
    // newer by mapping, so its values win.
    let v1 = arroyo();
    let first = map_record(&v1, &envelope(original(), 0), position(), Utc::now()).unwrap();
    let payout = json!({"call": {"id": "ar_1", "payout": "$60.00"}});
    let stored = merge_onto(&v1, Some(&first), payout, 30).unwrap();

    let mut integration = v1.integration.clone();
    integration.version = 2;
    integration.mapping.fields.insert(
        schemas::CanonicalField::Campaign,
        serde_json::from_value(json!({"path": "call.tracking_number"})).unwrap(),
    );
    let v2 = CompiledMapping::compile(&integration).unwrap();
    let replayed = merge_onto(&v2, Some(&stored), original(), 0).unwrap();
    assert!(replayed.version > stored.version);
    assert_eq!(
        replayed.campaign.as_deref(),
        Some("8885550100"),
        "v2's campaign"
    );
    assert_eq!(
        replayed.payout.unwrap().to_string(),
        "60.00",
        "the late payout kept"
    );
}
