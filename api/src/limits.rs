//! `[limits]`: what one account may take of the api's shared resources (fair shares,
//! `runtime::fair`). Every limit answers 429 naming its key and value. Admin tokens
//! are not limited here; the ClickHouse profile of the api's user bounds every
//! query whoever asks (docs/security.md, "Fair shares").

use runtime::access::Scope;
use runtime::fair::{AccountGate, Limit, Pass};
use runtime::http::Problem;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// ClickHouse queries one account may have running at once (calls, exports,
    /// aggregates, dead letters, stories, integration health).
    #[serde(default = "default_queries_in_flight")]
    pub queries_in_flight: u32,
    /// ...and may start per minute (0: no limit).
    #[serde(default = "default_queries_per_minute")]
    pub queries_per_minute: u32,
    /// Event streams (`/api/events`) one account may hold open at once.
    #[serde(default = "default_sse_connections")]
    pub sse_connections: u32,
    /// Event streams one account may resume (`Last-Event-ID`) per minute: a resume
    /// from far back costs the shared catch-up reader a read of the topic.
    #[serde(default = "default_sse_resumes_per_minute")]
    pub sse_resumes_per_minute: u32,
    /// Resumes from further back than the ring one account may have waiting for, or
    /// being served by, the shared catch-up reader.
    #[serde(default = "default_sse_catch_ups")]
    pub sse_catch_ups: u32,
    /// Mapping previews one account may run per minute.
    #[serde(default = "default_previews_per_minute")]
    pub previews_per_minute: u32,
    /// Largest preview request body, in bytes.
    #[serde(default = "default_preview_bytes")]
    pub preview_bytes: usize,
    /// Integrations one account may have (live ones; deleted ones keep their id but
    /// do not count).
    #[serde(default = "default_integrations")]
    pub integrations: u32,
    /// Largest integration definition, in bytes of JSON.
    #[serde(default = "default_definition_bytes")]
    pub definition_bytes: usize,
    /// Bytes of recent raw payloads kept per integration for dry runs (with
    /// `http.recent_payloads` records at most).
    #[serde(default = "default_recent_payload_bytes")]
    pub recent_payload_bytes: usize,
    /// Erasure orders and suppression lifts one account may ask per minute (0: no
    /// limit): each costs the processor ClickHouse mutations of every table that
    /// holds calls.
    #[serde(default = "default_privacy_orders_per_minute")]
    pub privacy_orders_per_minute: u32,
}

fn default_queries_in_flight() -> u32 {
    4
}
fn default_queries_per_minute() -> u32 {
    600
}
fn default_sse_connections() -> u32 {
    20
}
fn default_sse_catch_ups() -> u32 {
    2
}
fn default_sse_resumes_per_minute() -> u32 {
    30
}
fn default_previews_per_minute() -> u32 {
    30
}
fn default_preview_bytes() -> usize {
    1024 * 1024
}
fn default_integrations() -> u32 {
    200
}
fn default_definition_bytes() -> usize {
    256 * 1024
}
fn default_recent_payload_bytes() -> usize {
    1024 * 1024
}
fn default_privacy_orders_per_minute() -> u32 {
    30
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            queries_in_flight: default_queries_in_flight(),
            queries_per_minute: default_queries_per_minute(),
            sse_connections: default_sse_connections(),
            sse_resumes_per_minute: default_sse_resumes_per_minute(),
            sse_catch_ups: default_sse_catch_ups(),
            previews_per_minute: default_previews_per_minute(),
            preview_bytes: default_preview_bytes(),
            integrations: default_integrations(),
            definition_bytes: default_definition_bytes(),
            recent_payload_bytes: default_recent_payload_bytes(),
            privacy_orders_per_minute: default_privacy_orders_per_minute(),
        }
    }
}

impl LimitsConfig {
    /// The first key out of range, with why.
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        if self.queries_in_flight == 0 {
            return Some(("limits.queries_in_flight", "must be at least 1"));
        }
        if self.sse_connections == 0 {
            return Some(("limits.sse_connections", "must be at least 1"));
        }
        if self.integrations == 0 {
            return Some(("limits.integrations", "must be at least 1"));
        }
        if !(1024..=schemas::integration::MAX_DEFINITION_BYTES).contains(&self.definition_bytes) {
            return Some((
                "limits.definition_bytes",
                "must be between 1024 and 1048576 (what every binary takes)",
            ));
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.preview_bytes) {
            return Some(("limits.preview_bytes", "must be between 1024 and 16777216"));
        }
        None
    }
}

/// The api's gates, built once from `[limits]`.
pub struct ApiLimits {
    pub config: LimitsConfig,
    queries: AccountGate,
    streams: AccountGate,
    resumes: AccountGate,
    previews: AccountGate,
    privacy_orders: AccountGate,
}

impl ApiLimits {
    pub fn new(config: LimitsConfig) -> Self {
        let limit = |key, value| Limit { key, value };
        Self {
            queries: AccountGate::new(
                "ClickHouse queries",
                limit("limits.queries_in_flight", config.queries_in_flight),
                limit("limits.queries_per_minute", config.queries_per_minute),
            ),
            streams: AccountGate::new(
                "event streams",
                limit("limits.sse_connections", config.sse_connections),
                limit("(no per-minute limit)", 0),
            ),
            resumes: AccountGate::new(
                "event stream resumes",
                limit("(no concurrency limit)", 0),
                limit(
                    "limits.sse_resumes_per_minute",
                    config.sse_resumes_per_minute,
                ),
            ),
            previews: AccountGate::new(
                "previews",
                limit("(no concurrency limit)", 0),
                limit("limits.previews_per_minute", config.previews_per_minute),
            ),
            privacy_orders: AccountGate::new(
                "erasure orders and suppression lifts",
                limit("(no concurrency limit)", 0),
                limit(
                    "limits.privacy_orders_per_minute",
                    config.privacy_orders_per_minute,
                ),
            ),
            config,
        }
    }

    pub fn query(&self, scope: &Scope) -> Result<Pass, Problem> {
        self.queries.enter(scope)
    }

    pub fn stream(&self, scope: &Scope) -> Result<Pass, Problem> {
        self.streams.enter(scope)
    }

    /// A stream that resumes from an id (counted besides [`stream`](Self::stream)).
    pub fn resume(&self, scope: &Scope) -> Result<Pass, Problem> {
        self.resumes.enter(scope)
    }

    pub fn preview(&self, scope: &Scope) -> Result<Pass, Problem> {
        self.previews.enter(scope)
    }

    /// An erasure order or a suppression lift.
    pub fn privacy_order(&self, scope: &Scope) -> Result<Pass, Problem> {
        self.privacy_orders.enter(scope)
    }
}
