//! The shipped presets over records shaped like each platform's API output.

use chrono::Utc;
use schemas::call::RawPosition;
use schemas::{presets, ClientId, RawEnvelope, Source};
use serde_json::value::RawValue;
use uuid::Uuid;

use super::{map_record, CompiledMapping};

fn map(preset: &str, fixture: &str) -> schemas::CallRecord {
    let integration = presets::integration(
        preset,
        ClientId::parse("p").unwrap(),
        "acme",
        "P",
        Source::Poll,
    )
    .unwrap();
    let compiled = CompiledMapping::compile(&integration).unwrap();
    let text = std::fs::read_to_string(format!(
        "{}/../tests/fixtures/presets/{fixture}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let now = Utc::now();
    let envelope = RawEnvelope {
        raw_id: Uuid::nil(),
        client_id: integration.client_id.clone(),
        source: Source::Poll,
        received_at: now,
        idempotency_key: String::new(),
        integration_version: 1,
        payload: RawValue::from_string(text.trim().to_owned()).unwrap(),
    };
    let position = RawPosition {
        raw_id: Uuid::nil(),
        topic: "t".into(),
        partition: 0,
        offset: 0,
    };
    map_record(&compiled, &envelope, position, now).unwrap()
}

#[test]
fn ringba_call_log() {
    let call = map("ringba", "ringba-calllog.json");
    assert_eq!(call.external_id.as_deref(), Some("RGB1A2B3C4D5E6F"));
    assert_eq!(call.caller.as_ref().unwrap().as_str(), "+14155552671");
    assert_eq!(call.called.as_ref().unwrap().as_str(), "+18885550100");
    assert_eq!(
        call.started_at.to_rfc3339(),
        "2026-11-20T22:03:22+00:00",
        "callDt is epoch ms"
    );
    assert_eq!(call.duration_s, Some(252));
    assert_eq!(
        (call.connected_duration_s, call.connected),
        (Some(230), Some(true))
    );
    assert_eq!(call.payout.unwrap().to_string(), "45.00");
    assert_eq!(call.revenue.unwrap().to_string(), "60.50");
    assert_eq!(call.buyer.as_deref(), Some("Acme Insurance"));
    assert!(call.warnings.is_empty(), "{:?}", call.warnings);
}

#[test]
fn callrail_call() {
    let call = map("callrail", "callrail-call.json");
    assert_eq!(call.external_id.as_deref(), Some("CAL8154748ae6bd4e278a7a"));
    assert_eq!(call.caller.as_ref().unwrap().as_str(), "+16025550188");
    assert_eq!(call.started_at.to_rfc3339(), "2026-11-20T22:03:22+00:00");
    assert_eq!(
        (call.local_tz.as_str(), call.tz_source.as_str()),
        ("America/Phoenix", "area_code")
    );
    assert_eq!(call.connected, Some(true));
    assert_eq!(call.revenue.unwrap().to_string(), "1200.00");
    assert_eq!(
        (call.city.as_deref(), call.state.as_deref()),
        (Some("Phoenix"), Some("AZ"))
    );
    assert_eq!(call.publisher.as_deref(), Some("Google Ads"));
    assert_eq!(call.tags, ["new_client", "high_value"]);
    assert!(call.warnings.is_empty(), "{:?}", call.warnings);
}

#[test]
fn invoca_transaction() {
    let call = map("invoca", "invoca-transaction.json");
    assert_eq!(call.external_id.as_deref(), Some("4C2B-1A9F0E7D"));
    assert_eq!(call.caller.as_ref().unwrap().as_str(), "+14155552671");
    assert_eq!(call.called.as_ref().unwrap().as_str(), "+18885550100");
    assert_eq!(call.started_at.to_rfc3339(), "2026-11-20T22:03:22+00:00");
    assert_eq!(
        (
            call.payout.unwrap().to_string(),
            call.revenue.unwrap().to_string()
        ),
        ("45.00".into(), "60.00".into())
    );
    assert_eq!(
        (call.state.as_deref(), call.zip.as_deref()),
        (Some("CA"), Some("94103"))
    );
    assert_eq!(call.partner_status.as_deref(), Some("Converted"));
    assert_eq!(call.connected_duration_s, Some(230));
    assert!(call.warnings.is_empty(), "{:?}", call.warnings);
}

#[test]
fn retreaver_call() {
    let call = map("retreaver", "retreaver-call.json");
    assert_eq!(
        call.external_id.as_deref(),
        Some("3f0c6a52-8d1e-4b7a-9c2f-5e6d7a8b9c0d")
    );
    assert_eq!(call.caller.as_ref().unwrap().as_str(), "+14155552671");
    assert_eq!(call.called.as_ref().unwrap().as_str(), "+18885550100");
    assert_eq!(call.started_at.to_rfc3339(), "2026-11-20T22:03:22+00:00");
    assert_eq!(
        (call.duration_s, call.connected_duration_s, call.connected),
        (Some(252), Some(230), Some(true)),
        "total_duration is the whole call, dialed_call_duration the connected leg"
    );
    assert_eq!(
        (
            call.payout.unwrap().to_string(),
            call.revenue.unwrap().to_string()
        ),
        ("45.00".into(), "60.50".into())
    );
    assert_eq!(
        (call.publisher.as_deref(), call.buyer.as_deref()),
        (Some("Blue Media"), Some("Acme Insurance"))
    );
    assert_eq!(call.campaign.as_deref(), Some("Auto Insurance"));
    assert_eq!(call.zip.as_deref(), Some("94103"));
    assert!(call.warnings.is_empty(), "{:?}", call.warnings);
}

#[test]
fn twilio_status_callback() {
    let call = map("twilio", "twilio-status-callback.json");
    assert_eq!(call.external_id.as_deref(), Some("CA42"));
    assert_eq!(call.caller.as_ref().unwrap().as_str(), "+14155552671");
    assert_eq!(call.called.as_ref().unwrap().as_str(), "+18005550199");
    assert_eq!(
        call.started_at.to_rfc3339(),
        "2026-12-06T10:00:00+00:00",
        "Timestamp is RFC 2822"
    );
    assert_eq!(
        call.duration_s,
        Some(42),
        "CallDuration, not Duration (minutes)"
    );
    assert_eq!(call.zip.as_deref(), Some("94103"));
}
