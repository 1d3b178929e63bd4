//! Drift: a partner that silently changes its payload. Three signs, per
//! integration, each comparing the last `health.drift_window_s` with the day
//! before it, and each reported with the record that first showed it:
//!
//! - **fill**: an optional field its mapping fills was set on at least 90 % of 5
//!   or more calls before and at most half as often in 5 or more calls since (the
//!   partner renamed or dropped its key); from the stored calls;
//! - **new key** / **type changed**: a key of the partner's records (to three
//!   levels) not seen in the day before, or a key whose value now has a type it
//!   never had (`"zip": 94103` where it was text); from `source_keys`, which the
//!   processor fills (processor/src/source_keys.rs), only for an integration that
//!   sent records in the day before (a new integration's keys are all new);
//! - **new status**: a status word of the partner's (`partner_status`, compared
//!   without case) not seen in the day before, for an integration with 5 or more
//!   calls before.
//!
//! Computed on every health read (one aggregate over a day per sign), so every
//! api instance agrees and nothing more is stored by the api.

use std::collections::{BTreeMap, BTreeSet};

use schemas::integration::CanonicalField;
use schemas::Integration;
use serde::{Deserialize, Serialize};

/// The optional fields checked, with the SQL that says a call has them.
const FIELDS: &[(CanonicalField, &str, &str)] = &[
    (CanonicalField::Payout, "payout", "isNotNull(payout)"),
    (CanonicalField::Revenue, "revenue", "isNotNull(revenue)"),
    (
        CanonicalField::DurationS,
        "duration_s",
        "isNotNull(duration_s)",
    ),
    (CanonicalField::Called, "called", "called != ''"),
    (
        CanonicalField::ExternalId,
        "external_id",
        "external_id != ''",
    ),
    (CanonicalField::Zip, "zip", "zip != ''"),
    (CanonicalField::Campaign, "campaign", "campaign != ''"),
    (CanonicalField::Publisher, "publisher", "publisher != ''"),
    (CanonicalField::Buyer, "buyer", "buyer != ''"),
];

/// Fewest calls on each side of the comparison.
const MIN_CALLS: u64 = 5;

/// Most drifts of one sign reported per integration (the rest are counted).
pub const MAX_REPORTED: usize = 20;

/// One sign of drift, with the first record that showed it: `first_call_id` for
/// the call's story (`None` when that record was not stored as a call: see its
/// dead letter by `first_raw_id`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Drift {
    /// A mapped field stopped being filled.
    Fill {
        field: &'static str,
        filled_before: f64,
        filled_since: f64,
        calls_since: u64,
        /// The first call of the window without the field, by receive time (to
        /// the second) then start.
        first_call_id: Option<String>,
    },
    /// A key the partner's records did not carry in the day before.
    NewKey {
        path: String,
        #[serde(rename = "type")]
        kind: String,
        first_seen: Option<chrono::DateTime<chrono::Utc>>,
        first_raw_id: String,
        first_call_id: Option<String>,
    },
    /// A key whose value has a type it did not have in the day before (`null`
    /// alone is not a change).
    TypeChanged {
        path: String,
        #[serde(rename = "type")]
        kind: String,
        was: Vec<String>,
        first_seen: Option<chrono::DateTime<chrono::Utc>>,
        first_raw_id: String,
        first_call_id: Option<String>,
    },
    /// A partner status word not sent in the day before.
    NewStatus {
        value: String,
        calls_since: u64,
        first_seen: Option<chrono::DateTime<chrono::Utc>>,
        first_call_id: Option<String>,
    },
}

impl Drift {
    /// The raw record to find the first call of, for the key drifts.
    pub fn wants_call_of(&self) -> Option<&str> {
        match self {
            Drift::NewKey {
                first_raw_id,
                first_call_id: None,
                ..
            }
            | Drift::TypeChanged {
                first_raw_id,
                first_call_id: None,
                ..
            } => Some(first_raw_id),
            _ => None,
        }
    }

