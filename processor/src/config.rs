use std::net::SocketAddr;
use std::time::Duration;

use runtime::clickhouse::ClickHouseConfig;
use runtime::config::{ConfigError, Validate};
use runtime::kafka::KafkaConfig;
use serde::{Deserialize, Serialize};

/// `processor --config deploy/config/processor.toml`; override any key with
/// `PROCESSOR_SECTION__KEY`, e.g. `PROCESSOR_BATCH__MAX_RECORDS=5000`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorConfig {
    pub kafka: KafkaConfig,
    pub clickhouse: ClickHouseConfig,
    pub http: HttpConfig,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub registry: RegistryConfig,
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default)]
    pub parking: ParkingConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
}

/// The retention worker (`crate::retention`): how often it applies the accounts'
/// policies, and the key its hashes of callers' numbers are made with.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    #[serde(default = "default_retention_interval_s")]
    pub interval_s: u64,
    /// A secret of the deployment (from the environment, never a file): without it a
    /// number's hash could be found by hashing every number. Empty: policies that
    /// hash callers are not applied (a run says so); those that empty them are.
    #[serde(default)]
    pub hash_key: String,
    /// How long a run waits for ClickHouse to finish its mutations.
    #[serde(default = "default_mutation_wait_s")]
    pub mutation_wait_s: u64,
}

/// Never prints the key.
impl std::fmt::Debug for RetentionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetentionConfig")
            .field("interval_s", &self.interval_s)
            .field(
                "hash_key",
                &if self.hash_key.is_empty() { "" } else { "***" },
            )
            .field("mutation_wait_s", &self.mutation_wait_s)
            .finish()
    }
}

fn default_retention_interval_s() -> u64 {
    3600
}
fn default_mutation_wait_s() -> u64 {
    600
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            interval_s: default_retention_interval_s(),
            hash_key: String::new(),
            mutation_wait_s: default_mutation_wait_s(),
        }
    }
}

/// Records that name a call not stored yet (a late field that overtook its call)
/// are parked and tried again `max_attempts` times, `delay_ms` apart, before they
/// become dead letters: 10 × 30 s by default, five minutes for the call to arrive.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParkingConfig {
    #[serde(default = "default_park_delay_ms")]
    pub delay_ms: u64,
    /// 0 dead-letters such records at once.
    #[serde(default = "default_park_attempts")]
    pub max_attempts: u32,
}

fn default_park_delay_ms() -> u64 {
    30_000
}
fn default_park_attempts() -> u32 {
    10
}

impl Default for ParkingConfig {
    fn default() -> Self {
        Self {
            delay_ms: default_park_delay_ms(),
            max_attempts: default_park_attempts(),
        }
    }
}

impl ParkingConfig {
    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms)
    }
}

/// The processor's keyed state (`crate::state`): each raw partition's callers and
/// calls, kept beside the partitions this instance owns and logged to the state
/// changelog topic, so a batch is decided without reading ClickHouse.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Where the local copy lives (an LSM store, one file tree). Empty: in memory,
    /// restored from the changelog at every start (tests, small deployments).
    #[serde(default)]
    pub dir: String,
    /// Days of calls kept per caller, by start time behind the newest the partition
    /// has seen: at least the longest repeat window of any integration (30 days by
    /// default) plus how late a record may arrive and still be decided against
    /// every earlier call (a later one reads ClickHouse for its caller).
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// Callers each batch checks for expiry, walking the partition a little at a
    /// time, so a caller never seen again still leaves the state.
    #[serde(default = "default_sweep_per_batch")]
    pub sweep_per_batch: usize,
    /// A standby (0: off): this often, the local copy of each partition another
    /// instance owns is caught up with its changelog, so that taking one over after
    /// a rebalance or a crash reads only what was written since. Costs the
    /// other partitions' state on this instance's disk and their changelog reads.
    #[serde(default)]
    pub standby_interval_ms: u64,
}

