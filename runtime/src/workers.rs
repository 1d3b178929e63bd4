//! The long-running workers of a binary, supervised, and what health says of them.
//!
//! A worker that ends while the process is not shutting down (an error it could not
//! retry past, or a panic) is logged at error level with its cause, counted
//! (`worker_restarts_total{worker}`), shown as `restarting` by `/healthz` (which then
//! answers 503), and started again after a backoff that doubles from 1 s to 60 s.
//! Every worker commits only after its writes, so a restart re-reads from the last
//! commit and loses nothing. A worker that restarted [`FLAPPING_AFTER`] times within
//! [`FLAPPING_WINDOW`] keeps health failing while it runs again, so an operator sees
//! a crash loop even between two of its crashes.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use serde::Serialize;

use crate::shutdown::Shutdown;

/// Restarts within [`FLAPPING_WINDOW`] that keep health failing.
pub const FLAPPING_AFTER: usize = 3;
pub const FLAPPING_WINDOW: Duration = Duration::from_secs(600);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A worker that ran this long without stopping starts its backoff again from 1 s.
const STEADY_AFTER: Duration = Duration::from_secs(300);

/// A worker's state as `/healthz` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum WorkerState {
    Running {
        restarts: usize,
    },
    /// Ended with `error`; starts again in `retry_in_s`.
    Restarting {
        error: String,
        retry_in_s: u64,
        restarts: usize,
    },
    /// Ended because the process is shutting down.
    Stopped,
}

#[derive(Debug)]
struct Worker {
    state: WorkerState,
    /// When it ended, most recent last, within the flapping window.
    ended_at: Vec<Instant>,
}

impl Worker {
    fn flapping(&self, now: Instant) -> bool {
        self.ended_at
            .iter()
            .filter(|at| now.duration_since(**at) < FLAPPING_WINDOW)
            .count()
            >= FLAPPING_AFTER
    }
}

