//! The processor: raw topic → mapping → ClickHouse → enriched topic → commit.
//!
//! Delivery: a raw offset is committed only after every record before it is either a
//! row in ClickHouse or a dead letter acknowledged by the dead-letter topic, and its canonical
//! call was published. A crash anywhere replays from the last commit; call ids are
//! deterministic and `calls` is a ReplacingMergeTree, so a replay leaves one row.

pub mod config;
mod dead_letters;
pub mod enrich;
pub mod mapping;
mod ops;
mod pipeline;
mod rollup;
mod sink;

pub use config::ProcessorConfig;
pub use pipeline::{run, ProcessorError};
