//! Splits a webhook body into records, in the body's form (`super::forms`: JSON and
//! NDJSON keep each record's exact bytes; a form becomes one JSON object), and the
//! checks every JSON record passes.

use schemas::limits::RecordLimits;
use serde::Serialize;
use serde_json::value::RawValue;

/// A body form (`forms`): JSON, NDJSON, a URL-encoded form.
pub type BodyFormat = &'static dyn super::forms::BodyForm;

/// A record that could not be taken, and where it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedRecord {
    /// Position among the body's records (array index or NDJSON record number), from 0.
    pub index: usize,
    /// 1-based line of the body where the record starts.
    pub line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    pub error: String,
    #[serde(skip)]
    pub text: String,
    /// Refused for its size: its dead letter keeps only its start.
    #[serde(skip)]
    pub too_large: bool,
}

#[derive(Debug)]
pub struct ParsedBody {
    /// `(index, record)` for every record accepted, in body order.
    pub records: Vec<(usize, Box<RawValue>)>,
    pub rejected: Vec<RejectedRecord>,
}

/// Problems with the body as a whole: nothing in it can be taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("body is empty")]
    Empty,
    #[error("body is not UTF-8: invalid byte at position {position}")]
    NotUtf8 { position: usize },
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    Malformed {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("body must be a JSON object or an array of objects, not {found}")]
    WrongShape { found: &'static str },
    #[error("form parameter {parameter} (byte {position}): {message}")]
    Form {
        parameter: usize,
        position: usize,
        message: String,
    },
    #[error("body contains no records")]
    NoRecords,
    #[error("body has {count} records; at most {limit} are accepted per request")]
    TooManyRecords { count: usize, limit: usize },
    #[error("{0}")]
    RecordTooLarge(schemas::limits::RecordTooLarge),
}

/// [`parse_body_within`] at librdkafka's default message limit.
pub fn parse_body(
    bytes: &[u8],
    format: BodyFormat,
    max_records: usize,
) -> Result<ParsedBody, BodyError> {
    parse_body_within(bytes, format, max_records, RecordLimits::default())
}

/// The body's records; a record too large for the pipeline (`limits`) is refused
/// alone, naming its size and the limit (a body of one such record: the whole body).
pub fn parse_body_within(
    bytes: &[u8],
    format: BodyFormat,
    max_records: usize,
    limits: RecordLimits,
) -> Result<ParsedBody, BodyError> {
    let text = std::str::from_utf8(bytes).map_err(|e| BodyError::NotUtf8 {
        position: e.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(BodyError::Empty);
    }
    let parsed = format.records(text, limits)?;
    let count = parsed.records.len() + parsed.rejected.len();
    if count == 0 {
        return Err(BodyError::NoRecords);
    }
    if count > max_records {
        return Err(BodyError::TooManyRecords {
            count,
            limit: max_records,
        });
    }
    Ok(parsed)
}

/// A record refused for its size: every message made from it must fit the broker's
/// limit (`schemas::limits`). Its dead letter keeps its start, size and digest.
pub(super) fn too_large(
    index: usize,
    line: usize,
    text: &str,
    limits: RecordLimits,
) -> RejectedRecord {
    let error = limits
        .check(text)
        .err()
        .map_or_else(String::new, |e| e.to_string());
    RejectedRecord {
        index,
        line,
        column: None,
        error,
        text: text.to_owned(),
        too_large: true,
    }
}

/// Whether `json` is JSON every reader downstream can read: splitting into raw
/// values skips over numbers without reading them, so `1e999` (out of range for
/// every number type) and nesting deeper than the parsers' limit would pass the
/// edge and fail later. This reads every value (without keeping any) so the
/// edge refuses them, naming the record. Found by fuzzing (`fuzz/seeds/webhook_body`).
pub(super) fn check(json: &str) -> Result<(), serde_json::Error> {
    serde_json::from_str::<Checked>(json).map(|_| ())
}

/// Any JSON value, read and dropped.
struct Checked;

impl<'de> serde::Deserialize<'de> for Checked {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> serde::de::Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    /// A key named twice in one object is refused: readers disagree on which value
    /// wins (serde keeps the last, some the first), so the record is ambiguous.
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        // The usual object's keys are borrowed from the body and few: kept in an
        // array on the stack (the edge's hot path; a Vec per object cost 20-30 %
        // of the body parse in benches/check.sh). Escaped keys, and objects with
        // more keys than the array holds, use the heap.
        const INLINE: usize = 16;
        let mut inline: [&'de str; INLINE] = [""; INLINE];
        let mut held = 0;
        let mut owned: Vec<String> = Vec::new();
        let mut many: Option<std::collections::HashSet<Key<'de>>> = None;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let twice = if let Some(set) = many.as_mut() {
                !set.insert(key.clone())
            } else {
                let text: &str = &key.0;
                let twice = inline[..held].contains(&text) || owned.iter().any(|k| k == text);
                if !twice {
                    match &key.0 {
                        std::borrow::Cow::Borrowed(borrowed) if held < INLINE => {
                            inline[held] = borrowed;
                            held += 1;
                        }
                        std::borrow::Cow::Owned(text) if owned.len() < INLINE => {
                            owned.push(text.clone());
                        }
                        _ => {
                            let mut set: std::collections::HashSet<Key<'de>> = inline[..held]
                                .iter()
                                .map(|k| Key(std::borrow::Cow::Borrowed(*k)))
                                .chain(owned.drain(..).map(|k| Key(std::borrow::Cow::Owned(k))))
                                .collect();
                            set.insert(key.clone());
                            many = Some(set);
                        }
                    }
                }
                twice
            };
            if twice {
                return Err(serde::de::Error::custom(format!(
                    "duplicate key {:?} in one object (a record names each field once)",
                    key.0
                )));
            }
            map.next_value::<Checked>()?;
        }
        Ok(Checked)
    }
}

