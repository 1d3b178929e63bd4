//! Tokens fetched for polls, shared by every run of this instance: one login or
//! token request serves until shortly before the token expires.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use schemas::poll::PollAuth;

/// A token and when to stop using it.
#[derive(Clone)]
pub struct Cached {
    pub token: String,
    /// Renew from here on (before the partner's expiry, see [`renew_at`]).
    pub renew_at: Instant,
    /// An OAuth 2.0 refresh token the server rotated to, used instead of the
    /// configured one (kept in memory only: a restart starts from the configured one).
    pub refresh_token: Option<String>,
}

#[derive(Clone, Default)]
pub struct TokenCache {
    tokens: Arc<Mutex<HashMap<u64, Cached>>>,
    /// Serialises fetching per key, so concurrent requests fetch one token.
    fetching: Arc<tokio::sync::Mutex<()>>,
}

/// The cache key: the integration and its auth definition (a changed secret is a
/// new key, so the old token is not used for the new credentials).
pub fn key(owner: &str, auth: &PollAuth) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    owner.hash(&mut hasher);
    serde_json::to_string(auth)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

/// When a token that lives `lifetime` should be renewed: a fifth of its life or a
/// minute before it ends, whichever is sooner.
pub fn renew_at(now: Instant, lifetime: Duration) -> Instant {
    let margin = (lifetime / 5).min(Duration::from_secs(60));
    now + lifetime.saturating_sub(margin)
}

impl TokenCache {
    pub fn fresh(&self, key: u64) -> Option<Cached> {
        let tokens = self.lock();
        tokens
            .get(&key)
            .filter(|c| Instant::now() < c.renew_at)
            .cloned()
    }

    pub fn any(&self, key: u64) -> Option<Cached> {
        self.lock().get(&key).cloned()
    }

    pub fn put(&self, key: u64, cached: Cached) {
        self.lock().insert(key, cached);
    }

    /// Makes the token stale (kept for its refresh token).
    pub fn expire(&self, key: u64) {
        if let Some(cached) = self.lock().get_mut(&key) {
            cached.renew_at = Instant::now();
        }
    }

    /// The fresh token under `key`, or the one `fetch` gets (one fetch at a time,
    /// so requests waiting for a token share the one fetched first).
    pub async fn get_or_fetch(
        &self,
        key: u64,
        fetch: impl std::future::Future<Output = Result<Cached, String>>,
    ) -> Result<String, String> {
        if let Some(cached) = self.fresh(key) {
            return Ok(cached.token);
        }
        let _one_at_a_time = self.fetching.lock().await;
        if let Some(cached) = self.fresh(key) {
            return Ok(cached.token);
        }
        let cached = fetch.await?;
        let token = cached.token.clone();
        self.put(key, cached);
        Ok(token)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Cached>> {
        match self.tokens.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_before_expiry() {
        let now = Instant::now();
        assert_eq!(
            renew_at(now, Duration::from_secs(3600)),
            now + Duration::from_secs(3540)
        );
        assert_eq!(
            renew_at(now, Duration::from_secs(10)),
            now + Duration::from_secs(8)
        );
    }
}
