//! The raw envelope: what ingest writes to the raw topic for every record it accepts.
//! The partner's payload is carried byte for byte (`RawValue`), so a dead letter or a
//! replay always has exactly what the partner sent.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::{ClientId, Source};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawEnvelope {
    /// Derived from the client and the idempotency key: the same record sent twice
    /// gets the same raw id.
    pub raw_id: Uuid,
    pub client_id: ClientId,
    pub source: Source,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub received_at: DateTime<Utc>,
    /// The sender's key when it gave one (header), else a hash of the record bytes.
    pub idempotency_key: String,
    /// The integration version ingest saw when it accepted the record; the processor
    /// waits until its own view of the integration is at least this new.
    pub integration_version: u32,
    pub payload: Box<RawValue>,
}

impl RawEnvelope {
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising this struct cannot fail: every field is plain data and the
        // payload is already valid JSON.
        serde_json::to_vec(self).unwrap_or_default()
    }
}
