//! `GET /api/calls/{id}/story?client_id=…`: one call and why it is what it is. The
//! call as it stands, every decision about it in words (`engine::explain`), each of
//! its versions still stored with what changed, and the partner records it came
//! from, read back from the raw topic where they still are. The dashboard's call
//! panel shows this; support tools read the same JSON.
//!
//! `client_id` is required: `calls` is sorted by (client_id, id), so the pair reads a
//! granule, where an id alone would read the whole table. It is checked against the
//! token with every other `client_id` (server.rs), and the call's account again here.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use http::{Response, StatusCode};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use runtime::access::Scope;
use runtime::http::{json, Body, Problem};
use runtime::kafka::KafkaConfig;
use runtime::registry::IntegrationRegistry;
use schemas::{CallId, CallRecord, CallRow, ClientId, RawEnvelope};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::calls::{records, storage_error};
use crate::query::{bad_parameter, parse};

/// Partner records read back per story: a call corrected more often than this shows
/// its newest records.
const MAX_RAW_RECORDS: usize = 10;
/// How long reading them back from the broker may take in all.
const RAW_READ_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Stories {
    pub clickhouse: clickhouse::Client,
    pub registry: IntegrationRegistry,
    pub kafka: KafkaConfig,
    /// One broker client for every story's read-back, made on first use and kept:
    /// a client per request was a connection, threads and buffers per request.
    pub reader: std::sync::Arc<std::sync::Mutex<Option<BaseConsumer>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoryQuery {
    client_id: Option<String>,
}

#[derive(Serialize)]
struct Story {
    call: CallRecord,
    decisions: Vec<engine::explain::Decision>,
    /// The integration version whose rules the decisions are read under.
    rules_version: Option<u32>,
    versions: Vec<Version>,
    raw: Vec<RawRecord>,
}

/// One stored version, oldest first. Versions merged away by ClickHouse are gone:
/// the list starts at the oldest still stored.
#[derive(Serialize)]
struct Version {
    version: u64,
    event: &'static str,
    processed_at: DateTime<Utc>,
    mapping_version: u32,
    status: String,
    raw_id: uuid::Uuid,
    /// The fields this version changed, against the one before it.
    changed: Vec<String>,
}

#[derive(Serialize)]
struct RawRecord {
    raw_id: uuid::Uuid,
    topic: String,
    partition: i32,
    offset: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    received_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    integration_version: Option<u32>,
    /// The partner's record, byte for byte; absent when `unavailable` says why.
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unavailable: Option<String>,
}

impl Stories {
    pub async fn story(
        &self,
        id: &str,
        query: Option<&str>,
        scope: &Scope,
    ) -> Result<Response<Body>, Problem> {
        let params: StoryQuery = parse(query)?;
        let client = params
            .client_id
            .as_deref()
            .ok_or_else(|| bad_parameter("client_id", "required: the call's integration"))?;
        let client =
            ClientId::parse(client).map_err(|e| bad_parameter("client_id", e.to_string()))?;
        let id = uuid::Uuid::parse_str(id).map_err(|_| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "bad_path",
                format!("{id:?} is not a call id (a UUID)"),
            )
        })?;
        let not_found = || {
            Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no call {id} of integration {client}"),
            )
        };
        let mut rows = self.versions(&client, CallId(id)).await?;
        rows.sort_by_key(|r| r.version);
        rows.dedup_by_key(|r| r.version);
        let calls = records(rows)?;
        let Some(call) = calls.last().cloned() else {
            return Err(not_found());
        };
        if !scope.permits(&call.account) {
            return Err(not_found());
        }
        let integration = self.registry.get(&client);
        let rules = integration
            .as_ref()
            .map(|i| i.enrichment.clone())
            .unwrap_or_default();
        let versions = history(&calls);
        // A viewer sees no record as the partner sent it (numbers in any spelling).
        let raw = if scope.is_viewer() {
            calls
                .last()
                .map(|c| RawRecord {
                    raw_id: c.raw.raw_id,
                    topic: c.raw.topic.clone(),
                    partition: c.raw.partition,
                    offset: c.raw.offset,
                    received_at: None,
                    integration_version: None,
                    record: None,
                    unavailable: Some("not shown to a viewer token".into()),
                })
                .into_iter()
                .collect()
        } else {
            self.raw_records(&calls).await
        };
        Ok(json(
            StatusCode::OK,
            &Story {
                decisions: engine::explain::explain(&call, &rules),
                rules_version: integration.map(|i| i.version),
                call,
                versions,
                raw,
            },
        ))
    }

    async fn versions(&self, client: &ClientId, id: CallId) -> Result<Vec<CallRow>, Problem> {
        let mut rows = Vec::new();
        for sql in runtime::call_lookup::by_id_queries(&[(client.clone(), id)]) {
            let mut part = self
                .clickhouse
                .query(&sql)
                .fetch_all::<CallRow>()
                .await
                .map_err(storage_error)?;
            rows.append(&mut part);
        }
        Ok(rows)
    }

    /// The partner records behind `calls`' versions, newest first, each once.
    async fn raw_records(&self, calls: &[CallRecord]) -> Vec<RawRecord> {
        let mut seen = BTreeSet::new();
        let positions: Vec<schemas::call::RawPosition> = calls
            .iter()
            .rev()
            .map(|c| c.raw.clone())
            .filter(|p| seen.insert((p.topic.clone(), p.partition, p.offset)))
            .take(MAX_RAW_RECORDS)
            .collect();
        let raw_topic = self.kafka.topics().raw;
        let kafka = self.kafka.clone();
        let client = calls.last().map(|c| c.client_id.clone());
        let reader = self.reader.clone();
        let read = tokio::task::spawn_blocking(move || {
            // One story reads back at a time (each is a few records); the others
            // wait for the shared client.
            let mut shared = reader
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if shared.is_none() {
                *shared = story_reader(&kafka);
            }
            read_back(shared.as_ref(), &raw_topic, client.as_ref(), positions)
        })
        .await;
        read.unwrap_or_default()
    }
}

