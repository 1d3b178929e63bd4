//! Fair shares: per-account limits on a shared resource, so no account can starve
//! another (ClickHouse query slots, event streams, previews, imports, polls). Each
//! [`AccountGate`] allows an account at most `in_flight` uses at once and `per_minute`
//! a minute; a use over either is answered 429 with a message naming the limit, its
//! configuration key and its value, and (for the rate) a `Retry-After`.
//!
//! Admin tokens pass every gate: operators are few, and what they run is bounded by
//! the ClickHouse profile of the binary's user (docs/security.md).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::StatusCode;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::access::Scope;
use crate::http::{Body, Problem};

/// One limit as configured: what it is and the key that sets it.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// The configuration key (`limits.queries_in_flight`), named in the answer.
    pub key: &'static str,
    /// 0: no limit.
    pub value: u32,
}

/// At most `in_flight` at once and `rate` per `per`, per account.
pub struct AccountGate {
    what: &'static str,
    in_flight: Limit,
    rate_limit: Limit,
    per: &'static str,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    rate: Option<DefaultKeyedRateLimiter<String>>,
}

/// A use of a gate: the slot is free again when this is dropped (with the response
/// body, see [`hold`]).
#[derive(Debug)]
pub struct Pass(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl AccountGate {
    /// `what`: the resource as an answer names it ("ClickHouse queries").
    pub fn new(what: &'static str, in_flight: Limit, per_minute: Limit) -> Self {
        let rate = NonZeroU32::new(per_minute.value).map(|n| {
            // A minute's allowance may be spent at once: a dashboard opening asks
            // for a dozen numbers together.
            RateLimiter::hashmap(Quota::per_minute(n).allow_burst(n))
        });
        Self {
            what,
            in_flight,
            rate_limit: per_minute,
            per: "a minute",
            slots: Mutex::default(),
            rate,
        }
    }

    /// A pass for one use by `scope`, or the 429 that names the limit.
    pub fn enter(&self, scope: &Scope) -> Result<Pass, Problem> {
        let Some(account) = scope.account() else {
            return Ok(Pass(None));
        };
        self.enter_account(account)
    }

    /// [`enter`](Self::enter) for an account named directly (ingest's routes know
    /// the account from the integration).
    pub fn enter_account(&self, account: &str) -> Result<Pass, Problem> {
        if let Some(rate) = &self.rate {
            if let Err(not_until) = rate.check_key(&account.to_owned()) {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                return Err(self
                    .refused(account, self.rate_limit, self.per)
                    .retry_after(wait.as_secs().max(1)));
            }
        }
        if self.in_flight.value == 0 {
            return Ok(Pass(None));
        }
        let semaphore = {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            slots
                .entry(account.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.in_flight.value as usize)))
                .clone()
        };
        match semaphore.try_acquire_owned() {
            Ok(permit) => Ok(Pass(Some(permit))),
            Err(_) => Err(self
                .refused(account, self.in_flight, "at once")
                .retry_after(1)),
        }
    }

    fn refused(&self, account: &str, limit: Limit, per: &str) -> Problem {
        metrics::counter!(crate::metric_names::FAIR_SHARE_REFUSALS_TOTAL, "limit" => limit.key)
            .increment(1);
        Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "account_limit",
            format!(
                "account {account:?} may have at most {} {} {per} ({} = {}); try again later",
                limit.value, self.what, limit.key, limit.value
            ),
        )
        .with_detail("limit", limit.key)
        .with_detail("value", limit.value)
    }
}

/// `body`, holding `pass` until the body is finished or dropped: a streamed answer
/// (an export, an event stream) keeps its slot as long as it streams.
pub fn hold(body: Body, pass: Pass) -> Body {
    Held { body, _pass: pass }.boxed()
}

struct Held {
    body: Body,
    _pass: Pass,
}

impl hyper::body::Body for Held {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(in_flight: u32, per_minute: u32) -> AccountGate {
        AccountGate::new(
            "ClickHouse queries",
            Limit {
                key: "limits.queries_in_flight",
                value: in_flight,
            },
            Limit {
                key: "limits.queries_per_minute",
                value: per_minute,
            },
        )
    }

    #[test]
    fn an_account_over_its_slots_is_told_which_limit_and_others_are_not() {
        let gate = gate(2, 0);
        let b = Scope::Account("noisy".into());
        let first = gate.enter(&b).unwrap();
        let _second = gate.enter(&b).unwrap();
        let refused = gate.enter(&b).unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            refused.message.contains("limits.queries_in_flight = 2"),
            "{}",
            refused.message
        );
        // Another account is not affected, nor an admin.
        assert!(gate.enter(&Scope::Account("quiet".into())).is_ok());
        assert!(gate.enter(&Scope::All).is_ok());
        drop(first);
        assert!(gate.enter(&b).is_ok(), "a freed slot is usable again");
    }

    #[test]
    fn a_minute_allowance_is_per_account_with_a_retry_after() {
        let gate = gate(0, 3);
        let b = Scope::Account("noisy".into());
        for _ in 0..3 {
            gate.enter(&b).unwrap();
        }
        let refused = gate.enter(&b).unwrap_err();
        assert!(refused.retry_after_s.is_some_and(|s| s >= 1));
        assert!(refused.message.contains("limits.queries_per_minute"));
        assert!(gate.enter(&Scope::Account("quiet".into())).is_ok());
    }

    #[tokio::test]
    async fn a_held_body_keeps_its_slot_until_it_is_dropped() {
        let gate = gate(1, 0);
        let b = Scope::Account("noisy".into());
        let body = hold(crate::http::full("data"), gate.enter(&b).unwrap());
        assert!(gate.enter(&b).is_err(), "the stream still holds the slot");
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected, "data");
        assert!(gate.enter(&b).is_ok());
    }
}
