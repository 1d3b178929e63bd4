//! CallMatrix duplicates: a partner record on a number CallMatrix manages is a call
//! CallMatrix already routed and counted. It is tagged duplicate and linked to the
//! CmCall it duplicates, in this order:
//!
//! 1. the partner echoed our routed call id (`cm_call_id` mapped from the record):
//!    `echoed_id`;
//! 2. else the CmCall with the same called and caller numbers whose start is within
//!    the start tolerance and whose duration is within the duration tolerance, the
//!    closest by |Δstart| + |Δduration| seconds: `time_window`;
//! 3. two or more equally close: `ambiguous`, with no link (never a guess);
//! 4. none yet: `pending`, linked when the CmCall arrives (see `linker`).

use chrono::{DateTime, Utc};
use schemas::callmatrix::{CmCallRow, MatchMethod};
use schemas::enrichment::DuplicateRule;
use schemas::CallRecord;

/// A CmCall as the matcher sees it. Kept per caller in the processor's state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Candidate {
    #[serde(rename = "i")]
    pub cm_call_id: String,
    /// The account the CmCall was routed for: only that account's records link to it.
    #[serde(rename = "a")]
    pub account: String,
    #[serde(rename = "f")]
    pub caller: String,
    #[serde(rename = "t")]
    pub called: String,
    #[serde(rename = "s", with = "chrono::serde::ts_seconds")]
    pub started_at: DateTime<Utc>,
    #[serde(rename = "d")]
    pub duration_s: u32,
}

impl Candidate {
    /// A CmCall routed for `account`.
    pub fn of(call: &schemas::callmatrix::CmCall, account: &str) -> Self {
        Self {
            cm_call_id: call.cm_call_id.clone(),
            account: account.to_owned(),
            caller: call.caller.to_string(),
            called: call.called.to_string(),
            started_at: schemas::call::to_whole_seconds(call.started_at),
            duration_s: call.duration_s,
        }
    }
}

impl From<CmCallRow> for Candidate {
    fn from(row: CmCallRow) -> Self {
        Self {
            cm_call_id: row.cm_call_id,
            account: row.account,
            caller: row.caller,
            called: row.called,
            started_at: row.started_at,
            duration_s: row.duration_s,
        }
    }
}

/// The outcome for one partner record on a managed number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub method: MatchMethod,
    pub cm_call_id: Option<String>,
    pub start_delta_s: Option<i32>,
    pub duration_delta_s: Option<i32>,
    /// The equally close CmCalls when ambiguous.
    pub tied: Vec<String>,
}

/// Links `call` among `candidates` (any CmCalls; the ones of other accounts, numbers
/// or callers are skipped). An echoed id wins without looking at candidates.
pub fn link(call: &CallRecord, candidates: &[Candidate], rule: &DuplicateRule) -> Link {
    if call.match_method == Some(MatchMethod::EchoedId) {
        return Link {
            method: MatchMethod::EchoedId,
            cm_call_id: call.cm_call_id.clone(),
            start_delta_s: None,
            duration_delta_s: None,
            tied: vec![],
        };
    }
    let called = call.called.as_ref().map(|c| c.as_str()).unwrap_or("");
    let mut fits: Vec<(i64, &Candidate, i64, Option<i64>)> = candidates
        .iter()
        // A withheld caller matches no CmCall: the caller is half the evidence.
        .filter(|c| {
            c.account == call.account
                && c.called == called
                && call
                    .caller
                    .as_ref()
                    .is_some_and(|caller| c.caller == caller.as_str())
        })
        .filter_map(|c| {
            let start = (call.started_at - c.started_at).num_seconds();
            if start.abs() > i64::from(rule.start_tolerance_s) {
                return None;
            }
            let duration = call
                .duration_s
                .map(|d| i64::from(d) - i64::from(c.duration_s));
            if duration.is_some_and(|d| d.abs() > i64::from(rule.duration_tolerance_s)) {
                return None;
            }
            Some((
                start.abs() + duration.unwrap_or(0).abs(),
                c,
                start,
                duration,
            ))
        })
        .collect();
    fits.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1.cm_call_id.cmp(&b.1.cm_call_id))
    });
    let Some(&(best, chosen, start, duration)) = fits.first() else {
        return Link {
            method: MatchMethod::Pending,
            cm_call_id: None,
            start_delta_s: None,
            duration_delta_s: None,
            tied: vec![],
        };
    };
    let tied: Vec<String> = fits
        .iter()
        .take_while(|f| f.0 == best)
        .map(|f| f.1.cm_call_id.clone())
        .collect();
    if tied.len() > 1 {
        return Link {
            method: MatchMethod::Ambiguous,
            cm_call_id: None,
            start_delta_s: None,
            duration_delta_s: None,
            tied,
        };
    }
    Link {
        method: MatchMethod::TimeWindow,
        cm_call_id: Some(chosen.cm_call_id.clone()),
        start_delta_s: i32::try_from(start).ok(),
        duration_delta_s: duration.and_then(|d| i32::try_from(d).ok()),
        tied: vec![],
    }
}

