//! Kafka topic names. One prefix per deployment (or per test) keeps environments
//! sharing a broker apart; the suffixes are fixed so every binary agrees on them.

use serde::{Deserialize, Serialize};

/// The partition a keyed record goes to among `partitions`: librdkafka's default
/// partitioner (`consistent_random`: CRC-32 of the key modulo the partition count),
/// which every producer of the pipeline uses. The processor compares it with the
/// partition a record arrived in (`engine::batch::Batch::with_raw_partitions`);
/// an integration test checks it against librdkafka on the real broker.
pub fn partition_for(key: &[u8], partitions: i32) -> i32 {
    let count = u32::try_from(partitions.max(1)).unwrap_or(1);
    // The remainder is below `partitions`, an i32.
    i32::try_from(crc32fast::hash(key) % count).unwrap_or(0)
}

pub const RAW: &str = "calls.raw";
pub const ENRICHED: &str = "calls.enriched";
pub const DEAD_LETTER: &str = "calls.deadletter";
/// Compacted, keyed by client id: the source of truth every binary tails for
/// integration definitions (see `runtime::registry`).
pub const INTEGRATIONS: &str = "integrations.config";
/// Compacted, keyed by number: the numbers CallMatrix manages.
pub const CM_NUMBERS: &str = "callmatrix.numbers";
/// The calls CallMatrix routed itself, keyed by CmCall id.
pub const CM_CALLS: &str = "callmatrix.calls";
/// Compacted, keyed by client id: each polled integration's since-date.
pub const POLL_CURSORS: &str = "poll.cursors";
/// Compacted, keyed by client id: each polled integration's last run, as ingest saw it.
pub const POLL_STATUS: &str = "poll.status";
/// (account, hour) pairs whose calls changed, for the rollup worker. One partition,
/// so one worker recomputes them, in order.
pub const ROLLUP_DIRTY: &str = "rollup.dirty";
/// Raw records waiting for their call (a late field that overtook it), keyed as
/// in the raw topic; the processor's parking worker re-publishes each to the raw
/// topic when its delay is up (see `processor::parking`).
pub const PARKED: &str = "calls.parked";
/// Kafka header on a raw or parked record: how many times it was parked (decimal).
pub const PARKED_HEADER: &str = "cm-parked";
/// Kafka header on a parked record: when it is due again (Unix milliseconds).
pub const DUE_HEADER: &str = "cm-due-ms";
/// Kafka header marking a raw-topic message as a `RelinkRequest`, not an envelope.
pub const RELINK_HEADER: &str = "cm-relink";
/// Kafka header marking a raw-topic message as an erasure order
/// (`schemas::erasure::ErasureOrder`), sent under the caller's key so the
/// partition keeping the caller erases its keyed state in order with its records.
pub const ERASE_HEADER: &str = "cm-erase";
/// Kafka header marking a raw-topic message as a suppression lifted
/// (`schemas::suppression::SuppressionLift`), under the caller's key as an erasure
/// order is, so the caller's partition stops suppressing in order with its records.
pub const LIFT_HEADER: &str = "cm-lift-suppression";
/// Kafka header marking a raw-topic message as a CallMatrix call (`CmCall` with its
/// account), sent by the linker under its caller's key so the caller's partition
/// keeps it and links what it completes.
pub const CM_CALL_HEADER: &str = "cm-call";
/// Compacted, partitioned as the raw topic: the changelog of the processor's keyed
/// state (each raw partition's callers and calls), from which any instance restores
/// a partition it is given.
pub const STATE: &str = "processor.state";
/// How long the state changelog keeps a tombstone after compaction reached it
/// (`delete.retention.ms`, set on the topic by `cmctl topics`): a local copy of the
/// state caught up longer ago than this may have missed deletions (an erased
/// caller, an expired call) that compaction has since removed, so it is restored
/// from the start instead of from its checkpoint.
pub const STATE_DELETE_RETENTION_MS: u64 = 86_400_000;
/// Webhook deliveries the edge refused (a sample per integration), for their
/// owners (`schemas::refusal`). Kept as the topics carrying calls (`cmctl topics`).
pub const REFUSALS: &str = "ingest.refusals";
/// Ingest instances join its consumer group so Kafka assigns each polled
/// integration (by partition) to exactly one of them. Its only records are ticks
/// from instances holding no partition, so a stranded group shows as behind
/// (`ingest::poll::Leases`). Kept an hour.
pub const POLL_LEASES: &str = "poll.leases";
/// The audit trail (`schemas::audit`): one entry per change, copied into
/// ClickHouse's `audit_log` by the processor. Kept 30 days (`cmctl topics`); the
/// table is the record.
pub const AUDIT: &str = "audit.entries";
/// Compacted, keyed by a token's fingerprint: the api tokens the audit trail last
/// recorded (`schemas::audit::TokenGrant`), so an api that starts with a changed
/// tokens file records what changed. Holds no token.
pub const AUDIT_TOKENS: &str = "audit.tokens";
/// Compacted, keyed by account: each account's retention policy
/// (`schemas::retention`), set through the api, applied by the processor.
pub const RETENTION: &str = "privacy.retention";
/// Erasure orders (`schemas::erasure::ErasureOrder`) whose caller's keyed state is
/// erased, sent on by the pipeline for the erasure worker to carry out in
/// ClickHouse; keyed by erasure id; the worker then writes the key's tombstone:
/// compacted, and kept a day at most, since an order holds a number.
pub const ERASURES: &str = "privacy.erasures";
/// Compacted, keyed by account and caller hash: the suppression list
/// (`schemas::suppression`), written by the pipeline when it meets an erasure
/// asked with `suppress`, read by every processor.
pub const SUPPRESSIONS: &str = "privacy.suppressions";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topics {
    pub raw: String,
    pub enriched: String,
    pub dead_letter: String,
    pub integrations: String,
    pub cm_numbers: String,
    pub cm_calls: String,
    pub poll_cursors: String,
    pub poll_leases: String,
    pub rollup_dirty: String,
    pub poll_status: String,
    pub parked: String,
    pub state: String,
    pub refusals: String,
    pub audit: String,
    pub audit_tokens: String,
    pub retention: String,
    pub erasures: String,
    pub suppressions: String,
}

