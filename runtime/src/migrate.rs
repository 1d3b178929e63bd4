//! Applies `schemas::migrations` in order and records each in `schema_migrations`.
//! Safe to re-run: applied versions are skipped, and a shipped migration whose text
//! changed after it was applied is refused rather than silently diverging.

use chrono::{DateTime, Utc};
use schemas::migrations::{Migration, LEDGER, MIGRATIONS};
use serde::{Deserialize, Serialize};

use crate::clickhouse::ClickHouseConfig;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("ClickHouse at {url}: {source}")]
    Server {
        url: String,
        source: clickhouse::error::Error,
    },
    #[error("migration {version} ({name}) failed: {source}\nstatement:\n{statement}")]
    Statement {
        version: u32,
        name: &'static str,
        statement: String,
        source: clickhouse::error::Error,
    },
    #[error(transparent)]
    Cluster(#[from] schemas::cluster::ClusterError),
    #[error("another `cmctl migrate` holds the migration lock ({holder}) and did not release it within {waited_s} s; if none is running (one was killed), release it with `DROP TABLE {database}.{LOCK_TABLE}` on the server that holds it")]
    Locked {
        holder: String,
        waited_s: u64,
        database: String,
    },
    #[error("migration {version} ({name}) was applied with checksum {applied} but the shipped file has {shipped}; write a new migration instead of editing an applied one")]
    Edited {
        version: u32,
        name: &'static str,
        applied: String,
        shipped: String,
    },
}

#[derive(Debug, clickhouse::Row, Serialize, Deserialize)]
struct AppliedMigration {
    version: u32,
    name: String,
    checksum: String,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    applied_at: DateTime<Utc>,
}

/// The table whose creation is the migration lock: created (never `IF NOT EXISTS`)
/// before the ledger is read and dropped after the last migration, so two runs
/// racing (two deploy jobs, two nodes) apply each migration once, one after the
/// other. A second run waits for it.
pub const LOCK_TABLE: &str = "schema_migrations_lock";

/// How long a run waits for another to release the lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Returns the versions applied by this run (empty when already up to date).
pub async fn migrate(config: &ClickHouseConfig) -> Result<Vec<u32>, MigrateError> {
    migrate_up_to(config, u32::MAX).await
}

/// [`migrate`], stopping after version `last`: a database as an older release left
/// it, for tests of the migrations that follow (an upgrade over stored rows).
pub async fn migrate_up_to(config: &ClickHouseConfig, last: u32) -> Result<Vec<u32>, MigrateError> {
    let server_error = |source| MigrateError::Server {
        url: config.url.clone(),
        source,
    };
    let on_cluster = config
        .cluster
        .as_deref()
        .map(|name| format!(" ON CLUSTER {name}"))
        .unwrap_or_default();
    config
        .server_client()
        .query(&format!(
            "CREATE DATABASE IF NOT EXISTS {}{on_cluster}",
            config.database
        ))
        .execute()
        .await
        .map_err(server_error)?;
    let client = config.client();
    let lock = Lock::take(config).await?;
    let result = apply_pending(config, &client, last).await;
    let released = lock.release().await;
    let applied = result?;
    released?;
    Ok(applied)
}

async fn apply_pending(
    config: &ClickHouseConfig,
    client: &clickhouse::Client,
    last: u32,
) -> Result<Vec<u32>, MigrateError> {
    let server_error = |source| MigrateError::Server {
        url: config.url.clone(),
        source,
    };
    apply(config, &LEDGER).await?;
    if config.cluster.is_some() {
        // The ledger is replicated: a run through another node just before this one
        // (it held the lock) may have written rows this node has not fetched yet.
        client
            .query(&format!(
                "SYSTEM SYNC REPLICA {}.schema_migrations",
                config.database
            ))
            .execute()
            .await
            .map_err(server_error)?;
    }
    let applied: Vec<AppliedMigration> = client
        .query("SELECT version, name, checksum, applied_at FROM schema_migrations FINAL")
        .fetch_all()
        .await
        .map_err(server_error)?;

    let mut newly_applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| m.version <= last) {
        if let Some(done) = applied.iter().find(|a| a.version == migration.version) {
            let shipped = migration.checksum();
            if done.checksum != shipped {
                return Err(MigrateError::Edited {
                    version: migration.version,
                    name: migration.name,
                    applied: done.checksum.clone(),
                    shipped,
                });
            }
            continue;
        }
        apply(config, migration).await?;
        let mut insert = client
            .insert::<AppliedMigration>("schema_migrations")
            .await
            .map_err(server_error)?;
        insert
            .write(&AppliedMigration {
                version: migration.version,
                name: migration.name.to_owned(),
                checksum: migration.checksum(),
                applied_at: Utc::now(),
            })
            .await
            .map_err(server_error)?;
        insert.end().await.map_err(server_error)?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "migration applied"
        );
        newly_applied.push(migration.version);
    }
    Ok(newly_applied)
}

/// Rolls every stored call up again (`schemas::migrations::ROLLUP_BACKFILL`), for
/// calls loaded into ClickHouse without passing the processor; logs each statement's
/// time, since over millions of calls each takes a while.
pub async fn backfill_rollups(config: &ClickHouseConfig) -> Result<(), MigrateError> {
    apply(config, &schemas::migrations::ROLLUP_BACKFILL).await
}

