//! Entry points for the fuzz targets (`fuzz/`, run by `tests/fuzz/run.sh`) and for
//! the seed-corpus test that runs the same code in every test run. Each takes
//! arbitrary bytes, must never panic, and checks what must hold of any answer.

use http::{HeaderMap, HeaderValue};
use schemas::webhook_auth::{Secret, WebhookAuth};

use crate::imports::reader::{rows_of, Row};
use crate::webhook::{forms, parse_body};

/// Records per request the splitter is asked to accept (the shipped default).
const MAX_RECORDS: usize = 1000;

/// The webhook body splitter, as JSON (one object or an array) and as NDJSON.
pub fn webhook_body(data: &[u8]) {
    for format in forms::FORMS.iter().copied() {
        if let Ok(parsed) = parse_body(data, format, MAX_RECORDS) {
            assert!(parsed.records.len() + parsed.rejected.len() <= MAX_RECORDS);
            assert!(!parsed.records.is_empty() || !parsed.rejected.is_empty());
            for (_, record) in &parsed.records {
                let value: serde_json::Value = serde_json::from_str(record.get())
                    .unwrap_or_else(|e| panic!("an accepted record is not JSON: {e}"));
                assert!(
                    value.is_object(),
                    "an accepted record is not an object: {value}"
                );
            }
        }
    }
}

/// Standard Webhooks headers: the bytes are `id\ntimestamp\nsignature\nbody`. Only
/// a signature made with the secret verifies; fuzzed bytes never do.
pub fn signature_headers(data: &[u8]) {
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let (Some(id), Some(timestamp), Some(signature)) = (parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let body = parts.next().unwrap_or_default();
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("webhook-id", id),
        ("webhook-timestamp", timestamp),
        ("webhook-signature", signature),
    ] {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.insert(name, value);
        }
    }
    let auth = WebhookAuth::StandardWebhooks {
        secrets: vec![Secret::new(
            "whsec_Y2FsbG1hdHJpeC10ZXN0LXNlY3JldC0zMi1ieXRlcyE=",
        )],
        tolerance_s: 300,
    };
    let now = std::str::from_utf8(timestamp)
        .ok()
        .and_then(|t| t.trim().parse::<i64>().ok())
        .unwrap_or(1_795_917_600);
    let verdict = crate::webhook::check_signature(&auth, &headers, body, now);
    assert!(verdict.is_err(), "fuzzed bytes verified: {data:?}");
}

/// The CSV reader over a whole file: rows come out numbered in order, and a record
/// never has a blank header.
pub fn csv(data: &[u8]) {
    let mut last = 0;
    for row in rows_of(data, &crate::imports::reader::Dialect::default()) {
        let number = match &row {
            Row::Record { row, fields } => {
                assert!(fields.keys().all(|k| !k.is_empty()), "{fields:?}");
                *row
            }
            Row::Bad { row, reason } => {
                assert!(!reason.is_empty());
                *row
            }
        };
        assert!(
            number > last || (number == 1 && last == 0),
            "row {number} after {last}"
        );
        last = number;
    }
}

#[cfg(test)]
mod tests {
    /// The same entry points over the seed corpus in `fuzz/seeds/`, in every test run.
    #[test]
    fn the_seed_corpus_passes_every_ingest_target() {
        engine::fuzzing::replay_seeds("webhook_body", super::webhook_body);
        engine::fuzzing::replay_seeds("signature_headers", super::signature_headers);
        engine::fuzzing::replay_seeds("csv", super::csv);
    }
}
