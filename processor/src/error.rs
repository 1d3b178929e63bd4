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
}
