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
    config
        .server_client()
        .query(&format!(
            "CREATE DATABASE IF NOT EXISTS {}",
            config.database
        ))
        .execute()
        .await
        .map_err(server_error)?;
    let client = config.client();
    apply(&client, &LEDGER).await?;
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
        apply(&client, migration).await?;
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
    apply(&config.client(), &schemas::migrations::ROLLUP_BACKFILL).await
}

async fn apply(client: &clickhouse::Client, migration: &Migration) -> Result<(), MigrateError> {
    let statements = migration.statements();
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
