//! The processor: raw topic → engine → ClickHouse → enriched topic → commit. The
//! IO shell around the `engine` crate, which decides everything about a record.
//!
//! Delivery: a raw offset is committed only after every record before it is either a
//! row in ClickHouse, a dead letter acknowledged by the dead-letter topic, or a record
//! parked to wait for its call (acknowledged by the parked topic), and its canonical
//! call was published. A crash anywhere replays from the last commit; call ids are
//! deterministic and `calls` is a ReplacingMergeTree, so a replay leaves one row.
//!
//! Modules, in the order data meets them (no module imports one above it):
//! `start` (wiring) → `pipeline`, `dead_letters`, `rollup`, `linker`, `parking` (the workers,
//! each consume → step → write → commit) → `store` (every ClickHouse read) and
//! `sink` (every write, retried) → `error`.

mod audit;
pub mod config;
mod dead_letters;
pub mod erasure;
mod erasure_orders;
mod error;
mod linker;
pub mod metric_names;
pub mod mutations;
mod ops;
mod parking;
mod pipeline;
pub mod retention;
mod rollup;
mod sink;
mod source_keys;
mod start;
pub mod state;
pub mod store;
mod suppressions;

pub use config::ProcessorConfig;
pub use error::ProcessorError;
pub use start::run;
