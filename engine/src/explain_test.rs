use chrono::{Duration, TimeZone, Utc};
use schemas::callmatrix::MatchMethod;
use schemas::enrichment::EnrichmentRules;
use schemas::{CallId, ClientId, Money};

use super::*;
use crate::enrich::{settle_status, test_call};

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0)
        .single()
        .unwrap_or_else(|| unreachable!())
}

fn about<'a>(decisions: &'a [Decision], what: &str) -> &'a Decision {
    decisions
        .iter()
        .find(|d| d.about == what)
        .unwrap_or_else(|| panic!("no {what} decision in {decisions:?}"))
}

fn rules(json: serde_json::Value) -> EnrichmentRules {
    serde_json::from_value(json).unwrap_or_else(|e| panic!("rules: {e}"))
}

#[test]
fn a_repeat_names_the_earlier_call_its_start_and_the_window() {
    let earlier = CallId::from_external(&ClientId::parse("arroyo").unwrap(), "first");
    let mut call = test_call("second", at(20, 14));
    call.repeat_of = Some(earlier);
    call.repeat_of_started_at = Some(at(17, 12));
    call.qualified = true;
    settle_status(&mut call);
    let decisions = explain(
        &call,
        &rules(serde_json::json!({"repeat": {"window_days": 7}})),
    );
    let repeat = about(&decisions, "repeat");
    assert_eq!(repeat.outcome, "repeat");
    assert_eq!(
        repeat.refers_to.as_deref(),
        Some(earlier.to_string().as_str())
    );
    assert!(
        repeat.text.contains(&earlier.to_string())
            && repeat.text.contains("2026-11-17 12:00:00 UTC")
            && repeat.text.contains("3 days 2 h before")
            && repeat.text.contains("within 7 days"),
        "{}",
        repeat.text
    );
    let status = about(&decisions, "status");
    assert_eq!(status.outcome, "repeat");
    assert!(
        status.text.contains("even when it qualified"),
        "{}",
        status.text
    );
}

#[test]
fn a_duplicate_names_the_callmatrix_call_and_the_deltas_against_the_tolerances() {
    let mut call = test_call("dup", at(20, 14));
    call.is_duplicate = true;
    call.cm_call_id = Some("cm_123".into());
    call.match_method = Some(MatchMethod::TimeWindow);
    call.match_start_delta_s = Some(-42);
    call.match_duration_delta_s = Some(-15);
    settle_status(&mut call);
    let decisions = explain(&call, &EnrichmentRules::default());
    let duplicate = about(&decisions, "duplicate");
    assert_eq!(duplicate.outcome, "duplicate");
    assert_eq!(duplicate.refers_to.as_deref(), Some("cm_123"));
    assert_eq!(
        duplicate.text,
        "Duplicate of CallMatrix call cm_123: on the same number, it started 42 s before it \
         (tolerance 300 s) and lasted 15 s less (tolerance 60 s)."
    );
    assert_eq!(about(&decisions, "status").outcome, "duplicate");
}

#[test]
fn an_echoed_id_and_the_unlinked_cases_say_what_happened() {
    let mut call = test_call("echo", at(20, 14));
    call.is_duplicate = true;
    call.cm_call_id = Some("cm_9".into());
    call.match_method = Some(MatchMethod::EchoedId);
    let text = |call: &CallRecord| {
        about(&explain(call, &EnrichmentRules::default()), "duplicate")
            .text
            .clone()
    };
    assert!(text(&call).contains("sent its id back"), "{}", text(&call));
    call.is_duplicate = false;
    call.cm_call_id = None;
    call.match_method = Some(MatchMethod::Ambiguous);
    assert!(
        text(&call).contains("flagged for review"),
        "{}",
        text(&call)
    );
    call.match_method = Some(MatchMethod::Pending);
    assert!(
        text(&call).contains("no CallMatrix call fits yet"),
        "{}",
        text(&call)
    );
    call.match_method = None;
    assert!(
        text(&call).contains("Not on a number CallMatrix manages"),
        "{}",
        text(&call)
    );
}

#[test]
fn qualification_names_the_rule_that_decided_in_qualify_order() {
    let rules = rules(serde_json::json!({
        "qualification": {"min_duration_s": 90, "status_words": {"No Sale": "unqualified"}}
    }));
    let mut call = test_call("q", at(20, 14));
    call.duration_s = Some(120);
    call.connected_duration_s = Some(95);
    call.qualified = qualify(&call, &rules);
    let decision = about(&explain(&call, &rules), "qualification").clone();
    assert_eq!(decision.outcome, "qualified");
    assert_eq!(
        decision.rule.as_deref(),
        Some("enrichment.qualification.min_duration_s = 90")
    );
    assert!(
        decision.text.contains("connected 95 s, at least the 90 s"),
        "{}",
        decision.text
    );

    call.partner_status = Some(" no sale ".into());
    call.qualified = qualify(&call, &rules);
    let decision = about(&explain(&call, &rules), "qualification").clone();
    assert_eq!(decision.outcome, "unqualified");
    assert!(
        decision
            .text
            .starts_with("Unqualified: the partner's status"),
        "{}",
        decision.text
    );
    assert!(decision
        .rule
        .as_deref()
        .is_some_and(|r| r.contains("status_words")));
}

#[test]
fn without_rules_the_payout_decides() {
    let mut call = test_call("p", at(20, 14));
    call.payout = Money::from_units(450_000);
    call.qualified = true;
    let decision = about(
        &explain(&call, &EnrichmentRules::default()),
        "qualification",
    )
    .clone();
    assert_eq!(decision.text, "Qualified: the partner paid out 45.00 USD.");
    assert_eq!(decision.rule, None);
}

#[test]
fn a_qualification_the_rules_no_longer_give_is_reported_as_changed_rules() {
    let mut call = test_call("changed", at(20, 14));
    call.duration_s = Some(30);
    call.qualified = true; // decided under an older rule
    let rules = rules(serde_json::json!({"qualification": {"min_duration_s": 60}}));
    let decision = about(&explain(&call, &rules), "qualification").clone();
    assert_eq!(decision.outcome, "qualified", "the stored decision stands");
    assert!(
        decision.text.starts_with(
            "Qualified when it was processed; the integration's rules have changed since"
        ),
        "{}",
        decision.text
    );
}

#[test]
fn zone_and_a_withheld_caller_are_explained() {
    let mut call = test_call("z", at(20, 14));
    call.local_tz = "America/New_York".into();
    call.tz_source = "zip".into();
    call.zip = Some("10001".into());
    call.caller = None;
    let decisions = explain(&call, &EnrichmentRules::default());
    assert_eq!(
        about(&decisions, "zone").text,
        "Local zone America/New_York, from ZIP 10001."
    );
    assert!(about(&decisions, "repeat")
        .text
        .contains("withheld the number"));
    assert_eq!(decisions.len(), 5, "one decision of each kind");
}

#[test]
fn spans_read_in_the_largest_units() {
    let start = at(1, 0);
    assert_eq!(span(start, start + Duration::seconds(42)), "42 s");
    assert_eq!(span(start, start + Duration::minutes(5)), "5 min");
    assert_eq!(span(start, start + Duration::minutes(130)), "2 h 10 min");
    assert_eq!(span(start, start + Duration::hours(50)), "2 days 2 h");
}
