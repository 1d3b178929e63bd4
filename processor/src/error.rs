//! The processor's error at its boundary (start-up and its workers' fatal errors).

use runtime::kafka::{ConsumerError, ProduceError};
use runtime::registry::RegistryError;
use runtime::table::TableError;

#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
    #[error(transparent)]
    Producer(#[from] ProduceError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(transparent)]
    Bind(#[from] runtime::http::BindError),
    #[error(transparent)]
    Telemetry(#[from] runtime::telemetry::TelemetryError),
    /// A worker gave up on a batch it could not write (the batch stays uncommitted
    /// and is read again when the worker starts again).
    #[error("stopped with a batch it could not write: {0}")]
    Stopped(String),
}

impl ProcessorError {
    /// `Ok` when the worker stopped because the process is shutting down; else the
    /// worker's error, for its supervisor (`runtime::workers`) to log and restart.
    pub fn unless_shutdown(
        shutdown: &runtime::shutdown::Shutdown,
        interrupted: crate::sink::Interrupted,
    ) -> Result<(), ProcessorError> {
        if shutdown.is_triggered() {
            Ok(())
        } else {
            Err(ProcessorError::Stopped(interrupted.last_error))
        }
    }
}
