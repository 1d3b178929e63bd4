//! Token role changes in the audit trail (issue 36). Tokens live in the api's tokens
//! file (`auth.tokens_file`), not behind a route: a role changes when an operator
//! edits the file and restarts the api. So at start-up the api compares the tokens
//! it was given with the ones the audit trail recorded last (the compacted topic
//! `audit.tokens`, by fingerprint), writes an entry for each token added, changed
//! (role, account or name) or removed (`schemas::audit::token_changes`), then
//! records the new set. Who: the tokens file on this host. Never a token: entries
//! and the topic name a token by its identity and a SHA-256 fingerprint.
//!
//! Instances started together with the same new file may each record the same
//! change: they write the same entries (ids from the recording's generation, the
//! token and the action: `schemas::audit::token_changes`), which the trail shows
//! once (`GET /api/audit` reads one row per id). An entry that cannot be written is
//! logged and retried at the next start (the recorded set is updated only after the
//! entries).

use std::collections::BTreeMap;
use std::time::Duration;

use runtime::access::Tokens;
use runtime::kafka::KafkaConfig;
use runtime::shutdown::Shutdown;
use runtime::table::CompactedTable;
use schemas::audit::{token_changes, Actor, TokenGrant};

use crate::audit::Auditor;

/// Records what changed in the tokens file since the audit trail last saw it.
/// Returns how many entries it wrote.
pub async fn record_changes(
    kafka: &KafkaConfig,
    tokens: &Tokens,
    tokens_file: &str,
    audit: &Auditor,
    load_within: Duration,
) -> Result<usize, crate::server::ApiError> {
    if tokens.is_open() {
        // No tokens file (local use): nothing to compare, and nothing was removed.
        return Ok(0);
    }
    let topic = kafka.topics().audit_tokens;
    // Read once, at start-up: the table stops tailing the topic when this returns
    // (its shutdown's trigger is dropped).
    let (_stop_reading, reading) = Shutdown::new();
    let recorded: CompactedTable<TokenGrant> = CompactedTable::start(
        kafka,
        &topic,
        "audit-tokens",
        load_within,
        reading,
        runtime::table::json,
    )
    .await?;
    let before: BTreeMap<String, TokenGrant> = recorded
        .values()
        .iter()
        .map(|g| (g.fingerprint.clone(), (**g).clone()))
        .collect();
    let now = tokens.grants();
    let entries = token_changes(&before, &now, &file_actor(tokens_file));
    let generation = schemas::audit::next_token_generation(&before);
    if entries.is_empty() {
        return Ok(0);
    }
    let written = entries.len();
    for entry in entries {
        if let Err(problem) = audit.write_entry(entry).await {
            tracing::error!(error = %problem.message, "a token change was not recorded in the audit trail; it is tried again at the next start");
            return Ok(0);
        }
    }
    // The audit trail's own producer: no second connection for one start-up write.
    let producer = &audit.producer;
    let pairs: Vec<(String, Vec<u8>)> = now
        .iter()
        .map(|g| {
            let recorded = TokenGrant {
                generation,
                ..g.clone()
            };
            (
                g.fingerprint.clone(),
                serde_json::to_vec(&recorded).unwrap_or_default(),
            )
        })
        .collect();
    producer.send_pairs(&topic, &pairs).await?;
    for gone in before
        .keys()
        .filter(|f| !now.iter().any(|g| g.fingerprint == **f))
    {
        producer.send_tombstone(&topic, gone.as_bytes()).await?;
    }
    tracing::info!(
        entries = written,
        "token changes recorded in the audit trail"
    );
    Ok(written)
}

/// The tokens file as the one who changed the tokens: its path and this host.
fn file_actor(path: &str) -> Actor {
    Actor {
        name: format!("tokens file {path}"),
        role: "config".into(),
        from: runtime::host::name(),
    }
}
