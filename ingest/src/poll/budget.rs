//! Request budgets per upstream partner account. A partner's rate limit belongs to
//! its account (Ringba's call-detail limit is shared with its own UI users), so
//! every integration naming the same `budget.account` draws from one token bucket,
//! and a 429 or an exhausted rate-limit header pauses the whole account.
//!
//! Budgets are keyed by our account *and* the budget's name: the name is chosen by
//! whoever writes the integration, so one of our accounts naming another's budget
//! must neither spend nor pause it.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use schemas::poll::Budget;
use tokio::time::Instant;

struct Account {
    budget: Budget,
    limiter: Arc<DefaultDirectRateLimiter>,
    paused_until: Option<Instant>,
}

/// (our account, the budget's name).
type BudgetKey = (String, String);

#[derive(Clone, Default)]
pub struct Budgets(Arc<Mutex<HashMap<BudgetKey, Account>>>);

impl Budgets {
    /// Waits until `budget` (of our account `owner`) may make one more request.
    pub async fn acquire(&self, owner: &str, budget: &Budget) {
        loop {
            let wait =
                {
                    let mut accounts = self.lock();
                    let account = accounts
                        .entry((owner.to_owned(), budget.account.clone()))
                        .or_insert_with(|| new_account(budget));
                    if account.budget != *budget {
                        *account = new_account(budget);
                    }
                    match account.paused_until {
                        Some(until) if until > Instant::now() => Some(until - Instant::now()),
                        _ => account.limiter.check().err().map(|not_until| {
                            not_until.wait_time_from(DefaultClock::default().now())
                        }),
                    }
                };
            match wait {
                None => return,
                Some(wait) => tokio::time::sleep(wait.max(Duration::from_millis(10))).await,
            }
        }
    }

    /// Pauses budget `name` of our account `owner` for `wait` (a 429's
    /// `Retry-After`, a rate-limit reset).
    pub fn pause(&self, owner: &str, name: &str, wait: Duration) {
        let mut accounts = self.lock();
        if let Some(entry) = accounts.get_mut(&(owner.to_owned(), name.to_owned())) {
            let until = Instant::now() + wait;
            entry.paused_until = Some(entry.paused_until.map_or(until, |u| u.max(until)));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<BudgetKey, Account>> {
        match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

fn new_account(budget: &Budget) -> Account {
    let per_second = NonZeroU32::new(budget.per_second).unwrap_or(NonZeroU32::MIN);
    let burst = budget
        .burst
        .and_then(NonZeroU32::new)
        .unwrap_or(NonZeroU32::MIN);
    Account {
        budget: budget.clone(),
        limiter: Arc::new(RateLimiter::direct(
            Quota::per_second(per_second).allow_burst(burst),
        )),
        paused_until: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(account: &str) -> Budget {
        Budget {
            account: account.into(),
            per_second: 2,
            burst: None,
        }
    }

    #[tokio::test]
    async fn integrations_sharing_an_account_share_its_rate() {
        let budgets = Budgets::default();
        let started = std::time::Instant::now();
        for _ in 0..3 {
            budgets.acquire("acme", &budget("acct")).await;
        }
        // 2 per second, burst 1: the third request waits about a second.
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "{:?}",
            started.elapsed()
        );
        let other = std::time::Instant::now();
        budgets.acquire("acme", &budget("other")).await;
        assert!(
            other.elapsed() < Duration::from_millis(500),
            "another account is not held up"
        );
    }

    #[tokio::test]
    async fn a_pause_holds_the_account() {
        let budgets = Budgets::default();
        budgets.acquire("acme", &budget("acct")).await;
        budgets.pause("acme", "acct", Duration::from_millis(600));
        let started = std::time::Instant::now();
        budgets.acquire("acme", &budget("acct")).await;
        assert!(started.elapsed() >= Duration::from_millis(550));
    }

    #[tokio::test]
    async fn another_account_naming_the_budget_neither_spends_nor_pauses_it() {
        let budgets = Budgets::default();
        budgets.acquire("acme", &budget("ringpartner")).await;
        budgets.acquire("mallory", &budget("ringpartner")).await;
        budgets.pause("mallory", "ringpartner", Duration::from_secs(30));
        let started = std::time::Instant::now();
        // acme's bucket: 2 per second, one token used 0+ ms ago; mallory's spend and
        // pause are in a bucket of their own.
        tokio::time::timeout(
            Duration::from_secs(2),
            budgets.acquire("acme", &budget("ringpartner")),
        )
        .await
        .expect("acme's budget is not paused by another account");
        assert!(started.elapsed() < Duration::from_millis(1500));
    }
}
