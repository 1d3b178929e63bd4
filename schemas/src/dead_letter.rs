//! Records that could not be accepted or mapped. Each carries its reason and the
//! original payload so it can be shown, fixed and replayed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::call::source_text;
use crate::{ClientId, Source};

/// Which stage refused the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Ingest could not even read it (a malformed NDJSON line, a non-object array item).
    Ingest,
    /// The processor could not map it into a canonical call.
    Mapping,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Mapping => "mapping",
        }
    }
}

/// The dead-letter topic's message and the API's view of an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub raw_id: Uuid,
    pub client_id: ClientId,
    #[serde(with = "source_text")]
    pub source: Source,
    pub stage: Stage,
    /// One line a person can act on.
    pub reason: String,
    /// Every individual problem (field errors, with rule, path and value).
    pub errors: Vec<String>,
    pub received_at: DateTime<Utc>,
    pub failed_at: DateTime<Utc>,
    /// Where the record sat in the raw topic, when it got that far.
    pub raw_partition: Option<i32>,
    pub raw_offset: Option<i64>,
    /// The record exactly as received (text, since a broken record may not be JSON),
    /// or its start when `truncated` says so.
    pub payload: String,
    /// Set when the dead letter would not fit the broker's message limit whole:
    /// `payload` then holds the start of the record, and this its size and digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<TruncatedPayload>,
}

/// What is kept of a payload too large for its dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruncatedPayload {
    /// The record's size in bytes as received.
    pub bytes: u64,
    /// SHA-256 of the record as received, hex: what the sender can match it by.
    pub sha256: String,
}

/// Reasons and errors are written by us, but quote the partner's values: bounded so a
/// dead letter's size is its payload's (at most about 36 KB besides it).
const MAX_REASON_BYTES: usize = 2048;
const MAX_ERRORS: usize = 64;
const MAX_ERROR_BYTES: usize = 512;
/// librdkafka's own record overhead, the key and headers, beside the JSON.
const RECORD_OVERHEAD_BYTES: usize = 1024;

fn cut(text: &mut String, max: usize) {
    if crate::limits::escaped_len(text) > max {
        let keep = crate::limits::prefix_within(text, max.saturating_sub(3)).len();
        text.truncate(keep);
        text.push('…');
    }
}

impl DeadLetter {
    /// The dead letter, made to fit a message of `max_bytes` (at least 64 KiB, as
    /// the config requires): reason and errors bounded, and the payload cut to what
    /// fits (on a character boundary) with its size and digest kept when it is too
    /// large. A dead letter that fits as it is comes back unchanged. Every message
    /// the pipeline makes must fit, or the producer refuses it for good and the
    /// batch holding it stops its partition.
    pub fn fit_within(mut self, max_bytes: usize) -> Self {
        cut(&mut self.reason, MAX_REASON_BYTES);
        if self.errors.len() > MAX_ERRORS {
            let more = self.errors.len() - MAX_ERRORS;
            self.errors.truncate(MAX_ERRORS);
            self.errors.push(format!("… and {more} more"));
        }
        for error in &mut self.errors {
            cut(error, MAX_ERROR_BYTES);
        }
        if self.truncated.is_some() {
            return self;
        }
        // Everything but the payload, as it will be written, with room for the
        // `truncated` marker the cut adds.
        let payload = std::mem::take(&mut self.payload);
        let rest = serde_json::to_vec(&self).map_or(0, |v| v.len()) + 160 + RECORD_OVERHEAD_BYTES;
        let room = max_bytes.saturating_sub(rest);
        self.payload = payload;
        if crate::limits::escaped_len(&self.payload) > room {
            self.truncated = Some(TruncatedPayload {
                bytes: self.payload.len() as u64,
                sha256: crate::digest::sha256_hex(self.payload.as_bytes()),
            });
            let keep = crate::limits::prefix_within(&self.payload, room).len();
            self.payload.truncate(keep);
        }
        self
    }
}

