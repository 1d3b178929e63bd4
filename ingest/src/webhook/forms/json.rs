//! `application/json`: one object, or an array of objects (each item a record, its
//! exact bytes kept).

use schemas::limits::RecordLimits;
use serde_json::value::RawValue;

use crate::webhook::body::{
    check, kind_of, line_of, strip_position, too_large, BodyError, ParsedBody, RejectedRecord,
};

pub struct Json;

impl super::BodyForm for Json {
    fn name(&self) -> &'static str {
        "json"
    }

    fn media_types(&self) -> &'static [&'static str] {
        &["application/json", "text/json"]
    }

    fn records(&self, text: &str, limits: RecordLimits) -> Result<ParsedBody, BodyError> {
        parse_json(text, limits)
    }
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
