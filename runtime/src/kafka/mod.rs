//! Kafka, wrapped once. Only the standard protocol through rdkafka is used, so the
//! same code runs against tansu here and Apache Kafka in production.

mod admin;
mod batch;
mod consumer;
mod group_reader;
mod producer;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

pub use admin::{ensure_topics, AdminError, TopicSpec};
pub use consumer::{
    assigned_consumer, counting_group_reader, group_consumer, group_reader, spawn_tail,
    ConsumerError, Rebalances, Watermarks,
};
pub use group_reader::{GroupReader, Membership, STALLED_AFTER};
pub use producer::{AckedProducer, OutgoingMessage, ProduceError};

use crate::config::ConfigError;
use schemas::topics::Topics;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated (`host:port,host:port`).
    pub brokers: String,
    /// Prepended to every topic name and consumer group, so several environments (or
    /// test runs) can share one broker.
    #[serde(default)]
    pub topic_prefix: String,
    /// How long a produce may wait for the broker's ack before the record counts as
    /// failed. The webhook answers 503 when it runs out. (Not librdkafka's
    /// `message.timeout.ms`, which stays infinite: see `AckedProducer::new`.)
    #[serde(default = "default_message_timeout_ms")]
    pub message_timeout_ms: u64,
    /// A stable name for this instance (a pod name in a StatefulSet, a host name).
    /// Turns on static group membership (`group.instance.id`): a restarted instance
    /// takes its partitions back at once instead of waiting for the group to notice
    /// the old member is gone. Must be unique among live instances of a binary.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Extra librdkafka properties (security, tuning), passed through verbatim.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

fn default_message_timeout_ms() -> u64 {
    10_000
}

impl KafkaConfig {
    pub fn topics(&self) -> Topics {
        Topics::with_prefix(&self.topic_prefix)
    }

    pub fn group_id(&self, name: &str) -> String {
        format!("{}{name}", self.topic_prefix)
    }

    pub fn message_timeout(&self) -> Duration {
        Duration::from_millis(self.message_timeout_ms)
    }

    /// Settings shared by every client; callers add their role's settings.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        // librdkafka backs off up to 10 s between reconnects by default: after a
        // broker restart, ingest answered 503 for up to 10 s with the broker already
        // back (the fault matrix: no request acknowledged in the 8 s after a restart).
        config.set("reconnect.backoff.max.ms", "1000");
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        if self.brokers.trim().is_empty() {
            return Err(ConfigError::invalid(
                &format!("{section}.brokers"),
                "must name at least one broker",
            ));
        }
        if self.message_timeout_ms < 100 {
            return Err(ConfigError::invalid(
                &format!("{section}.message_timeout_ms"),
                "must be at least 100",
            ));
        }
        Ok(())
    }
}
