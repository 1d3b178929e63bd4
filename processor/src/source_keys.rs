//! Which keys partners' records carry, for drift detection (schemas::source_keys,
//! api/src/drift.rs). Each record's shape is fingerprinted as it is decided (one
//! pass over its bytes, nothing built); a shape not seen this hour has its keys
//! read, and a key of a type not seen this hour for its integration becomes a
//! `source_keys` row with the record that first had it. So the table takes a row
//! per key, type and hour, not per record.
//!
//! What a batch found is kept aside until the batch is stored: a batch that fails
//! and is decided again finds the same keys new again, so a crash loses no first
//! record (its rows replace each other in the table).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use schemas::source_keys::{self, JsonKind, SourceKeyRow};
use schemas::RawEnvelope;

/// Distinct shapes remembered per integration and hour; past it the memory starts
/// again (a partner with a shape per record costs a key read per record, not memory).
const MAX_SHAPES: usize = 4096;
/// Keys recorded per integration and hour; past it new keys are left for the next
/// hour and counted (`processor_source_keys_skipped_total`).
const MAX_KEYS_PER_HOUR: usize = 512;

#[derive(Default)]
pub struct SourceKeys {
    /// By client id (no allocation to find it: this runs for every record).
    known: HashMap<String, Known>,
    /// Found by the batch being decided, not yet stored.
    pending: Vec<SourceKeyRow>,
    pending_shapes: Vec<((String, String), i64, u64)>,
    pending_keys: HashSet<(String, String, String, JsonKind)>,
    /// The newest hour a record was received in: integrations quiet since the hour
    /// before it are forgotten, so what is kept is bounded by the integrations
    /// active now, not by every integration this instance ever saw.
    newest_hour: i64,
}

#[derive(Default)]
struct Known {
    /// The account the client id belongs to (one whose client id is given to
    /// another account starts afresh).
    account: String,
    hour: i64,
    shapes: HashSet<u64>,
    keys: HashSet<(String, JsonKind)>,
}

impl SourceKeys {
    /// Forgets what the last batch found and did not store (it is decided again).
    pub fn discard(&mut self) {
        self.pending.clear();
        self.pending_shapes.clear();
        self.pending_keys.clear();
    }

    /// Looks at one record of `account`'s integration.
    pub fn observe(&mut self, account: &str, envelope: &RawEnvelope) {
        let text = envelope.payload.get();
        let Some(shape) = source_keys::fingerprint(text) else {
            return;
        };
        let hour = hour_of(envelope.received_at);
        if hour > self.newest_hour {
            self.newest_hour = hour;
            self.known.retain(|_, known| known.hour >= hour - 1);
        }
        let client = envelope.client_id.as_str();
        if !self.known.contains_key(client) {
            self.known.insert(client.to_owned(), Known::default());
        }
        let Some(known) = self.known.get_mut(client) else {
            return;
        };
        if hour > known.hour || known.account != account {
            *known = Known {
                account: account.to_owned(),
                hour,
                ..Known::default()
            };
        }
        if known.shapes.contains(&shape) {
            return;
        }
        // A shape this hour has not stored yet: rare, so owned keys from here on.
        let integration = (account.to_owned(), client.to_owned());
        if self
            .pending_shapes
            .iter()
            .any(|(i, _, s)| *s == shape && *i == integration)
        {
            return;
        }
        let mut found = Vec::new();
        let _ = source_keys::visit(text, &mut |path, kind| {
            if !known.keys.contains(&(path.to_owned(), kind)) {
                found.push((path.to_owned(), kind));
            }
        });
        let room = MAX_KEYS_PER_HOUR.saturating_sub(known.keys.len());
        let mut here = self
            .pending_keys
            .iter()
            .filter(|(a, c, _, _)| *a == integration.0 && *c == integration.1)
            .count();
        let mut skipped = 0u64;
        for (path, kind) in found {
            let key = (integration.0.clone(), integration.1.clone(), path, kind);
            if self.pending_keys.contains(&key) {
                continue;
            }
            if here >= room {
                skipped += 1;
                continue;
            }
            here += 1;
            let hour_start = envelope
                .received_at
                .duration_trunc(TimeDelta::hours(1))
                .unwrap_or(envelope.received_at);
            self.pending.push(SourceKeyRow {
                account: key.0.clone(),
                client_id: key.1.clone(),
                path: key.2.clone(),
                kind: kind.as_str().to_owned(),
                hour: hour_start,
                first_seen: envelope.received_at,
                raw_id: envelope.raw_id,
            });
            self.pending_keys.insert(key);
        }
        if skipped > 0 {
            metrics::counter!(crate::metric_names::PROCESSOR_SOURCE_KEYS_SKIPPED_TOTAL)
                .increment(skipped);
        }
        self.pending_shapes.push((integration, hour, shape));
    }

    /// The rows the batch found, to store with it.
    pub fn rows(&self) -> &[SourceKeyRow] {
        &self.pending
    }

    /// The batch was stored: what it found is known from now on (this hour).
    pub fn stored(&mut self) {
        for row in self.pending.drain(..) {
            let hour = hour_of(row.first_seen);
            let Some(known) = self.known.get_mut(&row.client_id) else {
                continue;
            };
            if hour == known.hour && known.account == row.account {
                if let Some(kind) = JsonKind::parse(&row.kind) {
                    known.keys.insert((row.path, kind));
                }
            }
        }
        for ((account, client), hour, shape) in self.pending_shapes.drain(..) {
            let Some(known) = self.known.get_mut(&client) else {
                continue;
            };
            if hour == known.hour && known.account == account {
                if known.shapes.len() >= MAX_SHAPES {
                    known.shapes.clear();
                }
                known.shapes.insert(shape);
            }
        }
        self.pending_keys.clear();
    }
}

fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(3600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::ids::ClientId;

    fn envelope(payload: &str, at: &str) -> RawEnvelope {
        let client_id = ClientId::parse("hook").unwrap();
        RawEnvelope {
            raw_id: schemas::ids::raw_record_id(&client_id, payload),
            client_id,
            source: schemas::Source::Webhook,
            received_at: at.parse().unwrap(),
            idempotency_key: "k".into(),
            integration_version: 1,
            payload: serde_json::value::RawValue::from_string(payload.to_owned()).unwrap(),
        }
    }

    fn paths(rows: &[SourceKeyRow]) -> Vec<String> {
        let mut paths: Vec<String> = rows
            .iter()
            .map(|r| format!("{}:{}", r.path, r.kind))
            .collect();
        paths.sort();
        paths
    }

    #[test]
    fn a_key_is_a_row_once_an_hour_with_its_first_record() {
        let mut keys = SourceKeys::default();
        let first = envelope(r#"{"id": "1", "payout": 10}"#, "2026-11-20T10:05:00Z");
        keys.observe("acme", &first);
        keys.observe(
            "acme",
            &envelope(r#"{"id": "2", "payout": 11}"#, "2026-11-20T10:06:00Z"),
        );
        assert_eq!(paths(keys.rows()), ["id:string", "payout:number"]);
        assert!(keys.rows().iter().all(|r| r.raw_id == first.raw_id));
        assert_eq!(
            keys.rows()[0].hour.to_rfc3339(),
            "2026-11-20T10:00:00+00:00"
        );
        keys.stored();
        // Known this hour: nothing; a renamed key is one row, with its record.
        keys.observe(
            "acme",
            &envelope(r#"{"id": "3", "payout": 12}"#, "2026-11-20T10:20:00Z"),
        );
        assert!(keys.rows().is_empty());
        let renamed = envelope(r#"{"id": "4", "payoutAmount": 12}"#, "2026-11-20T10:21:00Z");
        keys.observe("acme", &renamed);
        assert_eq!(paths(keys.rows()), ["payoutAmount:number"]);
        assert_eq!(keys.rows()[0].raw_id, renamed.raw_id);
        keys.stored();
        // A new hour records every key again; another account's integration of
        // the same id is its own.
        keys.observe(
            "acme",
            &envelope(r#"{"id": "5", "payout": 12}"#, "2026-11-20T11:00:00Z"),
        );
        keys.observe(
            "other",
            &envelope(r#"{"id": "5", "payout": 12}"#, "2026-11-20T11:00:00Z"),
        );
        assert_eq!(keys.rows().len(), 4);
    }

    #[test]
    fn a_batch_not_stored_finds_the_same_keys_again() {
        let mut keys = SourceKeys::default();
        let record = envelope(r#"{"id": "1", "zip": "94103"}"#, "2026-11-20T10:05:00Z");
        keys.observe("acme", &record);
        assert_eq!(keys.rows().len(), 2);
        keys.discard();
        keys.observe("acme", &record);
        assert_eq!(
            keys.rows().len(),
            2,
            "the crashed batch's first record is not lost"
        );
        keys.stored();
        keys.observe(
            "acme",
            &envelope(r#"{"id": "1", "zip": 94103}"#, "2026-11-20T10:07:00Z"),
        );
        assert_eq!(
            paths(keys.rows()),
            ["zip:number"],
            "a type change is a new row"
        );
    }

    #[test]
    fn integrations_quiet_for_an_hour_are_forgotten() {
        let mut keys = SourceKeys::default();
        let at = |client: &str, time: &str| {
            let mut record = envelope(r#"{"id": "1", "payout": 10}"#, time);
            record.client_id = ClientId::parse(client).unwrap();
            record
        };
        for client in ["one", "two", "three"] {
            keys.observe("acme", &at(client, "2026-11-20T10:05:00Z"));
        }
        keys.stored();
        assert_eq!(keys.known.len(), 3);
        // The next hour: the last one's integrations are still kept (a record near
        // the boundary may come late).
        keys.observe("acme", &at("one", "2026-11-20T11:05:00Z"));
        keys.stored();
        assert_eq!(keys.known.len(), 3);
        // Two hours on: only what was active in the hour before stays.
        keys.observe("acme", &at("four", "2026-11-20T12:05:00Z"));
        keys.stored();
        let mut kept: Vec<&str> = keys.known.keys().map(String::as_str).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["four", "one"]);
    }

    #[test]
    fn records_that_are_not_objects_and_floods_of_keys_are_bounded() {
        let mut keys = SourceKeys::default();
        keys.observe("acme", &envelope("[1, 2]", "2026-11-20T10:05:00Z"));
        assert!(keys.rows().is_empty());
        for n in 0..40 {
            let object: serde_json::Map<String, serde_json::Value> = (0..60)
                .map(|k| (format!("k{n}_{k}"), serde_json::json!(k)))
                .collect();
            let text = serde_json::Value::Object(object).to_string();
            keys.observe("acme", &envelope(&text, "2026-11-20T10:05:00Z"));
        }
        assert_eq!(keys.rows().len(), MAX_KEYS_PER_HOUR);
    }
}
