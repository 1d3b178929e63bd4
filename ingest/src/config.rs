use std::net::SocketAddr;

use runtime::access::AuthConfig;
use runtime::config::{ConfigError, Validate};

use crate::outbound::OutboundConfig;
use runtime::kafka::KafkaConfig;
use runtime::registry::RegistryConfig;
use serde::{Deserialize, Serialize};

/// `ingest --config deploy/config/ingest.toml`; override any key with
/// `INGEST_SECTION__KEY`, e.g. `INGEST_HTTP__BODY_LIMIT_BYTES=1048576`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    pub kafka: KafkaConfig,
    pub http: HttpConfig,
    #[serde(default)]
    pub registry: RegistryConfig,
    #[serde(default)]
    pub imports: ImportsConfig,
    #[serde(default)]
    pub poll: PollWorkersConfig,
    /// Tokens for the account routes (imports, polls); webhooks authenticate per
    /// integration instead.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Requests made for an account: never to our own network.
    #[serde(default)]
    pub outbound: OutboundConfig,
    /// What one account may take of ingest's shared resources.
    #[serde(default)]
    pub limits: crate::limits::LimitsConfig,
}

/// Poll workers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollWorkersConfig {
    /// Whether this instance takes part in polling (joins the `poller` group).
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

impl Default for PollWorkersConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// CSV imports.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportsConfig {
    /// Where Google Sheets links are fetched.
    #[serde(default = "default_sheets_base_url")]
    pub sheets_base_url: String,
    /// Longest a URL import's download may take.
    #[serde(default = "default_fetch_timeout_s")]
    pub fetch_timeout_s: u64,
}

fn default_sheets_base_url() -> String {
    "https://docs.google.com".to_owned()
}
fn default_fetch_timeout_s() -> u64 {
    3600
}

impl Default for ImportsConfig {
    fn default() -> Self {
        Self {
            sheets_base_url: default_sheets_base_url(),
            fetch_timeout_s: default_fetch_timeout_s(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Largest webhook body accepted; larger ones get 413 before being read.
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// Most records in one webhook request; more get 413.
    #[serde(default = "default_max_records")]
    pub max_records: usize,
    /// `Retry-After` seconds sent with 503 when the broker does not acknowledge.
    #[serde(default = "default_retry_after")]
    pub retry_after_s: u64,
    /// Deliveries (by `webhook-id` / `Idempotency-Key`) remembered for a day, so a
    /// retry is answered 200 with the original ids.
    #[serde(default = "default_delivery_cache")]
    pub delivery_cache: u64,
    /// ...and about this many bytes of them (an answer lists every record's id).
    #[serde(default = "default_delivery_cache_bytes")]
    pub delivery_cache_bytes: u64,
    /// How long a request body may take to arrive: a client trickling a body
    /// (slowloris) gets 408 after this and its connection is closed.
    #[serde(default = "default_body_timeout_ms")]
    pub body_timeout_ms: u64,
}

fn default_body_timeout_ms() -> u64 {
    30_000
}

fn default_delivery_cache() -> u64 {
    100_000
}

fn default_delivery_cache_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_body_limit() -> usize {
    10 * 1024 * 1024
}
fn default_max_records() -> usize {
    10_000
}
fn default_retry_after() -> u64 {
    5
}

impl Validate for IngestConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.kafka.validate("kafka")?;
        if let Some((key, problem)) = self.limits.problem() {
            return Err(ConfigError::invalid(key, problem));
        }
        if self.http.body_limit_bytes < 1024 {
            return Err(ConfigError::invalid(
                "http.body_limit_bytes",
                "must be at least 1024",
            ));
        }
        runtime::config::within(
            "http.body_timeout_ms",
            self.http.body_timeout_ms,
            100..=600_000,
        )?;
        if !self.imports.sheets_base_url.starts_with("http") {
            return Err(ConfigError::invalid(
                "imports.sheets_base_url",
                "must be an http(s) URL",
            ));
        }
        if let Err((key, problem)) = self.outbound.allow_list() {
            return Err(ConfigError::invalid(&key, &problem));
        }
        if self.outbound.max_page_bytes < 1024 || self.outbound.max_import_bytes < 1024 {
            return Err(ConfigError::invalid(
                "outbound.max_page_bytes",
                "outbound.max_page_bytes and outbound.max_import_bytes must be at least 1024",
            ));
        }
        if self.outbound.max_redirects > 20 {
            return Err(ConfigError::invalid(
                "outbound.max_redirects",
                "must be at most 20",
            ));
        }
        runtime::config::within("http.delivery_cache", self.http.delivery_cache, 1..=1 << 32)?;
        runtime::config::within(
            "http.delivery_cache_bytes",
            self.http.delivery_cache_bytes,
            1024 * 1024..=1 << 40,
        )?;
        if self.http.max_records == 0 {
            return Err(ConfigError::invalid(
                "http.max_records",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