fn default_retention_days() -> u32 {
    45
}
fn default_sweep_per_batch() -> usize {
    1000
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            dir: String::new(),
            retention_days: default_retention_days(),
            sweep_per_batch: default_sweep_per_batch(),
            standby_interval_ms: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Ops port: `/healthz` and `/metrics`.
    pub listen: SocketAddr,
}

/// A batch of the raw topic closes at `max_records`, at `max_wait_ms` after its
/// first record, or when no record came for `idle_ms`, whichever comes first:
/// bigger batches mean fewer ClickHouse parts, shorter waits fresher dashboards.
/// (The processor's other readers close at `max_records` or `max_wait_ms`.)
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    #[serde(default = "default_max_records")]
    pub max_records: usize,
    #[serde(default = "default_max_wait_ms")]
    pub max_wait_ms: u64,
    /// 0: never close early. Under load records queue while a batch is written,
    /// so batches grow with the rate whatever this is.
    #[serde(default = "default_idle_ms")]
    pub idle_ms: u64,
    /// The rollup worker's batch of dirty hours closes this long after its first
    /// mark (or at `max_records`). Each batch recomputes its hours from
    /// `calls_by_time FINAL`, a read of the whole hour that competes with the
    /// processor's inserts for ClickHouse: gathering marks for longer recomputes
    /// a busy hour once instead of every few batches. Rollups follow the calls by
    /// about this much; the api reads the hour in progress from the calls anyway.
    #[serde(default = "default_rollup_wait_ms")]
    pub rollup_wait_ms: u64,
    /// Longest pause between retries of a failed ClickHouse or Kafka write.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

fn default_max_records() -> usize {
    1000
}
fn default_max_wait_ms() -> u64 {
    200
}
fn default_idle_ms() -> u64 {
    10
}
fn default_rollup_wait_ms() -> u64 {
    1000
}
fn default_max_backoff_ms() -> u64 {
    10_000
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_records: default_max_records(),
            max_wait_ms: default_max_wait_ms(),
            idle_ms: default_idle_ms(),
            rollup_wait_ms: default_rollup_wait_ms(),
            max_backoff_ms: default_max_backoff_ms(),
        }
    }
}

impl BatchConfig {
    pub fn max_wait(&self) -> Duration {
        Duration::from_millis(self.max_wait_ms)
    }

    pub fn rollup_wait(&self) -> Duration {
        Duration::from_millis(self.rollup_wait_ms)
    }

    /// How a batch of the raw topic closes.
    pub fn wait(&self) -> runtime::kafka::BatchWait {
        runtime::kafka::BatchWait {
            max: self.max_wait(),
            idle: (self.idle_ms > 0).then(|| Duration::from_millis(self.idle_ms)),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Start-up: how long to read the integrations topic before giving up.
    #[serde(default = "default_initial_load_ms")]
    pub initial_load_ms: u64,
    /// A record stamped with an integration version this instance has not seen
    /// yet waits this long for it before being dead-lettered.
    #[serde(default = "default_wait_ms")]
    pub wait_ms: u64,
}

fn default_initial_load_ms() -> u64 {
    30_000
}
fn default_wait_ms() -> u64 {
    5_000
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            initial_load_ms: default_initial_load_ms(),
            wait_ms: default_wait_ms(),
        }
    }
}

