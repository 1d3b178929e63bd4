//! Enrichment: what the processor adds to a mapped call.
//!
//! Per record, without state (also run by the preview): the caller's place and zone
//! (`place`) and base qualification (`qualify`). Per batch, with state: repeat
//! callers over each caller's timeline (`repeat`) and CallMatrix duplicates
//! (`duplicates`), over what the processor keeps per caller (`crate::state`). The
//! status then follows by precedence (`Status::decide`).

pub mod duplicates;
pub mod geo;
pub mod repeat;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use schemas::callmatrix::{ManagedNumber, MatchMethod};
use schemas::enrichment::{EnrichmentRules, Qualification, Status};
use schemas::{CallId, CallRecord, ClientId};

use self::duplicates::Candidate;
use self::repeat::{RepeatOf, Visit};

/// One caller's calls, by id.
pub type History = Arc<HashMap<CallId, Visit>>;

/// The histories a batch holds, by caller key: every caller of the batch's calls,
/// an empty history for a new one.
pub type HeldHistories = HashMap<String, History>;

/// Fills city and state from the ZIP when the partner left them empty (a partner's
/// own value wins), and sets the caller's zone: the ZIP's, else the area code's when
/// all of its ZIPs share one zone, else the integration's.
pub fn place(call: &mut CallRecord, integration_zone: &str) {
    let geo = geo::geo();
    let from_zip = call.zip.as_deref().and_then(|zip| geo.place(zip));
    if let Some(place) = from_zip {
        if call.city.as_deref().is_none_or(str::is_empty) {
            call.city = Some(place.city.clone());
        }
        if call.state.as_deref().is_none_or(str::is_empty) {
            call.state = Some(place.state.clone());
        }
    }
    let (zone, source) = match (
        from_zip.and_then(|p| p.zone),
        call.caller
            .as_ref()
            .and_then(|caller| geo.area_code_zone(caller)),
    ) {
        (Some(zone), _) => (zone.name().to_owned(), "zip"),
        (None, Some(zone)) => (zone.name().to_owned(), "area_code"),
        (None, None) => (integration_zone.to_owned(), "integration"),
    };
    call.local_tz = zone;
    call.tz_source = source.to_owned();
}

/// Base qualification, before repeat and duplicate decisions: the partner's status
/// word when the rules name it; else, with a duration threshold, whether the call
/// lasted that long (the connected duration when the partner sends one, as trackers
/// measure it); else whether the payout is positive.
pub fn qualify(call: &CallRecord, rules: &EnrichmentRules) -> bool {
    if let Some(status) = call.partner_status.as_deref() {
        if let Some(word) = rules.word(status) {
            return word == Qualification::Qualified;
        }
        // A mapping's value map may already have put the word in our vocabulary.
        match status.trim().to_ascii_lowercase().as_str() {
            "qualified" => return true,
            "unqualified" => return false,
            _ => {}
        }
    }
    if let Some(threshold) = rules.qualification.min_duration_s {
        return call
            .connected_duration_s
            .or(call.duration_s)
            .is_some_and(|d| d >= threshold);
    }
    call.payout.is_some_and(|p| p.is_positive())
}

/// The status by precedence from what is decided on the call.
pub fn settle_status(call: &mut CallRecord) {
    call.status = Status::decide(call.is_duplicate, call.repeat_of.is_some(), call.qualified)
        .as_str()
        .to_owned();
}

/// The caller key of a call (see `schemas::ids::caller_key`). A call whose caller
/// withheld the number has no caller to share a key with: its key is its own id
/// (what ingest keys a record by when it finds no caller number but a call id).
pub fn key_of(call: &CallRecord) -> String {
    match &call.caller {
        Some(caller) => schemas::ids::caller_key(&call.account, caller.as_str()),
        None => call.id.to_string(),
    }
}

/// The numbers CallMatrix manages, by E.164 text: the processor tails them from a
/// compacted topic; tests use a map.
pub trait ManagedNumbers: Send + Sync {
    fn managed(&self, number: &str) -> Option<Arc<ManagedNumber>>;
}

impl ManagedNumbers for HashMap<String, ManagedNumber> {
    fn managed(&self, number: &str) -> Option<Arc<ManagedNumber>> {
        self.get(number).cloned().map(Arc::new)
    }
}

/// The batch-level part: decisions over the state the shell holds for the batch.
pub struct Enricher {
    pub managed: Arc<dyn ManagedNumbers>,
}

