//! NDJSON (JSON Lines): one object per line, each line a record, its exact bytes
//! kept; a bad line is refused alone.

use schemas::limits::RecordLimits;
use serde_json::value::RawValue;

use crate::webhook::body::{
    check, kind_of, strip_position, too_large, BodyError, ParsedBody, RejectedRecord,
};

pub struct Ndjson;

impl super::BodyForm for Ndjson {
    fn name(&self) -> &'static str {
        "ndjson"
    }

    fn media_types(&self) -> &'static [&'static str] {
        &[
            "application/x-ndjson",
            "application/ndjson",
            "application/jsonl",
            "application/x-jsonlines",
            "application/jsonlines",
        ]
    }

    fn records(&self, text: &str, limits: RecordLimits) -> Result<ParsedBody, BodyError> {
        Ok(parse_ndjson(text, limits))
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
