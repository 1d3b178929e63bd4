//! One shutdown signal for a process: SIGINT or SIGTERM, or a test dropping its
//! handle. Servers and consumer loops select on it to stop cleanly.

use tokio::sync::watch;

#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

impl Shutdown {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger { tx }, Shutdown { rx })
    }

    /// Triggered by Ctrl-C or SIGTERM.
    pub fn on_signals() -> Shutdown {
        let (trigger, shutdown) = Self::new();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received");
            trigger.trigger();
        });
        shutdown
    }

    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown was triggered (or every trigger was dropped).
    pub async fn wait(&mut self) {
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

/// How long a binary may take to stop after the signal before it exits anyway.
pub const STOP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// What a binary's `run` came to: its outcome, or `None` when it was still
/// stopping `deadline` after `shutdown`.
pub async fn outcome_within<E>(
    run: impl std::future::Future<Output = Result<(), E>>,
    mut shutdown: Shutdown,
    deadline: std::time::Duration,
) -> Option<Result<(), E>> {
    tokio::select! {
        outcome = run => Some(outcome),
        _ = async {
            shutdown.wait().await;
            tokio::time::sleep(deadline).await;
        } => None,
    }
}

/// Runs a binary's `run` and ends the process: status 0, or 1 with the error
/// printed as `main` would, or 1 when it is still stopping [`STOP_DEADLINE`] after
/// the signal. Without dropping the async runtime: a task still holding a Kafka
/// client drops it on the runtime's threads, and librdkafka's destroy can wait
/// forever for its broker threads (a release processor stopped with SIGTERM after
/// the history bench hung there, benches/README.md; confluentinc/librdkafka#4674).
/// What must be written is written before `run` returns, and what was not is read
/// again: the binaries survive kill -9.
pub async fn finish<E: std::fmt::Debug>(
    run: impl std::future::Future<Output = Result<(), E>>,
    shutdown: Shutdown,
) -> ! {
    let code = match outcome_within(run, shutdown, STOP_DEADLINE).await {
        Some(Ok(())) => 0,
        Some(Err(error)) => {
            eprintln!("Error: {error:?}");
            1
        }
        None => {
            tracing::error!(
                deadline_s = STOP_DEADLINE.as_secs(),
                "still stopping after the deadline: exiting without waiting"
            );
            1
        }
    };
    std::process::exit(code)
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_stop_that_hangs_ends_at_the_deadline_and_one_that_finishes_does_not() {
        let (trigger, shutdown) = Shutdown::new();
        trigger.trigger();
        let hung = outcome_within(
            std::future::pending::<Result<(), String>>(),
            shutdown.clone(),
            Duration::from_millis(50),
        )
        .await;
        assert!(hung.is_none());
        let done = outcome_within(
            async { Err::<(), _>("broken".to_owned()) },
            shutdown,
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(done, Some(Err("broken".to_owned())));
        // Before the signal there is no deadline.
        let (_trigger, quiet) = Shutdown::new();
        let running = tokio::time::timeout(
            Duration::from_millis(100),
            outcome_within(
                std::future::pending::<Result<(), ()>>(),
                quiet,
                Duration::ZERO,
            ),
        )
        .await;
        assert!(running.is_err(), "still running: no signal yet");
    }
}
