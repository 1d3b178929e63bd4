//! `[limits]`: what one account may take of ingest's shared resources (fair shares,
//! `runtime::fair`): the edge's CPU, imports and polls in flight, poll-now. Every
//! limit answers 429 naming its key and value.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::StatusCode;
use runtime::fair::{AccountGate, Limit, Pass};
use runtime::http::Problem;
use schemas::ClientId;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Webhook requests the integrations of one account may make per second,
    /// together, on this instance (0: no limit). An integration's own `rate_limit`
    /// applies too.
    #[serde(default = "default_webhook_requests_per_second")]
    pub webhook_requests_per_second: u32,
    /// CSV imports (uploads and URLs) one account may run at once.
    #[serde(default = "default_imports_in_flight")]
    pub imports_in_flight: u32,
    /// Poll runs this instance runs at once, all accounts together.
    #[serde(default = "default_polls_in_flight")]
    pub polls_in_flight: u32,
    /// ...and one account's integrations at once.
    #[serde(default = "default_polls_in_flight_per_account")]
    pub polls_in_flight_per_account: u32,
    /// Shortest time between two poll-now requests of one integration.
    #[serde(default = "default_poll_now_interval_s")]
    pub poll_now_interval_s: u64,
}

fn default_webhook_requests_per_second() -> u32 {
    2_000
}
fn default_imports_in_flight() -> u32 {
    2
}
fn default_polls_in_flight() -> u32 {
    8
}
fn default_polls_in_flight_per_account() -> u32 {
    2
}
fn default_poll_now_interval_s() -> u64 {
    30
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            webhook_requests_per_second: default_webhook_requests_per_second(),
            imports_in_flight: default_imports_in_flight(),
            polls_in_flight: default_polls_in_flight(),
            polls_in_flight_per_account: default_polls_in_flight_per_account(),
            poll_now_interval_s: default_poll_now_interval_s(),
        }
    }
}

impl LimitsConfig {
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        if self.imports_in_flight == 0 {
            return Some(("limits.imports_in_flight", "must be at least 1"));
        }
        if self.polls_in_flight == 0 {
            return Some(("limits.polls_in_flight", "must be at least 1"));
        }
        if self.polls_in_flight_per_account == 0 {
            return Some(("limits.polls_in_flight_per_account", "must be at least 1"));
        }
        None
    }
}

/// Ingest's gates, built once from `[limits]`.
pub struct IngestLimits {
    pub config: LimitsConfig,
    webhooks: AccountGate,
    imports: AccountGate,
    polls: AccountGate,
    poll_now: Mutex<HashMap<ClientId, Instant>>,
}

impl IngestLimits {
    pub fn new(config: LimitsConfig) -> Self {
        let limit = |key, value| Limit { key, value };
        let none = limit("(no per-minute limit)", 0);
        Self {
            webhooks: AccountGate::per_second(
                "webhook requests",
                limit(
                    "limits.webhook_requests_per_second",
                    config.webhook_requests_per_second,
                ),
            ),
            imports: AccountGate::new(
                "imports",
                limit("limits.imports_in_flight", config.imports_in_flight),
                none,
            ),
            polls: AccountGate::new(
                "poll runs",
                limit(
                    "limits.polls_in_flight_per_account",
                    config.polls_in_flight_per_account,
                ),
                none,
            ),
            poll_now: Mutex::default(),
            config,
        }
    }

    pub fn webhook(&self, account: &str) -> Result<Pass, Problem> {
        self.webhooks.enter_account(account)
    }

    pub fn import(&self, account: &str) -> Result<Pass, Problem> {
        self.imports.enter_account(account)
    }

    /// A slot for one poll run of `account`, if it has one free.
    pub fn poll(&self, account: &str) -> Option<Pass> {
        self.polls.enter_account(account).ok()
    }

    /// Whether `client` may be polled now on request: at most once a
    /// `poll_now_interval_s`.
    pub fn poll_now(&self, client: &ClientId) -> Result<(), Problem> {
        let interval = Duration::from_secs(self.config.poll_now_interval_s);
        let mut last = self
            .poll_now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if let Some(at) = last.get(client) {
            let since = now.duration_since(*at);
            if since < interval {
                let wait = (interval - since).as_secs().max(1);
                return Err(Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "account_limit",
                    format!(
                        "integration {client} was polled on request {} s ago; at most once every {} s (limits.poll_now_interval_s = {})",
                        since.as_secs(),
                        interval.as_secs(),
                        interval.as_secs()
                    ),
                )
                .with_detail("limit", "limits.poll_now_interval_s")
                .with_detail("value", interval.as_secs())
                .retry_after(wait));
            }
        }
        last.insert(client.clone(), now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_now_is_spaced_per_integration() {
        let limits = IngestLimits::new(LimitsConfig::default());
        let a = ClientId::parse("a").unwrap();
        limits.poll_now(&a).unwrap();
        let refused = limits.poll_now(&a).unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.message.contains("limits.poll_now_interval_s"));
        assert!(limits.poll_now(&ClientId::parse("b").unwrap()).is_ok());
    }

    #[test]
    fn poll_slots_are_per_account() {
        let limits = IngestLimits::new(LimitsConfig {
            polls_in_flight_per_account: 1,
            ..LimitsConfig::default()
        });
        let held = limits.poll("noisy").unwrap();
        assert!(limits.poll("noisy").is_none());
        assert!(limits.poll("quiet").is_some());
        drop(held);
        assert!(limits.poll("noisy").is_some());
    }
}
