//! One way to try again: exponential backoff with jitter, and whether to try again
//! at all is the error's to say ([`Retryable`]), never a guess from its text. Used
//! by the processor's writes and reads and by ingest's poll requests.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use crate::shutdown::Shutdown;

/// What an error says about trying again.
pub trait Retryable: Display {
    /// Whether the same attempt may succeed later (a broker or database that is
    /// down, slow or busy), as opposed to one that fails whatever happens.
    fn is_transient(&self) -> bool;

    /// A wait the error itself asks for (a 429's `Retry-After`); the backoff's
    /// otherwise.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

impl Retryable for crate::kafka::ProduceError {
    fn is_transient(&self) -> bool {
        crate::kafka::ProduceError::is_transient(self)
    }
}

/// ClickHouse: the server or the network failing (an error answer included: a
/// server that is starting, out of memory or has too many parts) is worth another
/// try; a row that does not decode into its type will not decode later either.
impl Retryable for clickhouse::error::Error {
    fn is_transient(&self) -> bool {
        use clickhouse::error::Error;
        matches!(
            self,
            Error::Network(_)
                | Error::TimedOut
                | Error::BadResponse(_)
                | Error::Compression(_)
                | Error::Decompression(_)
                | Error::Other(_)
        )
    }
}

/// How to try again.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Named in logs and in the `retries_total{what}` counter.
    pub what: &'static str,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Attempts in all, the first included; `None`: until it succeeds, fails for
    /// good, or the process stops.
    pub max_attempts: Option<u32>,
}

impl RetryPolicy {
    /// Until it succeeds or the process stops: what a write that must happen does.
    pub fn forever(what: &'static str, max_backoff: Duration) -> Self {
        Self {
            what,
            first_backoff: Duration::from_millis(100),
            max_backoff,
            max_attempts: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RetryError<E: Display> {
    #[error("{what}: stopped while retrying; last error: {last}")]
    Interrupted { what: &'static str, last: E },
    #[error("{what}: {error}")]
    Failed { what: &'static str, error: E },
    #[error("{what}: gave up after {attempts} attempts: {last}")]
    Exhausted {
        what: &'static str,
        attempts: u32,
        last: E,
    },
}

impl<E: Display> RetryError<E> {
    /// The error that ended the attempts.
    pub fn into_last(self) -> E {
        match self {
            Self::Interrupted { last, .. }
            | Self::Failed { error: last, .. }
            | Self::Exhausted { last, .. } => last,
        }
    }
}

/// Exponential backoff, doubling up to a ceiling, each wait jittered to 50–150 % so
/// instances retrying together spread out.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self { next: first, max }
    }

    pub fn next_delay(&mut self) -> Duration {
        let delay = jitter(self.next);
        self.next = (self.next * 2).min(self.max);
        delay
    }
}

/// 50 % to 150 % of `wait`.
pub fn jitter(wait: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    wait.mul_f64(0.5 + f64::from(nanos % 1000) / 1000.0)
}

/// Runs `attempt` until it succeeds, fails for good (a non-transient error), runs
/// out of attempts, or `shutdown` fires during a wait.
pub async fn retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    shutdown: Option<&Shutdown>,
    mut attempt: F,
) -> Result<T, RetryError<E>>
where
    E: Retryable,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::new(policy.first_backoff, policy.max_backoff);
    let mut attempts = 0_u32;
    loop {
        attempts += 1;
        let error = match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let what = policy.what;
        if !error.is_transient() {
            return Err(RetryError::Failed { what, error });
        }
        if policy.max_attempts.is_some_and(|max| attempts >= max) {
            return Err(RetryError::Exhausted {
                what,
                attempts,
                last: error,
            });
        }
        let wait = error.retry_after().unwrap_or_else(|| backoff.next_delay());
        metrics::counter!(crate::metric_names::RETRIES_TOTAL, "what" => what).increment(1);
        tracing::warn!(%error, what, retry_in_ms = wait.as_millis() as u64, "failed; retrying");
        match shutdown {
            Some(shutdown) if shutdown.is_triggered() => {
                return Err(RetryError::Interrupted { what, last: error })
            }
            Some(shutdown) => {
                let mut waiter = shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = waiter.wait() => return Err(RetryError::Interrupted { what, last: error }),
                }
            }
            None => tokio::time::sleep(wait).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Flaky {
        transient: bool,
        wait: Option<Duration>,
    }

    impl Display for Flaky {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "flaky(transient={})", self.transient)
        }
    }

    impl Retryable for Flaky {
        fn is_transient(&self) -> bool {
            self.transient
        }
        fn retry_after(&self) -> Option<Duration> {
            self.wait
        }
    }

    fn policy(max_attempts: Option<u32>) -> RetryPolicy {
        RetryPolicy {
            what: "test",
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            max_attempts,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_until_success() {
        let mut calls = 0;
        let result: Result<u32, RetryError<Flaky>> = retry(&policy(None), None, || {
            calls += 1;
            let n = calls;
            async move {
                if n < 4 {
                    Err(Flaky {
                        transient: true,
                        wait: None,
                    })
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_error_ends_at_once_and_attempts_are_bounded() {
        let mut calls = 0;
        let result: Result<(), _> = retry(&policy(None), None, || {
            calls += 1;
            async {
                Err(Flaky {
                    transient: false,
                    wait: None,
                })
            }
        })
        .await;
        assert!(matches!(result, Err(RetryError::Failed { .. })));
        assert_eq!(calls, 1);
        let mut calls = 0;
        let result: Result<(), _> = retry(&policy(Some(3)), None, || {
            calls += 1;
            async {
                Err(Flaky {
                    transient: true,
                    wait: None,
                })
            }
        })
        .await;
        assert!(matches!(
            result,
            Err(RetryError::Exhausted { attempts: 3, .. })
        ));
        assert_eq!(calls, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_errors_own_wait_wins_and_shutdown_interrupts() {
        let started = tokio::time::Instant::now();
        let mut calls = 0;
        let _: Result<u8, RetryError<Flaky>> = retry(&policy(Some(2)), None, || {
            calls += 1;
            async {
                Err(Flaky {
                    transient: true,
                    wait: Some(Duration::from_secs(7)),
                })
            }
        })
        .await;
        assert_eq!(started.elapsed(), Duration::from_secs(7));
        let (trigger, shutdown) = Shutdown::new();
        trigger.trigger();
        let result: Result<(), _> = retry(&policy(None), Some(&shutdown), || async {
            Err(Flaky {
                transient: true,
                wait: None,
            })
        })
        .await;
        assert!(matches!(result, Err(RetryError::Interrupted { .. })));
    }

    #[test]
    fn backoff_doubles_to_its_ceiling_with_jitter() {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        for expected in [500_u64, 1000, 2000, 4000, 8000, 16000, 30000, 30000] {
            let delay = backoff.next_delay().as_millis() as u64;
            assert!(
                delay >= expected / 2 && delay <= expected * 3 / 2,
                "{delay} for {expected}"
            );
        }
    }
}
