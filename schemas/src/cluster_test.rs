use super::*;
use crate::migrations::{LEDGER, MIGRATIONS, ROLLUP_BACKFILL};

const CLUSTER: Cluster<'static> = Cluster {
    name: "callmatrix",
    database: "cmdb",
};

fn all_migrations() -> impl Iterator<Item = &'static Migration> {
    std::iter::once(&LEDGER)
        .chain(MIGRATIONS.iter())
        .chain(std::iter::once(&ROLLUP_BACKFILL))
}

fn converted() -> Vec<String> {
    all_migrations()
        .flat_map(|m| {
            m.cluster_statements(CLUSTER)
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

#[test]
fn every_shipped_migration_has_a_cluster_form() {
    for migration in all_migrations() {
        let statements = migration
            .cluster_statements(CLUSTER)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(statements.len() >= migration.statements().len());
    }
}

#[test]
fn every_ddl_statement_runs_on_the_whole_cluster() {
    for statement in converted() {
        // An ALTER of a table replicated on every node runs once: replication
        // carries it (`alter_of_a_table_on_every_node_runs_once`).
        let on_every_node = ON_EVERY_NODE
            .iter()
            .any(|t| statement.starts_with(&format!("ALTER TABLE cmdb.{t} ")));
        if !statement.starts_with("INSERT") && !on_every_node {
            assert!(statement.contains(" ON CLUSTER callmatrix"), "{statement}");
        }
    }
}

#[test]
fn alter_of_a_table_on_every_node_runs_once() {
    let altered: Vec<String> = converted()
        .into_iter()
        .filter(|s| s.starts_with("ALTER TABLE cmdb.erasures "))
        .collect();
    assert_eq!(
        altered,
        vec!["ALTER TABLE cmdb.erasures ADD COLUMN topics_clear_by DateTime('UTC')".to_owned()]
    );
}

#[test]
fn calls_becomes_a_replicated_shard_table_behind_a_distributed_one() {
    let statements = MIGRATIONS[0].cluster_statements(CLUSTER).unwrap();
    assert_eq!(statements.len(), 2, "{statements:#?}");
    assert!(
        statements[0].starts_with(
            "CREATE TABLE IF NOT EXISTS cmdb.calls_shard ON CLUSTER callmatrix\n(\n    id UUID,"
        ),
        "{}",
        statements[0]
    );
    assert!(statements[0].ends_with(
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/callmatrix/tables/{shard}/cmdb/calls_shard', '{replica}', version)\nORDER BY (client_id, id)"
    ), "{}", statements[0]);
    assert_eq!(
        statements[1],
        "CREATE TABLE IF NOT EXISTS cmdb.calls ON CLUSTER callmatrix AS cmdb.calls_shard\nENGINE = Distributed(callmatrix, cmdb, calls_shard, cityHash64(toString(id)))"
    );
}

#[test]
fn the_ledger_is_one_replica_set_on_every_node() {
    let statements = LEDGER.cluster_statements(CLUSTER).unwrap();
    assert_eq!(statements.len(), 1, "{statements:#?}");
    assert!(statements[0].contains(
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/callmatrix/tables/all/cmdb/schema_migrations', '{replica}')\nORDER BY version"
    ), "{}", statements[0]);
}

#[test]
fn a_call_and_everything_derived_from_it_shard_alike() {
    // The processor writes calls_by_time's deleted marks itself (a moved call's old
    // position), and views write the rest from the call's shard: one key for all.
    let key = |table: &str| match placement(table) {
        Some(Placement::Sharded(key)) => key,
        other => panic!("{table}: {other:?}"),
    };
    for table in ["calls_by_time", "calls_by_caller", "call_ids"] {
        assert_eq!(key(table), key("calls"), "{table}");
    }
}

#[test]
fn materialized_views_read_and_write_the_shard_tables() {
    let views: Vec<String> = converted()
        .into_iter()
        .filter(|s| s.starts_with("CREATE MATERIALIZED VIEW"))
        .collect();
    // calls_by_caller_feed, calls_by_time_feed (5, and again in 12 and 17),
    // call_ids_feed.
    assert_eq!(views.len(), 5, "{views:#?}");
    for view in views {
        assert!(
            view.contains(" TO cmdb.") && view.contains("_shard AS\n"),
            "{view}"
        );
        assert!(view.trim_end().ends_with("FROM cmdb.calls_shard"), "{view}");
    }
}

#[test]
fn a_column_named_like_a_table_is_left_alone() {
    // calls_hourly has a column `calls`; only names after FROM or JOIN are tables.
    let statements = ROLLUP_BACKFILL.cluster_statements(CLUSTER).unwrap();
    assert!(statements[0].starts_with("INSERT INTO cmdb.calls_hourly\n"));
    assert!(
        statements[0].contains("count() AS calls,"),
        "{}",
        statements[0]
    );
    assert!(
        statements[0].contains("FROM cmdb.calls_by_time FINAL"),
        "{}",
        statements[0]
    );
    assert!(
        statements[1].contains("ARRAY JOIN [('client_id'"),
        "{}",
        statements[1]
    );
}

#[test]
fn no_table_is_named_without_its_database() {
    // A statement queued for other nodes runs there without this session's
    // current database: every table after FROM, JOIN, INTO, TO, AS or TABLE names
    // its database, or is a subquery.
    let known: Vec<&str> = SHARDING_KEYS
        .iter()
        .map(|(t, _)| *t)
        .chain(ON_EVERY_NODE.iter().copied())
        .chain(VIEWS.iter().copied())
        .collect();
    for statement in converted() {
        let words: Vec<&str> = statement.split_whitespace().collect();
        for pair in words.windows(2) {
            let name = pair[1].trim_end_matches([',', ';', ')']);
            let after_keyword = ["FROM", "JOIN", "INTO", "TO", "TABLE", "EXISTS"]
                .iter()
                .any(|k| pair[0].eq_ignore_ascii_case(k));
            let table = name.strip_suffix(SHARD_SUFFIX).unwrap_or(name);
            if after_keyword && known.contains(&table) {
                panic!("unqualified {name} in:\n{statement}");
            }
        }
    }
}

#[test]
fn alters_change_the_shard_tables_then_make_the_distributed_ones_again() {
    let statements = MIGRATIONS[2].cluster_statements(CLUSTER).unwrap();
    let distributed = "CREATE TABLE IF NOT EXISTS cmdb.calls ON CLUSTER callmatrix AS cmdb.calls_shard\nENGINE = Distributed(callmatrix, cmdb, calls_shard, cityHash64(toString(id)))";
    assert_eq!(
        statements,
        [
            "ALTER TABLE cmdb.calls_shard ON CLUSTER callmatrix ADD COLUMN connected_duration_s Nullable(UInt32)",
            "DROP TABLE IF EXISTS cmdb.calls ON CLUSTER callmatrix",
            distributed,
            "ALTER TABLE cmdb.calls_shard ON CLUSTER callmatrix ADD COLUMN connected Nullable(UInt8)",
            "DROP TABLE IF EXISTS cmdb.calls ON CLUSTER callmatrix",
            distributed,
        ]
    );
}

#[test]
fn a_table_with_no_place_or_a_statement_unknown_is_refused() {
    let rewrite = |sql: &'static str| {
        let migration = Migration {
            version: 99,
            name: "refused",
            sql,
        };
        migration.cluster_statements(CLUSTER)
    };
    assert!(matches!(
        rewrite("CREATE TABLE IF NOT EXISTS surprises\n(\n    id UUID\n)\nENGINE = ReplacingMergeTree\nORDER BY id;\n"),
        Err(ClusterError::Unplaced { table, .. }) if table == "surprises"
    ));
    assert!(matches!(
        rewrite("RENAME TABLE calls TO calls_old;\n"),
        Err(ClusterError::Unrecognised { .. })
    ));
    assert!(matches!(
        rewrite("CREATE TABLE IF NOT EXISTS calls\n(\n    id UUID\n)\nENGINE = Log;\n"),
        Err(ClusterError::Unrecognised { .. })
    ));
}

#[test]
fn a_mutation_changes_the_shard_tables_on_every_shard() {
    let cluster = Cluster {
        name: "callmatrix",
        database: "cm",
    };
    assert_eq!(
        mutation(cluster, "calls", "UPDATE zip = '' WHERE account = 'a'").as_deref(),
        Some(
            "ALTER TABLE cm.calls_shard ON CLUSTER callmatrix UPDATE zip = '' WHERE account = 'a'"
        )
    );
    assert_eq!(
        mutation(cluster, "dead_letters", "DELETE WHERE account = 'a'").as_deref(),
        Some("ALTER TABLE cm.dead_letters_shard ON CLUSTER callmatrix DELETE WHERE account = 'a'")
    );
    // Replication carries it to every node; `ON CLUSTER` would run it per shard.
    assert_eq!(
        mutation(cluster, "erasures", "DELETE WHERE 1").as_deref(),
        Some("ALTER TABLE cm.erasures DELETE WHERE 1")
    );
    assert_eq!(mutation(cluster, "no_such_table", "DELETE WHERE 1"), None);
    assert_eq!(stored_name("calls_by_caller"), "calls_by_caller_shard");
    assert_eq!(stored_name("erasures"), "erasures");
}
