//! The keys a partner's record carries, each with the JSON type of its value: what
//! drift detection compares over time, so a key that appears (`payoutAmount` where
//! `payout` was) or a value that changes type (`"zip": 94103` where it was text) is
//! noticed before payouts are wrong.
//!
//! Paths are keys joined by `.` (`call.caller.zip`), down to [`MAX_DEPTH`] keys;
//! arrays are one key of type `array` and are not entered (their elements are data,
//! and a list of records would make a key per element). A record is read once,
//! without building its values; at most [`MAX_KEYS`] keys are reported per record,
//! and a key longer than [`MAX_KEY_BYTES`] is cut (a partner writing data into its
//! key names must not flood the store).

use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Keys below this many levels are not entered (`a.b.c` is reported, `a.b.c.d` not).
pub const MAX_DEPTH: usize = 3;
/// Keys reported per record, at most.
pub const MAX_KEYS: usize = 64;
/// A key name longer than this is cut to it (at a character boundary) and ends in `…`.
pub const MAX_KEY_BYTES: usize = 64;

/// The JSON type of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonKind {
    Null,
    Boolean,
    Number,
    String,
    Array,
    Object,
}

impl JsonKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JsonKind::Null => "null",
            JsonKind::Boolean => "boolean",
            JsonKind::Number => "number",
            JsonKind::String => "string",
            JsonKind::Array => "array",
            JsonKind::Object => "object",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "null" => JsonKind::Null,
            "boolean" => JsonKind::Boolean,
            "number" => JsonKind::Number,
            "string" => JsonKind::String,
            "array" => JsonKind::Array,
            "object" => JsonKind::Object,
            _ => return None,
        })
    }
}

/// A `source_keys` row (migration 20): an integration's record carried `path` with
/// a value of type `kind` during `hour`; the first such record at `first_seen`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clickhouse", derive(clickhouse::Row))]
pub struct SourceKeyRow {
    pub account: String,
    pub client_id: String,
    pub path: String,
    pub kind: String,
    #[cfg_attr(
        feature = "clickhouse",
        serde(with = "clickhouse::serde::chrono::datetime")
    )]
    pub hour: DateTime<Utc>,
    #[cfg_attr(
        feature = "clickhouse",
        serde(with = "clickhouse::serde::chrono::datetime")
    )]
    pub first_seen: DateTime<Utc>,
    #[cfg_attr(feature = "clickhouse", serde(with = "clickhouse::serde::uuid"))]
    pub raw_id: Uuid,
}

/// Calls `each(path, kind)` for every key of the JSON object `text` (within the
/// bounds above). `Ok(false)`, having called nothing, when the record is not an
/// object; `Err` when it is not JSON.
pub fn visit(text: &str, each: &mut dyn FnMut(&str, JsonKind)) -> serde_json::Result<bool> {
    let mut walker = Walker {
        path: String::new(),
        each,
        depth: 0,
        reported: 0,
    };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let kind = Value(&mut walker).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(kind == JsonKind::Object)
}

/// An order-independent fingerprint of a record's keys and types: records of one
/// shape share it, so only a record of a shape not seen before needs its keys.
/// `None` when the record is not a JSON object.
pub fn fingerprint(text: &str) -> Option<u64> {
    let mut sum = 0u64;
    let object = visit(text, &mut |path, kind| {
        sum = sum.wrapping_add(fnv1a(path.as_bytes(), kind as u8));
    })
    .ok()?;
    object.then_some(sum)
}

/// FNV-1a over the path and the type: a fingerprint, not a defence against
/// crafted collisions (a collision only delays noticing a shape until the next
/// record of another shape).
fn fnv1a(bytes: &[u8], kind: u8) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes.iter().chain(std::iter::once(&kind)) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

struct Walker<'a> {
    path: String,
    each: &'a mut dyn FnMut(&str, JsonKind),
    depth: usize,
    reported: usize,
}

/// A value: its type, entering objects within the depth.
struct Value<'w, 'a>(&'w mut Walker<'a>);

