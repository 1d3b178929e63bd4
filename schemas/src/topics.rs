//! Kafka topic names. One prefix per deployment (or per test) keeps environments
//! sharing a broker apart; the suffixes are fixed so every binary agrees on them.

use serde::{Deserialize, Serialize};

pub const RAW: &str = "calls.raw";
pub const ENRICHED: &str = "calls.enriched";
pub const DEAD_LETTER: &str = "calls.deadletter";
/// Compacted, keyed by client id: the source of truth every binary tails for
/// integration definitions (see `runtime::registry`).
pub const INTEGRATIONS: &str = "integrations.config";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topics {
    pub raw: String,
    pub enriched: String,
    pub dead_letter: String,
    pub integrations: String,
}

impl Topics {
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            raw: format!("{prefix}{RAW}"),
            enriched: format!("{prefix}{ENRICHED}"),
            dead_letter: format!("{prefix}{DEAD_LETTER}"),
            integrations: format!("{prefix}{INTEGRATIONS}"),
        }
    }

    pub fn all(&self) -> [&str; 4] {
        [
            &self.raw,
            &self.enriched,
            &self.dead_letter,
            &self.integrations,
        ]
    }
}
