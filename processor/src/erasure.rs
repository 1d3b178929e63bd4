//! Erasing one caller of one account from ClickHouse (`schemas::erasure`), run by
//! the processor's erasure worker (`crate::erasure_orders`) with the writer's
//! credentials, once the caller's partition has erased its keyed state (orders from
//! the api and from `cmctl privacy erase` alike). What a run does:
//!
//! - `calls`: `ALTER TABLE … UPDATE` the caller to the erasure's token, the ZIP,
//!   city and state emptied, and every spelling of the number cut out of the
//!   warnings and the custom attributes' values, for the account's calls of that
//!   caller (every version of them);
//! - `calls_by_caller` and `cm_calls` (the caller is in their sorting key): the
//!   same rows inserted again with the token, then the old ones deleted;
//! - `calls_by_time`: spellings cut out of the attributes' values of the account's
//!   rows that hold one (it has no caller column);
//! - `dead_letters`: spellings cut out of the payload, the reason and the errors
//!   of the account's letters that hold one (the letter stays, so a replay of it is
//!   still possible; the number it needs is gone);
//! - it waits for the mutations (and until no row holds the number), then writes
//!   the receipt (`erasures`).
//!
//! On a ClickHouse cluster the mutations change the shard tables on every shard
//! (`crate::mutations`); the counts and re-inserts go through the `Distributed`
//! tables.
//!
//! Every statement selects only rows that still hold the number, so a run again
//! after a crash or a timeout finishes the work and changes nothing twice. Records
//! of the caller that arrive later are stored as usual (an erasure is not a block
//! list). Not done here (docs/privacy.md): the topics, the processor's keyed state
//! and the api's recent payloads keep the number until their own retention.

use std::time::Duration;

use chrono::Utc;
use runtime::clickhouse::string_list;
use schemas::erasure::{erased_caller, spelling_pattern, spelling_replacement, ErasureReceipt};
use uuid::Uuid;

use crate::mutations::Mutations;
use crate::sink::insert;

#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error("{0:?} is not a phone number in E.164 form")]
    NotANumber(String),
    #[error("{what}: {source}")]
    ClickHouse {
        what: &'static str,
        source: clickhouse::error::Error,
    },
}

/// ClickHouse down or busy is worth another try (`sink::retry`); a number that is
/// not one never will be, nor a statement ClickHouse cannot run as written (a
/// mutation of a `Distributed` table when `clickhouse.cluster` is not set, an
/// unknown table or column): the order then gets a receipt saying why instead of
/// being retried for ever.
impl runtime::retry::Retryable for ErasureError {
    fn is_transient(&self) -> bool {
        match self {
            Self::NotANumber(_) => false,
            Self::ClickHouse { source, .. } => {
                source.is_transient() && !cannot_run_as_written(&source.to_string())
            }
        }
    }
}

/// ClickHouse's error codes for a statement that will fail the same way every time:
/// 47 unknown identifier, 48 not implemented ("Mutations are not supported by
/// storage Distributed"), 60 unknown table, 62 syntax error.
fn cannot_run_as_written(message: &str) -> bool {
    ["Code: 47,", "Code: 48,", "Code: 60,", "Code: 62,"]
        .iter()
        .any(|code| message.contains(code))
}

/// The longest retention of the topics that carry calls, for an erasure's receipt
/// (`schemas::erasure::topics_clear_by`): `None` when one keeps records for ever or
/// the broker could not be asked (logged).
pub async fn topics_retention(kafka: &runtime::kafka::KafkaConfig) -> Option<Duration> {
    let topics = kafka.topics();
    match runtime::kafka::longest_retention(kafka, &topics.carrying_calls()).await {
        Ok(Some(retention)) => Some(retention),
        Ok(None) => {
            tracing::warn!("a topic carrying calls keeps records for ever: run `cmctl topics` to give it its retention (docs/privacy.md)");
            None
        }
        Err(error) => {
            tracing::warn!(%error, "the topics' retention could not be read; the erasure's receipt says their clearing time is not known");
            None
        }
    }
}