    pub fn set_call(&mut self, call: Option<String>) {
        match self {
            Drift::Fill { first_call_id, .. }
            | Drift::NewKey { first_call_id, .. }
            | Drift::TypeChanged { first_call_id, .. }
            | Drift::NewStatus { first_call_id, .. } => *first_call_id = call,
        }
    }
}

/// The counts one aggregate gives per integration: calls before and since, and per
/// field the calls that had it, in `FIELDS` order.
#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
pub struct FillCounts {
    pub account: String,
    pub client_id: String,
    pub before: u64,
    pub since: u64,
    pub filled_before: Vec<u64>,
    pub filled_since: Vec<u64>,
}

/// The aggregate over the window and the day before it.
pub fn fill_query(window_s: u64, and_account: &str) -> String {
    let before = FIELDS
        .iter()
        .map(|(_, _, has)| format!("uniqExactIf(id, received_at < now() - {window_s} AND {has})"))
        .collect::<Vec<_>>()
        .join(", ");
    let since = FIELDS
        .iter()
        .map(|(_, _, has)| format!("uniqExactIf(id, received_at >= now() - {window_s} AND {has})"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT account, client_id, uniqExactIf(id, received_at < now() - {window_s}) AS before, \
         uniqExactIf(id, received_at >= now() - {window_s}) AS since, \
         [{before}] AS filled_before, [{since}] AS filled_since \
         FROM calls WHERE received_at >= now() - {window_s} - 86400{and_account} GROUP BY account, client_id"
    )
}

/// The fields of `integration` that drifted, by `counts` (first calls not filled in).
pub fn drifted(integration: &Integration, counts: &FillCounts) -> Vec<Drift> {
    if counts.before < MIN_CALLS || counts.since < MIN_CALLS {
        return Vec::new();
    }
    FIELDS
        .iter()
        .enumerate()
        .filter(|(_, (field, _, _))| integration.mapping.fields.contains_key(field))
        .filter_map(|(i, (_, name, _))| {
            let before = *counts.filled_before.get(i)? as f64 / counts.before as f64;
            let since = *counts.filled_since.get(i)? as f64 / counts.since as f64;
            (before >= 0.9 && since <= before / 2.0).then_some(Drift::Fill {
                field: name,
                filled_before: (before * 1000.0).round() / 1000.0,
                filled_since: (since * 1000.0).round() / 1000.0,
                calls_since: counts.since,
                first_call_id: None,
            })
        })
        .collect()
}

/// The query for the first call of the window without `field`.
pub fn first_without(field: &str, window_s: u64) -> Option<String> {
    let (_, _, has) = FIELDS.iter().find(|(_, name, _)| *name == field)?;
    Some(format!(
        "SELECT toString(id) FROM calls WHERE client_id = ? AND account = ? \
         AND received_at >= now() - {window_s} AND NOT ({has}) ORDER BY received_at, started_at, id LIMIT 1"
    ))
}

/// One key (with a type) an integration's records carried in the day before the
/// window or since: when first, and in which record.
#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
pub struct KeySeen {
    pub account: String,
    pub client_id: String,
    pub path: String,
    pub kind: String,
    pub first: u32,
    pub raw_id: String,
}

/// The keys of the window and the day before it, per integration.
pub fn keys_query(window_s: u64, and_account: &str) -> String {
    format!(
        "SELECT account, client_id, path, kind, toUInt32(min(first_seen)) AS first, \
         argMin(toString(raw_id), first_seen) AS raw_id FROM source_keys \
         WHERE hour >= toStartOfHour(now() - {window_s} - 86400){and_account} \
         GROUP BY account, client_id, path, kind"
    )
}

/// New keys and changed types of one integration's `keys` (rows of
/// [`keys_query`]), the window starting at `since` (Unix seconds). A key under a
/// new key is not reported again (`meta.a` under a new `meta`).
pub fn key_drifts(keys: &[&KeySeen], since: i64) -> Vec<Drift> {
    let mut before: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for key in keys.iter().filter(|k| i64::from(k.first) < since) {
        before.entry(&key.path).or_default().insert(&key.kind);
    }
    if before.is_empty() {
        return Vec::new();
    }
    let mut new: Vec<&&KeySeen> = keys
        .iter()
        .filter(|k| i64::from(k.first) >= since)
        .collect();
    new.sort_by(|a, b| (a.first, &a.path).cmp(&(b.first, &b.path)));
    let new_paths: BTreeSet<&str> = new
        .iter()
        .filter(|k| !before.contains_key(k.path.as_str()))
        .map(|k| k.path.as_str())
        .collect();
    let under_new = |path: &str| {
        path.match_indices('.')
            .any(|(at, _)| new_paths.contains(&path[..at]))
    };
    let at = |first: u32| chrono::DateTime::from_timestamp(i64::from(first), 0);
    let mut found = Vec::new();
    for key in new {
        match before.get(key.path.as_str()) {
            None if !under_new(&key.path) => found.push(Drift::NewKey {
                path: key.path.clone(),
                kind: key.kind.clone(),
                first_seen: at(key.first),
                first_raw_id: key.raw_id.clone(),
                first_call_id: None,
            }),
            Some(kinds)
                if key.kind != "null"
                    && !kinds.contains(key.kind.as_str())
                    && kinds.iter().any(|k| *k != "null") =>
            {
                found.push(Drift::TypeChanged {
                    path: key.path.clone(),
                    kind: key.kind.clone(),
                    was: kinds.iter().map(|k| (*k).to_owned()).collect(),
                    first_seen: at(key.first),
                    first_raw_id: key.raw_id.clone(),
                    first_call_id: None,
                })
            }
            _ => {}
        }
    }
    found.truncate(MAX_REPORTED);
    found
}

/// A status word first sent in the window, per integration.
#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
pub struct NewStatus {
    pub account: String,
    pub client_id: String,
    pub value: String,
    pub calls: u64,
    pub first: u32,
    pub first_call_id: String,
}

/// Status words of the window not sent in the day before it (without case), at
/// most [`MAX_REPORTED`] per integration.
pub fn statuses_query(window_s: u64, and_account: &str) -> String {
    format!(
        "SELECT account, client_id, lower(partner_status) AS value, uniqExact(id) AS calls, \
         toUInt32(min(received_at)) AS first, argMin(toString(id), received_at) AS first_call_id \
         FROM calls WHERE received_at >= now() - {window_s} - 86400 AND partner_status != ''{and_account} \
         GROUP BY account, client_id, value HAVING min(received_at) >= now() - {window_s} \
         ORDER BY first LIMIT {MAX_REPORTED} BY account, client_id"
    )
}

/// The new status words of an integration with enough calls before the window.
pub fn status_drifts(counts: &FillCounts, statuses: &[&NewStatus]) -> Vec<Drift> {
    if counts.before < MIN_CALLS {
        return Vec::new();
    }
    statuses
        .iter()
        .map(|s| Drift::NewStatus {
            value: s.value.clone(),
            calls_since: s.calls,
            first_seen: chrono::DateTime::from_timestamp(i64::from(s.first), 0),
            first_call_id: Some(s.first_call_id.clone()),
        })
        .collect()
}

/// The call a raw record became, if it was stored: bounded by the client (the
/// table's first key column) and the receive time.
pub const CALL_OF_RAW: &str = "SELECT toString(id) FROM calls WHERE client_id = ? AND account = ? \
     AND received_at >= toDateTime(?) - 60 AND received_at <= toDateTime(?) + 60 \
     AND raw_id = toUUID(?) ORDER BY version LIMIT 1";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn integration() -> Integration {
        serde_json::from_value(json!({
            "client_id": "d", "account": "a", "name": "d", "source": "webhook", "version": 1,
            "mapping": {"fields": {"caller": {"path": "c"}, "started_at": {"path": "s"},
                                   "payout": {"path": "p"}, "campaign": {"path": "k"}}}
        }))
        .unwrap()
    }

    fn counts(before: u64, since: u64, payout: (u64, u64), buyer: (u64, u64)) -> FillCounts {
        let mut filled_before = vec![0; FIELDS.len()];
        let mut filled_since = vec![0; FIELDS.len()];
        filled_before[0] = payout.0;
        filled_since[0] = payout.1;
        filled_before[8] = buyer.0;
        filled_since[8] = buyer.1;
        FillCounts {
            account: "a".into(),
            client_id: "d".into(),
            before,
            since,
            filled_before,
            filled_since,
        }
    }

    #[test]
    fn a_mapped_field_that_stops_being_filled_drifts() {
        let found = drifted(&integration(), &counts(10, 6, (10, 0), (10, 0)));
        assert_eq!(found.len(), 1, "buyer is not mapped: {found:?}");
        let Drift::Fill {
            field,
            filled_before,
            filled_since,
            ..
        } = &found[0]
        else {
            panic!("{found:?}")
        };
        assert_eq!(
            (*field, *filled_before, *filled_since),
            ("payout", 1.0, 0.0)
        );
        assert_eq!(
            serde_json::to_value(&found[0]).unwrap()["kind"],
            "fill",
            "each drift says its kind"
        );
        assert!(
            drifted(&integration(), &counts(10, 6, (10, 4), (0, 0))).is_empty(),
            "4 of 6 is more than half"
        );
        assert!(
            drifted(&integration(), &counts(10, 4, (10, 0), (0, 0))).is_empty(),
            "too few calls since"
        );
        assert!(
            drifted(&integration(), &counts(10, 6, (8, 0), (0, 0))).is_empty(),
            "never reliably filled"
        );
        assert!(fill_query(60, "")
            .contains("uniqExactIf(id, received_at >= now() - 60 AND isNotNull(payout))"));
    }

    fn key(path: &str, kind: &str, first: u32) -> KeySeen {
        KeySeen {
            account: "a".into(),
            client_id: "d".into(),
            path: path.into(),
            kind: kind.into(),
            first,
            raw_id: format!("raw-{path}-{kind}"),
        }
    }

    #[test]
    fn new_keys_and_changed_types_against_the_day_before() {
        let rows = [
            key("call", "object", 100),
            key("call.payout", "string", 100),
            key("call.zip", "string", 100),
            key("call.note", "null", 100),
            // Since the window opened at 1000:
            key("call.payoutAmount", "string", 1005),
            key("call.zip", "number", 1010),
            key("call.zip", "null", 1011),
            key("call.note", "string", 1012),
            key("call.meta", "object", 1020),
            key("call.meta.a", "number", 1020),
            key("call.payout", "string", 1030),
        ];
        let refs: Vec<&KeySeen> = rows.iter().collect();
        let found = key_drifts(&refs, 1000);
        let said: Vec<String> = found
            .iter()
            .map(|d| match d {
                Drift::NewKey {
                    path,
                    kind,
                    first_raw_id,
                    ..
                } => format!("new {path} {kind} {first_raw_id}"),
                Drift::TypeChanged {
                    path, kind, was, ..
                } => format!("type {path} {kind} was {}", was.join("|")),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            said,
            [
                "new call.payoutAmount string raw-call.payoutAmount-string",
                "type call.zip number was string",
                "new call.meta object raw-call.meta-object",
            ],
            "null alone is no type change, a once-null key getting a value is none either, and keys under a new key are not said twice"
        );
        // An integration with nothing before the window: every key is new, none said.
        let fresh = [key("call", "object", 1001)];
        assert!(key_drifts(&fresh.iter().collect::<Vec<_>>(), 1000).is_empty());
        assert!(keys_query(60, "").contains("FROM source_keys"));
    }

    #[test]
    fn new_status_words_need_calls_before() {
        let refunded = NewStatus {
            account: "a".into(),
            client_id: "d".into(),
            value: "refunded".into(),
            calls: 2,
            first: 1005,
            first_call_id: "c8".into(),
        };
        let found = status_drifts(&counts(10, 6, (10, 0), (0, 0)), &[&refunded]);
        let json = serde_json::to_value(&found).unwrap();
        assert_eq!(json[0]["kind"], "new_status");
        assert_eq!(json[0]["value"], "refunded");
        assert_eq!(json[0]["first_call_id"], "c8");
        assert!(status_drifts(&counts(3, 6, (3, 0), (0, 0)), &[&refunded]).is_empty());
        assert!(statuses_query(60, "").contains("HAVING min(received_at) >= now() - 60"));
    }
}
