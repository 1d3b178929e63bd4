//! Operator commands, as a library so tests set up their isolated topics and
//! databases with exactly what `cmctl` runs.

pub mod callmatrix;
pub mod ingest_client;
pub mod replay;

use std::path::Path;
use std::time::Duration;

use runtime::clickhouse::ClickHouseConfig;
use runtime::kafka::{ensure_topics, AckedProducer, AdminError, KafkaConfig, TopicSpec};
use runtime::registry::{publish, RegistryError};
use schemas::Integration;

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Produce(#[from] runtime::kafka::ProduceError),
    #[error(transparent)]
    Migrate(#[from] runtime::migrate::MigrateError),
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error(transparent)]
    Consumer(#[from] runtime::kafka::ConsumerError),
    #[error("replay: {0}")]
    Replay(String),
    #[error("{0}")]
    Remote(String),
    #[error("erasure {id} is queued, but no processor has carried it out within {waited_s} s: its receipt appears in `GET /api/privacy/erasures` once one has (or run this again with `--id {id}` to wait for it)")]
    ErasurePending { id: uuid::Uuid, waited_s: u64 },
    #[error("the number: {0}")]
    Number(String),
}

/// How long the topics keep records (docs/privacy.md, "The topics").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicRetention {
    /// The topics that carry callers' records (raw, enriched, dead letters,
    /// parked, CallMatrix calls, refused deliveries): a caller's number leaves them
    /// at most this long after it was written (plus the broker's cleanup interval).
    /// Also how far back an SSE client can resume (docs/api.md). 7 days by default.
    pub calls: Duration,
}

