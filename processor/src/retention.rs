//! The retention worker (`schemas::retention`): every `retention.interval_s`, for
//! each account with a policy, removes personal fields of calls older than the
//! policy's days and deletes dead letters older than its days, then records the run
//! in `retention_runs`. Counts, money, times and statuses are left as they are, so
//! the rollups and every aggregate keep their numbers.
//!
//! What a run does for an account (ClickHouse 18.16 has mutations, not row TTLs
//! per account):
//! - `calls`: `ALTER TABLE … UPDATE caller = <hash>, zip = '', city = ''` for calls
//!   started before the cutoff whose caller is not hashed yet (a mutation rewrites
//!   every version of those rows; a key column is not touched);
//! - `calls_by_caller` and `cm_calls` (the caller is in their sorting key, which a
//!   mutation cannot change): the same rows inserted again with the hash, then the
//!   unhashed ones deleted;
//! - `dead_letters`: deleted when they failed before the dead-letter cutoff;
//! - it waits for the mutations to finish (`retention.mutation_wait_s`), so the next
//!   run does not start them again, and a run that was cut short says so.
//!
//! Every statement selects only rows not yet changed, so a run after a crash, or
//! two processors running it, change nothing twice. The hash is the same for the
//! same number (a keyed SHA-256), so an account's old calls of one caller still
//! match each other. On a ClickHouse cluster the mutations change the shard tables
//! on every shard (`crate::mutations`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use runtime::clickhouse::string_list;
use runtime::shutdown::Shutdown;
use runtime::table::CompactedTable;
use schemas::retention::{hashed_sql, CallerAction, RetentionPolicy, RetentionRun, HASH_PREFIX};

use crate::config::RetentionConfig;
use crate::error::ProcessorError;
use crate::mutations::Mutations;
use crate::sink::{insert, BatchSink};

pub async fn run(
    kafka: &runtime::kafka::KafkaConfig,
    sink: &BatchSink,
    config: &RetentionConfig,
    target: &Mutations,
    shutdown: Shutdown,
) -> Result<(), ProcessorError> {
    let policies: CompactedTable<RetentionPolicy> = CompactedTable::start(
        kafka,
        &kafka.topics().retention,
        "retention-policies",
        Duration::from_secs(30),
        shutdown.clone(),
        runtime::table::json,
    )
    .await?;
    let mut stop = shutdown.clone();
    loop {
        for policy in policies.values() {
            if policy.personal_days.is_none() && policy.dead_letter_days.is_none() {
                continue;
            }
            let started = Utc::now();
            let result = apply(target, &policy, config, started).await;
            let record = run_record(&policy, started, result);
            let written = sink
                .retry("record a retention run", &shutdown, || {
                    insert(
                        &sink.clickhouse,
                        "retention_runs",
                        std::slice::from_ref(&record),
                    )
                })
                .await;
            if let Err(interrupted) = written {
                return ProcessorError::unless_shutdown(&shutdown, interrupted);
            }
        }
        tokio::select! {
            _ = stop.wait() => break,
            _ = tokio::time::sleep(Duration::from_secs(config.interval_s)) => {}
        }
    }
    Ok(())
}

/// One account's run now, recorded in `retention_runs` (what `cmctl retention`
/// does; the worker runs the same per policy).
pub async fn run_once(
    target: &Mutations,
    policy: &RetentionPolicy,
    config: &RetentionConfig,
) -> Result<RetentionRun, clickhouse::error::Error> {
    let started = Utc::now();
    let record = run_record(
        policy,
        started,
        apply(target, policy, config, started).await,
    );
    insert(
        target.client(),
        "retention_runs",
        std::slice::from_ref(&record),
    )
    .await?;
    Ok(record)
}

/// The `retention_runs` row of a run that started at `started` and ended as `result` says.
fn run_record(
    policy: &RetentionPolicy,
    started: DateTime<Utc>,
    result: Result<(u64, u64, String), String>,
) -> RetentionRun {
    let (calls_changed, dead_letters_deleted, outcome) = match result {
        Ok(done) => done,
        Err(problem) => {
            tracing::error!(account = %policy.account, %problem, "retention run failed");
            (0, 0, problem)
        }
    };
    let cutoff = |days: Option<u32>| {
        days.map_or(0, |d| {
            u32::try_from((started - chrono::Duration::days(i64::from(d))).timestamp())
                .unwrap_or_default()
        })
    };
    let label = if outcome == "done" { "done" } else { "failed" };
    metrics::counter!(crate::metric_names::RETENTION_RUNS_TOTAL, "outcome" => label).increment(1);
    tracing::info!(account = %policy.account, calls_changed, dead_letters_deleted, %outcome, "retention run");
    RetentionRun {
        account: policy.account.clone(),
        started_at: schemas::call::to_whole_seconds(started),
        finished_at: schemas::call::to_whole_seconds(Utc::now()),
        personal_cutoff: cutoff(policy.personal_days),
        dead_letter_cutoff: cutoff(policy.dead_letter_days),
        calls_changed,
        dead_letters_deleted,
        outcome,
    }
}

/// The rows of `table` matching `condition`; the query is kept in `left`, for the
/// wait to ask again until it reads 0.
async fn count(
    client: &clickhouse::Client,
    table: &str,
    condition: &str,
    left: &mut Vec<String>,
) -> Result<u64, clickhouse::error::Error> {
    let query = format!("SELECT count() FROM {table} WHERE {condition}");
    let rows = client.query(&query).fetch_one::<u64>().await?;
    left.push(query);
    Ok(rows)
}

