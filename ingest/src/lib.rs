//! The ingest edge. A webhook is answered 2xx only after the broker acknowledged
//! every accepted record (acks=all, idempotent producer); records it cannot read
//! go to the dead-letter topic with their position and reason.

pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod imports;
pub mod limits;
pub mod metric_names;
pub mod outbound;
pub mod poll;
mod server;
pub mod webhook;

pub use config::IngestConfig;
pub use server::{run, IngestError};