/// The caller keys of `calls` whose histories a batch needs (withheld callers have
/// none: never a repeat, never repeated).
pub fn caller_keys(calls: &[CallRecord]) -> std::collections::BTreeSet<String> {
    calls
        .iter()
        .filter(|c| c.caller.is_some())
        .map(key_of)
        .collect()
}

/// A stored call (not in the batch) whose repeat decision changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redecided {
    pub client_id: ClientId,
    pub id: CallId,
    pub repeat: Option<RepeatOf>,
}

impl Enricher {
    /// Decides repeats for the batch's callers over their histories (`held`: every
    /// caller key of `calls`, from the processor's state), sets them on `calls`,
    /// updates the histories, and returns the stored calls whose decision changed
    /// because of this batch (an older call arriving late makes a newer one a
    /// repeat).
    pub fn decide_repeats(
        &self,
        calls: &mut [CallRecord],
        held: &mut HeldHistories,
        rules: &dyn Fn(&ClientId) -> EnrichmentRules,
    ) -> Vec<Redecided> {
        let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, call) in calls.iter_mut().enumerate() {
            if call.caller.is_none() {
                // Withheld callers are not one caller: never repeats of each other.
                call.repeat_of = None;
                call.repeat_of_started_at = None;
                continue;
            }
            by_key.entry(key_of(call)).or_default().push(index);
        }
        let mut changed = Vec::new();
        for (key, indexes) in by_key {
            let history = held.entry(key).or_default();
            // Out of the cache, the history is the batch's alone: changed in place.
            let visits = Arc::make_mut(history);
            let in_batch: HashSet<CallId> = indexes.iter().map(|&i| calls[i].id).collect();
            for &index in &indexes {
                // Later versions of a call in the batch replace earlier ones.
                visits.insert(calls[index].id, Visit::of(&calls[index]));
            }
            let decided = repeat::decide(visits.values(), |client| rules(client).repeat);
            for &index in &indexes {
                let call = &mut calls[index];
                let repeat = decided.get(&call.id).copied().flatten();
                call.repeat_of = repeat.map(|r| r.id);
                call.repeat_of_started_at = repeat.map(|r| r.started_at);
            }
            for visit in visits.values_mut() {
                let now = decided.get(&visit.id).copied().flatten();
                if !in_batch.contains(&visit.id) && visit.repeat_of != now.map(|r| r.id) {
                    changed.push(Redecided {
                        client_id: visit.client_id.clone(),
                        id: visit.id,
                        repeat: now,
                    });
                }
                visit.repeat_of = now.map(|r| r.id);
            }
        }
        changed.sort_by_key(|r| r.id.0);
        changed
    }

    /// Whether CallMatrix manages `call`'s called number for the call's own account
    /// (or the partner echoed our call id, which says the same). A number another
    /// account manages says nothing about this account's calls: enrichment never
    /// looks across accounts.
    pub fn is_callmatrix_call(&self, call: &CallRecord) -> bool {
        call.match_method == Some(MatchMethod::EchoedId)
            || call
                .called
                .as_ref()
                .and_then(|n| self.managed.managed(n.as_str()))
                .is_some_and(|n| n.active && n.account == call.account)
    }

    /// Tags and links the CallMatrix calls among `calls` (see `duplicates`).
    pub fn link_duplicates(
        &self,
        calls: &mut [CallRecord],
        candidates: &[Candidate],
        rules: &dyn Fn(&ClientId) -> EnrichmentRules,
    ) {
        for call in calls.iter_mut() {
            if self.is_callmatrix_call(call) {
                let rule = rules(&call.client_id).duplicates;
                let found = duplicates::link(call, candidates, &rule);
                duplicates::apply(call, found);
            }
        }
    }
}

/// A stored call with a changed repeat decision, as its next version.
pub fn redecided(
    mut call: CallRecord,
    repeat: Option<RepeatOf>,
    processed_at: DateTime<Utc>,
) -> CallRecord {
    call.repeat_of = repeat.map(|r| r.id);
    call.repeat_of_started_at = repeat.map(|r| r.started_at);
    settle_status(&mut call);
    call.version += 1;
    call.processed_at = schemas::call::to_whole_seconds(processed_at);
    call.event = schemas::call::Change::Updated;
    call
}

