//! Repeat callers. A call is a repeat when an earlier call (by start time, not by
//! arrival) from the same caller to the same account, within the window of the
//! call's integration and in its scope, counts under that integration's rule.
//!
//! Decided over a caller's whole timeline at once, in start order, so the answer
//! depends only on the set of calls: the order they arrived in, which instance
//! processed them and whether it restarted in between do not matter.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use schemas::enrichment::{RepeatCounts, RepeatRule, RepeatScope};
use schemas::{CallId, CallRecord, ClientId};

/// What the repeat decision needs to know about one call. Kept per caller in the
/// processor's state (short names: millions of them are stored).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Visit {
    #[serde(rename = "i")]
    pub id: CallId,
    #[serde(rename = "k")]
    pub client_id: ClientId,
    #[serde(rename = "s", with = "chrono::serde::ts_seconds")]
    pub started_at: DateTime<Utc>,
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    pub buyer: Option<String>,
    #[serde(rename = "n", default)]
    pub connected: bool,
    #[serde(rename = "q", default)]
    pub qualified: bool,
    /// The decision stored with the call (what its row says now).
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub repeat_of: Option<CallId>,
}

/// The earlier call that makes a call a repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepeatOf {
    pub id: CallId,
    pub started_at: DateTime<Utc>,
}

/// Whether a call connected: the partner's flag when it sends one, else a positive
/// connected duration, else a positive duration.
pub fn connected(
    flag: Option<bool>,
    connected_duration_s: Option<u32>,
    duration_s: Option<u32>,
) -> bool {
    flag.or_else(|| connected_duration_s.map(|d| d > 0))
        .or_else(|| duration_s.map(|d| d > 0))
        .unwrap_or(false)
}

impl Visit {
    pub fn of(call: &CallRecord) -> Self {
        Self {
            id: call.id,
            client_id: call.client_id.clone(),
            started_at: call.started_at,
            campaign: call.campaign.clone(),
            buyer: call.buyer.clone(),
            connected: connected(call.connected, call.connected_duration_s, call.duration_s),
            qualified: call.qualified,
            repeat_of: call.repeat_of,
        }
    }
}

