//! Where a run's records go: Kafka (the poller), or a list (a dry run, tests).

use std::future::Future;
use std::sync::Mutex;

use chrono::Utc;
use runtime::kafka::AckedProducer;
use schemas::keys::KeyRules;
use schemas::{Integration, RawEnvelope, Source};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::webhook::content_key;

pub trait RecordSink: Sync {
    /// Sends one page's records; `Ok` only once they are durable.
    fn records(
        &self,
        integration: &Integration,
        records: &[Value],
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// Records the page could not hold, with why (dead letters).
    fn rejected(
        &self,
        integration: &Integration,
        rejected: &[(String, String)],
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// The raw topic, acknowledged; too large or unreadable records to the dead
/// letters.
pub struct KafkaSink<'a> {
    pub producer: &'a AckedProducer,
    pub raw_topic: &'a str,
    pub dead_letter_topic: &'a str,
    /// The largest record: every message made from it fits the broker's limit.
    pub record_limits: schemas::limits::RecordLimits,
    /// The account's records per second: a run waits for its share.
    pub limits: &'a crate::limits::IngestLimits,
    pub key_rules: &'a KeyRules,
}

impl RecordSink for KafkaSink<'_> {
    async fn records(&self, integration: &Integration, records: &[Value]) -> Result<(), String> {
        if records.is_empty() {
            return Ok(());
        }
        let received_at = Utc::now();
        let mut too_large = Vec::new();
        let envelopes: Vec<RawEnvelope> = records
            .iter()
            .filter_map(|record| {
                let text = record.to_string();
                if let Err(why) = self.record_limits.check(&text) {
                    too_large.push((text, why.to_string()));
                    return None;
                }
                let key = content_key(text.as_bytes());
                Some(RawEnvelope {
                    raw_id: schemas::ids::raw_record_id(&integration.client_id, &key),
                    client_id: integration.client_id.clone(),
                    source: Source::Poll,
                    received_at,
                    idempotency_key: key,
                    integration_version: integration.version,
                    payload: RawValue::from_string(text).ok()?,
                })
            })
            .collect();
        self.limits
            .pace_records(&integration.account, envelopes.len())
            .await;
        let keys = self.key_rules.keys(&envelopes);
        let encoded: Vec<(String, Vec<u8>)> = keys
            .into_iter()
            .zip(&envelopes)
            .map(|(k, e)| (k, e.to_json()))
            .collect();
        self.producer
            .send_pairs(self.raw_topic, &encoded)
            .await
            .map_err(|e| format!("Kafka did not acknowledge a page: {e}"))?;
        metrics::counter!(crate::metric_names::INGEST_RECORDS_TOTAL, "outcome" => "polled")
            .increment(envelopes.len() as u64);
        self.rejected(integration, &too_large).await
    }

    async fn rejected(
        &self,
        integration: &Integration,
        rejected: &[(String, String)],
    ) -> Result<(), String> {
        if rejected.is_empty() {
            return Ok(());
        }
        let received_at = Utc::now();
        let letters: Vec<(String, Vec<u8>)> = rejected
            .iter()
            .map(|(text, reason)| {
                let letter = crate::webhook::dead_letter(
                    &integration.client_id,
                    Source::Poll,
                    schemas::dead_letter::Stage::Ingest,
                    text,
                    reason.clone(),
                    received_at,
                );
                crate::webhook::encoded_letter(letter, schemas::limits::TOO_LARGE_LETTER_BYTES)
            })
            .collect();
        self.producer
            .send_pairs(self.dead_letter_topic, &letters)
            .await
            .map_err(|e| format!("Kafka did not acknowledge a page's dead letters: {e}"))?;
        metrics::counter!(crate::metric_names::INGEST_RECORDS_TOTAL, "outcome" => "poll_rejected")
            .increment(letters.len() as u64);
        Ok(())
    }
}

/// Keeps what it is given (dry runs, tests).
#[derive(Default)]
pub struct Collected {
    pub records: Mutex<Vec<Value>>,
    pub rejected: Mutex<Vec<(String, String)>>,
}

impl Collected {
    pub fn records(&self) -> Vec<Value> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn rejected(&self) -> Vec<(String, String)> {
        self.rejected.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl RecordSink for Collected {
    async fn records(&self, _integration: &Integration, records: &[Value]) -> Result<(), String> {
        if let Ok(mut kept) = self.records.lock() {
            kept.extend_from_slice(records);
        }
        Ok(())
    }

    async fn rejected(
        &self,
        _integration: &Integration,
        rejected: &[(String, String)],
    ) -> Result<(), String> {
        if let Ok(mut kept) = self.rejected.lock() {
            kept.extend_from_slice(rejected);
        }
        Ok(())
    }
}
