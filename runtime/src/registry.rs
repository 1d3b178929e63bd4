//! The integration registry. Integrations live in a compacted Kafka topic keyed by
//! client id (like Kafka Connect's config topic): `cmctl integrations publish` (or,
//! later, the integrations API) writes a definition, and every instance of every
//! binary tails the topic from the beginning (a `CompactedTable`). So any number of
//! instances agree, and a change reaches them all within a poll interval, without a
//! restart.

use std::sync::Arc;
use std::time::Duration;

use schemas::{ClientId, Integration};

use crate::kafka::{AckedProducer, KafkaConfig, OutgoingMessage, ProduceError};
use crate::shutdown::Shutdown;
use crate::table::{CompactedTable, TableError};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(transparent)]
    Invalid(#[from] schemas::IntegrationError),
    #[error(transparent)]
    Publish(#[from] ProduceError),
}

/// `[registry]` in the ingest and api configs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Start-up: how long to read the integrations topic before giving up.
    #[serde(default = "default_initial_load_ms")]
    pub initial_load_ms: u64,
}

fn default_initial_load_ms() -> u64 {
    30_000
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            initial_load_ms: default_initial_load_ms(),
        }
    }
}

impl RegistryConfig {
    pub fn initial_load(&self) -> Duration {
        Duration::from_millis(self.initial_load_ms)
    }
}

/// A live, read-mostly view of every integration. Cheap to clone. A
/// [`CompactedTable`] of the integrations topic, whose decoder refuses definitions
/// that do not validate or whose key is not their client id (the previous
/// definition stays in force).
#[derive(Clone)]
pub struct IntegrationRegistry {
    table: CompactedTable<Integration>,
}

impl IntegrationRegistry {
    /// A registry over a fixed set, for unit tests and the preview of drafts.
    pub fn fixed(integrations: impl IntoIterator<Item = Integration>) -> Self {
        Self {
            table: CompactedTable::fixed(
                integrations
                    .into_iter()
                    .map(|i| (i.client_id.to_string(), i)),
            ),
        }
    }

    /// Reads the topic to its current end (so a known client is never refused after
    /// start-up), then keeps tailing it in the background until `shutdown`.
    pub async fn start(
        kafka: &KafkaConfig,
        shutdown: Shutdown,
        initial_load_timeout: Duration,
    ) -> Result<Self, RegistryError> {
        let topic = kafka.topics().integrations;
        let table = CompactedTable::start(
            kafka,
            &topic,
            "integrations",
            initial_load_timeout,
            shutdown,
            decode,
        )
        .await?;
        Ok(Self { table })
    }

    pub fn get(&self, client_id: &ClientId) -> Option<Arc<Integration>> {
        self.find(client_id.as_str())
    }

    /// The integration a client id from outside (a URL, a body) names, if any: text
    /// that is no valid client id names none. Deleted integrations are none.
    pub fn find(&self, client: &str) -> Option<Arc<Integration>> {
        self.table.get(client).filter(|i| !i.deleted)
    }

    /// Every live integration, by client id.
    pub fn all(&self) -> Vec<Arc<Integration>> {
        self.table
            .values()
            .into_iter()
            .filter(|i| !i.deleted)
            .collect()
    }

    /// The definition or deletion marker last written for `client`: what a new
    /// version must be above.
    pub fn latest(&self, client: &str) -> Option<Arc<Integration>> {
        self.table.get(client)
    }

    /// The account a client id belongs to, deleted or not: once an account's, always.
    pub fn owner(&self, client: &str) -> Option<String> {
        self.table.get(client).map(|i| i.account.clone())
    }

    /// Every client id `account` has or had.
    pub fn owned_by(&self, account: &str) -> Vec<String> {
        self.table
            .values()
            .into_iter()
            .filter(|i| i.account == account)
            .map(|i| i.client_id.to_string())
            .collect()
    }

    /// The integration once this registry has seen at least `min_version` of it, or
    /// what it has after `timeout`. Records are stamped with the version ingest saw;
    /// a processor whose registry lags a moment behind waits instead of refusing.
    pub async fn wait_for(
        &self,
        client_id: &ClientId,
        min_version: u32,
        timeout: Duration,
    ) -> Option<Arc<Integration>> {
        let fresh_enough = |registry: &Self| {
            registry
                .get(client_id)
                .filter(|integration| integration.version >= min_version)
        };
        let mut changes = self.table.changes();
        if let Some(found) = fresh_enough(self) {
            return Some(found);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {
                    if let Some(found) = fresh_enough(self) {
                        return Some(found);
                    }
                }
                _ => return self.get(client_id),
            }
        }
    }
}

/// An integration message: valid, and keyed by its own client id.
fn decode(key: &str, bytes: &[u8]) -> Result<Integration, String> {
    if bytes.len() > schemas::integration::MAX_DEFINITION_BYTES {
        return Err(format!(
            "definition is {} bytes; at most {}",
            bytes.len(),
            schemas::integration::MAX_DEFINITION_BYTES
        ));
    }
    let integration: Integration = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    integration.validate().map_err(|e| e.to_string())?;
    if integration.client_id.as_str() != key {
        return Err(format!(
            "key {key} and body {} disagree",
            integration.client_id
        ));
    }
    tracing::info!(
        client_id = key,
        version = integration.version,
        enabled = integration.enabled,
        "integration updated"
    );
    Ok(integration)
}

/// Validates and writes one definition to the integrations topic, keyed by client id.
pub async fn publish(
    producer: &AckedProducer,
    kafka: &KafkaConfig,
    integration: &Integration,
) -> Result<(), RegistryError> {
    integration.validate_for_publish()?;
    let payload = serde_json::to_vec(integration).unwrap_or_default();
    producer
        .send_all(
            &kafka.topics().integrations,
            &[OutgoingMessage {
                key: integration.client_id.as_str().as_bytes(),
                payload: &payload,
                headers: &[],
                partition: None,
            }],
        )
        .await?;
    Ok(())
}

/// Deletes an integration: a deletion marker (a new version without credentials),
/// not a tombstone, so the client id stays reserved to its account. A tombstone
/// would let another account create the same id and read the rows, dead letters and
/// events keyed by it.
pub async fn delete(
    producer: &AckedProducer,
    kafka: &KafkaConfig,
    integration: &Integration,
) -> Result<(), RegistryError> {
    publish(producer, kafka, &integration.deletion()).await
}