/// Decides every call of one caller. `rule_of` gives the rule of a call's
/// integration (the call being judged decides the window, scope and what counts).
/// Ties in start time are ordered by id, so the decision is still deterministic.
pub fn decide<'a>(
    visits: impl IntoIterator<Item = &'a Visit>,
    rule_of: impl Fn(&ClientId) -> RepeatRule,
) -> HashMap<CallId, Option<RepeatOf>> {
    let mut order: Vec<&Visit> = visits.into_iter().collect();
    order.sort_by_key(|v| (v.started_at, v.id.0));
    let mut decided: Vec<Option<RepeatOf>> = Vec::with_capacity(order.len());
    for (index, call) in order.iter().enumerate() {
        let rule = rule_of(&call.client_id);
        let window = Duration::days(i64::from(rule.window_days));
        let mut found = None;
        for earlier_index in (0..index).rev() {
            let earlier = order[earlier_index];
            if call.started_at - earlier.started_at >= window {
                break;
            }
            let in_scope = match rule.scope {
                RepeatScope::Account => true,
                RepeatScope::Campaign => {
                    call.campaign.is_some() && earlier.campaign == call.campaign
                }
                RepeatScope::Buyer => call.buyer.is_some() && earlier.buyer == call.buyer,
            };
            let counts = match rule.counts {
                RepeatCounts::Connected => earlier.connected,
                RepeatCounts::Qualified => earlier.qualified && decided[earlier_index].is_none(),
            };
            if in_scope && counts {
                found = Some(RepeatOf {
                    id: earlier.id,
                    started_at: earlier.started_at,
                });
                break;
            }
        }
        decided.push(found);
    }
    order
        .iter()
        .zip(decided)
        .map(|(visit, decision)| (visit.id, decision))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn visit(n: u128, day: i64, connected: bool, qualified: bool) -> Visit {
        Visit {
            id: CallId(uuid::Uuid::from_u128(n)),
            client_id: ClientId::parse("c").unwrap(),
            started_at: Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap() + Duration::days(day),
            campaign: Some(if n.is_multiple_of(2) { "even" } else { "odd" }.into()),
            buyer: None,
            connected,
            qualified,
            repeat_of: None,
        }
    }

    fn default_rule(_: &ClientId) -> RepeatRule {
        RepeatRule::default()
    }

    #[test]
    fn a_call_within_thirty_days_of_a_connected_one_is_a_repeat() {
        let visits = [
            visit(1, 0, true, true),
            visit(2, 29, true, true),
            visit(3, 70, true, true),
        ];
        let decided = decide(&visits, default_rule);
        assert_eq!(decided[&visits[0].id], None);
        assert_eq!(decided[&visits[1].id].unwrap().id, visits[0].id);
        assert_eq!(
            decided[&visits[1].id].unwrap().started_at,
            visits[0].started_at
        );
        assert_eq!(
            decided[&visits[2].id], None,
            "70 days later is a new caller again"
        );
    }

    #[test]
    fn the_window_is_by_start_time_so_arrival_order_does_not_matter() {
        // The older call arrives second: the newer one still becomes the repeat.
        let visits = [visit(2, 10, true, true), visit(1, 0, true, true)];
        let decided = decide(&visits, default_rule);
        assert_eq!(decided[&visits[0].id].unwrap().id, visits[1].id);
        assert_eq!(decided[&visits[1].id], None);
    }

    #[test]
    fn exactly_the_window_apart_is_not_a_repeat() {
        let visits = [visit(1, 0, true, true), visit(2, 30, true, true)];
        assert_eq!(decide(&visits, default_rule)[&visits[1].id], None);
    }

    #[test]
    fn unconnected_calls_do_not_count_by_default() {
        let visits = [visit(1, 0, false, false), visit(2, 1, true, true)];
        assert_eq!(decide(&visits, default_rule)[&visits[1].id], None);
    }

    #[test]
    fn counting_only_qualified_calls_skips_earlier_repeats() {
        let rule = |_: &ClientId| RepeatRule {
            counts: RepeatCounts::Qualified,
            ..RepeatRule::default()
        };
        // 1 qualified; 2 is a repeat of 1; 3 (33 days after 1, 28 after 2) is not a
        // repeat: 2 was itself a repeat, so it does not count.
        let visits = [
            visit(1, 0, true, true),
            visit(2, 5, true, true),
            visit(3, 33, true, true),
        ];
        let decided = decide(&visits, rule);
        assert_eq!(decided[&visits[1].id].unwrap().id, visits[0].id);
        assert_eq!(decided[&visits[2].id], None);
        // With connected counting, 2 makes 3 a repeat.
        assert_eq!(
            decide(&visits, default_rule)[&visits[2].id].unwrap().id,
            visits[1].id
        );
    }

    #[test]
    fn campaign_scope_compares_within_a_campaign() {
        let rule = |_: &ClientId| RepeatRule {
            scope: RepeatScope::Campaign,
            ..RepeatRule::default()
        };
        // 1 and 3 are "odd", 2 is "even".
        let visits = [
            visit(1, 0, true, true),
            visit(2, 1, true, true),
            visit(3, 2, true, true),
        ];
        let decided = decide(&visits, rule);
        assert_eq!(decided[&visits[1].id], None);
        assert_eq!(decided[&visits[2].id].unwrap().id, visits[0].id);
    }

    #[test]
    fn the_most_recent_earlier_call_is_named() {
        let visits = [
            visit(1, 0, true, true),
            visit(2, 3, true, true),
            visit(3, 4, true, true),
        ];
        assert_eq!(
            decide(&visits, default_rule)[&visits[2].id].unwrap().id,
            visits[1].id
        );
    }

    proptest! {
        /// Any arrival order of the same calls gives the same decisions.
        #[test]
        fn decisions_do_not_depend_on_arrival_order(
            calls in proptest::collection::vec((0_i64..90, any::<bool>(), any::<bool>()), 1..20),
            seed in any::<u64>(),
        ) {
            let visits: Vec<Visit> = calls
                .iter()
                .enumerate()
                .map(|(n, (day, c, q))| visit(n as u128, *day, *c, *q))
                .collect();
            let mut shuffled = visits.clone();
            let len = shuffled.len();
            for i in 0..len {
                let j = ((seed.wrapping_mul(i as u64 + 7)) % len as u64) as usize;
                shuffled.swap(i, j);
            }
            let rule = |_: &ClientId| RepeatRule { counts: RepeatCounts::Qualified, ..RepeatRule::default() };
            prop_assert_eq!(decide(&visits, default_rule), decide(&shuffled, default_rule));
            prop_assert_eq!(decide(&visits, rule), decide(&shuffled, rule));
        }

        /// A repeat always names an earlier, connected call inside the window.
        #[test]
        fn a_repeat_names_a_call_that_justifies_it(
            calls in proptest::collection::vec((0_i64..90, any::<bool>()), 1..20),
        ) {
            let visits: Vec<Visit> = calls
                .iter()
                .enumerate()
                .map(|(n, (day, c))| visit(n as u128, *day, *c, true))
                .collect();
            let decided = decide(&visits, default_rule);
            for visit in &visits {
                if let Some(of) = decided[&visit.id] {
                    let earlier = visits.iter().find(|v| v.id == of.id).unwrap();
                    prop_assert!(earlier.connected);
                    prop_assert!(earlier.started_at <= visit.started_at);
                    prop_assert!(visit.started_at - earlier.started_at < Duration::days(30));
                }
            }
        }
    }
}
