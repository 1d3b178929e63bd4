use std::net::SocketAddr;

use runtime::access::AuthConfig;
use runtime::clickhouse::ClickHouseConfig;
use runtime::config::{ConfigError, Validate};
use runtime::kafka::KafkaConfig;
use runtime::registry::RegistryConfig;
use serde::{Deserialize, Serialize};

/// `api --config deploy/config/api.toml`; override any key with
/// `API_SECTION__KEY`, e.g. `API_HTTP__LISTEN=0.0.0.0:8081`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    pub kafka: KafkaConfig,
    pub clickhouse: ClickHouseConfig,
    pub http: HttpConfig,
    #[serde(default)]
    pub registry: RegistryConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub health: HealthConfig,
    /// What one account may take of the api's shared resources.
    #[serde(default)]
    pub limits: crate::limits::LimitsConfig,
    /// Where ingest is, for the routes it answers (the dashboard's poll test).
    #[serde(default)]
    pub ingest: IngestLinkConfig,
    /// The operations view's source (`crate::ops`).
    #[serde(default)]
    pub ops: OpsConfig,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsConfig {
    /// The deployment's Prometheus (`http://127.0.0.1:9090`); empty: `GET /api/ops`
    /// answers 503 and the dashboard shows no operations view.
    #[serde(default)]
    pub prometheus_url: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestLinkConfig {
    /// Ingest's base URL (`http://127.0.0.1:8080`); empty: the poll test answers 503.
    #[serde(default)]
    pub url: String,
}

/// When an integration's health says `silent`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Minutes without a record, at an hour of day the integration usually sends.
    #[serde(default = "default_silence_minutes")]
    pub silence_minutes: u64,
    /// Days (of the past 7) with records at this hour of day (UTC) that make the hour
    /// one of the integration's usual hours.
    #[serde(default = "default_usual_days")]
    pub usual_days: u64,
    /// Drift is judged on the calls of this many seconds against the day before
    /// (`crate::drift`).
    #[serde(default = "default_drift_window_s")]
    pub drift_window_s: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            silence_minutes: default_silence_minutes(),
            usual_days: default_usual_days(),
            drift_window_s: default_drift_window_s(),
        }
    }
}

fn default_drift_window_s() -> u64 {
    3600
}

fn default_silence_minutes() -> u64 {
    60
}
fn default_usual_days() -> u64 {
    3
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Seconds between SSE heartbeat comments, which keep proxies from closing an
    /// idle stream and let clients notice a dead one.
    #[serde(default = "default_heartbeat_s")]
    pub heartbeat_s: u64,
    /// Events buffered per SSE client. A client that falls further behind gets a
    /// `dropped` event and is disconnected rather than growing server memory.
    #[serde(default = "default_sse_buffer")]
    pub sse_buffer: usize,
    /// Largest page `GET /api/calls` returns.
    #[serde(default = "default_max_page")]
    pub max_page: u32,
    /// Raw payloads kept per integration for dry runs of draft mappings (0: none).
    #[serde(default = "default_recent_payloads")]
    pub recent_payloads: usize,
    /// Recent events kept in memory, so a client that reconnects with a recent
    /// `Last-Event-ID` is served without reading the broker...
    #[serde(default = "default_sse_replay_events")]
    pub sse_replay_events: usize,
    /// ...and at most about this many bytes of them.
    #[serde(default = "default_sse_replay_bytes")]
    pub sse_replay_bytes: usize,
    /// Resumes from further back wait for the one shared catch-up reader; at most
    /// this many wait (more are answered 503 with `Retry-After`).
    #[serde(default = "default_sse_catch_up_queue")]
    pub sse_catch_up_queue: usize,
    /// Events a second the shared catch-up reader reads at most, so resumes from
    /// far back never take the broker from the live path.
    #[serde(default = "default_sse_catch_up_rate")]
    pub sse_catch_up_rate: u32,
    /// A resume further behind than this many events is told to reload (`reset`)
    /// and goes on live: no resume costs the reader more than this.
    #[serde(default = "default_sse_catch_up_max_events")]
    pub sse_catch_up_max_events: i64,
}

fn default_sse_catch_up_max_events() -> i64 {
    100_000
}

fn default_sse_catch_up_rate() -> u32 {
    5_000
}

fn default_sse_replay_events() -> usize {
    20_000
}
fn default_sse_replay_bytes() -> usize {
    32 * 1024 * 1024
}
fn default_sse_catch_up_queue() -> usize {
    64
}

fn default_recent_payloads() -> usize {
    50
}

fn default_heartbeat_s() -> u64 {
    15
}
fn default_sse_buffer() -> usize {
    1024
}
fn default_max_page() -> u32 {
    1000
}

impl Validate for ApiConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.kafka.validate("kafka")?;
        self.clickhouse.validate("clickhouse")?;
        if let Some((key, problem)) = self.limits.problem() {
            return Err(ConfigError::invalid(key, problem));
        }
        if !self.ingest.url.is_empty()
            && !reqwest::Url::parse(&self.ingest.url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            return Err(ConfigError::invalid(
                "ingest.url",
                "must be an http(s) URL, or empty",
            ));
        }
        if !self.ops.prometheus_url.is_empty()
            && !reqwest::Url::parse(&self.ops.prometheus_url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            return Err(ConfigError::invalid(
                "ops.prometheus_url",
                "must be an http(s) URL, or empty",
            ));
        }
        if !(1..=86_400).contains(&self.health.drift_window_s) {
            return Err(ConfigError::invalid(
                "health.drift_window_s",
                "must be between 1 and 86400",
            ));
        }
        if self.health.silence_minutes == 0 {
            return Err(ConfigError::invalid(
                "health.silence_minutes",
                "must be at least 1",
            ));
        }
        if !(1..=7).contains(&self.health.usual_days) {
            return Err(ConfigError::invalid(
                "health.usual_days",
                "must be 1 to 7 (days of the past week)",
            ));
        }
        if self.http.heartbeat_s == 0 {
            return Err(ConfigError::invalid(
                "http.heartbeat_s",
                "must be at least 1",
            ));
        }
        if self.http.sse_buffer == 0 {
            return Err(ConfigError::invalid(
                "http.sse_buffer",
                "must be at least 1",
            ));
        }
        if self.http.sse_catch_up_rate < 10 {
            return Err(ConfigError::invalid(
                "http.sse_catch_up_rate",
                "must be at least 10",
            ));
        }
        if self.http.recent_payloads > 100 {
            return Err(ConfigError::invalid(
                "http.recent_payloads",
                "at most 100 (the preview's record limit)",
            ));
        }
        if self.http.max_page == 0 {
            return Err(ConfigError::invalid("http.max_page", "must be at least 1"));
        }
        Ok(())
    }
}
