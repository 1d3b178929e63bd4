//! Cluster mode of the schema: the same numbered migrations, rewritten statement by
//! statement for a ClickHouse cluster of shards and replicas (docs/deploy.md,
//! "Cluster mode").
//!
//! Each table becomes two: `<name>_shard`, a `Replicated*MergeTree` on every node
//! (its rows replicated within a shard through ZooKeeper), and `<name>`, a
//! `Distributed` table over those, so every query the pipeline and the analysts
//! run keeps its table names. Each table's sharding key keeps the rows that must
//! meet on one shard together: every version of a call, its old positions in
//! `calls_by_time`, its caller index row and its `call_ids` row shard by the call's
//! id; each rolled-up hour's versions by its hour and account. `FINAL` and the
//! readers' "newest version" subqueries then mean on each shard what they mean on
//! one server. Materialized views run on the shard tables, so a call's derived rows
//! land on the shard that stored the call.
//!
//! The rewrite is by statement kind, for the statements the migrations use; anything
//! else is refused with the statement, so a new migration cannot slip through
//! unconverted.

use crate::migrations::Migration;

/// Where the schema goes: a cluster named in every node's `remote_servers`, and the
/// database on it.
#[derive(Debug, Clone, Copy)]
pub struct Cluster<'a> {
    pub name: &'a str,
    pub database: &'a str,
}

/// Suffix of the replicated table behind each `Distributed` table.
pub const SHARD_SUFFIX: &str = "_shard";

/// Each sharded table's sharding key. Rows that `FINAL` or a "newest version" read
/// compares must hash alike: the call tables all by the call's id (a moved call's
/// old `calls_by_time` position included: same id), the rollups by their hour.
const SHARDING_KEYS: &[(&str, &str)] = &[
    ("calls", "cityHash64(toString(id))"),
    ("calls_by_time", "cityHash64(toString(id))"),
    ("calls_by_caller", "cityHash64(toString(id))"),
    ("call_ids", "cityHash64(toString(id))"),
    ("dead_letters", "cityHash64(client_id, toString(raw_id))"),
    (
        "filtered_records",
        "cityHash64(client_id, toString(raw_id))",
    ),
    ("source_keys", "cityHash64(account, client_id)"),
    ("calls_hourly", "cityHash64(account, hour)"),
    ("calls_hourly_dims", "cityHash64(dimension, account, hour)"),
    ("cm_numbers", "cityHash64(number)"),
    ("cm_calls", "cityHash64(called, caller, cm_call_id)"),
];

/// Tables every node holds whole: one replica set over the whole cluster. The
/// migration ledger, so every node answers "which migrations ran" alike.
const ON_EVERY_NODE: &[&str] = &[
    "schema_migrations",
    "audit_log",
    "retention_runs",
    "erasures",
];

/// Views (plain and materialized) the migrations create: named, not sharded.
const VIEWS: &[&str] = &[
    "calls_by_caller_feed",
    "calls_by_time_feed",
    "call_ids_feed",
    "calls_current",
    "calls_by_start",
    "hourly_totals",
    "hourly_totals_by_dimension",
    "dead_letters_current",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClusterError {
    #[error("migration {version} ({name}): table {table} has no place on a cluster (a sharding key in schemas::cluster, or a table every node holds); statement:\n{statement}")]
    Unplaced {
        version: u32,
        name: &'static str,
        table: String,
        statement: String,
    },
    #[error("migration {version} ({name}): cluster mode does not know how to rewrite this statement (schemas::cluster); statement:\n{statement}")]
    Unrecognised {
        version: u32,
        name: &'static str,
        statement: String,
    },
}

/// Where a table lives on the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    Sharded(&'static str),
    OnEveryNode,
}

fn placement(table: &str) -> Option<Placement> {
    if let Some((_, key)) = SHARDING_KEYS.iter().find(|(name, _)| *name == table) {
        return Some(Placement::Sharded(key));
    }
    ON_EVERY_NODE
        .contains(&table)
        .then_some(Placement::OnEveryNode)
}

impl Migration {
    /// The migration's statements for `cluster`: every DDL statement `ON CLUSTER`
    /// (but an ALTER of a table replicated on every node, which replication carries),
    /// every table name qualified with the database (a statement queued for other
    /// nodes must not depend on a session's current database).
    pub fn cluster_statements(&self, cluster: Cluster<'_>) -> Result<Vec<String>, ClusterError> {
        let mut out = Vec::new();
        for statement in self.statements() {
            out.extend(self.rewrite(&statement, cluster)?);
        }
        Ok(out)
    }