/// A plain call for tests (here and in the processor's).
#[doc(hidden)]
pub fn test_call(external: &str, started_at: DateTime<Utc>) -> CallRecord {
    use phonenumber::country::Id;
    use schemas::call::{Change, RawPosition};
    let client = ClientId::parse("arroyo").unwrap_or_else(|_| unreachable!());
    CallRecord {
        id: CallId::from_external(&client, external),
        version: 1,
        account: "acme".into(),
        client_id: client,
        source: schemas::Source::Webhook,
        external_id: Some(external.into()),
        caller: Some(
            schemas::E164::parse("+14155552671", Id::US).unwrap_or_else(|_| unreachable!()),
        ),
        called: None,
        started_at,
        local_tz: "UTC".into(),
        duration_s: Some(120),
        connected_duration_s: None,
        connected: Some(true),
        payout: None,
        revenue: None,
        currency: "USD".into(),
        zip: None,
        city: None,
        state: None,
        campaign: None,
        publisher: None,
        buyer: None,
        tags: vec![],
        status: "unqualified".into(),
        is_duplicate: false,
        cm_call_id: None,
        warnings: vec![],
        received_at: started_at,
        processed_at: started_at,
        raw: RawPosition {
            raw_id: uuid::Uuid::nil(),
            topic: "t".into(),
            partition: 0,
            offset: 0,
        },
        mapping_version: 1,
        partner_status: None,
        qualified: false,
        repeat_of: None,
        repeat_of_started_at: None,
        match_method: None,
        match_start_delta_s: None,
        match_duration_delta_s: None,
        tz_source: "integration".into(),
        attributes: Default::default(),
        caller_hash: None,
        event: Change::Created,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use phonenumber::country::Id;

    fn day(n: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 10, 1, 15, 0, 0).unwrap() + Duration::days(n)
    }

    fn enricher() -> Enricher {
        Enricher {
            managed: Arc::new(HashMap::from([(
                "+18885550100".to_owned(),
                ManagedNumber {
                    number: schemas::E164::parse("+18885550100", Id::US).unwrap(),
                    account: "acme".into(),
                    campaign: String::new(),
                    active: true,
                },
            )])),
        }
    }

    #[test]
    fn zip_fills_city_state_and_zone_but_a_partners_city_wins() {
        let mut call = test_call("a", day(0));
        call.zip = Some("02134".into());
        call.city = Some("Boston".into());
        place(&mut call, "America/Chicago");
        assert_eq!(call.city.as_deref(), Some("Boston"));
        assert_eq!(call.state.as_deref(), Some("MA"));
        assert_eq!(
            (call.local_tz.as_str(), call.tz_source.as_str()),
            ("America/New_York", "zip")
        );

        let mut no_zip = test_call("b", day(0));
        place(&mut no_zip, "America/Chicago");
        assert_eq!(
            (no_zip.local_tz.as_str(), no_zip.tz_source.as_str()),
            ("America/Los_Angeles", "area_code")
        );

        let mut foreign = test_call("c", day(0));
        foreign.caller = Some(schemas::E164::parse("+442079460000", Id::GB).unwrap());
        place(&mut foreign, "America/Chicago");
        assert_eq!(
            (foreign.local_tz.as_str(), foreign.tz_source.as_str()),
            ("America/Chicago", "integration")
        );
    }

    #[test]
    fn qualification_by_word_then_threshold_then_payout() {
        let rules: EnrichmentRules = serde_json::from_value(serde_json::json!({
            "qualification": {"min_duration_s": 90, "status_words": {"No Sale": "unqualified"}}
        }))
        .unwrap();
        let mut call = test_call("a", day(0));
        call.duration_s = Some(120);
        call.connected_duration_s = Some(60);
        assert!(
            !qualify(&call, &rules),
            "the connected duration is what counts"
        );
        call.connected_duration_s = Some(95);
        assert!(qualify(&call, &rules));
        call.partner_status = Some("no sale".into());
        assert!(!qualify(&call, &rules), "the partner's word decides");
        let plain = EnrichmentRules::default();
        call.payout = Some("0.00".parse().unwrap());
        call.partner_status = None;
        assert!(!qualify(&call, &plain));
        call.payout = Some("12.00".parse().unwrap());
        assert!(qualify(&call, &plain));
    }

    /// Decides `calls` over `state` (the processor's kept histories), as a batch does:
    /// the batch's caller keys taken from it (a new caller: empty), given back after.
    fn decide(
        enricher: &Enricher,
        state: &mut HeldHistories,
        calls: &mut [CallRecord],
    ) -> Vec<Redecided> {
        let rules = |_: &ClientId| EnrichmentRules::default();
        let mut held: HeldHistories = caller_keys(calls)
            .into_iter()
            .map(|key| {
                let history = state.remove(&key).unwrap_or_default();
                (key, history)
            })
            .collect();
        let changed = enricher.decide_repeats(calls, &mut held, &rules);
        state.extend(held);
        changed
    }

    #[test]
    fn a_late_older_call_turns_a_stored_call_into_a_repeat() {
        let enricher = enricher();
        let mut state = HeldHistories::new();
        let mut first = vec![test_call("new", day(10))];
        let changed = decide(&enricher, &mut state, &mut first);
        assert!(changed.is_empty());
        assert_eq!(first[0].repeat_of, None);

        let mut backfill = vec![test_call("old", day(0))];
        let changed = decide(&enricher, &mut state, &mut backfill);
        assert_eq!(backfill[0].repeat_of, None, "the older call is the first");
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].id, first[0].id);
        assert_eq!(changed[0].repeat.unwrap().id, backfill[0].id);

        let update = redecided(first[0].clone(), changed[0].repeat, day(11));
        assert_eq!(update.status, "repeat");
        assert_eq!(update.repeat_of_started_at, Some(day(0)));
        assert!(update.version > first[0].version);
        assert_eq!(update.event, schemas::call::Change::Updated);
    }

    #[test]
    fn withheld_callers_are_never_repeats_of_each_other() {
        let enricher = enricher();
        let mut state = HeldHistories::new();
        // With a number, the second call is a repeat (the rule applies at all).
        let mut known = vec![test_call("k1", day(0)), test_call("k2", day(1))];
        decide(&enricher, &mut state, &mut known);
        assert_eq!(known[1].repeat_of, Some(known[0].id));

        let withheld = |id: &str, at| CallRecord {
            caller: None,
            ..test_call(id, at)
        };
        let mut calls = vec![withheld("w1", day(0)), withheld("w2", day(1))];
        assert!(
            caller_keys(&calls).is_empty(),
            "no history to keep for a withheld caller"
        );
        decide(&enricher, &mut state, &mut calls);
        assert_eq!((calls[0].repeat_of, calls[1].repeat_of), (None, None));
        let mut later = vec![withheld("w3", day(2))];
        decide(&enricher, &mut state, &mut later);
        assert_eq!(later[0].repeat_of, None, "nor of one decided earlier");
        assert_ne!(key_of(&calls[0]), key_of(&calls[1]), "each its own key");
    }

    #[test]
    fn a_kept_history_decides_and_grows_with_the_batch() {
        let enricher = enricher();
        let stored = test_call("stored", day(0));
        let mut state = HeldHistories::from([(
            key_of(&stored),
            Arc::new(HashMap::from([(stored.id, Visit::of(&stored))])),
        )]);
        let mut batch = vec![test_call("later", day(3))];
        decide(&enricher, &mut state, &mut batch);
        assert_eq!(batch[0].repeat_of, Some(stored.id));
        assert_eq!(
            state[&key_of(&stored)].len(),
            2,
            "the stored call and the new one"
        );
    }

    #[test]
    fn managed_numbers_make_duplicates_and_echoes_count_too() {
        let enricher = enricher();
        let rules = |_: &ClientId| EnrichmentRules::default();
        let mut on_ours = test_call("a", day(0));
        on_ours.called = Some(schemas::E164::parse("+18885550100", Id::US).unwrap());
        let mut echoed = test_call("b", day(0));
        echoed.cm_call_id = Some("cm_7".into());
        echoed.match_method = Some(MatchMethod::EchoedId);
        let elsewhere = test_call("c", day(0));
        let mut calls = vec![on_ours, echoed, elsewhere];
        enricher.link_duplicates(&mut calls, &[], &rules);
        assert_eq!(calls[0].match_method, Some(MatchMethod::Pending));
        assert!(calls[0].is_duplicate && calls[1].is_duplicate && !calls[2].is_duplicate);
        for call in &mut calls {
            settle_status(call);
        }
        assert_eq!(calls[1].status, "duplicate");
        assert_eq!(calls[1].cm_call_id.as_deref(), Some("cm_7"));
    }
}
