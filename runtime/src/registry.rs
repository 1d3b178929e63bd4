//! The integration registry. Integrations live in a compacted Kafka topic keyed by
//! client id (like Kafka Connect's config topic): `cmctl integrations publish` (or,
//! later, the integrations API) writes a definition, and every instance of every
//! binary tails the topic from the beginning. So any number of instances agree,
//! and a change reaches them all within a poll interval, without a restart.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::consumer::StreamConsumer;
use rdkafka::message::Message;
use rdkafka::Offset;
use schemas::{ClientId, Integration};
use tokio::sync::watch;

use crate::kafka::{
    assigned_consumer, spawn_tail, AckedProducer, ConsumerError, KafkaConfig, OutgoingMessage,
    ProduceError,
};
use crate::shutdown::Shutdown;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
    #[error("integrations topic {topic} was not read to its end within {timeout:?}")]
    InitialLoad { topic: String, timeout: Duration },
    #[error(transparent)]
    Invalid(#[from] schemas::IntegrationError),
    #[error(transparent)]
    Publish(#[from] ProduceError),
}

type Snapshot = Arc<HashMap<ClientId, Arc<Integration>>>;

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

/// A live, read-mostly view of every integration. Cheap to clone.
#[derive(Clone)]
pub struct IntegrationRegistry {
    current: Arc<RwLock<Snapshot>>,
    /// Bumped on every applied change, so waiters wake up.
    changes: watch::Receiver<u64>,
    /// A fixed registry holds its own (never used) sender, so waiting on it waits
    /// for the timeout, as with a live registry that gets no change.
    _fixed_changes: Option<Arc<watch::Sender<u64>>>,
}

impl IntegrationRegistry {
    /// A registry over a fixed set, for unit tests and the preview of drafts.
    pub fn fixed(integrations: impl IntoIterator<Item = Integration>) -> Self {
        let map = integrations
            .into_iter()
            .map(|i| (i.client_id.clone(), Arc::new(i)))
            .collect();
        let (tx, rx) = watch::channel(0);
        Self {
            current: Arc::new(RwLock::new(Arc::new(map))),
            changes: rx,
            _fixed_changes: Some(Arc::new(tx)),
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
        let consumer = tail_consumer(kafka, &topic, initial_load_timeout).await?;
        let (current, changes_tx, changes) = {
            let (tx, rx) = watch::channel(0_u64);
            (Arc::new(RwLock::new(Snapshot::default())), tx, rx)
        };
        let registry = Self {
            current,
            changes,
            _fixed_changes: None,
        };

        let mut remaining = consumer.targets;
        let (loaded_tx, mut loaded_rx) = watch::channel(remaining.is_empty());
        let writer = registry.current.clone();
        let consumer = consumer.consumer;
        let mut version = 0_u64;
        spawn_tail(consumer, shutdown, "integrations", move |message| {
            apply(&writer, message.key(), message.payload());
            version += 1;
            let _ = changes_tx.send(version);
            if let Some(target) = remaining.get(&message.partition()) {
                if message.offset() + 1 >= *target {
                    remaining.remove(&message.partition());
                    if remaining.is_empty() {
                        let _ = loaded_tx.send(true);
                    }
                }
            }
        });

        let loaded =
            tokio::time::timeout(initial_load_timeout, loaded_rx.wait_for(|done| *done)).await;
        match loaded {
            Ok(Ok(_)) => {
                tracing::info!(topic = %topic, integrations = registry.snapshot().len(), "integrations loaded");
                Ok(registry)
            }
            _ => Err(RegistryError::InitialLoad {
                topic,
                timeout: initial_load_timeout,
            }),
        }
    }

    fn snapshot(&self) -> Snapshot {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn get(&self, client_id: &ClientId) -> Option<Arc<Integration>> {
        self.snapshot().get(client_id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Integration>> {
        let mut all: Vec<_> = self.snapshot().values().cloned().collect();
        all.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        all
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
        if let Some(found) = fresh_enough(self) {
            return Some(found);
        }
        let mut changes = self.changes.clone();
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

fn apply(current: &RwLock<Snapshot>, key: Option<&[u8]>, payload: Option<&[u8]>) {
    let Some(client_id) = key
        .and_then(|k| std::str::from_utf8(k).ok())
        .and_then(|k| ClientId::parse(k).ok())
    else {
        tracing::warn!("integration message without a valid client id key; ignored");
        metrics::counter!("registry_invalid_total").increment(1);
        return;
    };
    let update = match payload {
        // A tombstone deletes.
        None => None,
        Some(bytes) => match serde_json::from_slice::<Integration>(bytes)
            .map_err(|e| e.to_string())
            .and_then(|i| i.validate().map(|_| i).map_err(|e| e.to_string()))
        {
            Ok(integration) if integration.client_id == client_id => Some(integration),
            Ok(integration) => {
                tracing::warn!(key = %client_id, body = %integration.client_id, "integration key and body disagree; ignored");
                metrics::counter!("registry_invalid_total").increment(1);
                return;
            }
            Err(error) => {
                // Keep serving the previous definition rather than none at all.
                tracing::error!(%client_id, %error, "invalid integration definition; previous one kept");
                metrics::counter!("registry_invalid_total").increment(1);
                return;
            }
        },
    };
    let mut guard = match current.write() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    let mut next: HashMap<_, _> = (**guard).clone();
    match update {
        Some(integration) => {
            tracing::info!(%client_id, version = integration.version, enabled = integration.enabled, "integration updated");
            next.insert(client_id, Arc::new(integration));
        }
        None => {
            tracing::info!(%client_id, "integration deleted");
            next.remove(&client_id);
        }
    }
    *guard = Arc::new(next);
    metrics::gauge!("registry_integrations").set(guard.len() as f64);
}

struct TailConsumer {
    consumer: StreamConsumer,
    /// Partition → offset to reach before the initial load is complete.
    targets: HashMap<i32, i64>,
}

async fn tail_consumer(
    kafka: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<TailConsumer, RegistryError> {
    let (consumer, marks) = assigned_consumer(kafka, "registry-reader", topic, timeout, |_| {
        Offset::Beginning
    })
    .await?;
    let targets = marks
        .iter()
        .filter(|m| m.high > m.low)
        .map(|m| (m.partition, m.high))
        .collect();
    Ok(TailConsumer { consumer, targets })
}

/// Validates and writes one definition to the integrations topic, keyed by client id.
pub async fn publish(
    producer: &AckedProducer,
    kafka: &KafkaConfig,
    integration: &Integration,
) -> Result<(), RegistryError> {
    integration.validate()?;
    let payload = serde_json::to_vec(integration).unwrap_or_default();
    producer
        .send_all(
            &kafka.topics().integrations,
            &[OutgoingMessage {
                key: integration.client_id.as_str().as_bytes(),
                payload: &payload,
            }],
        )
        .await?;
    Ok(())
}

/// Deletes an integration: a tombstone on the compacted topic.
pub async fn delete(
    producer: &AckedProducer,
    kafka: &KafkaConfig,
    client_id: &ClientId,
) -> Result<(), RegistryError> {
    producer
        .send_tombstone(&kafka.topics().integrations, client_id.as_str().as_bytes())
        .await?;
    Ok(())
}
