//! Splits a webhook body into records without re-encoding them: each record keeps
//! the exact bytes the partner sent. Accepts one JSON object, a JSON array of
//! objects, or NDJSON (one object per line).

use schemas::limits::RecordLimits;
use serde::Serialize;
use serde_json::value::RawValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Ndjson,
}

impl BodyFormat {
    /// From a `Content-Type` header; `None` for types we do not take.
    pub fn from_content_type(value: &str) -> Option<Self> {
        let media = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/json" | "text/json" => Some(Self::Json),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines"
            | "application/jsonlines" => Some(Self::Ndjson),
            _ => None,
        }
    }
}

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
    let parsed = match format {
        BodyFormat::Json => parse_json(text, limits)?,
        BodyFormat::Ndjson => parse_ndjson(text, limits),
    };
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

fn parse_json(text: &str, limits: RecordLimits) -> Result<ParsedBody, BodyError> {
    let malformed = |e: serde_json::Error| BodyError::Malformed {
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    };
    // Borrowed parses: every slice points into `text`, which gives each item's line.
    let whole: &RawValue = serde_json::from_str(text).map_err(malformed)?;
    match whole.get().as_bytes().first() {
        Some(b'{') => {
            limits
                .check(whole.get())
                .map_err(BodyError::RecordTooLarge)?;
            check(whole.get()).map_err(malformed)?;
            Ok(ParsedBody {
                records: vec![(0, whole.to_owned())],
                rejected: vec![],
            })
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(whole.get()).map_err(malformed)?;
            let mut parsed = ParsedBody {
                records: Vec::with_capacity(items.len()),
                rejected: vec![],
            };
            for (index, item) in items.into_iter().enumerate() {
                match kind_of(item) {
                    "an object" if limits.check(item.get()).is_err() => {
                        parsed.rejected.push(too_large(
                            index,
                            line_of(text, item.get()),
                            item.get(),
                            limits,
                        ));
                    }
                    "an object" => match check(item.get()) {
                        Ok(()) => parsed.records.push((index, item.to_owned())),
                        Err(e) => parsed.rejected.push(RejectedRecord {
                            index,
                            line: line_of(text, item.get()) + e.line() - 1,
                            column: Some(e.column()),
                            error: format!("malformed JSON: {}", strip_position(&e.to_string())),
                            text: item.get().to_owned(),
                            too_large: false,
                        }),
                    },
                    other => parsed.rejected.push(RejectedRecord {
                        index,
                        line: line_of(text, item.get()),
                        column: None,
                        error: format!("record must be a JSON object, not {other}"),
                        text: item.get().to_owned(),
                        too_large: false,
                    }),
                }
            }
            Ok(parsed)
        }
        _ => Err(BodyError::WrongShape {
            found: kind_of(whole),
        }),
    }
}

fn parse_ndjson(text: &str, limits: RecordLimits) -> ParsedBody {
    let mut parsed = ParsedBody {
        records: vec![],
        rejected: vec![],
    };
    let mut index = 0;
    for (line_number, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        if limits.check(line).is_err() {
            parsed
                .rejected
                .push(too_large(index, line_number + 1, line, limits));
            index += 1;
            continue;
        }
        match serde_json::from_str::<Box<RawValue>>(line)
            .and_then(|record| check(record.get()).map(|()| record))
        {
            Ok(record) if kind_of(&record) == "an object" => parsed.records.push((index, record)),
            Ok(record) => parsed.rejected.push(RejectedRecord {
                index,
                line: line_number + 1,
                column: None,
                error: format!("record must be a JSON object, not {}", kind_of(&record)),
                text: line.to_owned(),
                too_large: false,
            }),
            Err(e) => parsed.rejected.push(RejectedRecord {
                index,
                line: line_number + 1,
                column: Some(e.column()),
                error: format!("malformed JSON: {}", strip_position(&e.to_string())),
                text: line.to_owned(),
                too_large: false,
            }),
        }
        index += 1;
    }
    parsed
}

