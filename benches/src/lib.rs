//! Inputs shared by the benchmarks: a typical partner record and its integration.

use schemas::Integration;

/// A webhook record with 20 mapped fields of every kind the mapping coerces:
/// nested paths, phones, an offset timestamp, a clock duration, `$` money, tags.
pub fn typical_record(n: usize) -> String {
    record_with_caller(n, "(415) 555-2671")
}

/// [`typical_record`] from caller number `n` (a valid San Francisco number for any
/// `n` below 8,000,000): every call from a new caller, as on a busy network.
pub fn typical_record_new_caller(n: usize) -> String {
    let line = 2_000_000 + n % 8_000_000;
    record_with_caller(n, &format!("(415) {}-{:04}", line / 10_000, line % 10_000))
}

fn record_with_caller(n: usize, caller: &str) -> String {
    serde_json::json!({
        "event": "call.completed",
        "call": {
            "id": format!("bench_{n:08}"),
            "caller": {"number": caller, "zip": "94103", "city": "San Francisco", "state": "CA"},
            "tracking_number": "+1 (888) 555-0100",
            "started_at": "2026-11-20T14:03:22-08:00",
            "duration": "00:04:12",
            "payout": "$1,045.00",
            "revenue": "USD 1,200.50",
            "currency": "USD",
            "tags": ["auto", "insurance", "ca"],
            "campaign": {"id": 771, "name": "Auto Insurance CA"},
            "publisher": {"name": "BlueMedia"},
            "buyer": {"name": "Acme Insurance"},
            "status": "Converted",
            "routed": {"cm_call_id": "cm_0001"},
            "extra": {"ivr": [1, 2, 3], "notes": "called back"}
        }
    })
    .to_string()
}

pub fn typical_integration() -> Integration {
    serde_json::from_value(serde_json::json!({
        "client_id": "bench",
        "account": "acme-leads",
        "name": "Benchmark partner",
        "source": "webhook",
        "version": 1,
        "timezone": "America/Los_Angeles",
        "mapping": {"fields": {
            "external_id": {"path": "call.id"},
            "caller": {"path": "call.caller.number"},
            "called": {"path": "call.tracking_number"},
            "started_at": {"path": "call.started_at"},
            "duration_s": {"path": "call.duration"},
            "payout": {"path": "call.payout"},
            "revenue": {"path": "call.revenue"},
            "currency": {"path": "call.currency"},
            "zip": {"path": "call.caller.zip"},
            "city": {"path": "call.caller.city"},
            "state": {"path": "call.caller.state"},
            "campaign": {"path": "call.campaign.name"},
            "publisher": {"path": "call.publisher.name"},
            "buyer": {"path": "call.buyer.name"},
            "tags": {"path": "call.tags"},
            "status": {"path": "call.status"},
            "cm_call_id": {"path": "call.routed.cm_call_id"}
        }}
    }))
    .expect("benchmark integration is valid")
}

/// `record` as the raw envelope ingest would have made for `integration`, and the
/// raw-topic position the processor would have read it at.
pub fn typical_envelope(
    integration: &Integration,
    record: &str,
) -> (schemas::RawEnvelope, schemas::call::RawPosition) {
    let envelope = schemas::RawEnvelope {
        raw_id: uuid::Uuid::nil(),
        client_id: integration.client_id.clone(),
        source: schemas::Source::Webhook,
        received_at: chrono::Utc::now(),
        idempotency_key: "k".into(),
        integration_version: 1,
        payload: serde_json::value::RawValue::from_string(record.to_owned())
            .expect("a typical record is JSON"),
    };
    let position = schemas::call::RawPosition {
        raw_id: uuid::Uuid::nil(),
        topic: "calls.raw".into(),
        partition: 0,
        offset: 0,
    };
    (envelope, position)
}