/// A migration's statements for the configured topology: as written on one server,
/// rewritten for the cluster otherwise.
fn statements_for(
    config: &ClickHouseConfig,
    migration: &Migration,
) -> Result<Vec<String>, MigrateError> {
    Ok(match &config.cluster {
        None => migration.statements(),
        Some(name) => migration.cluster_statements(schemas::cluster::Cluster {
            name,
            database: &config.database,
        })?,
    })
}

async fn apply(config: &ClickHouseConfig, migration: &Migration) -> Result<(), MigrateError> {
    let client = config.client();
    let statements = statements_for(config, migration)?;
    let count = statements.len();
    for (n, statement) in statements.into_iter().enumerate() {
        let started = std::time::Instant::now();
        client
            .query(&statement)
            .execute()
            .await
            .map_err(|source| MigrateError::Statement {
                version: migration.version,
                name: migration.name,
                statement: statement.clone(),
                source,
            })?;
        // Progress for the slow ones (backfills over many calls), quiet otherwise.
        let seconds = started.elapsed().as_secs_f64();
        if seconds >= 1.0 {
            tracing::info!(
                version = migration.version,
                name = migration.name,
                statement = n + 1,
                of = count,
                seconds,
                "statement applied"
            );
        }
    }
    Ok(())
}

/// The migration lock (see [`LOCK_TABLE`]). On one server, a table there; on a
/// cluster, a replicated table with a fixed ZooKeeper path and replica name, so a
/// second creation fails on any node while the first exists.
struct Lock<'c> {
    config: &'c ClickHouseConfig,
}

impl<'c> Lock<'c> {
    async fn take(config: &'c ClickHouseConfig) -> Result<Lock<'c>, MigrateError> {
        let database = &config.database;
        let engine = match &config.cluster {
            None => "Log".to_owned(),
            Some(cluster) => format!(
                "ReplicatedMergeTree('/clickhouse/{cluster}/locks/{database}/{LOCK_TABLE}', 'holder') ORDER BY tuple()"
            ),
        };
        let holder = format!(
            "cmctl pid {} since {}",
            std::process::id(),
            Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
        );
        let create =
            format!("CREATE TABLE {database}.{LOCK_TABLE} (holder String) ENGINE = {engine}");
        let client = config.client();
        let started = std::time::Instant::now();
        let mut said = false;
        loop {
            match client.query(&create).execute().await {
                Ok(()) => break,
                Err(error) if is_held(&error) => {
                    if started.elapsed() >= LOCK_WAIT {
                        return Err(MigrateError::Locked {
                            holder: Self::holder(&client).await,
                            waited_s: LOCK_WAIT.as_secs(),
                            database: database.clone(),
                        });
                    }
                    if !said {
                        tracing::info!("another cmctl migrate holds the migration lock; waiting");
                        said = true;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                Err(source) => {
                    return Err(MigrateError::Server {
                        url: config.url.clone(),
                        source,
                    })
                }
            }
        }
        // Who holds it, for the message of a run that waits too long.
        let _ = client
            .query(&format!(
                "INSERT INTO {database}.{LOCK_TABLE} (holder) VALUES (?)"
            ))
            .bind(&holder)
            .execute()
            .await;
        Ok(Lock { config })
    }

    async fn holder(client: &clickhouse::Client) -> String {
        client
            .query(&format!("SELECT holder FROM {LOCK_TABLE} LIMIT 1"))
            .fetch_one::<String>()
            .await
            .unwrap_or_else(|_| "held on another node".to_owned())
    }

    async fn release(self) -> Result<(), MigrateError> {
        self.config
            .client()
            .query(&format!(
                "DROP TABLE IF EXISTS {}.{LOCK_TABLE}",
                self.config.database
            ))
            .execute()
            .await
            .map_err(|source| MigrateError::Server {
                url: self.config.url.clone(),
                source,
            })
    }
}

/// The lock is taken: the table exists here (TABLE_ALREADY_EXISTS, code 57) or its
/// ZooKeeper replica exists through another node (REPLICA_IS_ALREADY_EXIST, 253).
fn is_held(error: &clickhouse::error::Error) -> bool {
    let text = error.to_string();
    text.contains("Code: 57") || text.contains("Code: 253")
}

#[cfg(test)]
mod tests {
    use schemas::cluster::Cluster;
    use schemas::migrations::{LEDGER, MIGRATIONS, ROLLUP_BACKFILL};

    /// The statements cluster mode sends, stored where the portability check parses
    /// them on current ClickHouse (tests/sql/check_current_clickhouse.py); a change to
    /// the rewrite or a new migration must be blessed (`CM_BLESS_SQL=1`).
    #[test]
    fn cluster_statements_are_the_ones_checked_on_current_clickhouse() {
        let cluster = Cluster {
            name: "callmatrix",
            database: "callmatrix",
        };
        let statements: Vec<String> = std::iter::once(&LEDGER)
            .chain(MIGRATIONS)
            .chain(std::iter::once(&ROLLUP_BACKFILL))
            .flat_map(|m| {
                m.cluster_statements(cluster)
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        if let Err(problem) =
            crate::clickhouse::check_sql_snapshot("cluster/migrations", &statements)
        {
            panic!("{problem}");
        }
    }
}
