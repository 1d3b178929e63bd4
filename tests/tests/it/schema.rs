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