impl Default for TopicRetention {
    fn default() -> Self {
        Self {
            calls: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// The longest a topic may keep callers' records: a year.
pub const MAX_CALLS_RETENTION: Duration = Duration::from_secs(365 * 24 * 3600);

impl TopicRetention {
    /// From `cmctl topics --retention-hours`.
    pub fn from_hours(hours: u64) -> Result<Self, CtlError> {
        let calls = Duration::from_secs(hours.saturating_mul(3600));
        if hours == 0 || calls > MAX_CALLS_RETENTION {
            return Err(CtlError::Parse {
                path: "--retention-hours".into(),
                message: format!("{hours} must be between 1 and 8760 (a year)"),
            });
        }
        Ok(Self { calls })
    }
}

/// What `cmctl topics` did.
#[derive(Debug, Default)]
pub struct TopicsReport {
    pub created: Vec<String>,
    /// Settings of existing topics brought to their spec.
    pub changed: Vec<runtime::kafka::SettingChange>,
}

/// How long the rollup worker's dirty hours and the audit topic keep records:
/// neither carries a caller, and each is read continuously by one worker.
const DIRTY_HOURS_RETENTION_MS: &str = "604800000";
const AUDIT_RETENTION_MS: &str = "2592000000";

/// The pipeline's topics. `partitions` bounds processor parallelism: one consumer
/// per partition at most, so size it for the instance count you expect.
///
/// Every topic names its cleanup policy: tansu deletes old records only from a
/// topic whose `cleanup.policy` says `delete` (a `retention.ms` alone is ignored,
/// tansu-storage `policy_delete.sql`), where Apache Kafka's default is `delete`.
pub fn topic_specs(
    kafka: &KafkaConfig,
    partitions: i32,
    retention: &TopicRetention,
) -> Vec<TopicSpec> {
    let topics = kafka.topics();
    let spec = |name: &str, partitions: i32, settings: Vec<(&str, String)>| TopicSpec {
        name: name.to_owned(),
        partitions,
        replication: 1,
        settings: settings
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    };
    let calls_ms = retention.calls.as_millis().to_string();
    // Kafka deletes whole segments: one rolled at least hourly leaves a record at
    // most an hour past its retention.
    let segment_ms = retention.calls.as_millis().min(3_600_000).to_string();
    let calls = || {
        vec![
            ("cleanup.policy", "delete".to_owned()),
            ("retention.ms", calls_ms.clone()),
            ("segment.ms", segment_ms.clone()),
        ]
    };
    let deleted_after = |ms: &str| {
        vec![
            ("cleanup.policy", "delete".to_owned()),
            ("retention.ms", ms.to_owned()),
        ]
    };
    let compacted = || vec![("cleanup.policy", "compact".to_owned())];
    vec![
        spec(&topics.raw, partitions, calls()),
        // The event stream resumes from positions in this topic: its retention is
        // how far back a reconnecting SSE client can resume (docs/api.md).
        spec(&topics.enriched, partitions, calls()),
        spec(&topics.dead_letter, 1, calls()),
        // Keyed by client id, only the latest definition matters.
        spec(&topics.integrations, 1, compacted()),
        // Keyed by number; every processor instance reads all of it.
        spec(&topics.cm_numbers, 1, compacted()),
        spec(&topics.cm_calls, partitions, calls()),
        spec(&topics.poll_cursors, 1, compacted()),
        // Polled integrations are spread over ingest instances by partition; the
        // only records are the ticks of instances holding none (an hour is plenty).
        spec(&topics.poll_leases, 12, deleted_after("3600000")),
        // One partition: one rollup worker at a time, recomputing in order.
        spec(
            &topics.rollup_dirty,
            1,
            deleted_after(DIRTY_HOURS_RETENTION_MS),
        ),
        spec(&topics.poll_status, 1, compacted()),
        // Partitioned as the raw topic, by the same key.
        spec(&topics.parked, partitions, calls()),
        // The processor's state, a partition per raw partition; the latest entry of
        // each key is the state.
        spec(
            &topics.state,
            partitions,
            vec![
                ("cleanup.policy", "compact".to_owned()),
                (
                    "delete.retention.ms",
                    schemas::topics::STATE_DELETE_RETENTION_MS.to_string(),
                ),
            ],
        ),
        // The audit trail: copied into ClickHouse, where it is kept.
        spec(&topics.audit, 1, deleted_after(AUDIT_RETENTION_MS)),
        // The tokens last recorded: only each token's latest grant matters.
        spec(&topics.audit_tokens, 1, compacted()),
        // Keyed by account, only the latest policy matters.
        spec(&topics.retention, 1, compacted()),
        // Erasure orders hold a caller's number until done: the worker's tombstone
        // removes each at compaction, and nothing stays longer than a day.
        spec(
            &topics.erasures,
            1,
            vec![
                ("cleanup.policy", "compact,delete".to_owned()),
                ("retention.ms", "86400000".to_owned()),
            ],
        ),
        // The suppression list: an entry per caller, kept until removed.
        spec(&topics.suppressions, 1, compacted()),
        // A sample of refused deliveries (payloads as sent), for their owners.
        spec(&topics.refusals, 1, calls()),
    ]
}

/// Creates the topics that do not exist yet and brings the settings of those that
/// do to their spec.
pub async fn create_topics(
    kafka: &KafkaConfig,
    partitions: i32,
    retention: &TopicRetention,
) -> Result<TopicsReport, CtlError> {
    let specs = topic_specs(kafka, partitions, retention);
    let created = ensure_topics(kafka, &specs).await?;
    let existing: Vec<TopicSpec> = specs
        .into_iter()
        .filter(|spec| !created.contains(&spec.name))
        .collect();
    let changed = runtime::kafka::align_topic_settings(kafka, &existing).await?;
    Ok(TopicsReport { created, changed })
}

pub async fn migrate(clickhouse: &ClickHouseConfig) -> Result<Vec<u32>, CtlError> {
    Ok(runtime::migrate::migrate(clickhouse).await?)
}

/// The integrations published now, by client id.
pub async fn list_integrations(
    kafka: &KafkaConfig,
) -> Result<Vec<std::sync::Arc<Integration>>, CtlError> {
    let (stop, shutdown) = runtime::shutdown::Shutdown::new();
    let registry = runtime::registry::IntegrationRegistry::start(
        kafka,
        shutdown,
        std::time::Duration::from_secs(30),
    )
    .await?;
    let all = registry.all();
    stop.trigger();
    Ok(all)
}

/// Reads a JSON array of integrations and validates each, naming the bad one.
pub fn read_integrations(path: &Path) -> Result<Vec<Integration>, CtlError> {
    let text = std::fs::read_to_string(path).map_err(|source| CtlError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_integrations(&text).map_err(|message| CtlError::Parse {
        path: path.display().to_string(),
        message,
    })
}

pub fn parse_integrations(text: &str) -> Result<Vec<Integration>, String> {
    let integrations: Vec<Integration> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON array of integrations: {e}"))?;
    for integration in &integrations {
        integration.validate().map_err(|e| e.to_string())?;
    }
    Ok(integrations)
}

pub async fn publish_integrations(
    kafka: &KafkaConfig,
    integrations: &[Integration],
) -> Result<(), CtlError> {
    let producer = AckedProducer::new(kafka)?;
    for integration in integrations {
        publish(&producer, kafka, integration).await?;
    }
    Ok(())
}

/// As [`publish_integrations`], each change recorded in the audit trail first
/// (`schemas::audit`), by `actor`, against the definitions published now: what an
/// operator's `cmctl integrations publish` does.
pub async fn publish_audited(
    kafka: &KafkaConfig,
    integrations: &[Integration],
    actor: &schemas::audit::Actor,
) -> Result<(), CtlError> {
    use schemas::audit::{AuditAction, AuditEntry};
    let current: std::collections::HashMap<String, std::sync::Arc<Integration>> =
        list_integrations(kafka)
            .await?
            .into_iter()
            .map(|i| (i.client_id.to_string(), i))
            .collect();
    let producer = AckedProducer::new(kafka)?;
    let topic = kafka.topics().audit;
    for integration in integrations {
        let before = current
            .get(integration.client_id.as_str())
            .map(|i| i.as_ref())
            .filter(|i| !i.deleted);
        let entry = AuditEntry {
            id: uuid::Uuid::new_v4(),
            at: chrono::Utc::now(),
            account: integration.account.clone(),
            client_id: integration.client_id.to_string(),
            action: if before.is_some() {
                AuditAction::IntegrationUpdated
            } else {
                AuditAction::IntegrationCreated
            },
            actor: actor.clone(),
            version: integration.version,
            changes: schemas::audit::definition_changes(before, integration),
            detail: None,
        };
        let payload = serde_json::to_vec(&entry).unwrap_or_default();
        producer
            .send_pairs(&topic, &[(entry.client_id.clone(), payload)])
            .await?;
        publish(&producer, kafka, integration).await?;
    }
    Ok(())
}

/// One caller of one account to erase: `number` in any spelling, read in `region`
/// (a number without its country code); `id` to finish an earlier run.
pub struct ErasureRequest<'a> {
    pub account: &'a str,
    pub number: &'a str,
    pub region: &'a str,
    pub id: Option<uuid::Uuid>,
    /// Also store the caller's later records without the number.
    pub suppress: bool,
}

/// Erases one caller (docs/privacy.md) the way an order through the api is carried
/// out: the audit entry first (the erasure's id, never the number), then the order
/// on the raw topic under the caller's key, so the caller's partition erases its
/// keyed state in order with the caller's records before the processor's erasure
/// worker erases ClickHouse (`processor::erasure`, which writes the receipt). Erasing
/// ClickHouse first, as this did before, let a record of the caller queued ahead of
/// the order merge over the call as the state kept it and store the number again
/// (`erasure::a_record_queued_before_a_cli_erasure_does_not_bring_the_number_back`).
/// Waits up to `wait` for the receipt.
pub async fn erase_caller(
    kafka: &KafkaConfig,
    clickhouse: &clickhouse::Client,
    request: &ErasureRequest<'_>,
    actor: &schemas::audit::Actor,
    wait: std::time::Duration,
) -> Result<schemas::erasure::ErasureReceipt, CtlError> {
    let ErasureRequest {
        account,
        number,
        region,
        id,
        suppress,
    } = *request;
    let region = schemas::phone::region(region).map_err(|e| CtlError::Number(e.to_string()))?;
    let e164 = schemas::E164::parse(number, region)
        .map_err(|e| CtlError::Number(format!("not a phone number: {e}")))?;
    let id = id.unwrap_or_else(uuid::Uuid::new_v4);
    let entry = schemas::audit::AuditEntry::caller_erased(account, actor, id);
    let producer = AckedProducer::new(kafka)?;
    let payload = serde_json::to_vec(&entry).unwrap_or_default();
    producer
        .send_pairs(&kafka.topics().audit, &[(account.to_owned(), payload)])
        .await?;
    let order = schemas::erasure::ErasureOrder {
        id,
        account: account.to_owned(),
        number: e164.as_str().to_owned(),
        requested_by: actor.name.clone(),
        requested_at: chrono::Utc::now(),
        clickhouse: true,
        suppress,
    };
    // This run's receipt is the one not there before the order (a run again with
    // the same id adds one).
    let receipts = format!(
        "SELECT id, account, requested_by, started_at, finished_at, places, rows, outcome, \
         topics_clear_by FROM erasures WHERE id = toUUID('{id}') ORDER BY finished_at DESC"
    );
    let read = || async {
        clickhouse
            .query(&receipts)
            .fetch_all::<schemas::erasure::ErasureReceipt>()
            .await
    };
    let before = read()
        .await
        .map_err(|e| CtlError::Remote(format!("reading earlier receipts of erasure {id}: {e}")))?;
    let payload = serde_json::to_vec(&order).unwrap_or_default();
    producer
        .send_keyed(
            &kafka.topics().raw,
            &order.raw_key(),
            &payload,
            &schemas::erasure::RAW_HEADERS,
        )
        .await?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match read().await {
            Ok(now) if now.len() > before.len() => {
                let new = now.iter().find(|r| !before.contains(r)).unwrap_or(&now[0]);
                return Ok(new.clone());
            }
            Ok(_) => {}
            // ClickHouse away for a moment: the order is queued all the same.
            Err(error) => tracing::debug!(%error, "reading the erasure's receipt"),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(CtlError::ErasurePending {
                id,
                waited_s: wait.as_secs(),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Lifts the suppression of one caller of one account (docs/privacy.md): the audit
/// entry first (the lift's id, never the number), then the lift on the raw topic
/// under the caller's key, where the caller's partition meets it in order with the
/// caller's records. Returns the lift's id.
pub async fn lift_suppression(
    kafka: &KafkaConfig,
    account: &str,
    number: &str,
    region: &str,
    actor: &schemas::audit::Actor,
) -> Result<uuid::Uuid, CtlError> {
    let region = schemas::phone::region(region).map_err(|e| CtlError::Number(e.to_string()))?;
    let e164 = schemas::E164::parse(number, region)
        .map_err(|e| CtlError::Number(format!("not a phone number: {e}")))?;
    let lift = schemas::suppression::SuppressionLift {
        id: uuid::Uuid::new_v4(),
        account: account.to_owned(),
        number: e164.as_str().to_owned(),
        requested_by: actor.name.clone(),
        requested_at: chrono::Utc::now(),
    };
    let entry = schemas::audit::AuditEntry::suppression_lifted(account, actor, lift.id);
    let producer = AckedProducer::new(kafka)?;
    let payload = serde_json::to_vec(&entry).unwrap_or_default();
    producer
        .send_pairs(&kafka.topics().audit, &[(account.to_owned(), payload)])
        .await?;
    let payload = serde_json::to_vec(&lift).unwrap_or_default();
    producer
        .send_keyed(
            &kafka.topics().raw,
            &lift.raw_key(),
            &payload,
            &schemas::suppression::RAW_HEADERS,
        )
        .await?;
    Ok(lift.id)
}

/// Who runs cmctl, for the audit trail: the login and the host.
pub fn cli_actor() -> schemas::audit::Actor {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = runtime::host::name();
    schemas::audit::Actor {
        name: format!("cmctl as {user}@{host}"),
        role: "cli".into(),
        from: host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_sample_integrations_are_valid() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/integrations/samples.json");
        let integrations = read_integrations(&path).unwrap();
        let ids: Vec<_> = integrations
            .iter()
            .map(|i| i.client_id.to_string())
            .collect();
        assert_eq!(ids, ["arroyo", "ringpartner", "legacy-sheet"]);
    }

    #[test]
    fn a_bad_integration_is_named() {
        let err = parse_integrations(
            r#"[{"client_id":"x1","account":"a","name":"n","source":"webhook","version":1,
                 "timezone":"Nowhere/Land","mapping":{"fields":{"caller":{"path":"a"},"started_at":{"path":"b"}}}}]"#,
        )
        .unwrap_err();
        assert!(err.contains("x1") && err.contains("timezone"), "{err}");
    }

    #[test]
    fn every_topic_names_its_cleanup_and_those_deleting_a_retention() {
        let kafka = KafkaConfig::new("127.0.0.1:9092", "p.");
        let retention = TopicRetention::from_hours(24).unwrap();
        let specs = topic_specs(&kafka, 3, &retention);
        assert_eq!(specs.len(), kafka.topics().all().len(), "a spec per topic");
        for spec in &specs {
            let get = |key: &str| {
                spec.settings
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.as_str())
            };
            let policy = get("cleanup.policy")
                .unwrap_or_else(|| panic!("{} names no cleanup.policy", spec.name));
            if policy.contains("delete") {
                assert!(
                    get("retention.ms").is_some(),
                    "{} has no retention",
                    spec.name
                );
            }
        }
        let topics = kafka.topics();
        for topic in [
            &topics.raw,
            &topics.enriched,
            &topics.dead_letter,
            &topics.parked,
        ] {
            let spec = specs.iter().find(|s| &s.name == topic).unwrap();
            assert!(
                spec.settings
                    .contains(&("retention.ms".into(), "86400000".into()))
                    && spec
                        .settings
                        .contains(&("segment.ms".into(), "3600000".into())),
                "{topic}: {:?}",
                spec.settings
            );
        }
    }

    #[test]
    fn a_retention_outside_an_hour_to_a_year_is_refused_by_name() {
        assert!(TopicRetention::from_hours(1).is_ok());
        assert!(TopicRetention::from_hours(8760).is_ok());
        for bad in [0, 8761, u64::MAX] {
            let err = TopicRetention::from_hours(bad).unwrap_err().to_string();
            assert!(err.contains("--retention-hours"), "{err}");
        }
    }
}