impl<'de> DeserializeSeed<'de> for Value<'_, '_> {
    type Value = JsonKind;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<JsonKind, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Value<'_, '_> {
    type Value = JsonKind;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<JsonKind, E> {
        Ok(JsonKind::Boolean)
    }
    fn visit_i64<E>(self, _: i64) -> Result<JsonKind, E> {
        Ok(JsonKind::Number)
    }
    fn visit_u64<E>(self, _: u64) -> Result<JsonKind, E> {
        Ok(JsonKind::Number)
    }
    fn visit_f64<E>(self, _: f64) -> Result<JsonKind, E> {
        Ok(JsonKind::Number)
    }
    fn visit_str<E>(self, _: &str) -> Result<JsonKind, E> {
        Ok(JsonKind::String)
    }
    fn visit_unit<E>(self) -> Result<JsonKind, E> {
        Ok(JsonKind::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonKind, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(JsonKind::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonKind, A::Error> {
        let walker = self.0;
        if walker.depth >= MAX_DEPTH {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(JsonKind::Object);
        }
        walker.depth += 1;
        let base = walker.path.len();
        while map.next_key_seed(Key(walker))?.is_some() {
            let kind = map.next_value_seed(Value(walker))?;
            if walker.reported < MAX_KEYS {
                walker.reported += 1;
                (walker.each)(&walker.path, kind);
            }
            walker.path.truncate(base);
        }
        walker.depth -= 1;
        Ok(JsonKind::Object)
    }
}

/// A key: appended to the walker's path.
struct Key<'w, 'a>(&'w mut Walker<'a>);

impl<'de> DeserializeSeed<'de> for Key<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for Key<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<(), E> {
        let path = &mut self.0.path;
        if !path.is_empty() {
            path.push('.');
        }
        if key.len() <= MAX_KEY_BYTES {
            path.push_str(key);
        } else {
            let mut cut = MAX_KEY_BYTES;
            while !key.is_char_boundary(cut) {
                cut -= 1;
            }
            path.push_str(&key[..cut]);
            path.push('…');
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys(text: &str) -> Vec<(String, JsonKind)> {
        let mut found = Vec::new();
        visit(text, &mut |path, kind| found.push((path.to_owned(), kind))).unwrap();
        found.sort();
        found
    }

    #[test]
    fn paths_and_types_within_the_depth() {
        let found = keys(
            r#"{"call": {"id": "c1", "payout": 12.5, "caller": {"zip": "94103", "geo": {"lat": 1}},
               "tags": [{"a": 1}], "ok": true, "gone": null}, "event": "x"}"#,
        );
        let want: Vec<(String, JsonKind)> = [
            ("call", JsonKind::Object),
            ("call.caller", JsonKind::Object),
            ("call.caller.geo", JsonKind::Object),
            ("call.caller.zip", JsonKind::String),
            ("call.gone", JsonKind::Null),
            ("call.id", JsonKind::String),
            ("call.ok", JsonKind::Boolean),
            ("call.payout", JsonKind::Number),
            ("call.tags", JsonKind::Array),
            ("event", JsonKind::String),
        ]
        .into_iter()
        .map(|(p, k)| (p.to_owned(), k))
        .collect();
        assert_eq!(
            found, want,
            "geo.lat is below the depth; array elements are not keys"
        );
    }

    #[test]
    fn the_fingerprint_is_the_shape_not_the_values_or_the_order() {
        let a = fingerprint(r#"{"id": "1", "payout": 10, "zip": "94103"}"#);
        let b = fingerprint(r#"{"zip": "10001", "id": "2", "payout": 99.5}"#);
        let renamed = fingerprint(r#"{"id": "1", "payoutAmount": 10, "zip": "94103"}"#);
        let retyped = fingerprint(r#"{"id": "1", "payout": 10, "zip": 94103}"#);
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_ne!(a, renamed);
        assert_ne!(a, retyped);
        assert_eq!(fingerprint("[1, 2]"), None);
        assert_eq!(fingerprint("\"text\""), None);
        assert_eq!(fingerprint("{broken"), None);
    }

    #[test]
    fn keys_are_bounded_in_number_and_length() {
        let many: serde_json::Map<String, serde_json::Value> = (0..500)
            .map(|n| (format!("k{n}"), serde_json::json!(n)))
            .collect();
        assert_eq!(
            keys(&serde_json::Value::Object(many).to_string()).len(),
            MAX_KEYS
        );
        let long = format!(r#"{{"{}é": 1}}"#, "a".repeat(MAX_KEY_BYTES - 1));
        let found = keys(&long);
        assert!(found[0].0.ends_with('…'), "{found:?}");
        assert!(found[0].0.len() <= MAX_KEY_BYTES + '…'.len_utf8());
        assert_eq!(
            keys(r#"{"a\"b": 1}"#),
            vec![("a\"b".to_owned(), JsonKind::Number)],
            "escaped keys read as their text"
        );
    }

    proptest! {
        #[test]
        fn any_text_is_read_or_refused_without_panicking(text in ".{0,200}") {
            let _ = visit(&text, &mut |_, _| {});
            let _ = fingerprint(&text);
        }

        #[test]
        fn every_top_level_key_of_a_small_object_is_reported(
            object in proptest::collection::btree_map("[a-z]{1,8}", any::<i64>(), 0..20)
        ) {
            let text = serde_json::to_string(&object).unwrap();
            let found = keys(&text);
            let want: Vec<(String, JsonKind)> = object.keys().map(|k| (k.clone(), JsonKind::Number)).collect();
            prop_assert_eq!(found, want);
        }
    }
}