/// Writes a link onto the call: duplicate, which CmCall, how, how close.
pub fn apply(call: &mut CallRecord, link: Link) {
    const AMBIGUOUS: &str = "ambiguous CallMatrix match";
    call.warnings.retain(|w| !w.starts_with(AMBIGUOUS));
    if link.method == MatchMethod::Ambiguous {
        call.warnings.push(format!(
            "{AMBIGUOUS}: {} fit equally well; not linked",
            link.tied.join(", ")
        ));
    }
    call.is_duplicate = true;
    call.match_method = Some(link.method);
    call.cm_call_id = link.cm_call_id;
    call.match_start_delta_s = link.start_delta_s;
    call.match_duration_delta_s = link.duration_delta_s;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use phonenumber::country::Id;
    use schemas::E164;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 22, 3, 0).unwrap() + Duration::seconds(seconds)
    }

    fn partner(start: i64, duration: Option<u32>) -> CallRecord {
        let mut call = crate::enrich::test_call("p1", at(start));
        call.called = Some(E164::parse("+18885550100", Id::US).unwrap());
        call.duration_s = duration;
        call
    }

    fn cm(id: &str, start: i64, duration: u32) -> Candidate {
        Candidate {
            cm_call_id: id.into(),
            account: "acme".into(),
            caller: "+14155552671".into(),
            called: "+18885550100".into(),
            started_at: at(start),
            duration_s: duration,
        }
    }

    #[test]
    fn the_closest_cmcall_within_tolerance_is_linked_with_its_deltas() {
        let rule = DuplicateRule::default();
        let found = link(
            &partner(20, Some(230)),
            &[
                cm("far", 900, 250),
                cm("near", 0, 250),
                cm("other", 25, 240),
            ],
            &rule,
        );
        assert_eq!(found.method, MatchMethod::TimeWindow);
        assert_eq!(
            found.cm_call_id.as_deref(),
            Some("other"),
            "5 s + 10 s beats 20 s + 20 s"
        );
        assert_eq!(
            (found.start_delta_s, found.duration_delta_s),
            (Some(-5), Some(-10))
        );
    }

    #[test]
    fn outside_either_tolerance_is_pending() {
        let rule = DuplicateRule::default();
        assert_eq!(
            link(&partner(400, Some(250)), &[cm("a", 0, 250)], &rule).method,
            MatchMethod::Pending
        );
        assert_eq!(
            link(&partner(0, Some(100)), &[cm("a", 0, 250)], &rule).method,
            MatchMethod::Pending
        );
        let mut other_caller = cm("a", 0, 250);
        other_caller.caller = "+12125550187".into();
        assert_eq!(
            link(&partner(0, Some(250)), &[other_caller], &rule).method,
            MatchMethod::Pending
        );
    }

    #[test]
    fn two_equally_close_are_ambiguous_not_guessed() {
        let found = link(
            &partner(0, Some(250)),
            &[cm("b", 10, 250), cm("a", -10, 250)],
            &DuplicateRule::default(),
        );
        assert_eq!(found.method, MatchMethod::Ambiguous);
        assert_eq!(found.cm_call_id, None);
        assert_eq!(found.tied, ["a", "b"]);
        let mut call = partner(0, Some(250));
        apply(&mut call, found);
        assert!(call.is_duplicate);
        assert!(
            call.warnings[0].contains("a, b fit equally well"),
            "{:?}",
            call.warnings
        );
    }

    proptest::proptest! {
        /// A link is always within both tolerances and no other candidate is
        /// strictly closer; an ambiguous answer names only equally close ones.
        #[test]
        fn links_are_within_tolerance_and_closest(
            start in -600_i64..600,
            duration in proptest::option::of(100_u32..400),
            others in proptest::collection::vec((-600_i64..600, 100_u32..400), 0..8),
        ) {
            let rule = DuplicateRule::default();
            let call = partner(start, duration);
            let candidates: Vec<Candidate> = others
                .iter()
                .enumerate()
                .map(|(n, (s, d))| cm(&format!("cm_{n}"), *s, *d))
                .collect();
            let score = |c: &Candidate| {
                let s = (call.started_at - c.started_at).num_seconds();
                let d = call.duration_s.map(|d| i64::from(d) - i64::from(c.duration_s));
                let fits = s.abs() <= 300 && d.is_none_or(|d| d.abs() <= 60);
                fits.then(|| s.abs() + d.unwrap_or(0).abs())
            };
            let best = candidates.iter().filter_map(score).min();
            let found = link(&call, &candidates, &rule);
            match found.method {
                MatchMethod::TimeWindow => {
                    let chosen = candidates.iter().find(|c| Some(&c.cm_call_id) == found.cm_call_id.as_ref()).unwrap();
                    proptest::prop_assert_eq!(score(chosen), best);
                    proptest::prop_assert_eq!(candidates.iter().filter(|c| score(c) == best).count(), 1);
                }
                MatchMethod::Ambiguous => {
                    proptest::prop_assert!(found.tied.len() > 1);
                    for id in &found.tied {
                        let tied = candidates.iter().find(|c| &c.cm_call_id == id).unwrap();
                        proptest::prop_assert_eq!(score(tied), best);
                    }
                }
                MatchMethod::Pending => proptest::prop_assert_eq!(best, None),
                MatchMethod::EchoedId => proptest::prop_assert!(false, "no echo was sent"),
            }
        }
    }

    #[test]
    fn an_echoed_id_wins() {
        let mut call = partner(5000, None);
        call.cm_call_id = Some("cm_9".into());
        call.match_method = Some(MatchMethod::EchoedId);
        let found = link(&call, &[cm("a", 5000, 250)], &DuplicateRule::default());
        assert_eq!(
            (found.method, found.cm_call_id.as_deref()),
            (MatchMethod::EchoedId, Some("cm_9"))
        );
    }
}