impl Validate for ProcessorConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.kafka.validate("kafka")?;
        self.clickhouse.validate("clickhouse")?;
        if self.batch.max_records == 0 || self.batch.max_records > 100_000 {
            return Err(ConfigError::invalid(
                "batch.max_records",
                "must be between 1 and 100000",
            ));
        }
        runtime::config::within(
            "state.retention_days",
            u64::from(self.state.retention_days),
            1..=3650,
        )?;
        runtime::config::within(
            "state.sweep_per_batch",
            self.state.sweep_per_batch as u64,
            1..=1_000_000,
        )?;
        if self.state.standby_interval_ms != 0 {
            runtime::config::within(
                "state.standby_interval_ms",
                self.state.standby_interval_ms,
                100..=3_600_000,
            )?;
            if self.state.dir.is_empty() {
                return Err(ConfigError::invalid(
                    "state.standby_interval_ms",
                    "a standby needs state.dir: a copy in memory is gone at the restart it would spare",
                ));
            }
        }
        runtime::config::within("parking.delay_ms", self.parking.delay_ms, 100..=3_600_000)?;
        runtime::config::within(
            "retention.interval_s",
            self.retention.interval_s,
            1..=604_800,
        )?;
        runtime::config::within(
            "retention.mutation_wait_s",
            self.retention.mutation_wait_s,
            1..=86_400,
        )?;
        if !self.retention.hash_key.is_empty() && self.retention.hash_key.len() < 16 {
            return Err(ConfigError::invalid(
                "retention.hash_key",
                "must be at least 16 characters (or empty: no hashing)",
            ));
        }
        if self.parking.max_attempts > 1000 {
            return Err(ConfigError::invalid(
                "parking.max_attempts",
                "must be at most 1000",
            ));
        }
        if self.batch.idle_ms > self.batch.max_wait_ms {
            return Err(ConfigError::invalid(
                "batch.idle_ms",
                "must be at most batch.max_wait_ms",
            ));
        }
        runtime::config::within(
            "batch.rollup_wait_ms",
            self.batch.rollup_wait_ms,
            1..=60_000,
        )?;
        if self.batch.max_wait_ms == 0 {
            return Err(ConfigError::invalid(
                "batch.max_wait_ms",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_raw_batch_closes_when_idle_unless_idle_ms_is_zero() {
        let mut batch = BatchConfig::default();
        assert_eq!(
            batch.wait(),
            runtime::kafka::BatchWait {
                max: Duration::from_millis(200),
                idle: Some(Duration::from_millis(10)),
            }
        );
        batch.idle_ms = 0;
        assert_eq!(batch.wait().idle, None);
    }

    #[test]
    fn a_standby_needs_a_state_dir_and_a_sane_interval() {
        let config = |state: serde_json::Value| {
            let mut config: ProcessorConfig = serde_json::from_value(serde_json::json!({
                "kafka": { "brokers": "b:9092" },
                "clickhouse": { "url": "http://c:8123" },
                "http": { "listen": "127.0.0.1:0" },
                "state": state,
            }))
            .expect("parses");
            config.clickhouse.password = "x".into();
            config.validate().map_err(|e| e.to_string())
        };
        let in_memory = config(serde_json::json!({ "standby_interval_ms": 1000 }));
        assert!(
            in_memory
                .as_ref()
                .is_err_and(|e| e.contains("state.standby_interval_ms") && e.contains("state.dir")),
            "{in_memory:?}"
        );
        let too_often = config(serde_json::json!({ "dir": "/s", "standby_interval_ms": 10 }));
        assert!(
            too_often
                .as_ref()
                .is_err_and(|e| e.contains("state.standby_interval_ms")),
            "{too_often:?}"
        );
        assert!(config(serde_json::json!({ "dir": "/s", "standby_interval_ms": 1000 })).is_ok());
        assert!(
            config(serde_json::json!({})).is_ok(),
            "off by default, without a dir"
        );
    }

    #[test]
    fn a_rollup_wait_out_of_range_is_refused_by_name() {
        for bad in [0, 60_001] {
            let mut config: ProcessorConfig = serde_json::from_value(serde_json::json!({
                "kafka": { "brokers": "b:9092" },
                "clickhouse": { "url": "http://c:8123" },
                "http": { "listen": "127.0.0.1:0" },
                "batch": { "rollup_wait_ms": bad },
            }))
            .expect("parses");
            config.clickhouse.password = "x".into();
            let error = config.validate().expect_err("refused").to_string();
            assert!(error.contains("batch.rollup_wait_ms"), "{error}");
        }
    }
}