/// One account's run: (call rows changed, dead letters deleted, outcome).
async fn apply(
    target: &Mutations,
    policy: &RetentionPolicy,
    config: &RetentionConfig,
    now: DateTime<Utc>,
) -> Result<(u64, u64, String), String> {
    let client = target.client();
    let mut left = Vec::new();
    let account = string_list([policy.account.as_str()]);
    let failed = |what: &str, e: clickhouse::error::Error| format!("{what}: {e}");
    let mut calls_changed = 0;
    let mut outcome = "done".to_owned();
    if let Some(days) = policy.personal_days {
        let cutoff = (now - chrono::Duration::days(i64::from(days))).timestamp();
        let caller = match policy.caller {
            CallerAction::Hash if config.hash_key.is_empty() => None,
            CallerAction::Hash => Some(hashed_sql(
                "caller",
                &string_list([config.hash_key.as_str()]),
            )),
            CallerAction::Nullify => Some(format!("'{HASH_PREFIX}'")),
        };
        match caller {
            None => {
                outcome = "callers not hashed: retention.hash_key is not set".to_owned();
            }
            Some(replacement) => {
                let pending = format!(
                    "account = {account} AND started_at < toDateTime({cutoff}) AND caller != '' \
                     AND NOT startsWith(caller, '{HASH_PREFIX}')"
                );
                calls_changed = count(client, "calls", &pending, &mut left)
                    .await
                    .map_err(|e| failed("counting calls", e))?;
                if calls_changed > 0 {
                    target
                        .start(
                            "calls",
                            &format!(
                                "UPDATE caller = {replacement}, zip = '', city = '' WHERE {pending}"
                            ),
                        )
                        .await
                        .map_err(|e| failed("changing calls", e))?;
                    rekey_callers(target, "calls_by_caller", &pending, &replacement)
                        .await
                        .map_err(|e| failed("changing calls", e))?;
                }
                // CallMatrix's own calls on the account's numbers: the same columns
                // and condition.
                let cm_rows = count(client, "cm_calls", &pending, &mut left)
                    .await
                    .map_err(|e| failed("counting CallMatrix calls", e))?;
                left.push(format!(
                    "SELECT count() FROM calls_by_caller WHERE {pending}"
                ));
                if cm_rows > 0 {
                    rekey_callers(target, "cm_calls", &pending, &replacement)
                        .await
                        .map_err(|e| failed("changing CallMatrix calls", e))?;
                }
            }
        }
    }
    let mut letters = 0;
    if let Some(days) = policy.dead_letter_days {
        let cutoff = (now - chrono::Duration::days(i64::from(days))).timestamp();
        let old = format!("account = {account} AND failed_at < toDateTime({cutoff})");
        letters = count(client, "dead_letters", &old, &mut left)
            .await
            .map_err(|e| failed("counting dead letters", e))?;
        if letters > 0 {
            target
                .start("dead_letters", &format!("DELETE WHERE {old}"))
                .await
                .map_err(|e| failed("deleting dead letters", e))?;
        }
    }
    if !target
        .wait(Duration::from_secs(config.mutation_wait_s), &left)
        .await
    {
        outcome = format!(
            "mutations still running after {} s (retention.mutation_wait_s); the next run finishes them",
            config.mutation_wait_s
        );
    }
    metrics::counter!(crate::metric_names::RETENTION_ROWS_CHANGED_TOTAL, "table" => "calls")
        .increment(calls_changed);
    metrics::counter!(crate::metric_names::RETENTION_ROWS_CHANGED_TOTAL, "table" => "dead_letters")
        .increment(letters);
    Ok((calls_changed, letters, outcome))
}

/// The columns of the tables whose sorting key holds the caller, with the caller's
/// place marked: a mutation cannot change a key column, so their rows are inserted
/// again with the new caller and the old ones deleted.
const CALLER_KEYED: &[(&str, &str)] = &[
    (
        "calls_by_caller",
        "account, {caller}, id, version, client_id, started_at, campaign, buyer, duration_s, \
         connected_duration_s, connected, qualified, repeat_of",
    ),
    (
        "cm_calls",
        "cm_call_id, {caller}, called, started_at, duration_s, payout, received_at, account",
    ),
];

/// Replaces the caller of `table`'s rows matching `condition` by `replacement` (an
/// SQL expression of the row): inserted again, by position, with the replacement
/// under an alias of its own (an alias named `caller` would be what the WHERE
/// reads, and no row would be copied), then the old rows deleted. Shared by
/// retention and erasure (`crate::erasure`).
pub(crate) async fn rekey_callers(
    target: &Mutations,
    table: &str,
    condition: &str,
    replacement: &str,
) -> Result<(), clickhouse::error::Error> {
    let columns = CALLER_KEYED
        .iter()
        .find(|(name, _)| *name == table)
        .map(|(_, columns)| columns.replace("{caller}", &format!("{replacement} AS new_caller")))
        .unwrap_or_default();
    // On a cluster through the `Distributed` table: each row goes to the shard its
    // new key picks, before the statement returns (`insert_distributed_sync`).
    target
        .client()
        .query(&format!(
            "INSERT INTO {table} SELECT {columns} FROM {table} WHERE {condition}"
        ))
        .execute()
        .await?;
    target
        .start(table, &format!("DELETE WHERE {condition}"))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_never_prints() {
        let config = RetentionConfig {
            hash_key: "a-secret-key-of-the-deployment".into(),
            ..RetentionConfig::default()
        };
        assert!(!format!("{config:?}").contains("a-secret"));
    }
}
