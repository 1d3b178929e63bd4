//! The shipped schema against a live ClickHouse: migrations are safe to re-run and
//! the Rust row structs agree with the tables they are written to.

use integration_tests::TestEnv;
use schemas::call::CALL_COLUMNS;

/// Column names in table order, read the same way on every ClickHouse version
/// (18.16's `system.columns` has no `position`): the header of an empty select.
async fn columns(client: &clickhouse::Client, table: &str) -> Vec<String> {
    let mut cursor = client
        .query(&format!("SELECT * FROM {table} LIMIT 0"))
        .fetch_bytes("TabSeparatedWithNames")
        .unwrap();
    let mut header = Vec::new();
    while let Some(chunk) = cursor.next().await.unwrap() {
        header.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(header).unwrap();
    text.lines()
        .next()
        .unwrap_or("")
        .split('\t')
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn migrations_rerun_and_rows_match_tables() {
    let env = TestEnv::new("schema").await;
    let again = cmctl::migrate(&env.clickhouse).await.unwrap();
    assert!(again.is_empty(), "second run applied {again:?}");

    let client = env.client();
    let expected: Vec<String> = CALL_COLUMNS
        .split(',')
        .map(|c| c.trim().to_owned())
        .collect();
    assert_eq!(columns(&client, "calls").await, expected);
    assert_eq!(
        <schemas::CallRow as clickhouse::Row>::COLUMN_NAMES,
        expected
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
    );
    let dead: Vec<String> = columns(&client, "dead_letters").await;
    assert_eq!(
        <schemas::DeadLetterRow as clickhouse::Row>::COLUMN_NAMES,
        dead.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
    );
}

/// Migrations 11 and 12 over a database as release 10 left it, with calls stored and
/// rolled up by the worker (at version 5): the calls get their buyer and CallMatrix
/// link in `calls_by_time`, the hours keep their newest version and now count links
/// (readers keep only an hour's newest version, so a refresh at version 0 would show
/// none), and the buyer dimension is rolled up.
#[tokio::test]
async fn migrations_11_and_12_fill_buyer_and_links_over_stored_calls() {
    let env = TestEnv::new("upgrade").await;
    let old = runtime::clickhouse::ClickHouseConfig {
        database: format!("{}_upgrade", env.clickhouse.database),
        ..env.clickhouse.clone()
    };
    let applied = runtime::migrate::migrate_up_to(&old, 10).await.unwrap();
    assert_eq!(applied.last(), Some(&10));
    let client = old.client();
    let run = |sql: String| {
        let client = client.clone();
        async move { client.query(&sql).execute().await.unwrap() }
    };
    // Two calls in one hour, one of a second hour: buyers and links as the partner sent.
    run("INSERT INTO calls (account, client_id, id, version, source, started_at, status, buyer, cm_call_id) VALUES \
         ('acme', 'hook', toUUID('00000000-0000-0000-0000-000000000001'), 1, 'webhook', toDateTime('2026-11-20 10:05:00', 'UTC'), 'qualified', 'Acme Insurance', 'cm_1'), \
         ('acme', 'hook', toUUID('00000000-0000-0000-0000-000000000002'), 1, 'webhook', toDateTime('2026-11-20 10:35:00', 'UTC'), 'repeat', 'Acme Insurance', ''), \
         ('acme', 'hook', toUUID('00000000-0000-0000-0000-000000000003'), 1, 'webhook', toDateTime('2026-11-20 11:15:00', 'UTC'), 'qualified', 'Zen Health', 'cm_3')".to_owned())
    .await;
    // The worker's rollup of both hours, at version 5 (release 10's columns).
    for statement in schemas::migrations::MIGRATIONS[6]
        .statements()
        .iter()
        .skip(1)
    {
        if statement.starts_with("INSERT") {
            run(statement.replace("0 AS version", "5 AS version")).await;
        }
    }
    let applied = runtime::migrate::migrate_up_to(&old, 12).await.unwrap();
    assert_eq!(applied, [11, 12]);

    let by_buyer: Vec<(String, u64)> = client
        .query("SELECT buyer, sum(linked) FROM calls_by_time FINAL WHERE deleted = 0 GROUP BY buyer ORDER BY buyer")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        by_buyer,
        [
            ("Acme Insurance".to_owned(), 1),
            ("Zen Health".to_owned(), 1)
        ]
    );
    // What a reader sees: each hour's newest version only.
    let newest = |table: &str| {
        format!(
            "SELECT toString(hour), max(version), sum(calls), sum(linked) FROM {table} FINAL WHERE status != '' \
             AND (account, hour, version) IN (SELECT account, hour, max(version) FROM {table} {where_dim} GROUP BY account, hour) \
             {and_dim} GROUP BY hour ORDER BY hour",
            where_dim = if table == "calls_hourly" { "" } else { "WHERE dimension = 'buyer'" },
            and_dim = if table == "calls_hourly" { "" } else { "AND dimension = 'buyer'" },
        )
    };
    let hours: Vec<(String, u64, u64, u64)> = client
        .query(&newest("calls_hourly"))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        hours,
        [
            ("2026-11-20 10:00:00".to_owned(), 5, 2, 1),
            ("2026-11-20 11:00:00".to_owned(), 5, 1, 1)
        ],
        "(hour, version, calls, linked): the worker's version kept, links counted"
    );
    let buyers: Vec<(String, u64, u64, u64)> = client
        .query(&newest("calls_hourly_dims"))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        buyers,
        [
            ("2026-11-20 10:00:00".to_owned(), 0, 2, 1),
            ("2026-11-20 11:00:00".to_owned(), 0, 1, 1)
        ],
        "the buyer dimension, rolled up at version 0 (none before)"
    );
    // Run again after a failure part-way: 12 can be applied twice.
    for statement in schemas::migrations::MIGRATIONS[11].statements() {
        run(statement).await;
    }
    let again: Vec<(String, u64, u64, u64)> = client
        .query(&newest("calls_hourly"))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(again, hours);
    let rows: u64 = client
        .query("SELECT count() FROM calls_by_time FINAL WHERE deleted = 0")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(rows, 3, "each call once");
}

