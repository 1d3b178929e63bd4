//! Kafka, wrapped once. Only the standard protocol through rdkafka is used, so the
//! same code runs against tansu here and Apache Kafka in production.

mod admin;
mod alter_configs;
mod batch;
mod consumer;
mod group_reader;
mod lag_clock;
mod peek;
mod producer;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

pub use admin::{
    align_topic_settings, ensure_topics, longest_retention, AdminError, SettingChange, TopicSpec,
};
pub use alter_configs::AlterError;
pub use batch::BatchWait;
pub use consumer::{
    assigned_consumer, counting_group_reader, group_consumer, group_reader, spawn_tail,
    ConsumerError, Rebalances, Watermarks,
};
pub use group_reader::{GroupReader, Membership, STALLED_AFTER};
pub use lag_clock::refresh_lag_seconds;
pub use producer::{
    AckedProducer, KeyedEntry, OutgoingMessage, ProduceError, ACKNOWLEDGED, TUNING_DEFAULTS,
};

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
    /// How long the broker may hold a fetch of the readers a call's latency goes
    /// through (the processor's raw reader, the api's event stream): librdkafka's
    /// `fetch.wait.max.ms` for those readers only. tansu 0.6 holds every fetch for
    /// this long (half of it from 250 ms up) even when it has records to return
    /// (`tansu-storage` `service/fetch.rs`), so librdkafka's 500 ms default cost
    /// each hop about 250 ms. Other readers keep the default: a short wait means
    /// more fetches of an idle topic.
    #[serde(default = "default_live_fetch_wait_ms")]
    pub live_fetch_wait_ms: u64,
    /// How long a group member may go without reading (its batch waiting on a
    /// store that is down) before it leaves its group, so that another instance can
    /// take its partitions; it joins again at its next read, and the records of its
    /// unfinished batch are read again (by it or another member) from the last
    /// commit. librdkafka's `max.poll.interval.ms`; at least the 10 s session
    /// timeout.
    #[serde(default = "default_max_poll_interval_ms")]
    pub max_poll_interval_ms: u64,
    /// Extra librdkafka properties (security, tuning), passed through verbatim. The
    /// producers' tuning defaults yield to them; their `acks`, idempotence and
    /// message timeout do not (`AckedProducer::new`).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

fn default_message_timeout_ms() -> u64 {
    10_000
}

fn default_live_fetch_wait_ms() -> u64 {
    25
}

fn default_max_poll_interval_ms() -> u64 {
    300_000
}

impl KafkaConfig {
    /// `brokers` and `topic_prefix` with every other setting at its default.
    pub fn new(brokers: impl Into<String>, topic_prefix: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic_prefix: topic_prefix.into(),
            message_timeout_ms: default_message_timeout_ms(),
            instance_id: None,
            live_fetch_wait_ms: default_live_fetch_wait_ms(),
            max_poll_interval_ms: default_max_poll_interval_ms(),
            properties: BTreeMap::new(),
        }
    }

    pub fn topics(&self) -> Topics {
        Topics::with_prefix(&self.topic_prefix)
    }

    pub fn group_id(&self, name: &str) -> String {
        format!("{}{name}", self.topic_prefix)
    }

    pub fn message_timeout(&self) -> Duration {
        Duration::from_millis(self.message_timeout_ms)
    }

    /// The largest message a producer sends: librdkafka's `message.max.bytes`, as
    /// `properties` sets it (1,000,000 by default). What a record may weigh follows
    /// from it ([`record_limits`](Self::record_limits)).
    pub fn max_message_bytes(&self) -> usize {
        self.properties
            .get("message.max.bytes")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(schemas::limits::DEFAULT_MAX_MESSAGE_BYTES)
    }

    /// The largest record the edge accepts: every message made from it fits.
    pub fn record_limits(&self) -> schemas::limits::RecordLimits {
        schemas::limits::RecordLimits::new(self.max_message_bytes())
    }

    /// This configuration for a reader on a call's way to the dashboard: its
    /// fetches wait at most `live_fetch_wait_ms` (unless `properties` sets
    /// `fetch.wait.max.ms` for every reader).
    pub fn live(&self) -> KafkaConfig {
        let mut live = self.clone();
        live.properties
            .entry("fetch.wait.max.ms".to_owned())
            .or_insert_with(|| self.live_fetch_wait_ms.to_string());
        live
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
        if !(1..=500).contains(&self.live_fetch_wait_ms) {
            return Err(ConfigError::invalid(
                &format!("{section}.live_fetch_wait_ms"),
                "must be between 1 and 500",
            ));
        }
        if !(10_000..=86_400_000).contains(&self.max_poll_interval_ms) {
            return Err(ConfigError::invalid(
                &format!("{section}.max_poll_interval_ms"),
                "must be between 10000 (the session timeout) and 86400000",
            ));
        }
        if let Some(bad) = self
            .properties
            .get("message.max.bytes")
            .filter(|v| v.trim().parse::<usize>().map_or(true, |n| n < 64 * 1024))
        {
            return Err(ConfigError::invalid(
                &format!("{section}.properties.message.max.bytes"),
                format!("{bad:?} must be a number of bytes, at least 65536"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_readers_wait_the_live_fetch_wait_and_others_the_default() {
        let mut config = KafkaConfig::new("b:9092", "p.");
        config.live_fetch_wait_ms = 40;
        let live = config.live();
        assert_eq!(
            live.properties.get("fetch.wait.max.ms").map(String::as_str),
            Some("40")
        );
        assert_eq!(live.brokers, "b:9092");
        assert!(!config.properties.contains_key("fetch.wait.max.ms"));
    }

    #[test]
    fn a_fetch_wait_set_for_every_reader_wins_over_the_live_one() {
        let mut config = KafkaConfig::new("b:9092", "");
        config
            .properties
            .insert("fetch.wait.max.ms".into(), "100".into());
        assert_eq!(
            config
                .live()
                .properties
                .get("fetch.wait.max.ms")
                .map(String::as_str),
            Some("100")
        );
    }

    #[test]
    fn a_live_fetch_wait_out_of_range_is_refused_by_name() {
        for bad in [0, 501] {
            let mut config = KafkaConfig::new("b:9092", "");
            config.live_fetch_wait_ms = bad;
            let error = config.validate("kafka").expect_err("refused").to_string();
            assert!(error.contains("kafka.live_fetch_wait_ms"), "{error}");
        }
        assert!(KafkaConfig::new("b:9092", "").validate("kafka").is_ok());
    }
}