/// The workers of one process. Cheap to clone; every clone sees the same workers.
#[derive(Clone, Default)]
pub struct Workers(Arc<Mutex<BTreeMap<&'static str, Worker>>>);

/// The health verdict on a process's workers.
#[derive(Debug, Clone, Serialize)]
pub struct WorkersHealth {
    pub healthy: bool,
    pub workers: BTreeMap<&'static str, WorkerState>,
    /// Workers that restarted [`FLAPPING_AFTER`] times or more lately.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flapping: Vec<&'static str>,
}

impl Workers {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Worker>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set(&self, name: &'static str, state: WorkerState) {
        let up = matches!(state, WorkerState::Running { .. });
        metrics::gauge!(crate::metric_names::WORKER_UP, "worker" => name).set(if up {
            1.0
        } else {
            0.0
        });
        self.lock()
            .entry(name)
            .or_insert_with(|| Worker {
                state: WorkerState::Stopped,
                ended_at: Vec::new(),
            })
            .state = state;
    }

    fn ended(&self, name: &'static str, now: Instant) -> usize {
        let mut workers = self.lock();
        let Some(worker) = workers.get_mut(name) else {
            return 0;
        };
        worker
            .ended_at
            .retain(|at| now.duration_since(*at) < FLAPPING_WINDOW);
        worker.ended_at.push(now);
        worker.ended_at.len()
    }

    /// Runs `start()` as worker `name` until `shutdown`, starting it again whenever
    /// it ends (with an error, without one, or by panicking) before then.
    pub fn supervise<F, Fut, E>(
        &self,
        name: &'static str,
        shutdown: Shutdown,
        mut start: F,
    ) -> tokio::task::JoinHandle<()>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let workers = self.clone();
        tokio::spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            let mut restarts = 0;
            loop {
                workers.set(name, WorkerState::Running { restarts });
                let started = Instant::now();
                let ended = std::panic::AssertUnwindSafe(start()).catch_unwind().await;
                if shutdown.is_triggered() {
                    workers.set(name, WorkerState::Stopped);
                    return;
                }
                let error = match ended {
                    Ok(Ok(())) => "ended without an error while the process runs".to_owned(),
                    Ok(Err(error)) => error.to_string(),
                    Err(panic) => format!("panicked: {}", panic_text(&panic)),
                };
                if started.elapsed() >= STEADY_AFTER {
                    backoff = FIRST_BACKOFF;
                }
                restarts += 1;
                let recent = workers.ended(name, Instant::now());
                tracing::error!(worker = name, %error, restarts, recent, retry_in_s = backoff.as_secs(), "worker stopped; starting it again");
                metrics::counter!(crate::metric_names::WORKER_RESTARTS_TOTAL, "worker" => name)
                    .increment(1);
                workers.set(
                    name,
                    WorkerState::Restarting {
                        error,
                        retry_in_s: backoff.as_secs(),
                        restarts,
                    },
                );
                let mut stop = shutdown.clone();
                tokio::select! {
                    _ = stop.wait() => {
                        workers.set(name, WorkerState::Stopped);
                        return;
                    }
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        })
    }

    /// Healthy when every worker runs and none is flapping. A process shutting
    /// down (workers `stopped`) is not healthy either.
    pub fn health(&self) -> WorkersHealth {
        let now = Instant::now();
        let workers = self.lock();
        let flapping: Vec<&'static str> = workers
            .iter()
            .filter(|(_, w)| w.flapping(now))
            .map(|(name, _)| *name)
            .collect();
        let healthy = flapping.is_empty()
            && workers
                .values()
                .all(|w| matches!(w.state, WorkerState::Running { .. }));
        WorkersHealth {
            healthy,
            workers: workers.iter().map(|(n, w)| (*n, w.state.clone())).collect(),
            flapping,
        }
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_worker_that_fails_is_restarting_then_runs_again() {
        let workers = Workers::default();
        let (trigger, shutdown) = Shutdown::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        workers.supervise("pipeline", shutdown.clone(), move || {
            let run = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if run == 0 {
                    Err("the broker refused a message for good".to_owned())
                } else {
                    std::future::pending::<Result<(), String>>().await
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let health = workers.health();
        assert!(!health.healthy, "{health:?}");
        match &health.workers["pipeline"] {
            WorkerState::Restarting {
                error, restarts, ..
            } => {
                assert!(error.contains("refused"), "{error}");
                assert_eq!(*restarts, 1);
            }
            other => panic!("{other:?}"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(workers.health().healthy, "{:?}", workers.health());
        trigger.trigger();
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_worker_is_caught_and_a_crash_loop_keeps_health_failing() {
        let workers = Workers::default();
        let (_trigger, shutdown) = Shutdown::new();
        workers.supervise("rollup", shutdown, || async {
            if true {
                panic!("bad row");
            }
            Ok::<(), String>(())
        });
        // Backoffs 1 + 2 + 4 s: three restarts within ten minutes.
        tokio::time::sleep(Duration::from_secs(8)).await;
        let health = workers.health();
        assert!(!health.healthy);
        assert_eq!(health.flapping, ["rollup"]);
        match &health.workers["rollup"] {
            WorkerState::Restarting { error, .. } => assert!(error.contains("bad row"), "{error}"),
            WorkerState::Running { restarts } => assert!(*restarts >= 3),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_worker_ended_by_shutdown_is_stopped_not_restarted() {
        let workers = Workers::default();
        let (trigger, shutdown) = Shutdown::new();
        let stop = shutdown.clone();
        let handle = workers.supervise("linker", shutdown, move || {
            let mut stop = stop.clone();
            async move {
                stop.wait().await;
                Ok::<(), String>(())
            }
        });
        tokio::task::yield_now().await;
        assert!(workers.health().healthy);
        trigger.trigger();
        handle.await.unwrap();
        assert_eq!(workers.health().workers["linker"], WorkerState::Stopped);
    }
}
