//! Issue 38's declarative rules on small records: filters, `when`, `cases`,
//! `extract`, `replace`, `template`, `compute` and `between`, and their errors.

use chrono::{TimeZone, Utc};
use schemas::call::RawPosition;
use schemas::{CallRecord, ClientId, Integration, RawEnvelope, Source};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{map_record, CompiledMapping, Rejection};

fn integration(fields: Value, filters: Value) -> Integration {
    let mut all = json!({
        "caller": {"path": "caller"},
        "started_at": {"path": "start"}
    });
    for (k, v) in fields.as_object().unwrap() {
        all[k] = v.clone();
    }
    let integration: Integration = serde_json::from_value(json!({
        "client_id": "rules", "account": "acme", "name": "rules", "source": "webhook", "version": 1,
        "timezone": "America/New_York",
        "mapping": {"fields": all, "filters": filters}
    }))
    .unwrap();
    integration.validate().unwrap();
    integration
}

fn map(integration: &Integration, mut record: Value) -> Result<CallRecord, Rejection> {
    record["caller"] = json!("+14155552671");
    record["start"] = json!("2026-11-20T10:00:00Z");
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
    map_record(&compiled, &envelope, position, at)
}

#[test]
fn filters_drop_test_calls_and_pings_by_reason_and_keep_the_rest() {
    let integration = integration(
        json!({}),
        json!([
            {"reason": "test call", "when": {"any": [
                {"path": "campaign", "in": ["Test", "QA"]},
                {"path": "callerName", "matches": "(?i)^test"}]}},
            {"reason": "pre-call ping", "when": {"all": [
                {"path": "event", "equals": "pre-call"},
                {"not": {"path": "duration", "gt": 0}}]}}
        ]),
    );
    let filtered = |record: Value| map(&integration, record).err().and_then(|r| r.filtered);
    assert_eq!(
        filtered(json!({"campaign": "qa"})).as_deref(),
        Some("test call")
    );
    assert_eq!(
        filtered(json!({"callerName": "TEST user"})).as_deref(),
        Some("test call")
    );
    assert_eq!(
        filtered(json!({"event": "pre-call"})).as_deref(),
        Some("pre-call ping")
    );
    assert_eq!(filtered(json!({"event": "pre-call", "duration": 12})), None);
    assert!(map(&integration, json!({"campaign": "Auto"})).is_ok());
}

#[test]
fn cases_pick_a_value_by_condition() {
    // Segment's `@if`: the payout only on a sale, else zero.
    let integration = integration(
        json!({"payout": {"cases": [
            {"when": {"path": "status", "equals": "sale"}, "path": "payout"},
            {"when": {"path": "status", "exists": true}, "static": 0}
        ]}}),
        json!([]),
    );
    let payout = |record: Value| {
        map(&integration, record)
            .unwrap()
            .payout
            .map(|m| m.to_string())
    };
    assert_eq!(
        payout(json!({"status": "Sale", "payout": "12.50"})).as_deref(),
        Some("12.50")
    );
    assert_eq!(
        payout(json!({"status": "no sale", "payout": "12.50"})).as_deref(),
        Some("0.00")
    );
    assert_eq!(
        payout(json!({"payout": "12.50"})),
        None,
        "no case holds: absent"
    );
}

#[test]
fn when_gates_a_rule_and_its_default_applies() {
    let integration = integration(
        json!({"buyer": {"path": "buyer", "when": {"path": "connected", "equals": true}, "default": "none"}}),
        json!([]),
    );
    let buyer = |record: Value| map(&integration, record).unwrap().buyer;
    assert_eq!(
        buyer(json!({"buyer": "B1", "connected": true})).as_deref(),
        Some("B1")
    );
    assert_eq!(
        buyer(json!({"buyer": "B1", "connected": false})).as_deref(),
        Some("none")
    );
}

#[test]
fn extract_replace_and_template() {
    let integration = integration(
        json!({
            "external_id": {"template": "{network}-{id}"},
            "called": {"path": "dialed", "extract": "^(\\+?\\d[\\d ]+?)\\s*ext"},
            "publisher": {"path": "pub", "replace": {"pattern": "^pub_(\\w+)$", "with": "Publisher $1"}}
        }),
        json!([]),
    );
    let call = map(
        &integration,
        json!({"network": "RB", "id": 77, "dialed": "+1 415 555 0100 ext. 204", "pub": "pub_acme"}),
    )
    .unwrap();
    assert_eq!(call.external_id.as_deref(), Some("RB-77"));
    assert_eq!(
        call.called.map(|c| c.to_string()).as_deref(),
        Some("+14155550100")
    );
    assert_eq!(call.publisher.as_deref(), Some("Publisher acme"));
}

#[test]
fn compute_and_between() {
    let integration = integration(
        json!({
            "payout": {"compute": {"op": "mul", "args": [{"path": "revenue"}, {"static": "0.3"}]}},
            "duration_s": {"between": {"start": "answered", "end": "ended"}}
        }),
        json!([]),
    );
    let call = map(&integration, json!({"revenue": "20.10", "answered": "2026-11-20T10:00:05Z", "ended": "2026-11-20 05:02:10"})).unwrap();
    assert_eq!(call.payout.map(|m| m.to_string()).as_deref(), Some("6.03"));
    assert_eq!(
        call.duration_s,
        Some(125),
        "the zone-less end is New York time"
    );
    // An operand that is no number is the field's error, naming the step.
    let call = map(
        &integration,
        json!({"revenue": "lots", "answered": "x", "ended": "y"}),
    )
    .unwrap();
    assert!(
        call.warnings
            .iter()
            .any(|w| w.starts_with("payout") && w.contains("compute: operand 1")),
        "{:?}",
        call.warnings
    );
    assert!(
        call.warnings
            .iter()
            .any(|w| w.starts_with("duration_s") && w.contains("between: the start")),
        "{:?}",
        call.warnings
    );
}

#[test]
fn bad_rules_are_refused_naming_the_place() {
    let problem = |fields: Value, filters: Value| {
        let integration: Integration = serde_json::from_value(json!({
            "client_id": "rules", "account": "acme", "name": "rules", "source": "webhook", "version": 1,
            "mapping": {"fields": fields, "filters": filters}
        }))
        .unwrap();
        integration.validate().unwrap_err().to_string()
    };
    let base = json!({"caller": {"path": "c"}, "started_at": {"path": "s"}});
    let with = |field: &str, rule: Value| {
        let mut fields = base.clone();
        fields[field] = rule;
        fields
    };
    assert!(problem(
        with("buyer", json!({"path": "b", "extract": "("})),
        json!([])
    )
    .contains("mapping.fields.buyer.extract"));
    assert!(problem(
        with("buyer", json!({"path": "b", "when": {"path": "x"}})),
        json!([])
    )
    .contains("mapping.fields.buyer.when"));
    assert!(problem(
        with(
            "payout",
            json!({"compute": {"op": "add", "args": [{"path": "a"}]}})
        ),
        json!([])
    )
    .contains("mapping.fields.payout.compute.args"));
    assert!(
        problem(with("buyer", json!({"template": "no holes"})), json!([]))
            .contains("mapping.fields.buyer.template")
    );
    assert!(problem(
        base.clone(),
        json!([{"reason": "", "when": {"path": "a", "exists": true}}])
    )
    .contains("mapping.filters[0].reason"));
    assert!(problem(
        base,
        json!([{"reason": "x", "when": {"path": "a", "matches": "["}}])
    )
    .contains("mapping.filters[0].when.matches"));
}
