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
    /// The record exactly as received (text, since a broken record may not be JSON).
    pub payload: String,
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
        }
    }
}