/// A record refused for its size: every message made from it must fit the broker's
/// limit (`schemas::limits`). Its dead letter keeps its start, size and digest.
fn too_large(index: usize, line: usize, text: &str, limits: RecordLimits) -> RejectedRecord {
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
fn check(json: &str) -> Result<(), serde_json::Error> {
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
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, Checked>()?
            .is_some()
        {}
        Ok(Checked)
    }
}

fn kind_of(value: &RawValue) -> &'static str {
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
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// The 1-based line of `text` where `item`, a slice of `text`, starts.
fn line_of(text: &str, item: &str) -> usize {
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
            let error = parse_body(body.as_bytes(), BodyFormat::Json, 10).unwrap_err();
            assert!(matches!(error, BodyError::Malformed { .. }), "{error:?}");
        }
        let array = format!("[{{\"ok\":1}}, {{\"n\": 1e999}}, {deep}]");
        let parsed = parse_body(array.as_bytes(), BodyFormat::Json, 10).unwrap();
        assert_eq!(parsed.records.len(), 1);
        assert_eq!(parsed.rejected.len(), 2);
        assert!(
            parsed.rejected[0].error.contains("number out of range"),
            "{:?}",
            parsed.rejected[0]
        );
        let ndjson = format!("{{\"ok\":1}}\n{{\"n\": -1e999}}\n{deep}\n");
        let parsed = parse_body(ndjson.as_bytes(), BodyFormat::Ndjson, 10).unwrap();
        assert_eq!((parsed.records.len(), parsed.rejected.len()), (1, 2));
        assert_eq!(parsed.rejected[0].line, 2);
    }

    use super::*;
    use proptest::prelude::*;

    fn json(text: &str) -> Result<ParsedBody, BodyError> {
        parse_body(text.as_bytes(), BodyFormat::Json, 100)
    }

    #[test]
    fn one_object_an_array_and_ndjson() {
        assert_eq!(json(r#"{"a":1}"#).unwrap().records.len(), 1);
        let array = json("[{\"a\":1},\n {\"b\": 2}]").unwrap();
        assert_eq!(array.records.len(), 2);
        assert_eq!(array.records[1].1.get(), "{\"b\": 2}", "bytes kept exactly");
        let nd = parse_body(b"{\"a\":1}\r\n\n{\"b\":2}\n", BodyFormat::Ndjson, 100).unwrap();
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
            BodyFormat::Ndjson,
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
            parse_body(&[0xff, 0xfe], BodyFormat::Json, 10),
            Err(BodyError::NotUtf8 { position: 0 })
        ));
        assert_eq!(
            parse_body(b"[{},{},{}]", BodyFormat::Json, 2).unwrap_err(),
            BodyError::TooManyRecords { count: 3, limit: 2 }
        );
        assert!(json("\u{feff}{\"bom\":true}").is_ok());
    }

    #[test]
    fn content_types() {
        assert_eq!(
            BodyFormat::from_content_type("application/json; charset=utf-8"),
            Some(BodyFormat::Json)
        );
        assert_eq!(
            BodyFormat::from_content_type("Application/X-NDJSON"),
            Some(BodyFormat::Ndjson)
        );
        assert_eq!(BodyFormat::from_content_type("text/plain"), None);
        assert_eq!(
            BodyFormat::from_content_type("application/x-www-form-urlencoded"),
            None
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_body(&bytes, BodyFormat::Json, 10);
            let _ = parse_body(&bytes, BodyFormat::Ndjson, 10);
        }

        #[test]
        fn every_ndjson_line_is_accounted_for(lines in proptest::collection::vec("[ -~]{0,12}", 1..20)) {
            let body = lines.join("\n");
            if let Ok(parsed) = parse_body(body.as_bytes(), BodyFormat::Ndjson, 100) {
                let non_blank = lines.iter().filter(|l| !l.trim().is_empty()).count();
                prop_assert_eq!(parsed.records.len() + parsed.rejected.len(), non_blank);
            }
        }
    }
}
