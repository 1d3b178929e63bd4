//! A call's decisions in words: where its zone came from, whether it qualified and
//! by which rule, which earlier call makes it a repeat, which CallMatrix call it
//! duplicates, and why its status is what it is. Every pay-per-call dispute starts
//! with "why is this call a duplicate / a repeat / unqualified?": the api's call
//! story (`GET /api/calls/{id}/story`) answers it with these, for the dashboard and
//! for support tools alike.
//!
//! Read from what the processor stored on the call, under the integration's rules as
//! they are now. Where those rules would decide the qualification differently, the
//! rules changed after the call was processed, and the explanation says so instead
//! of inventing a reason.

use chrono::{DateTime, Utc};
use schemas::callmatrix::MatchMethod;
use schemas::enrichment::{EnrichmentRules, Qualification, RepeatCounts, RepeatScope};
use schemas::CallRecord;
use serde::Serialize;

use crate::enrich::qualify;

/// One decision about a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// `zone`, `qualification`, `repeat`, `duplicate` or `status`.
    pub about: &'static str,
    /// What was decided: a zone name, `qualified`, `repeat`, `duplicate`, a status.
    pub outcome: String,
    /// The rule that decided it, as its configuration path and value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The call this decision points at: the earlier call of a repeat, the
    /// CallMatrix call of a duplicate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refers_to: Option<String>,
    /// The decision in a sentence.
    pub text: String,
}

impl Decision {
    fn new(about: &'static str, outcome: impl Into<String>, text: String) -> Self {
        Self {
            about,
            outcome: outcome.into(),
            rule: None,
            refers_to: None,
            text,
        }
    }

    fn rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }

    fn refers_to(mut self, id: impl Into<String>) -> Self {
        self.refers_to = Some(id.into());
        self
    }
}

/// Every decision about `call`, in the order the processor makes them.
pub fn explain(call: &CallRecord, rules: &EnrichmentRules) -> Vec<Decision> {
    vec![
        zone(call),
        qualification(call, rules),
        repeat(call, rules),
        duplicate(call, rules),
        status(call),
    ]
}

fn zone(call: &CallRecord) -> Decision {
    let zone = call.local_tz.clone();
    let text = match call.tz_source.as_str() {
        "zip" => format!(
            "Local zone {zone}, from ZIP {}.",
            call.zip.as_deref().unwrap_or("?")
        ),
        "area_code" => format!(
            "Local zone {zone}, from the area code of the caller {} (no ZIP placed the call).",
            call.caller.as_ref().map(|c| c.as_str()).unwrap_or("?")
        ),
        "integration" => format!(
            "Local zone {zone}, the integration's own: neither a ZIP nor the caller's area code placed the call."
        ),
        other => format!("Local zone {zone} (decided by {other:?})."),
    };
    Decision::new("zone", zone, text)
}

fn qualification(call: &CallRecord, rules: &EnrichmentRules) -> Decision {
    let outcome = if call.qualified {
        "qualified"
    } else {
        "unqualified"
    };
    let verdict = |yes: bool| if yes { "Qualified" } else { "Unqualified" };
    let (rule, text) = qualification_reason(call, rules, verdict);
    let decision = Decision::new("qualification", outcome, text);
    let decision = match rule {
        Some(rule) => decision.rule(rule),
        None => decision,
    };
    if qualify(call, rules) != call.qualified {
        let text = format!(
            "{} when it was processed; the integration's rules have changed since, and would now decide otherwise ({})",
            verdict(call.qualified),
            decision.text.trim_end_matches('.')
        );
        return Decision {
            text: text + ".",
            ..decision
        };
    }
    decision
}

/// The rule `qualify` applies to `call`, and the reason in words, in its order.
fn qualification_reason(
    call: &CallRecord,
    rules: &EnrichmentRules,
    verdict: impl Fn(bool) -> &'static str,
) -> (Option<String>, String) {
    if let Some(status) = call.partner_status.as_deref() {
        if let Some(word) = rules.word(status) {
            let yes = word == Qualification::Qualified;
            return (
                Some(format!(
                    "enrichment.qualification.status_words.{:?} = {}",
                    status.trim(),
                    if yes { "qualified" } else { "unqualified" }
                )),
                format!(
                    "{}: the partner's status {status:?} is listed as {} by the integration.",
                    verdict(yes),
                    if yes { "qualified" } else { "unqualified" }
                ),
            );
        }
        let word = status.trim().to_ascii_lowercase();
        if word == "qualified" || word == "unqualified" {
            return (
                None,
                format!(
                    "{}: the partner's status says {word:?}.",
                    verdict(word == "qualified")
                ),
            );
        }
    }
    if let Some(threshold) = rules.qualification.min_duration_s {
        let rule = Some(format!(
            "enrichment.qualification.min_duration_s = {threshold}"
        ));
        let measured = match (call.connected_duration_s, call.duration_s) {
            (Some(d), _) => Some((d, "connected")),
            (None, Some(d)) => Some((d, "lasted")),
            (None, None) => None,
        };
        let text = match measured {
            Some((d, how)) => format!(
                "{}: {how} {d} s, {} the {threshold} s the integration asks for.",
                verdict(d >= threshold),
                if d >= threshold { "at least" } else { "under" }
            ),
            None => format!(
                "Unqualified: no duration is known, and the integration asks for {threshold} s."
            ),
        };
        return (rule, text);
    }
    let text = match &call.payout {
        Some(p) if p.is_positive() => {
            format!("Qualified: the partner paid out {p} {}.", call.currency)
        }
        Some(p) => format!(
            "Unqualified: the payout is {p} {}, and the integration sets no minimum duration.",
            call.currency
        ),
        None => "Unqualified: no payout was sent, and the integration sets no minimum duration."
            .to_owned(),
    };
    (None, text)
}

