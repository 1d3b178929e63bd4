//! Where erasure and retention change stored rows: one ClickHouse server, or the
//! shard tables of a cluster (`schemas::cluster`). ClickHouse 18.16 changes rows by
//! mutations (`ALTER TABLE … UPDATE/DELETE`), which run in the background: a job
//! starts them, then waits until they are done and no row it meant to change is
//! left.

use std::time::Duration;

use runtime::clickhouse::{string_list, ClickHouseConfig};
use schemas::cluster::Cluster;

/// The tables erasure and retention mutate: what their waits look at.
const MUTATED: &[&str] = &[
    "calls",
    "calls_by_caller",
    "cm_calls",
    "calls_by_time",
    "dead_letters",
];

#[derive(Clone)]
pub struct Mutations {
    client: clickhouse::Client,
    /// `(cluster, database)` in cluster mode.
    cluster: Option<(String, String)>,
}

impl Mutations {
    /// On the server or cluster `config` names, through `client` (made from it).
    pub fn new(client: clickhouse::Client, config: &ClickHouseConfig) -> Self {
        Self {
            client,
            cluster: config
                .cluster
                .clone()
                .map(|name| (name, config.database.clone())),
        }
    }

    /// The client, for reads (through the `Distributed` tables on a cluster) and
    /// inserts.
    pub fn client(&self) -> &clickhouse::Client {
        &self.client
    }

    /// The statement changing `table`'s rows by `change` (`UPDATE … WHERE …`,
    /// `DELETE WHERE …`).
    pub fn statement(&self, table: &str, change: &str) -> String {
        match &self.cluster {
            None => format!("ALTER TABLE {table} {change}"),
            Some((name, database)) => {
                let cluster = Cluster { name, database };
                // Every table mutated here has a place on a cluster (`MUTATED`, tested).
                schemas::cluster::mutation(cluster, table, change)
                    .unwrap_or_else(|| format!("ALTER TABLE {database}.{table} {change}"))
            }
        }
    }

    /// Starts the mutation of `table` by `change`.
    pub async fn start(&self, table: &str, change: &str) -> Result<(), clickhouse::error::Error> {
        self.client
            .query(&self.statement(table, change))
            .execute()
            .await
    }

    /// The query counting the unfinished mutations of the tables changed here: on a
    /// cluster, on one replica of each shard (`cluster()`, with the servers' own
    /// credentials from `remote_servers`); the others run the same mutations from
    /// their replication log.
    fn running_query(&self) -> String {
        match &self.cluster {
            None => format!(
                "SELECT count() FROM system.mutations WHERE database = currentDatabase() \
                 AND is_done = 0 AND table IN ({})",
                string_list(MUTATED.iter().copied())
            ),
            Some((name, database)) => {
                let stored: Vec<String> = MUTATED
                    .iter()
                    .map(|t| schemas::cluster::stored_name(t))
                    .collect();
                format!(
                    "SELECT count() FROM cluster({}, system, mutations) WHERE database = {} \
                     AND is_done = 0 AND table IN ({})",
                    string_list([name.as_str()]),
                    string_list([database.as_str()]),
                    string_list(stored.iter().map(String::as_str))
                )
            }
        }
    }

    /// Waits up to `wait` until no mutation of these tables is running and each of
    /// `left` (queries counting rows still to change) counts none. On a cluster a
    /// replica may list a mutation only once it has read it from ZooKeeper, so "none
    /// running" alone could be said too early; the rows say when the work is done.
    /// `false` when time ran out first.
    pub async fn wait(&self, wait: Duration, left: &[String]) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        let running = self.running_query();
        loop {
            if self.count(&running).await == 0 {
                let mut remaining = 0;
                for query in left {
                    remaining += self.count(query).await;
                }
                if remaining == 0 {
                    return true;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A count, or 1 (not done) when it cannot be read.
    async fn count(&self, query: &str) -> u64 {
        self.client
            .query(query)
            .fetch_one::<u64>()
            .await
            .unwrap_or(1)
    }
}

/// Logs an error when the database is in cluster mode (its `calls` a `Distributed`
/// table) but `clickhouse.cluster` is not set: every erasure and retention run would
/// then fail ("Mutations are not supported by storage Distributed") until it is.
/// Run once at start-up; says nothing when ClickHouse cannot be asked.
pub async fn check_cluster_setting(client: &clickhouse::Client, config: &ClickHouseConfig) {
    if config.cluster.is_some() {
        return;
    }
    let engine = client
        .query("SELECT engine FROM system.tables WHERE database = currentDatabase() AND name = 'calls'")
        .fetch_optional::<String>()
        .await;
    if let Ok(Some(engine)) = engine {
        if engine == "Distributed" {
            tracing::error!("clickhouse.cluster is not set, but the database is in cluster mode: erasures and retention runs fail until it names the cluster (PROCESSOR_CLICKHOUSE__CLUSTER)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mutations(cluster: Option<&str>) -> Mutations {
        let config = ClickHouseConfig {
            url: "http://127.0.0.1:8123".into(),
            database: "cm".into(),
            user: "callmatrix_writer".into(),
            password: String::new(),
            cluster: cluster.map(str::to_string),
        };
        Mutations::new(clickhouse::Client::default(), &config)
    }

    fn on_cluster() -> Mutations {
        mutations(Some("callmatrix"))
    }

    #[test]
    fn one_server_mutates_its_tables_by_name() {
        let single = mutations(None);
        assert_eq!(
            single.statement("calls", "DELETE WHERE account = 'a'"),
            "ALTER TABLE calls DELETE WHERE account = 'a'"
        );
        assert!(single.running_query().contains("currentDatabase()"));
    }

    #[test]
    fn a_cluster_mutates_every_shard_and_waits_on_each() {
        let cluster = on_cluster();
        for table in MUTATED {
            let statement = cluster.statement(table, "DELETE WHERE account = 'a'");
            assert_eq!(
                statement,
                format!(
                    "ALTER TABLE cm.{table}_shard ON CLUSTER callmatrix DELETE WHERE account = 'a'"
                ),
                "every table mutated here is sharded"
            );
        }
        let running = cluster.running_query();
        assert!(
            running.contains("cluster('callmatrix', system, mutations)"),
            "{running}"
        );
        assert!(
            running.contains("'calls_shard'") && running.contains("database = 'cm'"),
            "{running}"
        );
    }
}