    fn rewrite(&self, statement: &str, cluster: Cluster<'_>) -> Result<Vec<String>, ClusterError> {
        let unrecognised = || ClusterError::Unrecognised {
            version: self.version,
            name: self.name,
            statement: statement.to_owned(),
        };
        let unplaced = |table: &str| ClusterError::Unplaced {
            version: self.version,
            name: self.name,
            table: table.to_owned(),
            statement: statement.to_owned(),
        };
        let Cluster { name: on, database } = cluster;
        if let Some(rest) = strip_words(statement, &["CREATE", "TABLE", "IF", "NOT", "EXISTS"]) {
            let (table, rest) = identifier(rest).ok_or_else(unrecognised)?;
            let place = placement(table).ok_or_else(|| unplaced(table))?;
            let (columns, engine) = rest.split_once("ENGINE = ").ok_or_else(unrecognised)?;
            let engine_name_end = engine
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(engine.len());
            let (engine_name, after_name) = engine.split_at(engine_name_end);
            if !engine_name.ends_with("MergeTree") {
                return Err(unrecognised());
            }
            let (engine_args, tail) = match after_name.strip_prefix('(') {
                Some(args) => {
                    let (args, tail) = args.split_once(')').ok_or_else(unrecognised)?;
                    (Some(args), tail)
                }
                None => (None, after_name),
            };
            let stored = match place {
                Placement::Sharded(_) => format!("{table}{SHARD_SUFFIX}"),
                Placement::OnEveryNode => table.to_owned(),
            };
            let zk_shard = match place {
                Placement::Sharded(_) => "{shard}",
                Placement::OnEveryNode => "all",
            };
            let mut replicated_args =
                format!("'/clickhouse/{on}/tables/{zk_shard}/{database}/{stored}', '{{replica}}'");
            if let Some(args) = engine_args.filter(|a| !a.trim().is_empty()) {
                replicated_args.push_str(", ");
                replicated_args.push_str(args);
            }
            let mut statements = vec![format!(
                "CREATE TABLE IF NOT EXISTS {database}.{stored} ON CLUSTER {on}\n{}\nENGINE = Replicated{engine_name}({replicated_args}){tail}",
                columns.trim()
            )];
            if let Placement::Sharded(key) = place {
                statements.push(distributed(cluster, table, key));
            }
            return Ok(statements);
        }
        if let Some(rest) = strip_words(
            statement,
            &["CREATE", "MATERIALIZED", "VIEW", "IF", "NOT", "EXISTS"],
        ) {
            let (view, rest) = identifier(rest).ok_or_else(unrecognised)?;
            let rest = strip_words(rest, &["TO"]).ok_or_else(unrecognised)?;
            let (target, rest) = identifier(rest).ok_or_else(unrecognised)?;
            let rest = strip_words(rest, &["AS"]).ok_or_else(unrecognised)?;
            if !matches!(placement(target), Some(Placement::Sharded(_))) {
                return Err(unplaced(target));
            }
            // The view runs where the source's rows are inserted: on the shard
            // tables, writing the shard table of its target.
            let select = qualify_tables(rest, database, SHARD_SUFFIX);
            return Ok(vec![format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{view} ON CLUSTER {on} TO {database}.{target}{SHARD_SUFFIX} AS\n{select}"
            )]);
        }
        if let Some(rest) = strip_words(statement, &["CREATE", "VIEW", "IF", "NOT", "EXISTS"]) {
            let (view, rest) = identifier(rest).ok_or_else(unrecognised)?;
            let rest = strip_words(rest, &["AS"]).ok_or_else(unrecognised)?;
            let select = qualify_tables(rest, database, "");
            return Ok(vec![format!(
                "CREATE VIEW IF NOT EXISTS {database}.{view} ON CLUSTER {on} AS\n{select}"
            )]);
        }
        if let Some(rest) = strip_words(statement, &["ALTER", "TABLE"]) {
            let (table, change) = identifier(rest).ok_or_else(unrecognised)?;
            let change = change.trim();
            return match placement(table).ok_or_else(|| unplaced(table))? {
                // The replicated tables change once per shard (the DDL queue runs a
                // replicated ALTER on one replica, which replicates it). The
                // Distributed table holds no rows and only describes them: made again
                // over the changed tables, since ClickHouse refuses an `ON CLUSTER`
                // ALTER of a table that is not replicated on a cluster whose shards
                // are. Writes to it in between fail and are retried by the writer.
                Placement::Sharded(key) => Ok(vec![
                    format!(
                        "ALTER TABLE {database}.{table}{SHARD_SUFFIX} ON CLUSTER {on} {change}"
                    ),
                    format!("DROP TABLE IF EXISTS {database}.{table} ON CLUSTER {on}"),
                    distributed(cluster, table, key),
                ]),
                // One replication group spans every node: an ALTER on this node
                // reaches every replica through it. `ON CLUSTER` would run it once
                // per shard, and the later runs fail when the first has already
                // replicated ("column with this name already exists", seen in CI
                // run 14; ClickHouse 18.16 has no `ADD COLUMN IF NOT EXISTS`).
                Placement::OnEveryNode => {
                    Ok(vec![format!("ALTER TABLE {database}.{table} {change}")])
                }
            };
        }
        if let Some(rest) = strip_words(statement, &["DROP", "TABLE", "IF", "EXISTS"]) {
            let (table, tail) = identifier(rest).ok_or_else(unrecognised)?;
            if !tail.trim().is_empty() || !VIEWS.contains(&table) {
                // Dropping a table would need both halves and is not something a
                // migration here has done; refuse rather than guess.
                return Err(unrecognised());
            }
            return Ok(vec![format!(
                "DROP TABLE IF EXISTS {database}.{table} ON CLUSTER {on}"
            )]);
        }
        if let Some(rest) = strip_words(statement, &["INSERT", "INTO"]) {
            let (table, select) = identifier(rest).ok_or_else(unrecognised)?;
            placement(table).ok_or_else(|| unplaced(table))?;
            // Through the Distributed tables: read from every shard, written to the
            // shard each row's key picks (with insert_distributed_sync, before the
            // statement returns).
            return Ok(vec![format!(
                "INSERT INTO {database}.{table}\n{}",
                qualify_tables(select.trim_start(), database, "")
            )]);
        }
        Err(unrecognised())
    }
}