/// Erases `number` (E.164) of `account`, waiting up to `wait` for the mutations,
/// and records the receipt. `id` names the erasure: give the same one to finish
/// an earlier run (the caller's token stays the same). `topics_retention`
/// ([`topics_retention`]) dates when the topics will be clear of the caller.
pub async fn erase(
    target: &Mutations,
    id: Uuid,
    account: &str,
    number: &str,
    requested_by: &str,
    wait: Duration,
    topics_retention: Option<Duration>,
) -> Result<ErasureReceipt, ErasureError> {
    let pattern =
        spelling_pattern(number).ok_or_else(|| ErasureError::NotANumber(number.to_owned()))?;
    let started_at = schemas::call::to_whole_seconds(Utc::now());
    let account_sql = string_list([account]);
    let caller = string_list([number]);
    let token = string_list([erased_caller(id).as_str()]);
    let pattern = string_list([pattern.as_str()]);
    let replacement = string_list([spelling_replacement().as_str()]);
    let scrub = |column: &str| format!("replaceRegexpAll({column}, {pattern}, {replacement})");
    let scrub_all = |column: &str| {
        format!("arrayMap(v -> replaceRegexpAll(v, {pattern}, {replacement}), {column})")
    };
    let holds = |column: &str| format!("arrayExists(v -> match(v, {pattern}), {column})");
    let of_caller = format!("account = {account_sql} AND caller = {caller}");
    let client = target.client();

    let mutate = |what: &'static str, table: &'static str, change: String| async move {
        target
            .start(table, &change)
            .await
            .map_err(|source| ErasureError::ClickHouse { what, source })
    };
    // Each count of the rows holding the number is asked again at the end: done
    // when every one reads 0 (`Mutations::wait`).
    let mut left: Vec<String> = Vec::new();
    let mut count = |what: &'static str, table: &str, condition: &str| {
        let sql = format!("SELECT count() FROM {table} WHERE {condition}");
        left.push(sql.clone());
        async move {
            client
                .query(&sql)
                .fetch_one::<u64>()
                .await
                .map_err(|source| ErasureError::ClickHouse { what, source })
        }
    };

    let mut places = Vec::new();
    let mut rows = Vec::new();

    let calls = count("counting the caller's calls", "calls", &of_caller).await?;
    if calls > 0 {
        mutate(
            "erasing the caller in calls",
            "calls",
            format!(
                "UPDATE caller = {token}, zip = '', city = '', state = '', \
                 warnings = {}, attr_values = {} WHERE {of_caller}",
                scrub_all("warnings"),
                scrub_all("attr_values")
            ),
        )
        .await?;
    }
    places.push("calls".to_owned());
    rows.push(calls);

    let by_caller = count(
        "counting the caller's index rows",
        "calls_by_caller",
        &of_caller,
    )
    .await?;
    let cm_calls = count(
        "counting the caller's CallMatrix calls",
        "cm_calls",
        &of_caller,
    )
    .await?;
    for (table, found) in [("calls_by_caller", by_caller), ("cm_calls", cm_calls)] {
        if found > 0 {
            crate::retention::rekey_callers(target, table, &of_caller, &token)
                .await
                .map_err(|source| ErasureError::ClickHouse {
                    what: "re-keying the caller's rows",
                    source,
                })?;
        }
    }
    places.push("calls_by_caller".to_owned());
    rows.push(by_caller);
    places.push("cm_calls".to_owned());
    rows.push(cm_calls);

    let by_time_holds = format!("account = {account_sql} AND {}", holds("attr_values"));
    let by_time = count(
        "counting attributes that hold the number",
        "calls_by_time",
        &by_time_holds,
    )
    .await?;
    if by_time > 0 {
        mutate(
            "erasing the number from calls_by_time's attributes",
            "calls_by_time",
            format!(
                "UPDATE attr_values = {} WHERE {by_time_holds}",
                scrub_all("attr_values")
            ),
        )
        .await?;
    }
    places.push("calls_by_time".to_owned());
    rows.push(by_time);

    let letters_hold = format!(
        "account = {account_sql} AND (match(payload, {pattern}) OR match(reason, {pattern}) OR {})",
        holds("errors")
    );
    let letters = count(
        "counting dead letters that hold the number",
        "dead_letters",
        &letters_hold,
    )
    .await?;
    if letters > 0 {
        mutate(
            "erasing the number from dead letters",
            "dead_letters",
            format!(
                "UPDATE payload = {}, reason = {}, errors = {} WHERE {letters_hold}",
                scrub("payload"),
                scrub("reason"),
                scrub_all("errors")
            ),
        )
        .await?;
    }
    places.push("dead_letters".to_owned());
    rows.push(letters);

    // Done when no row of the account holds the number any more.
    let outcome = if target.wait(wait, &left).await {
        "done".to_owned()
    } else {
        format!(
            "mutations still running after {} s; run the erasure again with the same id to finish it",
            wait.as_secs()
        )
    };
    let finished_at = schemas::call::to_whole_seconds(Utc::now());
    let receipt = ErasureReceipt {
        id,
        account: account.to_owned(),
        requested_by: requested_by.to_owned(),
        started_at,
        finished_at,
        places,
        rows,
        outcome,
        topics_clear_by: schemas::erasure::topics_clear_by(finished_at, topics_retention),
    };
    insert(client, "erasures", std::slice::from_ref(&receipt))
        .await
        .map_err(|source| ErasureError::ClickHouse {
            what: "recording the receipt",
            source,
        })?;
    tracing::info!(erasure = %id, account, outcome = %receipt.outcome, "caller erased");
    Ok(receipt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime::retry::Retryable;

    fn failed(message: &str) -> ErasureError {
        ErasureError::ClickHouse {
            what: "erasing the caller in calls",
            source: clickhouse::error::Error::BadResponse(message.to_owned()),
        }
    }

    #[test]
    fn a_statement_clickhouse_cannot_run_is_not_retried() {
        // What a processor without `clickhouse.cluster` met on a cluster (CI run of
        // the cluster test, 2026-12-07).
        assert!(!failed("Code: 48, e.displayText() = DB::Exception: Mutations are not supported by storage Distributed").is_transient());
        assert!(!failed(
            "Code: 60, e.displayText() = DB::Exception: Table callmatrix.calls doesn't exist."
        )
        .is_transient());
        // Busy or restarting: tried again.
        assert!(failed(
            "Code: 202, e.displayText() = DB::Exception: Too many simultaneous queries"
        )
        .is_transient());
        assert!(
            failed("Code: 210, e.displayText() = DB::NetException: Connection refused")
                .is_transient()
        );
    }
}