/// The `dead_letters` table row (`migrations/0002_dead_letters.sql`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clickhouse", derive(clickhouse::Row))]
pub struct DeadLetterRow {
    #[cfg_attr(feature = "clickhouse", serde(with = "clickhouse::serde::uuid"))]
    pub raw_id: Uuid,
    pub client_id: String,
    pub source: Source,
    pub stage: String,
    pub reason: String,
    pub errors: Vec<String>,
    #[cfg_attr(
        feature = "clickhouse",
        serde(with = "clickhouse::serde::chrono::datetime")
    )]
    pub received_at: DateTime<Utc>,
    #[cfg_attr(
        feature = "clickhouse",
        serde(with = "clickhouse::serde::chrono::datetime")
    )]
    pub failed_at: DateTime<Utc>,
    pub raw_partition: i32,
    pub raw_offset: i64,
    pub payload: String,
    /// The account the client id belongs to, set by the recorder from the registry
    /// (migration 8; empty on rows recorded before it).
    pub account: String,
    /// The record's size when `payload` holds only its start (migration 14; 0: the
    /// payload is whole).
    pub payload_bytes: u64,
    /// SHA-256 (hex) of the whole record when `payload` holds only its start.
    pub payload_sha256: String,
}

impl From<&DeadLetter> for DeadLetterRow {
    fn from(letter: &DeadLetter) -> Self {
        Self {
            raw_id: letter.raw_id,
            client_id: letter.client_id.to_string(),
            source: letter.source,
            stage: letter.stage.as_str().to_owned(),
            reason: letter.reason.clone(),
            errors: letter.errors.clone(),
            received_at: letter.received_at,
            failed_at: letter.failed_at,
            // -1: never reached the raw topic (refused at the edge).
            raw_partition: letter.raw_partition.unwrap_or(-1),
            raw_offset: letter.raw_offset.unwrap_or(-1),
            payload: letter.payload.clone(),
            account: String::new(),
            payload_bytes: letter.truncated.as_ref().map_or(0, |t| t.bytes),
            payload_sha256: letter
                .truncated
                .as_ref()
                .map(|t| t.sha256.clone())
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn letter(payload: String) -> DeadLetter {
        DeadLetter {
            raw_id: Uuid::nil(),
            client_id: ClientId::parse("arroyo").unwrap(),
            source: Source::Webhook,
            stage: Stage::Mapping,
            reason: "caller: missing".into(),
            errors: vec!["caller: missing".into()],
            received_at: DateTime::<Utc>::default(),
            failed_at: DateTime::<Utc>::default(),
            raw_partition: Some(0),
            raw_offset: Some(1),
            payload,
            truncated: None,
        }
    }

    #[test]
    fn a_letter_that_fits_is_unchanged() {
        let small = letter(r#"{"a": "b"}"#.into());
        assert_eq!(small.clone().fit_within(100_000), small);
    }

    #[test]
    fn a_quote_heavy_payload_is_cut_with_its_size_and_digest() {
        // 690 KB of JSON whose quotes double when escaped: the case that stopped the
        // pipeline (the dead letter was over the broker's 1 MB limit).
        let payload = format!("{{\"k\": [{}\"x\"]}}", "\"a\",".repeat(172_000));
        let whole = payload.len();
        let fitted = letter(payload.clone()).fit_within(1_000_000);
        let encoded = serde_json::to_vec(&fitted).unwrap();
        assert!(encoded.len() <= 1_000_000, "{} bytes", encoded.len());
        let truncated = fitted.truncated.clone().unwrap();
        assert_eq!(truncated.bytes, whole as u64);
        assert_eq!(truncated.sha256.len(), 64);
        assert!(payload.starts_with(&fitted.payload));
        let row = DeadLetterRow::from(&fitted);
        assert_eq!(row.payload_bytes, whole as u64);
    }

    proptest! {
        #[test]
        fn any_letter_fits_after_fitting(
            piece in proptest::string::string_regex("[\"\\\\a\n\u{1}é]{1,400}").unwrap(),
            repeat in 1_usize..400,
            reason_len in 0_usize..6000,
            errors in 0_usize..200,
            error_len in 0_usize..3000,
            max in 65_536_usize..150_000,
        ) {
            let mut letter = letter(piece.repeat(repeat));
            letter.reason = "r\"".repeat(reason_len);
            letter.errors = vec!["\u{1}".repeat(error_len); errors];
            let fitted = letter.fit_within(max);
            let size = serde_json::to_vec(&fitted).unwrap().len();
            prop_assert!(size + RECORD_OVERHEAD_BYTES <= max, "{} of {}", size, max);
        }
    }
}
