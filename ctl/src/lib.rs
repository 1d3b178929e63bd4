//! Operator commands, as a library so tests set up their isolated topics and
//! databases with exactly what `cmctl` runs.

pub mod callmatrix;
pub mod ingest_client;
pub mod replay;

use std::path::Path;

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
    #[error(transparent)]
    Erasure(#[from] processor::erasure::ErasureError),
    #[error("the number: {0}")]
    Number(String),
}

/// How long `calls.enriched` keeps events (7 days): the SSE resume window.
pub const ENRICHED_RETENTION_MS: &str = "604800000";

/// The pipeline's topics. `partitions` bounds processor parallelism: one consumer
/// per partition at most, so size it for the instance count you expect.
pub fn topic_specs(kafka: &KafkaConfig, partitions: i32) -> Vec<TopicSpec> {
    let topics = kafka.topics();
    let spec = |name: &str, partitions: i32, settings: Vec<(&str, &str)>| TopicSpec {
        name: name.to_owned(),
        partitions,
        replication: 1,
        settings: settings
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    };
    vec![
        spec(&topics.raw, partitions, vec![]),
        // The event stream resumes from positions in this topic: its retention is
        // how far back a reconnecting SSE client can resume (docs/api.md).
        spec(
            &topics.enriched,
            partitions,
            vec![("retention.ms", ENRICHED_RETENTION_MS)],
        ),
        spec(&topics.dead_letter, 1, vec![]),
        // Keyed by client id, only the latest definition matters.
        spec(&topics.integrations, 1, vec![("cleanup.policy", "compact")]),
        // Keyed by number; every processor instance reads all of it.
        spec(&topics.cm_numbers, 1, vec![("cleanup.policy", "compact")]),
        spec(&topics.cm_calls, partitions, vec![]),
        spec(&topics.poll_cursors, 1, vec![("cleanup.policy", "compact")]),
        // Polled integrations are spread over ingest instances by partition; the
        // only records are the ticks of instances holding none (an hour is plenty).
        spec(&topics.poll_leases, 12, vec![("retention.ms", "3600000")]),
        // One partition: one rollup worker at a time, recomputing in order.
        spec(&topics.rollup_dirty, 1, vec![]),
        spec(&topics.poll_status, 1, vec![("cleanup.policy", "compact")]),
        // Partitioned as the raw topic, by the same key.
        spec(&topics.parked, partitions, vec![]),
        // The processor's state, a partition per raw partition; the latest entry of
        // each key is the state.
        spec(
            &topics.state,
            partitions,
            vec![("cleanup.policy", "compact")],
        ),
        // The audit trail: copied into ClickHouse, where it is kept.
        spec(&topics.audit, 1, vec![]),
        // The tokens last recorded: only each token's latest grant matters.
        spec(&topics.audit_tokens, 1, vec![("cleanup.policy", "compact")]),
        // Keyed by account, only the latest policy matters.
        spec(&topics.retention, 1, vec![("cleanup.policy", "compact")]),
        // Erasure orders hold a caller's number until done: the worker's tombstone
        // removes each at compaction, and nothing stays longer than a day.
        spec(
            &topics.erasures,
            1,
            vec![
                ("cleanup.policy", "compact,delete"),
                ("retention.ms", "86400000"),
            ],
        ),
        // The suppression list: an entry per caller, kept until removed.
        spec(&topics.suppressions, 1, vec![("cleanup.policy", "compact")]),
        // A sample of refused deliveries, for their owners (7 days).
        spec(
            &topics.refusals,
            1,
            vec![("retention.ms", ENRICHED_RETENTION_MS)],
        ),
    ]
}

pub async fn create_topics(kafka: &KafkaConfig, partitions: i32) -> Result<Vec<String>, CtlError> {
    Ok(ensure_topics(kafka, &topic_specs(kafka, partitions)).await?)
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

/// Erases one caller (docs/privacy.md): the audit entry first (with the erasure's
/// id, never the number), then the work (`processor::erasure`), which writes the
/// receipt.
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
    let receipt =
        processor::erasure::erase(clickhouse, id, account, e164.as_str(), &actor.name, wait)
            .await?;
    // The processor's keyed state keeps the caller's calls too (what a later record
    // merges over): the caller's partition erases them when it meets this order
    // (`processor/src/erasure_orders.rs`); ClickHouse is done already.
    let order = schemas::erasure::ErasureOrder {
        id,
        account: account.to_owned(),
        number: e164.as_str().to_owned(),
        requested_by: actor.name.clone(),
        requested_at: chrono::Utc::now(),
        clickhouse: false,
        suppress,
    };
    let payload = serde_json::to_vec(&order).unwrap_or_default();
    producer
        .send_keyed(
            &kafka.topics().raw,
            &order.raw_key(),
            &payload,
            &schemas::erasure::RAW_HEADERS,
        )
        .await?;
    Ok(receipt)
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
}