/// A mutation of the data (`UPDATE … WHERE …`, `DELETE WHERE …`) of `table` on
/// `cluster`, as erasure and retention run them: a sharded table's shard tables,
/// `ON CLUSTER` (the DDL queue runs a replicated ALTER once per shard, on one of its
/// replicas, and replication carries the mutation to the others; a `Distributed`
/// table cannot be mutated); a table every node holds, on this node. `None` for a
/// table with no place on a cluster. `change` names columns only, never a table.
pub fn mutation(cluster: Cluster<'_>, table: &str, change: &str) -> Option<String> {
    let Cluster { name: on, database } = cluster;
    Some(match placement(table)? {
        Placement::Sharded(_) => {
            format!("ALTER TABLE {database}.{table}{SHARD_SUFFIX} ON CLUSTER {on} {change}")
        }
        Placement::OnEveryNode => format!("ALTER TABLE {database}.{table} {change}"),
    })
}

/// The name a sharded table's rows are stored under on each node (what
/// `system.mutations` and `system.parts` call it); a table every node holds keeps
/// its name.
pub fn stored_name(table: &str) -> String {
    match placement(table) {
        Some(Placement::Sharded(_)) => format!("{table}{SHARD_SUFFIX}"),
        _ => table.to_owned(),
    }
}

/// The `Distributed` table `table` over its shard tables.
fn distributed(cluster: Cluster<'_>, table: &str, key: &str) -> String {
    let Cluster { name: on, database } = cluster;
    format!(
        "CREATE TABLE IF NOT EXISTS {database}.{table} ON CLUSTER {on} AS {database}.{table}{SHARD_SUFFIX}\nENGINE = Distributed({on}, {database}, {table}{SHARD_SUFFIX}, {key})"
    )
}

/// `text` after the given words (case-insensitive, separated by any whitespace),
/// or `None` when it does not start with them.
fn strip_words<'t>(text: &'t str, words: &[&str]) -> Option<&'t str> {
    let mut rest = text.trim_start();
    for word in words {
        let head = rest.get(..word.len())?;
        if !head.eq_ignore_ascii_case(word) {
            return None;
        }
        let after = &rest[word.len()..];
        if after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        rest = after.trim_start();
    }
    Some(rest)
}

/// A bare identifier at the start of `text`, and what follows it.
fn identifier(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start();
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    (end > 0).then(|| text.split_at(end))
}

/// Every known table named right after `FROM` or `JOIN` qualified with the
/// database (and `suffix`). A column that shares a table's name (`calls` in the
/// rollups) is never right after those words; a subquery's `(` or an `ARRAY JOIN`'s
/// `[` is not an identifier.
fn qualify_tables(select: &str, database: &str, suffix: &str) -> String {
    let mut out = String::with_capacity(select.len() + 64);
    let mut rest = select;
    while let Some(at) = next_table_keyword(rest) {
        let (before, from_keyword) = rest.split_at(at);
        out.push_str(before);
        let keyword_len = from_keyword
            .find(|c: char| c.is_whitespace())
            .unwrap_or(from_keyword.len());
        let (keyword, after) = from_keyword.split_at(keyword_len);
        out.push_str(keyword);
        let spaces = after.len() - after.trim_start().len();
        out.push_str(&after[..spaces]);
        let after = &after[spaces..];
        match identifier(after) {
            Some((table, tail)) if placement(table).is_some() || VIEWS.contains(&table) => {
                out.push_str(database);
                out.push('.');
                out.push_str(table);
                if placement(table).is_some() {
                    out.push_str(suffix);
                }
                rest = tail;
            }
            _ => rest = after,
        }
    }
    out.push_str(rest);
    out
}

/// Byte offset of the next `FROM` or `JOIN` word in `text`.
fn next_table_keyword(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    (0..bytes.len()).find(|&i| {
        (i == 0 || !is_word(bytes[i - 1]))
            && ["FROM", "JOIN"].iter().any(|keyword| {
                text.get(i..i + keyword.len())
                    .is_some_and(|w| w.eq_ignore_ascii_case(keyword))
                    && bytes
                        .get(i + keyword.len())
                        .is_some_and(|b| b.is_ascii_whitespace())
            })
    })
}

#[cfg(test)]
#[path = "cluster_test.rs"]
mod tests;
