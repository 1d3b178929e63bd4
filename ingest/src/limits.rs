//! `[limits]`: what one account may take of ingest's shared resources (fair shares,
//! `runtime::fair`): records per second into the pipeline (webhooks are refused
//! over it, imports and polls wait for it), imports and polls in flight, poll-now.
//! Every refusal answers 429 naming its key and value.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::StatusCode;
use runtime::fair::{AccountGate, Limit, Pass};
use runtime::http::Problem;
use schemas::ClientId;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Records the integrations of one account may send into the pipeline per
    /// second, together, on this instance (webhooks, imports and polls; 0: no
    /// limit). The pipeline is shared: one account's flood must not become every
    /// account's queue. Webhooks over it get 429; imports and polls wait.
    #[serde(default = "default_records_per_second")]
    pub records_per_second: u32,
    /// ...of which this many may come at once (at least `http.max_records`, so the
    /// largest webhook can pass).
    #[serde(default = "default_records_burst")]
    pub records_burst: u32,
    /// Webhook body bytes one account's integrations may send per second, together,
    /// on this instance (0: no limit): the edge's CPU (reading, parsing, verifying
    /// signatures) is shared. Counted before a body is read (its `Content-Length`),
    /// so a flood costs nothing past the limit; over it, 429.
    #[serde(default = "default_webhook_bytes_per_second")]
    pub webhook_bytes_per_second: u32,
    /// ...of which this many may come at once (at least `http.body_limit_bytes`).
    #[serde(default = "default_webhook_bytes_burst")]
    pub webhook_bytes_burst: u32,
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

fn default_records_per_second() -> u32 {
    500
}
fn default_records_burst() -> u32 {
    10_000
}
fn default_webhook_bytes_per_second() -> u32 {
    16 * 1024 * 1024
}
fn default_webhook_bytes_burst() -> u32 {
    32 * 1024 * 1024
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
            records_per_second: default_records_per_second(),
            records_burst: default_records_burst(),
            webhook_bytes_per_second: default_webhook_bytes_per_second(),
            webhook_bytes_burst: default_webhook_bytes_burst(),
            imports_in_flight: default_imports_in_flight(),
            polls_in_flight: default_polls_in_flight(),
            polls_in_flight_per_account: default_polls_in_flight_per_account(),
            poll_now_interval_s: default_poll_now_interval_s(),
        }
    }
}

impl LimitsConfig {
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        if self.records_per_second > 0 && self.records_burst < self.records_per_second {
            return Some((
                "limits.records_burst",
                "must be at least limits.records_per_second",
            ));
        }
        if self.webhook_bytes_per_second > 0
            && self.webhook_bytes_burst < self.webhook_bytes_per_second
        {
            return Some((
                "limits.webhook_bytes_burst",
                "must be at least limits.webhook_bytes_per_second",
            ));
        }
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
    records: Option<DefaultKeyedRateLimiter<String>>,
    bytes: Option<DefaultKeyedRateLimiter<String>>,
    imports: AccountGate,
    polls: AccountGate,
    poll_now: Mutex<HashMap<ClientId, Instant>>,
}

impl IngestLimits {
    pub fn new(config: LimitsConfig) -> Self {
        let limit = |key, value| Limit { key, value };
        let none = limit("(no per-minute limit)", 0);
        let records = NonZeroU32::new(config.records_per_second).map(|rate| {
            let burst = NonZeroU32::new(config.records_burst).unwrap_or(rate);
            RateLimiter::hashmap(Quota::per_second(rate).allow_burst(burst))
        });
        let bytes = NonZeroU32::new(config.webhook_bytes_per_second).map(|rate| {
            let burst = NonZeroU32::new(config.webhook_bytes_burst).unwrap_or(rate);
            RateLimiter::hashmap(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            records,
            bytes,
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

    /// `bytes` bytes of webhook body for `account`, or the 429 naming the limit.
    pub fn webhook_bytes(&self, account: &str, bytes: u64) -> Result<(), Problem> {
        let (Some(limiter), Some(n)) = (
            &self.bytes,
            NonZeroU32::new(u32::try_from(bytes).unwrap_or(u32::MAX)),
        ) else {
            return Ok(());
        };
        let refused = |wait: Duration| {
            metrics::counter!(runtime::metric_names::FAIR_SHARE_REFUSALS_TOTAL, "limit" => "limits.webhook_bytes_per_second")
                .increment(1);
            Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "account_limit",
                format!(
                    "account {account:?} may send at most {} bytes of webhooks a second, {} at once \
                     (limits.webhook_bytes_per_second, limits.webhook_bytes_burst); retry after the Retry-After seconds",
                    self.config.webhook_bytes_per_second, self.config.webhook_bytes_burst
                ),
            )
            .with_detail("limit", "limits.webhook_bytes_per_second")
            .with_detail("value", self.config.webhook_bytes_per_second)
            .retry_after(wait.as_secs().max(1))
        };
        match limiter.check_key_n(&account.to_owned(), n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(refused(
                not_until.wait_time_from(DefaultClock::default().now()),
            )),
            Err(_) => Err(refused(Duration::from_secs(1))),
        }
    }

    /// `records` records of a webhook of `account`, or the 429 naming the limit.
    pub fn webhook_records(&self, account: &str, records: usize) -> Result<(), Problem> {
        let Some(limiter) = &self.records else {
            return Ok(());
        };
        let n =
            NonZeroU32::new(u32::try_from(records).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
        let refused = |wait: Duration| {
            metrics::counter!(runtime::metric_names::FAIR_SHARE_REFUSALS_TOTAL, "limit" => "limits.records_per_second")
                .increment(1);
            Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "account_limit",
                format!(
                    "account {account:?} may send at most {} records a second into the pipeline, {} at once \
                     (limits.records_per_second, limits.records_burst); retry after the Retry-After seconds",
                    self.config.records_per_second, self.config.records_burst
                ),
            )
            .with_detail("limit", "limits.records_per_second")
            .with_detail("value", self.config.records_per_second)
            .retry_after(wait.as_secs().max(1))
        };
        match limiter.check_key_n(&account.to_owned(), n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(refused(
                not_until.wait_time_from(DefaultClock::default().now()),
            )),
            // More than the burst in one request: never passes as it is.
            Err(_) => Err(refused(Duration::from_secs(1))),
        }
    }

    /// Waits until `account` may send `records` more records (imports and polls are
    /// paced, not refused), and never sends them faster than the account's rate: a
    /// paced job takes no burst, so a large import does not arrive at the pipeline
    /// as one lump in front of every other account's calls.
    pub async fn pace_records(&self, account: &str, records: usize) {
        let Some(limiter) = &self.records else {
            return;
        };
        let smooth = Duration::from_secs_f64(
            records as f64 / f64::from(self.config.records_per_second.max(1)),
        );
        let started = tokio::time::Instant::now();
        let key = account.to_owned();
        let mut left = records;
        while left > 0 {
            let chunk = left.min(self.config.records_burst.max(1) as usize);
            let n = NonZeroU32::new(chunk as u32).unwrap_or(NonZeroU32::MIN);
            loop {
                match limiter.check_key_n(&key, n) {
                    Ok(Ok(())) => break,
                    Ok(Err(not_until)) => {
                        tokio::time::sleep(not_until.wait_time_from(DefaultClock::default().now()))
                            .await
                    }
                    Err(_) => break,
                }
            }
            left -= chunk;
        }
        tokio::time::sleep_until(started + smooth).await;
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
