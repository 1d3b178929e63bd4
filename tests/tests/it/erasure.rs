//! Issue 36's erasure on the real stack (ClickHouse; the topics go by their
//! retention, `topic_retention.rs`, docs/privacy.md). acme-leads' caller (415)
//! 555-2671 has the arroyo samples' calls,
//! a CallMatrix call (cm_0001), a call whose custom attribute holds the number in
//! another spelling, and a dead letter whose payload holds it; mallory has a call of
//! the same number. After `cmctl privacy erase`, no column of any table holds the
//! number's digits in any row of acme-leads (every table of the database, every
//! column, digits compared without separators), the api finds no call by it and the
//! CSV export holds it nowhere; the aggregates are what they were; mallory's call
//! keeps its number; the receipt lists rows per place without the number; a second
//! run of the same erasure changes nothing; a later call of the caller is stored as
//! usual.

use std::time::Duration;

use integration_tests::{
    callmatrix_call_stored, eventually, fixture, load_callmatrix_samples, sample_integration,
    TestEnv,
};
use serde_json::{json, Value};

const DIGITS: &str = "4155552671";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_caller_is_nowhere_and_the_numbers_stay_the_same() {
    let env = TestEnv::new("erasure").await;
    load_callmatrix_samples(&env).await;
    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "20")])
        .await;
    let ingest = env.start("ingest", &[]).await;
    let api = env.start("api", &[]).await;
    let client = env.client();
    let http = reqwest::Client::new();
    callmatrix_call_stored(&client, "cm_0001").await;

    let with_attribute = sample_integration("arroyo", |v| {
        v["client_id"] = json!("erase-attr");
        v["mapping"]["attributes"] = json!({"callback": {"path": "call.callback"}});
    });
    let mallory = sample_integration("arroyo", |v| {
        v["client_id"] = json!("erase-mallory");
        v["account"] = json!("mallory");
    });
    cmctl::publish_integrations(&env.kafka, &[with_attribute, mallory])
        .await
        .unwrap();
    ingest.wait_for_integration("erase-attr", 1).await;
    ingest.wait_for_integration("erase-mallory", 1).await;

    // The arroyo samples (their first call is the caller's, and CallMatrix's cm_0001).
    let (status, answer) = ingest
        .post_webhook("arroyo", "application/json", fixture("arroyo-webhook.json"))
        .await;
    assert_eq!(status, 202, "{answer}");
    let posts = [
        (
            "erase-attr",
            json!({"call": {"id": "er_attr", "caller": {"number": "415.555.2671"},
                "started_at": "2026-11-21T10:00:00Z", "duration": "1:00", "payout": "5.00",
                "callback": "call back on +1 (415) 555-2671"}}),
        ),
        (
            "erase-mallory",
            json!({"call": {"id": "er_mallory", "caller": {"number": "(415) 555-2671"},
                "started_at": "2026-11-21T11:00:00Z", "duration": "1:00", "payout": "7.00"}}),
        ),
        // A start that is no time: refused, a dead letter whose payload holds the
        // number (a record merely lacking its start would wait, parked, for its call).
        (
            "arroyo",
            json!({"call": {"id": "er_dead", "caller": {"number": "+1 415-555-2671"},
                "started_at": "the day before yesterday"}}),
        ),
    ];
    for (hook, body) in &posts {
        let (status, answer) = ingest
            .post_webhook(hook, "application/json", body.to_string())
            .await;
        assert_eq!(status, 202, "{hook}: {answer}");
    }
    let count = |sql: &'static str| {
        let client = client.clone();
        async move { client.query(sql).fetch_one::<u64>().await.unwrap_or(0) }
    };
    eventually("every call and the dead letter", Duration::from_secs(60), || async {
        let calls = count("SELECT count() FROM calls FINAL WHERE client_id IN ('arroyo', 'erase-attr', 'erase-mallory')").await;
        let letters = count("SELECT count() FROM dead_letters WHERE client_id = 'arroyo' AND position(payload, 'er_dead') > 0").await;
        (calls == 5 && letters == 1).then_some(())
    })
    .await;
    let aggregates = || {
        let (http, url) = (
            http.clone(),
            api.url("/api/aggregates?bucket=none&group_by=status&exact=true&account=acme-leads&from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z"),
        );
        async move {
            let body: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            body["rows"].clone()
        }
    };
    let before = aggregates().await;
    assert!(before.as_array().is_some_and(|r| !r.is_empty()), "{before}");
    // What holds the digits before: the test's check finds them (it can fail).
    let holding_before = rows_holding_digits(&client).await;
    assert!(
        holding_before.iter().any(|(t, _)| t == "calls")
            && holding_before.iter().any(|(t, _)| t == "dead_letters")
            && holding_before.iter().any(|(t, _)| t == "cm_calls")
            && holding_before.iter().any(|(t, _)| t == "calls_by_time"),
        "the check sees the number before the erasure: {holding_before:?}"
    );

    let actor = schemas::audit::Actor {
        name: "erasure test".into(),
        role: "cli".into(),
        from: "test".into(),
    };
    let request = cmctl::ErasureRequest {
        account: "acme-leads",
        number: "(415) 555-2671",
        region: "US",
        id: None,
        suppress: false,
    };
    let receipt = cmctl::erase_caller(
        &env.kafka,
        &client,
        &request,
        &actor,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(receipt.outcome, "done", "{receipt:?}");
    let changed = |place: &str| {
        receipt
            .places
            .iter()
            .position(|p| p == place)
            .map(|i| receipt.rows[i])
            .unwrap_or(0)
    };
    assert!(changed("calls") >= 2, "{receipt:?}");
    assert_eq!(changed("cm_calls"), 1, "{receipt:?}");
    assert_eq!(changed("dead_letters"), 1, "{receipt:?}");
    assert!(changed("calls_by_time") >= 1, "{receipt:?}");

    // Nowhere in acme-leads' rows of any table; mallory's call keeps it.
    let holding = rows_holding_digits(&client).await;
    assert!(holding.is_empty(), "the number is still in: {holding:?}");
    let mallory_caller: String = client
        .query("SELECT caller FROM calls FINAL WHERE client_id = 'erase-mallory'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        mallory_caller, "+14155552671",
        "another account's call is its own"
    );
    // The api: no call by the number, no trace in the export.
    let found: Value = http
        .get(api.url("/api/calls?caller=%2B14155552671&account=acme-leads"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["calls"].as_array().map(Vec::len), Some(0), "{found}");
    // The erased calls are still listed: without a caller, with the erasure's token.
    let listed: Value = http
        .get(api.url("/api/calls?account=acme-leads&client_id=arroyo&limit=50"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first = listed["calls"]
        .as_array()
        .and_then(|calls| calls.iter().find(|c| c["external_id"] == "ar_9f8e7d6c"))
        .unwrap_or_else(|| panic!("the erased call is listed: {listed}"));
    assert!(first["caller"].is_null(), "{first}");
    assert_eq!(
        first["caller_hash"],
        schemas::erasure::erased_caller(receipt.id).as_str(),
        "{first}"
    );
    assert_eq!(
        listed["calls"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );
    let export = http
        .get(api.url("/api/calls/export.csv?account=acme-leads&from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(export.lines().count() > 1, "{export}");
    for line in export.lines() {
        let digits: String = line.chars().filter(char::is_ascii_digit).collect();
        assert!(
            !digits.contains(DIGITS),
            "the export holds the number: {line}"
        );
    }
    assert_eq!(
        aggregates().await,
        before,
        "counts and money are what they were"
    );

    // The receipt, through the api: rows per place, never the number.
    let receipts = http
        .get(api.url("/api/privacy/erasures?account=acme-leads"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let parsed: Value = serde_json::from_str(&receipts).unwrap();
    assert_eq!(
        parsed["erasures"][0]["id"],
        receipt.id.to_string(),
        "{receipts}"
    );
    assert_eq!(
        parsed["erasures"][0]["requested_by"], "erasure test",
        "{receipts}"
    );
    assert_eq!(
        parsed["erasures"][0]["rows_changed"]["cm_calls"], 1,
        "{receipts}"
    );
    // The topics go by their retention (the test's topics: 7 days): the receipt
    // says by when they hold none of the caller's earlier records.
    assert_eq!(
        receipt.topics_clear_by,
        schemas::erasure::topics_clear_by(
            receipt.finished_at,
            Some(Duration::from_secs(7 * 24 * 3600))
        ),
        "{receipt:?}"
    );
    assert_eq!(
        parsed["erasures"][0]["topics_clear_by"],
        json!(receipt.topics_clear_by),
        "{receipts}"
    );
    let digits: String = receipts.chars().filter(char::is_ascii_digit).collect();
    assert!(!digits.contains(DIGITS), "{receipts}");

    // The keyed state's changelog (compacted: the broker keeps the newest record of
    // each key, and tansu keeps a tombstone's key for ever): no key of any record
    // names the caller (mallory's neither: keys name callers by a keyed hash), and
    // no newest value of acme-leads holds the number.
    let state_topic = env.kafka.topics().state;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let holding = loop {
        let holding = state_records_holding_digits(&env, &state_topic).await;
        if holding.is_empty() || std::time::Instant::now() > deadline {
            break holding;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        holding.is_empty(),
        "the keyed state's changelog holds the erased number: {holding:#?}"
    );

    // The same erasure again: nothing left to change.
    let again = cmctl::ErasureRequest {
        account: "acme-leads",
        number: "4155552671",
        region: "US",
        id: Some(receipt.id),
        suppress: false,
    };
    let again = cmctl::erase_caller(&env.kafka, &client, &again, &actor, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(again.rows.iter().all(|&n| n == 0), "{again:?}");

    // Not a block list: a later call of the caller is stored with its number.
    let later = json!({"call": {"id": "er_later", "caller": {"number": "(415) 555-2671"},
        "started_at": "2026-11-22T10:00:00Z", "duration": "1:00"}});
    let (status, _) = ingest
        .post_webhook("arroyo", "application/json", later.to_string())
        .await;
    assert_eq!(status, 202);
    eventually("the later call", Duration::from_secs(60), || async {
        let caller: String = client
            .query("SELECT caller FROM calls FINAL WHERE client_id = 'arroyo' AND external_id = 'er_later'")
            .fetch_one()
            .await
            .ok()?;
        (caller == "+14155552671").then_some(())
    })
    .await;
}

/// What of `topic` (the keyed state's changelog) holds the number: every key with
/// its digits (keys outlive their values), and every newest value of a key whose
/// strings hold them, but for mallory's calls (they keep the number). Empty when
/// nothing does.
async fn state_records_holding_digits(env: &TestEnv, topic: &str) -> Vec<String> {
    let (env_name, brokers, topic) = (
        env.name.clone(),
        env.kafka.brokers.clone(),
        topic.to_owned(),
    );
    let partitions = integration_tests::partition_count(env, &topic);
    let records = tokio::task::spawn_blocking(move || {
        integration_tests::read_topic_at(&brokers, &env_name, &topic, partitions)
    })
    .await
    .unwrap();
    let mut found = Vec::new();
    let mut newest = std::collections::HashMap::new();
    for record in records {
        let digits: String = record.key.chars().filter(char::is_ascii_digit).collect();
        if digits.contains(DIGITS) {
            found.push(format!("key {:?}", record.key));
        }
        newest.insert((record.partition, record.key), record.payload);
    }
    for ((partition, key), payload) in newest {
        let Some(payload) = payload else { continue };
        let Ok(value) = serde_json::from_slice::<Value>(&payload) else {
            continue;
        };
        if value["account"] == "mallory" {
            continue;
        }
        if strings_hold_digits(&value) {
            found.push(format!(
                "the value of {key:?} in partition {partition}: {value}"
            ));
        }
    }
    found
}

/// Whether any string in `value` holds the number's digits (separators removed).
fn strings_hold_digits(value: &Value) -> bool {
    match value {
        Value::String(text) => {
            let digits: String = text.chars().filter(char::is_ascii_digit).collect();
            digits.contains(DIGITS)
        }
        Value::Array(items) => items.iter().any(strings_hold_digits),
        Value::Object(fields) => fields.values().any(strings_hold_digits),
        _ => false,
    }
}

/// (table, rows) of every table of the database whose rows of acme-leads (or every
/// row, for a table without an account) hold the number's digits in any column,
/// separators removed.
async fn rows_holding_digits(client: &clickhouse::Client) -> Vec<(String, u64)> {
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Column {
        table: String,
        name: String,
    }
    let columns: Vec<Column> = client
        .query(
            "SELECT table, name FROM system.columns WHERE database = currentDatabase() \
             AND table IN (SELECT name FROM system.tables WHERE database = currentDatabase() \
             AND engine NOT IN ('View', 'MaterializedView')) ORDER BY table, name",
        )
        .fetch_all()
        .await
        .unwrap();
    let mut tables: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for column in columns {
        tables.entry(column.table).or_default().push(column.name);
    }
    let mut holding = Vec::new();
    for (table, names) in tables {
        let texts = names
            .iter()
            .map(|n| format!("ifNull(toString(`{n}`), '')"))
            .collect::<Vec<_>>()
            .join(", ");
        let whose = if names.iter().any(|n| n == "account") {
            "account = 'acme-leads' AND "
        } else {
            ""
        };
        let rows: u64 = client
            .query(&format!(
                "SELECT count() FROM `{table}` WHERE {whose}\
                 position(replaceRegexpAll(arrayStringConcat([{texts}], '|'), '[^0-9|]', ''), '{DIGITS}') > 0"
            ))
            .fetch_one()
            .await
            .unwrap_or_else(|e| panic!("searching {table}: {e}"));
        if rows > 0 {
            holding.push((table, rows));
        }
    }
    holding
}

/// `POST /api/privacy/erasures`: the api (which only reads ClickHouse) records the
/// order in the audit trail and publishes it; the processor's erasure worker erases
/// the caller, writes the receipt and a tombstone for the order. Checked by the same
/// search of every table, by the receipt listed through the api, by the audit entry
/// (the erasure's id, not the number) and by the erasures topic, whose last record
/// for the order's key is the tombstone. Bad orders are answered with the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_asked_through_the_api_is_carried_out_by_the_processor() {
    let env = TestEnv::new("erasure-api").await;
    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "20")])
        .await;
    let ingest = env.start("ingest", &[]).await;
    let api = env.start("api", &[]).await;
    let client = env.client();
    let http = reqwest::Client::new();
    mallory_integration(&env, &ingest, "erase-api-mallory").await;
    for (hook, id) in [("arroyo", "ea_acme"), ("erase-api-mallory", "ea_mallory")] {
        let body = json!({"call": {"id": id, "caller": {"number": "(415) 555-2671"},
            "started_at": "2026-11-21T10:00:00Z", "duration": "1:00", "payout": "5.00"}});
        let (status, answer) = ingest
            .post_webhook(hook, "application/json", body.to_string())
            .await;
        assert_eq!(status, 202, "{hook}: {answer}");
    }
    eventually("both calls", Duration::from_secs(60), || async {
        let n: u64 = client
            .query("SELECT count() FROM calls FINAL WHERE external_id IN ('ea_acme', 'ea_mallory')")
            .fetch_one()
            .await
            .ok()?;
        (n == 2).then_some(())
    })
    .await;
    assert!(
        !rows_holding_digits(&client).await.is_empty(),
        "the check sees the number before the erasure"
    );

    // The api's recent payloads (dry runs on real traffic) hold the number too.
    let previewed = || {
        let (http, url) = (http.clone(), api.url("/api/mappings/preview"));
        async move {
            http.post(url)
                .json(&json!({"client_id": "arroyo", "recent": true}))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()
        }
    };
    let shown = eventually(
        "the payload in the recent buffer",
        Duration::from_secs(30),
        || async { previewed().await.filter(|text| text.contains("ea_acme")) },
    )
    .await;
    let spellings = schemas::erasure::spellings("+14155552671").unwrap();
    assert!(
        spellings.is_match(&shown),
        "the check sees the number: {shown}"
    );

    // Orders that cannot be carried out say which field is wrong.
    let order = |body: Value| {
        let (http, url) = (http.clone(), api.url("/api/privacy/erasures"));
        async move {
            let response = http.post(url).json(&body).send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, answer) = order(json!({"number": "not a number", "account": "acme-leads"})).await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (422, Some("number")),
        "{answer}"
    );
    let (status, answer) =
        order(json!({"number": "4155552671", "region": "ZZ", "account": "acme-leads"})).await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (422, Some("region")),
        "{answer}"
    );
    let (status, answer) = order(json!({"number": "4155552671"})).await;
    assert_eq!(status, 400, "an admin names the account: {answer}");

    let (status, answer) = order(json!({"number": "415.555.2671", "account": "acme-leads"})).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["id"].as_str().expect("the order's id").to_owned();
    let receipt = eventually("the receipt", Duration::from_secs(120), || {
        let (http, url, id) = (
            http.clone(),
            api.url("/api/privacy/erasures?account=acme-leads"),
            id.clone(),
        );
        async move {
            let listed: Value = http.get(url).send().await.ok()?.json().await.ok()?;
            listed["erasures"]
                .as_array()?
                .iter()
                .find(|r| r["id"] == id.as_str())
                .cloned()
        }
    })
    .await;
    assert_eq!(receipt["outcome"], "done", "{receipt}");
    assert_eq!(receipt["rows_changed"]["calls"], 1, "{receipt}");
    let holding = rows_holding_digits(&client).await;
    assert!(holding.is_empty(), "the number is still in: {holding:?}");
    let mallory_caller: String = client
        .query("SELECT caller FROM calls FINAL WHERE external_id = 'ea_mallory'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(mallory_caller, "+14155552671", "another account's call");

    // Gone from the recent payloads: no dry run shows the erased record.
    let shown = previewed().await.unwrap_or_default();
    assert!(!shown.contains("ea_acme"), "{shown}");

    // A later record of the erased call without a caller (a payout after the fact)
    // merges over what the processor keeps of the call: it must not bring the
    // number back.
    let late = json!({"call": {"id": "ea_acme", "payout": "9.00"}});
    let (status, answer) = ingest
        .post_webhook("arroyo", "application/json", late.to_string())
        .await;
    assert_eq!(status, 202, "{answer}");
    let caller_after: String = eventually("the late payout", Duration::from_secs(60), || async {
        client
            .query("SELECT caller FROM calls FINAL WHERE external_id = 'ea_acme' AND payout = 9")
            .fetch_optional::<String>()
            .await
            .ok()
            .flatten()
    })
    .await;
    assert!(
        caller_after.starts_with(schemas::erasure::ERASED_PREFIX),
        "the late record brought back {caller_after:?}"
    );
    let holding = rows_holding_digits(&client).await;
    assert!(holding.is_empty(), "after the late record: {holding:?}");

    // An api started after the order warms its recent payloads from the raw topic,
    // which still holds the erased record: it meets the order after it (the same
    // partition, the caller's) and drops the record again, before it answers (it
    // answered from a buffer half warmed before: the record, not yet the order).
    // Its first answer holds the late payout (no number), and only that (it
    // answered nothing at all before it waited for its warm-up).
    let second = env.start("api", &[]).await;
    let warmed: Value = http
        .post(second.url("/api/mappings/preview"))
        .json(&json!({"client_id": "arroyo", "recent": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !spellings.is_match(&warmed.to_string()),
        "the new api's recent payloads hold the number: {warmed}"
    );
    let results = warmed["results"].as_array().expect("results");
    assert_eq!(results.len(), 1, "{warmed}");
    // The late payout alone has no caller and no start: the dry run refuses it.
    assert!(
        results[0]["rejected"]["errors"]
            .to_string()
            .contains("caller"),
        "{warmed}"
    );

    // The audit trail names the erasure, not the number.
    let audit = eventually("the audit entry", Duration::from_secs(60), || {
        let (http, url) = (http.clone(), api.url("/api/audit?account=acme-leads"));
        async move {
            let text = http.get(url).send().await.ok()?.text().await.ok()?;
            text.contains("caller.erased").then_some(text)
        }
    })
    .await;
    assert!(audit.contains(&id), "{audit}");
    let digits: String = audit.chars().filter(char::is_ascii_digit).collect();
    assert!(!digits.contains(DIGITS), "{audit}");

    // The order's key ends with a tombstone: the number leaves the topic at compaction.
    let topic = env.kafka.topics().erasures;
    let records = eventually("the order's tombstone", Duration::from_secs(30), || {
        let (env, topic, id) = (&env, topic.clone(), id.clone());
        async move {
            let records = integration_tests::read_topic(env, &topic, 1);
            let last = records.iter().rev().find(|r| r.key == id)?;
            last.payload.is_none().then_some(records)
        }
    })
    .await;
    assert_eq!(
        records
            .iter()
            .filter(|r| r.key == id && r.payload.is_some())
            .count(),
        1,
        "one order, then its tombstone"
    );
}

/// An erasure asked with `suppress`: the caller's later calls are stored without
/// the number (the erasure's token as their caller), while another caller of the
/// account and the same number at another account are stored as sent. The
/// suppression list names the caller by a keyed hash, never by the number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suppressed_caller_is_stored_without_the_number_later() {
    let env = TestEnv::new("erasure-suppress").await;
    let processor = env
        .start(
            "processor",
            &[
                ("PROCESSOR_BATCH__MAX_WAIT_MS", "20"),
                ("PROCESSOR_RETENTION__HASH_KEY", "a-test-deployment-key"),
            ],
        )
        .await;
    let ingest = env.start("ingest", &[]).await;
    let api = env.start("api", &[]).await;
    let client = env.client();
    let http = reqwest::Client::new();
    mallory_integration(&env, &ingest, "suppress-mallory").await;
    let post = |hook: &'static str, id: &'static str, number: &'static str, start: &'static str| {
        let ingest = &ingest;
        async move {
            let body = json!({"call": {"id": id, "caller": {"number": number},
                "started_at": start, "duration": "1:00", "payout": "5.00"}});
            let (status, answer) = ingest
                .post_webhook(hook, "application/json", body.to_string())
                .await;
            assert_eq!(status, 202, "{id}: {answer}");
        }
    };
    let caller_of = |id: &'static str| {
        let client = client.clone();
        async move {
            client
                .query("SELECT caller FROM calls FINAL WHERE external_id = ?")
                .bind(id)
                .fetch_optional::<String>()
                .await
                .ok()
                .flatten()
        }
    };
    post(
        "arroyo",
        "sp_before",
        "(415) 555-2671",
        "2026-11-21T10:00:00Z",
    )
    .await;
    eventually("the first call", Duration::from_secs(60), || {
        caller_of("sp_before")
    })
    .await;

    let response = http
        .post(api.url("/api/privacy/erasures"))
        .json(&json!({"number": "4155552671", "account": "acme-leads", "suppress": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["suppress"], true, "{answer}");
    let id: uuid::Uuid = answer["id"].as_str().unwrap().parse().unwrap();
    let token = schemas::erasure::erased_caller(id);
    // The list entry is published once the order's batch is stored.
    let topic = env.kafka.topics().suppressions;
    let entries = eventually("the suppression entry", Duration::from_secs(60), || {
        let (env, topic) = (&env, topic.clone());
        async move {
            let records = integration_tests::read_topic(env, &topic, 1);
            (!records.is_empty()).then_some(records)
        }
    })
    .await;
    assert_eq!(entries.len(), 1);
    assert!(
        entries[0].key.starts_with("acme-leads|"),
        "{}",
        entries[0].key
    );
    let entry = String::from_utf8(entries[0].payload.clone().unwrap()).unwrap();
    assert!(entry.contains(&id.to_string()), "{entry}");
    let digits: String = entry.chars().filter(char::is_ascii_digit).collect();
    assert!(
        !digits.contains(DIGITS),
        "the list holds the number: {entry}"
    );

    // Later calls: the suppressed caller (another spelling), another caller of the
    // account, and the same number at another account.
    post(
        "arroyo",
        "sp_after",
        "+1 415-555-2671",
        "2026-11-22T10:00:00Z",
    )
    .await;
    post(
        "arroyo",
        "sp_other",
        "(312) 555-0142",
        "2026-11-22T10:05:00Z",
    )
    .await;
    post(
        "suppress-mallory",
        "sp_mallory",
        "4155552671",
        "2026-11-22T10:10:00Z",
    )
    .await;
    let after = eventually(
        "the suppressed caller's call",
        Duration::from_secs(60),
        || caller_of("sp_after"),
    )
    .await;
    assert_eq!(after, token, "stored with the erasure's token");
    let other = eventually("another caller's call", Duration::from_secs(60), || {
        caller_of("sp_other")
    })
    .await;
    assert_eq!(other, "+13125550142");
    let mallory = eventually("mallory's call", Duration::from_secs(60), || {
        caller_of("sp_mallory")
    })
    .await;
    assert_eq!(
        mallory, "+14155552671",
        "another account's caller is not suppressed"
    );
    let before = eventually(
        "the first call erased",
        Duration::from_secs(120),
        || async { caller_of("sp_before").await.filter(|c| *c == token) },
    )
    .await;
    assert_eq!(before, token);
    let holding = rows_holding_digits(&client).await;
    assert!(holding.is_empty(), "the number is still in: {holding:?}");
    // The account sees its suppressions by the erasure that asked, never the number.
    let listed: Value = http
        .get(api.url("/api/privacy/erasures?account=acme-leads"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["suppressions"][0]["erasure"],
        id.to_string(),
        "{listed}"
    );
    assert_eq!(
        listed["suppressions"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );

    // The caller consents again: the suppression is lifted (the number in another
    // spelling), the entry leaves the list (a tombstone), and a later call is stored
    // with its number.
    let response = http
        .post(api.url("/api/privacy/suppression-lifts"))
        .json(&json!({"number": "+1 (415) 555-2671", "account": "acme-leads"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let answer: Value = response.json().await.unwrap();
    let lift = answer["id"].as_str().unwrap().to_owned();
    let entries = eventually("the entry's tombstone", Duration::from_secs(60), || {
        let (env, topic) = (&env, topic.clone());
        async move {
            let records = integration_tests::read_topic(env, &topic, 1);
            (records.len() == 2).then_some(records)
        }
    })
    .await;
    assert_eq!(entries[1].key, entries[0].key, "the same caller's entry");
    assert!(entries[1].payload.is_none(), "a tombstone");
    let listed = eventually(
        "the list without the caller",
        Duration::from_secs(30),
        || {
            let http = http.clone();
            let url = api.url("/api/privacy/erasures?account=acme-leads");
            async move {
                let listed: Value = http.get(url).send().await.ok()?.json().await.ok()?;
                (listed["suppressions"].as_array()?.is_empty()).then_some(listed)
            }
        },
    )
    .await;
    assert_eq!(
        listed["erasures"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    post(
        "arroyo",
        "sp_lifted",
        "415.555.2671",
        "2026-11-23T10:00:00Z",
    )
    .await;
    let lifted = eventually("the call after the lift", Duration::from_secs(60), || {
        caller_of("sp_lifted")
    })
    .await;
    assert_eq!(lifted, "+14155552671", "stored with its number again");
    assert_eq!(
        caller_of("sp_after").await.as_deref(),
        Some(token.as_str()),
        "the calls stored while suppressed stay erased"
    );
    // The audit trail names the lift, not the number.
    let audit = eventually("the lift's audit entry", Duration::from_secs(60), || {
        let http = http.clone();
        let url = api.url("/api/audit?account=acme-leads&action=suppression.lifted");
        async move {
            let audit: Value = http.get(url).send().await.ok()?.json().await.ok()?;
            (audit.to_string().contains("suppression.lifted")).then_some(audit)
        }
    })
    .await;
    let text = audit.to_string();
    assert!(text.contains(&lift), "{audit}");
    assert!(!text.contains("2671"), "{audit}");
    // The same lift from cmctl: the caller is no longer suppressed, so it changes
    // nothing, and says so.
    cmctl::lift_suppression(
        &env.kafka,
        "acme-leads",
        "4155552671",
        "US",
        &cmctl::cli_actor(),
    )
    .await
    .unwrap();
    let lifts = |outcome: &'static str| {
        let processor = &processor;
        async move {
            let label = format!("outcome=\"{outcome}\"");
            integration_tests::metric_sum(
                processor,
                "processor_suppression_lifts_total",
                Some(&label),
            )
            .await
        }
    };
    eventually("the second lift met", Duration::from_secs(60), || async {
        (lifts("not_suppressed").await >= 1.0).then_some(())
    })
    .await;
    assert_eq!(lifts("lifted").await, 1.0);
}

/// An integration of account mallory (a copy of arroyo's), for a call of the same
/// number at another account.
async fn mallory_integration(env: &TestEnv, ingest: &integration_tests::Service, client_id: &str) {
    let mallory = sample_integration("arroyo", |v| {
        v["client_id"] = json!(client_id);
        v["account"] = json!("mallory");
    });
    cmctl::publish_integrations(&env.kafka, &[mallory])
        .await
        .unwrap();
    ingest.wait_for_integration(client_id, 1).await;
}

/// Erasure orders and suppression lifts are limited per account
/// (`limits.privacy_orders_per_minute`): each one costs the processor ClickHouse
/// mutations of every table holding calls, so one account asking thousands would
/// hold everyone's erasures (and inserts) up. Past the limit an account gets 429
/// naming it, with `Retry-After`, and nothing is recorded; another account's orders
/// still pass. A lift with a malformed number or region is answered 422 naming the
/// field (an admin's, which no limit counts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_privacy_orders_past_its_limit_are_refused_and_no_one_elses() {
    const ADMIN: &str = "adm_privacy_limit_0123456789abcdefgh";
    const A: &str = "acme_privacy_limit_0123456789abcdefgh";
    const B: &str = "noisy_privacy_limit_0123456789abcdefg";
    let env = TestEnv::new("privacy-limit").await;
    let tokens = tempfile::tempdir().unwrap();
    let tokens_file = tokens.path().join("tokens.json");
    std::fs::write(
        &tokens_file,
        json!({"admin": [ADMIN], "accounts": {"acme-leads": [A], "noisy": [B]}}).to_string(),
    )
    .unwrap();
    let api = env
        .start(
            "api",
            &[
                ("API_AUTH__TOKENS_FILE", tokens_file.to_str().unwrap()),
                ("API_LIMITS__PRIVACY_ORDERS_PER_MINUTE", "3"),
            ],
        )
        .await;
    let http = reqwest::Client::new();
    let order = |path: &'static str, token: &'static str, body: Value| {
        let (http, url) = (http.clone(), api.url(path));
        async move {
            let response = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").is_some();
            let answer = response.json::<Value>().await.unwrap_or(Value::Null);
            (status, retry_after, answer)
        }
    };

    // Malformed lifts name their field.
    let lifts = "/api/privacy/suppression-lifts";
    for (body, field) in [
        (
            json!({"number": "not a number", "account": "noisy"}),
            "number",
        ),
        (json!({"number": "12", "account": "noisy"}), "number"),
        (
            json!({"number": DIGITS, "region": "ZZ", "account": "noisy"}),
            "region",
        ),
    ] {
        let (status, _, answer) = order(lifts, ADMIN, body.clone()).await;
        assert_eq!(
            (status, answer["error"]["field"].as_str()),
            (422, Some(field)),
            "{body}: {answer}"
        );
    }
    let (status, _, answer) = order(lifts, ADMIN, json!({"number": DIGITS})).await;
    assert_eq!(status, 400, "an admin names the account: {answer}");

    // B asks three orders (its limit), then a fourth and a fifth of either kind.
    for n in 0..3 {
        let (path, body) = if n % 2 == 0 {
            (lifts, json!({"number": format!("415555260{n}")}))
        } else {
            (
                "/api/privacy/erasures",
                json!({"number": format!("415555260{n}")}),
            )
        };
        let (status, _, answer) = order(path, B, body).await;
        assert_eq!(status, 202, "B's order {n}: {answer}");
    }
    for path in [lifts, "/api/privacy/erasures"] {
        let (status, retry_after, answer) = order(path, B, json!({"number": "4155552609"})).await;
        assert_eq!(status, 429, "B past its limit, {path}: {answer}");
        assert!(retry_after, "429 says when to retry");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("limits.privacy_orders_per_minute") && message.contains("noisy"),
            "names the limit and the account: {answer}"
        );
    }
    // A's orders are its own share.
    for path in [lifts, "/api/privacy/erasures"] {
        let (status, _, answer) = order(path, A, json!({"number": DIGITS})).await;
        assert_eq!(status, 202, "A beside B, {path}: {answer}");
    }
}

/// A record of an erased call that is queued before `cmctl privacy erase` (here: sent
/// while the processor is down, so the order lands behind it on the raw topic) merges
/// over the call as the keyed state kept it, number included. The erasure must still
/// leave no row with the number: the state is erased before ClickHouse, as an order
/// through the api is (it failed when cmctl erased ClickHouse first: the late
/// version brought the number back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_queued_before_a_cli_erasure_does_not_bring_the_number_back() {
    let env = TestEnv::new("erasure-race").await;
    let processor_env = [("PROCESSOR_BATCH__MAX_WAIT_MS", "20")];
    let mut processor = env.start("processor", &processor_env).await;
    let ingest = env.start("ingest", &[]).await;
    let client = env.client();
    let call = json!({"call": {"id": "er_race", "caller": {"number": "(415) 555-2671"},
        "started_at": "2026-11-21T10:00:00Z", "duration": "1:00", "payout": "5.00"}});
    let (status, answer) = ingest
        .post_webhook("arroyo", "application/json", call.to_string())
        .await;
    assert_eq!(status, 202, "{answer}");
    let holding = || {
        let client = client.clone();
        async move {
            client
                .query("SELECT count() FROM calls WHERE account = 'acme-leads' AND position(caller, '4155552671') > 0")
                .fetch_one::<u64>()
                .await
                .unwrap_or(0)
        }
    };
    eventually("the call", Duration::from_secs(60), || async {
        (holding().await > 0).then_some(())
    })
    .await;

    // Down: the late payout (no caller) and then the order queue on the raw topic.
    processor.kill();
    let late = json!({"call": {"id": "er_race", "payout": "9.00"}});
    let (status, answer) = ingest
        .post_webhook("arroyo", "application/json", late.to_string())
        .await;
    assert_eq!(status, 202, "{answer}");
    let actor = schemas::audit::Actor {
        name: "erasure race test".into(),
        role: "cli".into(),
        from: "test".into(),
    };
    let erasing = {
        let (kafka, client) = (env.kafka.clone(), client.clone());
        tokio::spawn(async move {
            let request = cmctl::ErasureRequest {
                account: "acme-leads",
                number: "+1 415 555 2671",
                region: "US",
                id: None,
                suppress: false,
            };
            cmctl::erase_caller(&kafka, &client, &request, &actor, Duration::from_secs(90)).await
        })
    };
    // The erasure is under way (or waiting for a processor) before one runs again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _processor = env.start("processor", &processor_env).await;
    let receipt = erasing.await.unwrap().unwrap();
    assert_eq!(receipt.outcome, "done", "{receipt:?}");

    // The late payout is stored, on the erased call, and no row holds the number.
    eventually("the late payout", Duration::from_secs(60), || async {
        let payout: f64 = client
            .query("SELECT toFloat64(assumeNotNull(payout)) FROM calls FINAL WHERE external_id = 'er_race'")
            .fetch_one()
            .await
            .ok()?;
        (payout == 9.0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(holding().await, 0, "a version of the call holds the number");
}