fn repeat(call: &CallRecord, rules: &EnrichmentRules) -> Decision {
    let rule = &rules.repeat;
    let (scope, scope_words) = match rule.scope {
        RepeatScope::Account => ("account", "anywhere in the account"),
        RepeatScope::Campaign => ("campaign", "in the same campaign"),
        RepeatScope::Buyer => ("buyer", "to the same buyer"),
    };
    let (counts, counts_words) = match rule.counts {
        RepeatCounts::Connected => ("connected", "earlier calls that connected"),
        RepeatCounts::Qualified => ("qualified", "earlier qualified calls"),
    };
    let within = format!(
        "within {} days, {scope_words}, counting {counts_words}",
        rule.window_days
    );
    let rule_text = format!(
        "enrichment.repeat = {{ window_days: {}, scope: {scope}, counts: {counts} }}",
        rule.window_days
    );
    match (&call.repeat_of, &call.caller) {
        (Some(earlier), _) => {
            let when = call
                .repeat_of_started_at
                .map(|at| {
                    format!(
                        ", which started at {} ({} before this one)",
                        at.format("%Y-%m-%d %H:%M:%S UTC"),
                        span(at, call.started_at)
                    )
                })
                .unwrap_or_default();
            Decision::new(
                "repeat",
                "repeat",
                format!("Repeat of call {earlier}{when}: the same caller called {within}."),
            )
            .rule(rule_text)
            .refers_to(earlier.to_string())
        }
        (None, None) => Decision::new(
            "repeat",
            "first call",
            "Not a repeat: the caller withheld the number, so there is no caller to compare with."
                .to_owned(),
        ),
        (None, Some(_)) => Decision::new(
            "repeat",
            "first call",
            format!("Not a repeat: no earlier call from this caller {within}."),
        )
        .rule(rule_text),
    }
}

fn duplicate(call: &CallRecord, rules: &EnrichmentRules) -> Decision {
    let cm = call.cm_call_id.clone();
    let tolerance = &rules.duplicates;
    let rule = format!(
        "enrichment.duplicates = {{ start_tolerance_s: {}, duration_tolerance_s: {} }}",
        tolerance.start_tolerance_s, tolerance.duration_tolerance_s
    );
    let outcome = if call.is_duplicate {
        "duplicate"
    } else {
        "not a duplicate"
    };
    match (call.match_method, cm) {
        (Some(MatchMethod::EchoedId), Some(cm)) => Decision::new(
            "duplicate",
            outcome,
            format!("Duplicate of CallMatrix call {cm}: the partner sent its id back."),
        )
        .refers_to(cm),
        (Some(MatchMethod::TimeWindow), Some(cm)) => {
            let start = call
                .match_start_delta_s
                .map(|d| {
                    format!(
                        "started {} s {} it",
                        d.unsigned_abs(),
                        if d < 0 { "before" } else { "after" }
                    )
                })
                .unwrap_or_else(|| "started at a time not compared".to_owned());
            let duration = call
                .match_duration_delta_s
                .map(|d| match d {
                    0 => "lasted as long".to_owned(),
                    d => format!(
                        "lasted {} s {}",
                        d.unsigned_abs(),
                        if d < 0 { "less" } else { "longer" }
                    ),
                })
                .unwrap_or_else(|| "has no duration to compare".to_owned());
            Decision::new(
                "duplicate",
                outcome,
                format!(
                    "Duplicate of CallMatrix call {cm}: on the same number, it {start} (tolerance {} s) and {duration} (tolerance {} s).",
                    tolerance.start_tolerance_s, tolerance.duration_tolerance_s
                ),
            )
            .rule(rule)
            .refers_to(cm)
        }
        (Some(MatchMethod::Ambiguous), _) => Decision::new(
            "duplicate",
            outcome,
            "Not linked: two or more CallMatrix calls fit equally well, so none was chosen; it is flagged for review.".to_owned(),
        )
        .rule(rule),
        (Some(MatchMethod::Pending), _) => Decision::new(
            "duplicate",
            outcome,
            "On a CallMatrix number, but no CallMatrix call fits yet: it is linked if one arrives.".to_owned(),
        )
        .rule(rule),
        (Some(method), None) => Decision::new(
            "duplicate",
            outcome,
            format!("Matched by {} to no stored CallMatrix call.", method.as_str()),
        ),
        (None, _) => Decision::new(
            "duplicate",
            outcome,
            "Not on a number CallMatrix manages: there is no CallMatrix call to duplicate."
                .to_owned(),
        ),
    }
}

fn status(call: &CallRecord) -> Decision {
    let why = match call.status.as_str() {
        "duplicate" => {
            "CallMatrix already has this call, so counting it here too would count it twice"
        }
        "repeat" => "a repeat is not a new lead, even when it qualified",
        "qualified" => "it qualified, and is neither a duplicate nor a repeat",
        "unqualified" => "it did not qualify, and is neither a duplicate nor a repeat",
        _ => "set by the processor",
    };
    Decision::new(
        "status",
        call.status.clone(),
        format!(
            "Status {}: {why}. Precedence: duplicate, then repeat, then qualified or unqualified.",
            call.status
        ),
    )
}

/// `later - earlier` in the largest units that read well: "3 days 2 h", "5 h 10 min".
fn span(earlier: DateTime<Utc>, later: DateTime<Utc>) -> String {
    let seconds = (later - earlier).num_seconds().max(0);
    let (days, hours, minutes) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
    );
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} days {h} h"),
    }
}

#[cfg(test)]
#[path = "explain_test.rs"]
mod tests;
