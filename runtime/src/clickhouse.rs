//! The ClickHouse client as every binary builds it. RowBinary over HTTP with schema
//! validation off: the server here is 18.16, which lacks what validation queries.

use std::time::Duration;

use clickhouse::Client;
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// `Debug` never shows the password.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    /// Database holding the pipeline's tables; created by `cmctl migrate`.
    #[serde(default = "default_database")]
    pub database: String,
    /// The local stack creates `callmatrix_writer` (processor, cmctl) and the
    /// read-only `callmatrix_reader` (api, analysts); ClickHouse has no
    /// password-less user there.
    #[serde(default = "default_user")]
    pub user: String,
    /// Set it from the environment (`PROCESSOR_CLICKHOUSE__PASSWORD`, ...), not in a
    /// file under version control.
    #[serde(default)]
    pub password: String,
    /// The cluster (a name in the servers' `remote_servers`) the schema is spread
    /// over: `cmctl migrate` then creates replicated shard tables behind
    /// `Distributed` ones (`schemas::cluster`). Unset: one server. The pipeline's
    /// queries are the same either way.
    #[serde(default)]
    pub cluster: Option<String>,
}

impl std::fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseConfig")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("cluster", &self.cluster)
            .field(
                "password",
                &if self.password.is_empty() { "" } else { "***" },
            )
            .finish()
    }
}

fn default_database() -> String {
    "callmatrix".to_owned()
}

fn default_user() -> String {
    "default".to_owned()
}

impl ClickHouseConfig {
    /// A client bound to the pipeline's database.
    pub fn client(&self) -> Client {
        self.server_client().with_database(&self.database)
    }

    /// A client with no database selected, for `CREATE DATABASE`.
    pub fn server_client(&self) -> Client {
        Client::default()
            .with_url(&self.url)
            .with_user(&self.user)
            .with_password(&self.password)
            .with_validation(false)
    }

    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(ConfigError::invalid(
                &format!("{section}.url"),
                format!("{:?} must start with http:// or https://", self.url),
            ));
        }
        if self.database.is_empty()
            || !self
                .database
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(ConfigError::invalid(
                &format!("{section}.database"),
                format!("{:?} must be letters, digits and '_'", self.database),
            ));
        }
        if let Some(cluster) = &self.cluster {
            if cluster.is_empty()
                || !cluster
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(ConfigError::invalid(
                    &format!("{section}.cluster"),
                    format!("{cluster:?} must be letters, digits and '_'"),
                ));
            }
        }
        Ok(())
    }
}

/// `SELECT 1` within `timeout`: the health check's proof ClickHouse answers.
pub async fn ping(client: &Client, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, client.query("SELECT 1").fetch_one::<u8>()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// `'a', 'b'` for an `IN (...)` list inlined into a query: quotes and backslashes
/// escaped for ClickHouse, and `?` doubled because the client treats a bare `?` as a
/// bind placeholder.
pub fn string_list<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    values
        .into_iter()
        .map(|v| {
            let escaped = v
                .replace('\\', "\\\\")
                .replace('\'', "\\'")
                .replace('?', "??");
            format!("'{escaped}'")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// For tests: checks that `statements` (SQL a crate generates, one per line) are what
/// `tests/sql/generated/{name}.sql` holds, so the portability check
/// (`tests/sql/check_current_clickhouse.py`) runs the very statements the code sends
/// on current ClickHouse. `CM_BLESS_SQL=1` rewrites the file instead.
pub fn check_sql_snapshot(name: &str, statements: &[String]) -> Result<(), String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/sql/generated")
        .join(format!("{name}.sql"));
    let text: String = statements.iter().map(|s| format!("{s};\n")).collect();
    if std::env::var_os("CM_BLESS_SQL").is_some() {
        return std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()));
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    if stored == text {
        Ok(())
    } else {
        Err(format!(
            "{} is not the SQL the code generates; check the change and run again with \
             CM_BLESS_SQL=1 to store it:\n{text}",
            path.display()
        ))
    }
}

#[cfg(test)]
mod list_tests {
    #[test]
    fn hostile_values_stay_inside_their_quotes() {
        assert_eq!(
            super::string_list(["a", "it's", "x\\", "why?"]),
            r"'a', 'it\'s', 'x\\', 'why??'"
        );
    }
}
