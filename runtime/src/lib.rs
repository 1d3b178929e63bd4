//! What every binary runs on. Kafka is wrapped once here (producer that returns only
//! after the ack, consumers that never auto-commit), so delivery guarantees and
//! metrics are the same in ingest, processor and api.

pub mod access;
pub mod call_lookup;
pub mod clickhouse;
pub mod config;
pub mod crash_point;
pub mod fair;
pub mod host;
pub mod http;
pub mod kafka;
pub mod metric_names;
pub mod migrate;
pub mod registry;
pub mod replay;
pub mod retry;
pub mod shutdown;
pub mod table;
pub mod telemetry;
pub mod workers;