/// An object's key, borrowed from the body unless it had escapes.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(key)))
            }
            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(key.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

pub(super) fn kind_of(value: &RawValue) -> &'static str {
    match value.get().trim_start().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// serde_json appends " at line L column C"; we report those as fields.
pub(super) fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// The 1-based line of `text` where `item`, a slice of `text`, starts.
pub(super) fn line_of(text: &str, item: &str) -> usize {
    let offset = (item.as_ptr() as usize)
        .saturating_sub(text.as_ptr() as usize)
        .min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    /// Found by fuzzing: `{"":992e1613}` was accepted at the edge (splitting into
    /// raw values does not read numbers) and failed only in the processor.
    #[test]
    fn a_number_out_of_range_or_nesting_too_deep_is_refused_at_the_edge() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        for body in [r#"{"":992e1613}"#.to_owned(), deep.clone()] {
            let error = parse_body(body.as_bytes(), crate::webhook::forms::JSON, 10).unwrap_err();
            assert!(matches!(error, BodyError::Malformed { .. }), "{error:?}");
        }
        let array = format!("[{{\"ok\":1}}, {{\"n\": 1e999}}, {deep}]");
        let parsed = parse_body(array.as_bytes(), crate::webhook::forms::JSON, 10).unwrap();
        assert_eq!(parsed.records.len(), 1);
        assert_eq!(parsed.rejected.len(), 2);
        assert!(
            parsed.rejected[0].error.contains("number out of range"),
            "{:?}",
            parsed.rejected[0]
        );
        let ndjson = format!("{{\"ok\":1}}\n{{\"n\": -1e999}}\n{deep}\n");
        let parsed = parse_body(ndjson.as_bytes(), crate::webhook::forms::NDJSON, 10).unwrap();
        assert_eq!((parsed.records.len(), parsed.rejected.len()), (1, 2));
        assert_eq!(parsed.rejected[0].line, 2);
    }

    use super::*;
    use proptest::prelude::*;

    fn json(text: &str) -> Result<ParsedBody, BodyError> {
        parse_body(text.as_bytes(), crate::webhook::forms::JSON, 100)
    }

    #[test]
    fn a_key_named_twice_refuses_its_record_naming_the_key() {
        let error = json(r#"{"call": {"id": "a", "payout": 1, "payout": 2}}"#).unwrap_err();
        assert!(
            error.to_string().contains(r#"duplicate key "payout""#),
            "{error}"
        );
        // Spelled differently, the same key ("\u0061" is "a").
        assert!(json(r#"{"a": 1, "\u0061": 2}"#).is_err());
        // In an array, the others are kept.
        let parsed = json(r#"[{"id": 1}, {"id": 2, "id": 3}, {"id": 4}]"#).unwrap();
        assert_eq!(parsed.records.len(), 2);
        assert_eq!(parsed.rejected[0].index, 1);
        assert!(parsed.rejected[0].error.contains("duplicate key \"id\""));
        // Many keys, one repeated at the end: found past the short list too.
        let many: Vec<String> = (0..100).map(|i| format!("\"k{i}\": {i}")).collect();
        let body = format!("{{{}, \"k3\": 0}}", many.join(", "));
        assert!(json(&body).unwrap_err().to_string().contains("\"k3\""));
        // The same key in two objects is not a repeat.
        assert!(json(r#"{"a": {"x": 1}, "b": {"x": 2}}"#).is_ok());
    }

    #[test]
    fn one_object_an_array_and_ndjson() {
        assert_eq!(json(r#"{"a":1}"#).unwrap().records.len(), 1);
        let array = json("[{\"a\":1},\n {\"b\": 2}]").unwrap();
        assert_eq!(array.records.len(), 2);
        assert_eq!(array.records[1].1.get(), "{\"b\": 2}", "bytes kept exactly");
        let nd = parse_body(
            b"{\"a\":1}\r\n\n{\"b\":2}\n",
            crate::webhook::forms::NDJSON,
            100,
        )
        .unwrap();
        assert_eq!(nd.records.len(), 2);
        assert_eq!(nd.records[1].0, 1);
    }

    #[test]
    fn malformed_json_names_line_and_column() {
        let err = json("[{\"a\":1},\n {\"b\" 2}]").unwrap_err();
        assert!(
            matches!(
                err,
                BodyError::Malformed {
                    line: 2,
                    column: 7,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("line 2, column 7"));
    }

    #[test]
    fn bad_items_are_rejected_by_position_and_good_ones_kept() {
        let parsed = json("[{\"a\":1},\n 42,\n {\"c\":3},\n 42]").unwrap();
        assert_eq!(
            parsed.records.iter().map(|r| r.0).collect::<Vec<_>>(),
            [0, 2]
        );
        assert_eq!(parsed.rejected.len(), 2);
        assert_eq!(
            (parsed.rejected[1].index, parsed.rejected[1].line),
            (3, 4),
            "same text, own line"
        );
        assert_eq!(parsed.rejected[0].index, 1);
        assert_eq!(parsed.rejected[0].line, 2);
        assert!(parsed.rejected[0].error.contains("not a number"));

        let nd = parse_body(
            b"{\"a\":1}\n{broken\n[1]\n{\"d\":4}",
            crate::webhook::forms::NDJSON,
            100,
        )
        .unwrap();
        assert_eq!(nd.records.len(), 2);
        let rejected: Vec<_> = nd.rejected.iter().map(|r| (r.index, r.line)).collect();
        assert_eq!(rejected, [(1, 2), (2, 3)]);
        assert!(nd.rejected[0].column.is_some());
    }

    #[test]
    fn whole_body_problems() {
        assert_eq!(json("  ").unwrap_err(), BodyError::Empty);
        assert_eq!(json("[]").unwrap_err(), BodyError::NoRecords);
        assert_eq!(
            json("\"hi\"").unwrap_err(),
            BodyError::WrongShape { found: "a string" }
        );
        assert!(matches!(
            parse_body(&[0xff, 0xfe], crate::webhook::forms::JSON, 10),
            Err(BodyError::NotUtf8 { position: 0 })
        ));
        assert_eq!(
            parse_body(b"[{},{},{}]", crate::webhook::forms::JSON, 2).unwrap_err(),
            BodyError::TooManyRecords { count: 3, limit: 2 }
        );
        assert!(json("\u{feff}{\"bom\":true}").is_ok());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_body(&bytes, crate::webhook::forms::JSON, 10);
            let _ = parse_body(&bytes, crate::webhook::forms::NDJSON, 10);
        }

        #[test]
        fn every_ndjson_line_is_accounted_for(lines in proptest::collection::vec("[ -~]{0,12}", 1..20)) {
            let body = lines.join("\n");
            if let Ok(parsed) = parse_body(body.as_bytes(), crate::webhook::forms::NDJSON, 100) {
                let non_blank = lines.iter().filter(|l| !l.trim().is_empty()).count();
                prop_assert_eq!(parsed.records.len() + parsed.rejected.len(), non_blank);
            }
        }
    }
}
