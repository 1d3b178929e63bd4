//! Drift: a partner that silently changes its payload (renames `payout` to
//! `payoutAmount`) shows as a mapped field that was filled and now is not. For each
//! integration and each optional field its mapping fills, the share of calls with
//! the field set in the last `health.drift_window_s` is compared with the day
//! before it; a field filled in at least 90 % of 5 or more calls before and at most
//! half as often in 5 or more calls since is reported with the first call that
//! lacked it, so the operator opens that call's story and sees the record.
//!
//! Computed from the stored calls on every health read (one aggregate over a day,
//! as the health query already makes), so every api instance agrees and nothing
//! more is stored. New keys and new status values are not detected (the calls keep
//! mapped fields, not the partner's keys).

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

/// One field that stopped being filled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    pub field: &'static str,
    pub filled_before: f64,
    pub filled_since: f64,
    pub calls_since: u64,
    /// The first call of the window without the field, by receive time (to the
    /// second) then start (its story shows the record).
    pub first_call_id: Option<String>,
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
            (before >= 0.9 && since <= before / 2.0).then_some(Drift {
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
        assert_eq!(
            (
                found[0].field,
                found[0].filled_before,
                found[0].filled_since
            ),
            ("payout", 1.0, 0.0)
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
}
