//! Entry points for the fuzz targets (`fuzz/`, run by `tests/fuzz/run.sh`) and for
//! the seed-corpus test that runs the same code in every test run. Each takes
//! arbitrary bytes, must never panic, and checks what must hold of any answer.

use chrono::{TimeZone, Utc};
use runtime::access::Scope;

use crate::aggregates::Request;
use crate::events::Positions;

/// The SSE `Last-Event-ID` (and `last_event_id`) parser: what it accepts, it
/// writes back the same.
pub fn last_event_id(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(positions) = Positions::parse(text) {
        let again = Positions::parse(&positions.encode());
        assert_eq!(again.as_ref(), Some(&positions), "{text:?}");
    }
}

/// The `/api/calls` query string, for an account's token and an admin's.
pub fn calls_query(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for scope in [Scope::All, Scope::Account("acme".into())] {
        if let Ok(filter) = crate::calls::filter_of(Some(text), &scope) {
            if scope.account().is_some() {
                assert!(
                    filter.is_scoped(),
                    "an account's filter must name its account"
                );
            }
        }
    }
}

/// The `/api/aggregates` query string: what it accepts is a range that runs
/// forwards, and a plan that writes SQL.
pub fn aggregates_query(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now = Utc
        .with_ymd_and_hms(2026, 12, 2, 12, 0, 0)
        .single()
        .unwrap_or_default();
    for scope in [Scope::All, Scope::Account("acme".into())] {
        if let Ok(request) = Request::parse(Some(text), &scope, now) {
            assert!(request.from < request.to);
            if scope.account().is_some() {
                assert_eq!(request.account.as_deref(), Some("acme"));
            }
            let plan = request.plan();
            let sql = plan.sql(plan.table());
            assert!(!sql.is_empty());
        }
    }
}

#[cfg(test)]
mod tests {
    /// The same entry points over the seed corpus in `fuzz/seeds/`, in every test run.
    #[test]
    fn the_seed_corpus_passes_every_api_target() {
        engine::fuzzing::replay_seeds("last_event_id", super::last_event_id);
        engine::fuzzing::replay_seeds("calls_query", super::calls_query);
        engine::fuzzing::replay_seeds("aggregates_query", super::aggregates_query);
    }
}
