//! Entry points for the fuzz targets (`fuzz/`, run by `tests/fuzz/run.sh`) and for
//! the seed-corpus test that runs the same code in every test run. Each takes
//! arbitrary bytes, must never panic, and checks what must hold of any answer.

use chrono::{Datelike, TimeZone, Utc};
use schemas::call::RawPosition;
use schemas::integration::DecimalSeparator;
use schemas::path::FieldPath;
use schemas::{ClientId, Integration, RawEnvelope, Source};
use serde_json::Value;

use crate::mapping::{coerce, map_record, CompiledMapping};

/// The values a coercion is tried with: the bytes as text, and as JSON if they are.
fn values(data: &[u8]) -> Vec<Value> {
    let mut values = vec![Value::String(String::from_utf8_lossy(data).into_owned())];
    if let Ok(json) = serde_json::from_slice::<Value>(data) {
        values.push(json);
    }
    values
}

/// Every coercion, on the bytes as text and as JSON.
pub fn coercions(data: &[u8]) {
    let zones = [
        chrono_tz::America::New_York,
        chrono_tz::Europe::London,
        chrono_tz::UTC,
    ];
    for value in values(data) {
        for zone in zones {
            if let Ok(Some(stamped)) = coerce::timestamp(&value, zone, None) {
                let year = stamped.instant.year();
                assert!(
                    (2000..2100).contains(&year),
                    "{value} read as {}",
                    stamped.instant
                );
            }
        }
        let _ = coerce::timestamp(&value, chrono_tz::UTC, Some("%d/%m/%Y %H:%M"));
        let _ = coerce::timestamp(&value, chrono_tz::UTC, Some("spreadsheet_serial"));
        for separator in [DecimalSeparator::Dot, DecimalSeparator::Comma] {
            let _ = coerce::money(&value, separator, "USD");
            if let Ok(Some(seconds)) = coerce::duration_seconds(&value, separator) {
                assert!(seconds <= 86_400, "{value} read as {seconds} s");
            }
        }
        let _ = coerce::boolean(&value);
        let _ = coerce::phone(&value, phonenumber::country::Id::US);
        let _ = coerce::caller(&value, phonenumber::country::Id::GB);
        if let Ok(Some(zip)) = coerce::zip(&value) {
            let us = zip.code.len() == 5 && zip.code.bytes().all(|b| b.is_ascii_digit());
            assert!(us || zip.warning.is_some(), "{zip:?}");
        }
        if let Ok(Some(text)) = coerce::text(&value) {
            assert!(text.len() <= 1024);
        }
        let _ = coerce::tags(&value);
    }
}

/// A field path, parsed and looked up in a record with arrays and odd keys; the
/// record read straight into the path's value answers it the same.
pub fn field_path(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let record = serde_json::json!({
        "call": {"caller": {"number": "4155552671"}, "legs": [{"to": "1"}, {"to": "2"}]},
        "Caller Phone": "x", "a.b": {"c": [1, [2, 3]]}, "": 0
    });
    if let Ok(path) = FieldPath::parse(text) {
        if let Some(slots) = schemas::path_slots::PathSlots::of(&[&path]) {
            let read = slots.read(&record.to_string()).expect("the record is JSON");
            let whole = path.lookup(&record).map(std::borrow::Cow::into_owned);
            assert_eq!(read, Some(vec![whole]), "{text}");
        }
    }
}

/// A mapping and a record from the bytes: `{"fields": {...}, "filters": [...],
/// "attributes": {...}, "record": ...}` (the other integration settings fixed). Whatever the rules and the record, mapping
/// answers with a call or a rejection.
pub fn mapping(data: &[u8]) {
    let Ok(input) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let integration = serde_json::json!({
        "client_id": "fuzz", "account": "acme", "name": "fuzz", "source": "webhook",
        "version": 1, "timezone": "America/New_York",
        "decimal_separator": if input["comma"] == true { "," } else { "." },
        "mapping": {"fields": input["fields"].clone(),
                    "filters": if input["filters"].is_array() { input["filters"].clone() } else { serde_json::json!([]) },
                    "attributes": if input["attributes"].is_object() { input["attributes"].clone() } else { serde_json::json!({}) }}
    });
    let Ok(integration) = serde_json::from_value::<Integration>(integration) else {
        return;
    };
    if integration.validate().is_err() {
        return;
    }
    let Ok(compiled) = CompiledMapping::compile(&integration) else {
        return;
    };
    let Ok(payload) = serde_json::value::to_raw_value(&input["record"]) else {
        return;
    };
    let at = Utc
        .with_ymd_and_hms(2026, 11, 21, 12, 0, 0)
        .single()
        .unwrap_or_default();
    let envelope = RawEnvelope {
        raw_id: uuid::Uuid::nil(),
        client_id: ClientId::parse("fuzz").unwrap_or_else(|_| unreachable!()),
        source: Source::Webhook,
        received_at: at,
        idempotency_key: String::new(),
        integration_version: 1,
        payload,
    };
    let position = RawPosition {
        raw_id: uuid::Uuid::nil(),
        topic: String::new(),
        partition: 0,
        offset: 0,
    };
    if let Ok(call) = map_record(&compiled, &envelope, position, at) {
        assert_eq!(call.client_id.as_str(), "fuzz");
        assert!((2000..2100).contains(&call.started_at.year()));
        assert!(call.duration_s.is_none_or(|d| d <= 86_400));
        // Attributes stay within their limits and survive the row ClickHouse keeps.
        let bytes: usize = call
            .attributes
            .iter()
            .map(|(name, value)| name.len() + value.value.len())
            .sum();
        assert!(bytes <= schemas::attribute::MAX_CALL_BYTES);
        let row = schemas::CallRow::from(&call);
        assert_eq!(
            schemas::CallRecord::try_from(row)
                .map(|c| c.attributes)
                .ok(),
            Some(call.attributes)
        );
    }
}

/// Runs `run` over every seed of `target` in `fuzz/seeds/` (the fuzz runs' starting
/// corpus, with every crash found): each crate's `fuzzing` tests call it, so the
/// same inputs are checked in every test run.
pub fn replay_seeds(target: &str, run: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .path();
        let seed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        run(&seed);
        count += 1;
    }
    assert!(count > 0, "no seeds for {target}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_seed_corpus_passes_every_engine_target() {
        super::replay_seeds("coercions", super::coercions);
        super::replay_seeds("field_path", super::field_path);
        super::replay_seeds("mapping", super::mapping);
    }
}