impl Topics {
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            raw: format!("{prefix}{RAW}"),
            enriched: format!("{prefix}{ENRICHED}"),
            dead_letter: format!("{prefix}{DEAD_LETTER}"),
            integrations: format!("{prefix}{INTEGRATIONS}"),
            cm_numbers: format!("{prefix}{CM_NUMBERS}"),
            cm_calls: format!("{prefix}{CM_CALLS}"),
            poll_cursors: format!("{prefix}{POLL_CURSORS}"),
            poll_leases: format!("{prefix}{POLL_LEASES}"),
            rollup_dirty: format!("{prefix}{ROLLUP_DIRTY}"),
            poll_status: format!("{prefix}{POLL_STATUS}"),
            parked: format!("{prefix}{PARKED}"),
            state: format!("{prefix}{STATE}"),
            refusals: format!("{prefix}{REFUSALS}"),
            audit: format!("{prefix}{AUDIT}"),
            audit_tokens: format!("{prefix}{AUDIT_TOKENS}"),
            retention: format!("{prefix}{RETENTION}"),
            erasures: format!("{prefix}{ERASURES}"),
            suppressions: format!("{prefix}{SUPPRESSIONS}"),
        }
    }

    /// The topics that carry callers' records (numbers, payloads as sent): deleted
    /// by one retention (`cmctl topics --retention-hours`, docs/privacy.md).
    pub fn carrying_calls(&self) -> [&str; 6] {
        [
            &self.raw,
            &self.enriched,
            &self.dead_letter,
            &self.parked,
            &self.cm_calls,
            &self.refusals,
        ]
    }

    pub fn all(&self) -> [&str; 18] {
        [
            &self.raw,
            &self.enriched,
            &self.dead_letter,
            &self.integrations,
            &self.cm_numbers,
            &self.cm_calls,
            &self.poll_cursors,
            &self.poll_leases,
            &self.rollup_dirty,
            &self.poll_status,
            &self.parked,
            &self.state,
            &self.refusals,
            &self.audit,
            &self.audit_tokens,
            &self.retention,
            &self.erasures,
            &self.suppressions,
        ]
    }
}
