//! The read side: calls and dead letters from ClickHouse (`FINAL`, so every call
//! is one row however often it was delivered), and a live feed of new calls over
//! Server-Sent Events, tailing the enriched topic.

mod aggregates;
mod audit;
mod call_pages;
mod calls;
pub mod config;
mod dead_letters;
mod drift;
mod events;
mod filter;
#[doc(hidden)]
pub mod fuzzing;
mod integrations;
pub mod limits;
pub mod masking;
pub mod metric_names;
mod ops;
mod poll_test;
mod preview;
mod preview_decisions;
mod privacy;
mod query;
mod recent;
mod refusals;
mod replays;
mod server;
mod story;
mod token_audit;

pub use config::ApiConfig;
pub use server::{run, ApiError};
