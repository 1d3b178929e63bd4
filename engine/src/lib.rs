//! The engine: what the pipeline decides, apart from how records move.
//!
//! - `mapping`: partner record → canonical call (rules compiled once per
//!   integration version, coercions with per-field errors).
//! - `enrich`: per record (place, zone, qualification) and per batch (repeat
//!   callers over each caller's history, CallMatrix duplicates, status).
//! - `explain`: a stored call's decisions in words (the api's call story).
//! - `batch`: the processor's batch step as data in, data out: given raw records,
//!   their mappings, the stored calls and histories they need, it says what to
//!   write, publish, forward and dead-letter.
//! - `state`: what the processor keeps per caller (its calls in the retention
//!   window, its CallMatrix calls), and how it expires.
//!
//! Pure: no Kafka, no ClickHouse client, no async runtime in its dependency tree
//! (CI checks `cargo tree -p engine`). Everything here runs in unit tests without a
//! broker or a database; the processor is the IO shell around it.

pub mod batch;
pub mod enrich;
pub mod explain;
#[doc(hidden)]
pub mod fuzzing;
pub mod mapping;
pub mod state;