/// Migration 13 over calls stored before it, and the processor's lookup through it:
/// a batch's call ids are first asked of `call_ids`, so a stored call missing there
/// would be taken for a new one (its old position never retired, its late fields
/// lost). Calls stored before the migration (its copy) and after it (its view) are
/// found, with every field; new ids are not.
#[tokio::test]
async fn migration_13_knows_every_stored_call_and_the_lookup_finds_them() {
    use processor::store::{ClickHouseStore, Store};
    use schemas::{CallId, ClientId};

    let env = TestEnv::new("call_ids").await;
    let old = runtime::clickhouse::ClickHouseConfig {
        database: format!("{}_call_ids", env.clickhouse.database),
        ..env.clickhouse.clone()
    };
    runtime::migrate::migrate_up_to(&old, 12).await.unwrap();
    let newest = schemas::migrations::MIGRATIONS
        .last()
        .map(|m| m.version)
        .unwrap_or(13);
    let client = old.client();
    let hook = ClientId::parse("hook").unwrap();
    let other = ClientId::parse("other_hook").unwrap();
    let id = |client: &ClientId, external: &str| CallId::from_external(client, external);
    let insert = |client_id: &ClientId, call: CallId, version: u64, campaign: &str| {
        format!(
            "INSERT INTO calls (account, client_id, id, version, source, caller, started_at, status, campaign) VALUES \
             ('acme', '{client_id}', toUUID('{call}'), {version}, 'webhook', '+13125550100', toDateTime('2026-11-20 10:05:00', 'UTC'), 'qualified', '{campaign}')"
        )
    };
    let before = id(&hook, "stored-before");
    client
        .query(&insert(&hook, before, 1, "first"))
        .execute()
        .await
        .unwrap();
    client
        .query(&insert(&hook, before, 2, "corrected"))
        .execute()
        .await
        .unwrap();
    assert_eq!(
        runtime::migrate::migrate(&old).await.unwrap(),
        (13..=newest).collect::<Vec<u32>>(),
        "13 is the newest migration; a new one needs this test widened"
    );
    let after = id(&other, "stored-after");
    client
        .query(&insert(&other, after, 1, "late"))
        .execute()
        .await
        .unwrap();

    let store = ClickHouseStore {
        client: client.clone(),
    };
    let new = id(&hook, "never-sent");
    // The same id under another integration is another call.
    let asked = [
        (hook.clone(), before),
        (other.clone(), after),
        (hook.clone(), new),
        (other.clone(), before),
    ];
    let found = store.calls(&asked).await.unwrap();
    let mut campaigns: Vec<(String, u64, Option<String>)> = found
        .values()
        .map(|c| (c.client_id.to_string(), c.version, c.campaign.clone()))
        .collect();
    campaigns.sort();
    assert_eq!(
        campaigns,
        [
            ("hook".to_owned(), 2, Some("corrected".to_owned())),
            ("other_hook".to_owned(), 1, Some("late".to_owned())),
        ],
        "each stored call at its newest version, nothing for the new id"
    );
    assert_eq!(
        found,
        store.calls(&asked).await.unwrap(),
        "the same answer as reading `calls`"
    );
    let ids: u64 = client
        .query("SELECT count() FROM call_ids FINAL")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(ids, 2, "one row per call, whatever its versions");
}

/// Two `cmctl migrate` runs at once (two deploy jobs starting together) apply each
/// migration once between them: the second waits for the first's lock, then finds
/// everything applied. Without the lock both read an empty ledger and both run
/// migration 3's `ALTER ... ADD COLUMN`, and one fails ("column already exists").
#[tokio::test]
async fn two_migrations_racing_apply_each_migration_once() {
    let env = TestEnv::new("race").await;
    let fresh = runtime::clickhouse::ClickHouseConfig {
        database: format!("{}_race", env.clickhouse.database),
        ..env.clickhouse.clone()
    };
    let (first, second) = tokio::join!(
        runtime::migrate::migrate(&fresh),
        runtime::migrate::migrate(&fresh)
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    let mut applied = [first.clone(), second.clone()].concat();
    applied.sort_unstable();
    let shipped: Vec<u32> = schemas::migrations::MIGRATIONS
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(applied, shipped, "first {first:?}, second {second:?}");
    let ledger: u64 = fresh
        .client()
        .query("SELECT count() FROM schema_migrations FINAL")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(ledger, shipped.len() as u64);
    // The lock is released: the next run takes it at once.
    let locks: u64 = fresh
        .client()
        .query("SELECT count() FROM system.tables WHERE database = ? AND name = ?")
        .bind(&fresh.database)
        .bind(runtime::migrate::LOCK_TABLE)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(locks, 0);
    assert_eq!(
        runtime::migrate::migrate(&fresh).await.unwrap(),
        Vec::<u32>::new()
    );
}