/// Each version with the fields it changed against the one before.
fn history(calls: &[CallRecord]) -> Vec<Version> {
    // Bookkeeping that changes with every version, not what the call says.
    const NOT_CHANGES: [&str; 6] = [
        "version",
        "processed_at",
        "received_at",
        "raw",
        "event",
        "mapping_version",
    ];
    let mut before: Option<serde_json::Value> = None;
    calls
        .iter()
        .map(|call| {
            let now = serde_json::to_value(call).unwrap_or_default();
            let changed = match (&before, &now) {
                (Some(serde_json::Value::Object(old)), serde_json::Value::Object(new)) => new
                    .iter()
                    .filter(|(k, v)| {
                        !NOT_CHANGES.contains(&k.as_str()) && old.get(k.as_str()) != Some(v)
                    })
                    .flat_map(|(k, v)| match (k.as_str(), old.get("attributes"), v) {
                        // Attributes are named one by one: `attributes.recordingUrl`.
                        (
                            "attributes",
                            Some(serde_json::Value::Object(was)),
                            serde_json::Value::Object(is),
                        ) => {
                            let mut names: Vec<String> = is
                                .iter()
                                .filter(|(name, value)| was.get(name.as_str()) != Some(value))
                                .map(|(name, _)| name)
                                .chain(was.keys().filter(|name| !is.contains_key(name.as_str())))
                                .map(|name| format!("attributes.{name}"))
                                .collect();
                            names.sort();
                            names
                        }
                        _ => vec![k.clone()],
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let event = if before.is_none() {
                "call.created"
            } else {
                "call.updated"
            };
            before = Some(now);
            Version {
                version: call.version,
                event,
                processed_at: call.processed_at,
                mapping_version: call.mapping_version,
                status: call.status.clone(),
                raw_id: call.raw.raw_id,
                changed,
            }
        })
        .collect()
}

/// Reads the records at `positions` back from the raw topic. Blocking. A position on
/// another topic, gone from the broker, or not read in time is reported as such.
/// The broker client stories read back with (assigned by hand, never committing).
fn story_reader(kafka: &KafkaConfig) -> Option<BaseConsumer> {
    let mut config = kafka.client_config();
    config
        .set("group.id", kafka.group_id("api-story"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    config.create().ok()
}

fn read_back(
    consumer: Option<&BaseConsumer>,
    raw_topic: &str,
    client: Option<&ClientId>,
    positions: Vec<schemas::call::RawPosition>,
) -> Vec<RawRecord> {
    let deadline = Instant::now() + RAW_READ_TIMEOUT;
    positions
        .into_iter()
        .map(|p| {
            let mut record = RawRecord {
                raw_id: p.raw_id,
                topic: p.topic.clone(),
                partition: p.partition,
                offset: p.offset,
                received_at: None,
                integration_version: None,
                record: None,
                unavailable: None,
            };
            let read = match consumer {
                _ if p.topic != raw_topic => {
                    Err(format!("not on this deployment's raw topic {raw_topic}"))
                }
                None => Err("the broker client could not be created".to_owned()),
                Some(consumer) => read_one(consumer, &p, deadline),
            };
            match read.and_then(|bytes| {
                serde_json::from_slice::<RawEnvelope>(&bytes)
                    .map_err(|e| format!("the record there is not an envelope: {e}"))
            }) {
                Ok(envelope) if Some(&envelope.client_id) != client => {
                    record.unavailable = Some("the record there is another integration's".into());
                }
                Ok(envelope) if envelope.raw_id != p.raw_id => {
                    record.unavailable =
                        Some("the record there is another one (the topic was recreated?)".into());
                }
                Ok(envelope) => {
                    record.received_at = Some(envelope.received_at);
                    record.integration_version = Some(envelope.integration_version);
                    record.record = Some(envelope.payload);
                }
                Err(reason) => record.unavailable = Some(reason),
            }
            record
        })
        .collect()
}

fn read_one(
    consumer: &BaseConsumer,
    at: &schemas::call::RawPosition,
    deadline: Instant,
) -> Result<Vec<u8>, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    let (low, high) = consumer
        .fetch_watermarks(&at.topic, at.partition, left)
        .map_err(|e| format!("the broker did not answer: {e}"))?;
    if at.offset < low || at.offset >= high {
        return Err(format!(
            "no longer in the topic (partition {} holds offsets {low} to {})",
            at.partition,
            high - 1
        ));
    }
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(&at.topic, at.partition, Offset::Offset(at.offset))
        .map_err(|e| e.to_string())?;
    consumer.assign(&list).map_err(|e| e.to_string())?;
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        match consumer.poll(left.min(Duration::from_millis(500))) {
            Some(Ok(message)) if message.partition() == at.partition => {
                if message.offset() == at.offset {
                    return Ok(message.payload().unwrap_or_default().to_vec());
                }
                if message.offset() > at.offset {
                    return Err("no longer in the topic".into());
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("reading the topic: {e}")),
            None => {}
        }
    }
    Err(format!(
        "not read back within {} s",
        RAW_READ_TIMEOUT.as_secs()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn history_lists_what_each_version_changed() {
        let at = Utc.with_ymd_and_hms(2026, 11, 20, 14, 0, 0).unwrap();
        let first = engine::enrich::test_call("h", at);
        let mut second = first.clone();
        second.version = 2;
        second.payout = schemas::Money::from_units(10_000);
        second.status = "qualified".into();
        second.qualified = true;
        second.raw.offset = 7;
        second.processed_at = at + chrono::Duration::seconds(5);
        let attribute = |value: &str| schemas::attribute::AttributeValue {
            kind: schemas::attribute::AttributeType::String,
            value: value.into(),
        };
        let mut first = first;
        first
            .attributes
            .insert("publisherSubId".into(), attribute("pub-7"));
        first.attributes.insert("gclid".into(), attribute("g"));
        second
            .attributes
            .insert("publisherSubId".into(), attribute("pub-7"));
        second
            .attributes
            .insert("recordingUrl".into(), attribute("https://r/1.mp3"));
        let versions = history(&[first, second]);
        assert_eq!(versions.len(), 2);
        assert_eq!(versions[0].event, "call.created");
        assert!(versions[0].changed.is_empty());
        assert_eq!(versions[1].event, "call.updated");
        let mut changed = versions[1].changed.clone();
        changed.sort();
        assert_eq!(
            changed,
            [
                "attributes.gclid",
                "attributes.recordingUrl",
                "payout",
                "qualified",
                "status"
            ],
            "attributes one by one: one added, one gone, the unchanged one not named"
        );
    }
}
