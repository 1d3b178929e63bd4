//! The shipped sample integrations applied to the partner samples in
//! `tests/fixtures`: the values a user would check by hand.

use chrono::{TimeZone, Utc};
use schemas::call::RawPosition;
use schemas::{ClientId, Integration, RawEnvelope, Source};
use serde_json::value::RawValue;
use uuid::Uuid;

use super::{map_record, CompiledMapping, Rejection};

const SAMPLES: &str = include_str!("../../../deploy/integrations/samples.json");

fn mapping(client: &str) -> CompiledMapping {
    let all: Vec<Integration> = serde_json::from_str(SAMPLES).unwrap();
    let integration = all
        .into_iter()
        .find(|i| i.client_id.as_str() == client)
        .unwrap();
    CompiledMapping::compile(&integration).unwrap()
}

fn map(client: &str, record: &serde_json::Value) -> Result<schemas::CallRecord, Rejection> {
    let mapping = mapping(client);
    let received = Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap();
    let envelope = RawEnvelope {
        raw_id: Uuid::nil(),
        client_id: ClientId::parse(client).unwrap(),
        source: Source::Webhook,
        received_at: received,
        idempotency_key: "k".into(),
        integration_version: 1,
        payload: RawValue::from_string(record.to_string()).unwrap(),
    };
    let position = RawPosition {
        raw_id: Uuid::nil(),
        topic: "calls.raw".into(),
        partition: 0,
        offset: 7,
    };
    map_record(&mapping, &envelope, position, received)
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn arroyo_webhook_sample() {
    let records: Vec<serde_json::Value> =
        serde_json::from_str(&fixture("arroyo-webhook.json")).unwrap();
    let calls: Vec<_> = records.iter().map(|r| map("arroyo", r).unwrap()).collect();

    let first = &calls[0];
    assert_eq!(first.external_id.as_deref(), Some("ar_9f8e7d6c"));
    assert_eq!(first.caller.as_ref().unwrap().as_str(), "+14155552671");
    assert_eq!(first.called.as_ref().unwrap().as_str(), "+18885550100");
    assert_eq!(first.started_at.to_rfc3339(), "2026-11-20T22:03:22+00:00");
    assert_eq!(
        (first.local_tz.as_str(), first.tz_source.as_str()),
        ("America/Los_Angeles", "zip")
    );
    assert_eq!(first.duration_s, Some(252));
    assert_eq!(first.payout.unwrap().to_string(), "45.00");
    assert_eq!(first.currency, "USD");
    assert_eq!(first.zip.as_deref(), Some("94103"));
    assert_eq!(first.campaign.as_deref(), Some("Auto Insurance CA"));
    assert_eq!(first.publisher.as_deref(), Some("BlueMedia"));
    assert_eq!(first.tags, ["auto", "insurance"]);
    assert_eq!(first.status, "qualified");
    assert_eq!(first.account, "acme-leads");
    assert!(first.warnings.is_empty(), "{:?}", first.warnings);

    let second = &calls[1];
    assert_eq!(second.caller.as_ref().unwrap().as_str(), "+13125550142");
    assert_eq!(second.started_at.to_rfc3339(), "2026-11-20T22:11:02+00:00");
    assert_eq!(second.duration_s, Some(38));
    assert_eq!(second.payout.unwrap().to_string(), "0.00");
    assert_eq!(second.status, "unqualified");
    assert_eq!(second.zip, None);

    // The same caller in two formats is one caller.
    assert_eq!(calls[2].caller, calls[0].caller);
    assert_eq!(calls[2].duration_s, Some(570));
    // Ids come from the partner's call id: distinct, and stable on re-delivery.
    assert_ne!(calls[0].id, calls[2].id);
    assert_eq!(map("arroyo", &records[0]).unwrap().id, calls[0].id);
}

#[test]
fn ringpartner_pages_in_chicago_time() {
    let page1: serde_json::Value =
        serde_json::from_str(&fixture("ringpartner-api/page1.json")).unwrap();
    let page2: serde_json::Value =
        serde_json::from_str(&fixture("ringpartner-api/page2.json")).unwrap();
    let first = map("ringpartner", &page1["data"][0]).unwrap();
    assert_eq!(first.started_at.to_rfc3339(), "2026-11-20T22:03:22+00:00");
    // The integration's zone reads the timestamp; the caller's zone is their ZIP's.
    assert_eq!(first.local_tz, "America/Los_Angeles");
    assert_eq!(first.called.as_ref().unwrap().as_str(), "+18885550123");
    assert_eq!(first.revenue.unwrap().to_string(), "45.00");
    assert_eq!(first.buyer.as_deref(), Some("Acme Insurance"));
    assert_eq!(first.partner_status.as_deref(), Some("Converted"));
    assert_eq!(
        first.status, "qualified",
        "the integration names \"Converted\" qualified"
    );
    assert_eq!(first.external_id.as_deref(), Some("99120031"));

    let no_buyer = map("ringpartner", &page1["data"][1]).unwrap();
    assert_eq!(no_buyer.buyer, None);
    assert_eq!(no_buyer.zip, None);

    let big = map("ringpartner", &page2["data"][0]).unwrap();
    assert_eq!(big.revenue.unwrap().to_string(), "1020.00");
    assert_eq!(big.zip.as_deref(), Some("10001"));
    assert_eq!(big.caller.as_ref().unwrap().as_str(), "+16465550110");
}

#[test]
fn legacy_sheet_rows_with_damage() {
    let mut reader = csv_rows(&fixture("legacy-sheet.csv"));
    let first = map("legacy-sheet", &reader.remove(0)).unwrap();
    // 9:14 AM in New York on 2 Nov 2026 (after the fall-back) is 14:14 UTC.
    assert_eq!(first.started_at.to_rfc3339(), "2026-11-02T14:14:00+00:00");
    assert_eq!(first.duration_s, Some(252));
    assert_eq!(first.called.as_ref().unwrap().as_str(), "+18885550100");
    // No partner id: the natural key gives the id, and the same row maps to the same id.
    assert_eq!(first.external_id, None);

    let second = map("legacy-sheet", &reader[0]).unwrap();
    assert_eq!(second.payout.unwrap().to_string(), "1200.00");
    assert_eq!(second.duration_s, Some(725));

    let lost_zero = map("legacy-sheet", &reader[2]).unwrap();
    assert_eq!(lost_zero.zip.as_deref(), Some("02134"));

    let broken = map("legacy-sheet", &reader[3]).unwrap_err();
    let fields: Vec<_> = broken.errors.iter().map(|e| e.field.as_ref()).collect();
    assert_eq!(fields, ["caller", "started_at"], "{broken:?}");
    let caller = broken.errors[0].to_string();
    assert!(
        caller.contains("Caller Phone") && caller.contains("not provided"),
        "{caller}"
    );
    assert!(
        broken.errors[1].to_string().contains("without a time"),
        "{:?}",
        broken.errors[1]
    );
}

#[test]
fn optional_field_failure_is_a_warning_not_a_loss() {
    let mut record: serde_json::Value =
        serde_json::from_str::<Vec<serde_json::Value>>(&fixture("arroyo-webhook.json"))
            .unwrap()
            .remove(0);
    record["call"]["payout"] = serde_json::json!("forty-five");
    let call = map("arroyo", &record).unwrap();
    assert_eq!(call.payout, None);
    assert_eq!(call.status, "unqualified");
    assert_eq!(call.warnings.len(), 1);
    assert!(
        call.warnings[0].contains("payout (path call.payout)")
            && call.warnings[0].contains("forty-five"),
        "{:?}",
        call.warnings
    );
}

#[test]
fn non_object_records_are_rejected() {
    assert!(map("arroyo", &serde_json::json!([1, 2]))
        .unwrap_err()
        .reason
        .contains("not a JSON object"));
}

/// Header-keyed JSON objects, as the CSV import turns rows into records.
fn csv_rows(text: &str) -> Vec<serde_json::Value> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|row| {
            let row = row.unwrap();
            let object: serde_json::Map<String, serde_json::Value> = headers
                .iter()
                .zip(row.iter())
                .map(|(h, c)| (h.to_owned(), serde_json::Value::String(c.to_owned())))
                .collect();
            serde_json::Value::Object(object)
        })
        .collect()
}
