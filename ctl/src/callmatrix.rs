//! `cmctl callmatrix numbers|calls FILE`: CallMatrix's managed numbers and routed
//! calls (CmCall) into their topics, from CSV (header row) or JSON (an array, or one
//! object per line). Phone numbers are normalised to E.164 with `--region`; a bad
//! record is reported with its position and nothing is published.

use std::path::Path;

use runtime::kafka::{AckedProducer, KafkaConfig};
use schemas::callmatrix::{CmCall, ManagedNumber};
use schemas::E164;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::CtlError;

/// Which CallMatrix data a file holds.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Numbers,
    Calls,
}

/// Reads, validates and publishes `path`; returns how many records were published.
pub async fn load(
    kafka: &KafkaConfig,
    kind: Kind,
    path: &Path,
    region: &str,
) -> Result<usize, CtlError> {
    let region = schemas::phone::region(region).map_err(|e| CtlError::Parse {
        path: "--region".into(),
        message: e.to_string(),
    })?;
    let text = std::fs::read_to_string(path).map_err(|source| CtlError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let parse_error = |message: String| CtlError::Parse {
        path: path.display().to_string(),
        message,
    };
    let records = read_records(path, &text).map_err(parse_error)?;
    let topics = kafka.topics();
    let (topic, keyed): (String, Vec<(String, Vec<u8>)>) = match kind {
        Kind::Numbers => {
            let numbers: Vec<ManagedNumber> =
                typed(records, &["number"], region).map_err(parse_error)?;
            let keyed = numbers
                .iter()
                .map(|n| {
                    (
                        n.number.to_string(),
                        serde_json::to_vec(n).unwrap_or_default(),
                    )
                })
                .collect();
            (topics.cm_numbers, keyed)
        }
        Kind::Calls => {
            let calls: Vec<CmCall> =
                typed(records, &["caller", "called"], region).map_err(parse_error)?;
            let keyed = calls
                .iter()
                .map(|c| {
                    (
                        c.cm_call_id.clone(),
                        serde_json::to_vec(c).unwrap_or_default(),
                    )
                })
                .collect();
            (topics.cm_calls, keyed)
        }
    };
    let producer = AckedProducer::new(kafka)?;
    for chunk in keyed.chunks(1000) {
        producer.send_pairs(&topic, chunk).await?;
    }
    Ok(keyed.len())
}

/// A record and where it was ("row 3", "record 2"), for errors.
type Positioned = (String, Map<String, Value>);

/// Each record as a JSON object with its position.
fn read_records(path: &Path, text: &str) -> Result<Vec<Positioned>, String> {
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
        let headers = reader.headers().map_err(|e| e.to_string())?.clone();
        let mut records = Vec::new();
        for (index, row) in reader.records().enumerate() {
            // Row 1 is the header.
            let position = format!("row {}", index + 2);
            let row = row.map_err(|e| format!("{position}: {e}"))?;
            let object = headers
                .iter()
                .zip(row.iter())
                .filter(|(_, v)| !v.is_empty())
                .map(|(h, v)| (h.to_owned(), csv_value(h, v)))
                .collect();
            records.push((position, object));
        }
        return Ok(records);
    }
    let values: Vec<Value> = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(values)) => values,
        Ok(other) => vec![other],
        Err(_) => text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(n, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", n + 1)))
            .collect::<Result<_, _>>()?,
    };
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| match value {
            Value::Object(object) => Ok((format!("record {}", index + 1), object)),
            _ => Err(format!("record {} is not an object", index + 1)),
        })
        .collect()
}

/// CSV cells are text; the numeric and boolean fields become JSON numbers and booleans.
fn csv_value(header: &str, cell: &str) -> Value {
    match header {
        "duration_s" => cell
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| cell.into()),
        "active" => match cell.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Value::Bool(true),
            "false" | "0" | "no" => Value::Bool(false),
            _ => cell.into(),
        },
        _ => cell.into(),
    }
}

fn typed<T: DeserializeOwned>(
    records: Vec<Positioned>,
    phone_fields: &[&str],
    region: phonenumber::country::Id,
) -> Result<Vec<T>, String> {
    records
        .into_iter()
        .map(|(position, mut object)| {
            for field in phone_fields {
                if let Some(Value::String(text)) = object.get(*field) {
                    let number = E164::parse(text, region)
                        .map_err(|e| format!("{position}: {field}: {e}"))?;
                    object.insert((*field).to_owned(), number.to_string().into());
                }
            }
            if let Some(Value::String(text)) = object.get("duration_s") {
                return Err(format!(
                    "{position}: duration_s: {text:?} is not a whole number of seconds"
                ));
            }
            serde_json::from_value(Value::Object(object)).map_err(|e| format!("{position}: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> (std::path::PathBuf, String) {
        let path = std::path::PathBuf::from(format!(
            "{}/../tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ));
        let text = std::fs::read_to_string(&path).unwrap();
        (path, text)
    }

    #[test]
    fn the_sample_files_read() {
        let (path, text) = fixture("callmatrix-numbers.csv");
        let numbers: Vec<ManagedNumber> = typed(
            read_records(&path, &text).unwrap(),
            &["number"],
            phonenumber::country::Id::US,
        )
        .unwrap();
        assert_eq!(numbers.len(), 2);
        assert_eq!(numbers[0].number.as_str(), "+18885550100");
        assert!(numbers[0].active);
        let (path, text) = fixture("callmatrix-calls.json");
        let calls: Vec<CmCall> = typed(
            read_records(&path, &text).unwrap(),
            &["caller", "called"],
            phonenumber::country::Id::US,
        )
        .unwrap();
        assert_eq!(calls[1].cm_call_id, "cm_0002");
        assert_eq!(calls[1].duration_s, 725);
    }

    #[test]
    fn a_bad_row_is_named() {
        let path = Path::new("n.csv");
        let text = "number,account\n+18885550100,a\nnot a number,b\n";
        let error = typed::<ManagedNumber>(
            read_records(path, text).unwrap(),
            &["number"],
            phonenumber::country::Id::US,
        )
        .unwrap_err();
        assert!(error.starts_with("row 3: number:"), "{error}");
        let calls = "cm_call_id,caller,called,started_at,duration_s\nc1,4155552671,8885550100,2026-11-20T22:03:20Z,abc\n";
        let error = typed::<CmCall>(
            read_records(Path::new("c.csv"), calls).unwrap(),
            &["caller", "called"],
            phonenumber::country::Id::US,
        )
        .unwrap_err();
        assert!(
            error.starts_with("row 2:") && error.contains("duration_s"),
            "{error}"
        );
    }
}
