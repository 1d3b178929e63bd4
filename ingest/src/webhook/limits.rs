//! Per-integration request rate limits (token buckets from `governor`), rebuilt
//! when an integration's limit changes. Limits are per ingest instance: behind a
//! load balancer spreading over N instances, a partner gets up to N times the rate.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use schemas::webhook_auth::RateLimit;
use schemas::{ClientId, Integration};

type Limiter = (RateLimit, Arc<DefaultDirectRateLimiter>);

#[derive(Clone, Default)]
pub struct RateLimits(Arc<Mutex<HashMap<ClientId, Limiter>>>);

impl RateLimits {
    /// `Err(wait)` when the integration is over its rate: try again after `wait`.
    pub fn check(&self, integration: &Integration) -> Result<(), Duration> {
        let Some(limit) = &integration.rate_limit else {
            return Ok(());
        };
        let limiter = {
            let mut limiters = match self.0.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            match limiters.get(&integration.client_id) {
                Some((current, limiter)) if current == limit => limiter.clone(),
                _ => {
                    let limiter = Arc::new(RateLimiter::direct(quota(limit)));
                    limiters.insert(
                        integration.client_id.clone(),
                        (limit.clone(), limiter.clone()),
                    );
                    limiter
                }
            }
        };
        limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

fn quota(limit: &RateLimit) -> Quota {
    let per_second = NonZeroU32::new(limit.per_second).unwrap_or(NonZeroU32::MIN);
    let burst = limit.burst.and_then(NonZeroU32::new).unwrap_or(per_second);
    Quota::per_second(per_second).allow_burst(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integration(limit: Option<RateLimit>) -> Integration {
        let mut integration: Integration = serde_json::from_value(serde_json::json!({
            "client_id": "x", "account": "a", "name": "X", "source": "webhook", "version": 1,
            "mapping": {"fields": {"caller": {"path": "c"}, "started_at": {"path": "s"}}}
        }))
        .unwrap();
        integration.rate_limit = limit;
        integration
    }

    #[test]
    fn a_burst_passes_then_the_bucket_says_how_long_to_wait() {
        let limits = RateLimits::default();
        let limited = integration(Some(RateLimit {
            per_second: 2,
            burst: Some(3),
        }));
        for _ in 0..3 {
            assert!(limits.check(&limited).is_ok());
        }
        let wait = limits.check(&limited).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        let unlimited = integration(None);
        assert!((0..1000).all(|_| limits.check(&unlimited).is_ok()));
    }

    #[test]
    fn a_changed_limit_takes_effect() {
        let limits = RateLimits::default();
        let one = integration(Some(RateLimit {
            per_second: 1,
            burst: None,
        }));
        assert!(limits.check(&one).is_ok());
        assert!(limits.check(&one).is_err());
        let more = integration(Some(RateLimit {
            per_second: 1,
            burst: Some(5),
        }));
        assert!(
            limits.check(&more).is_ok(),
            "a new bucket for the new limit"
        );
    }
}
