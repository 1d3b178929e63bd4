//! Issue 36's retention on the real stack: acme-leads sets a policy (personal fields
//! kept 365 days, dead letters 30) through the api; the processor's retention worker
//! then hashes the caller and empties the ZIP and city of the account's calls older
//! than a year (the same hash for the same caller), deletes its old dead letters,
//! and leaves recent ones alone; the aggregates (from the calls and from the rollup)
//! are what they were; the api still reads the old calls; the run and the policy
//! change are visible; a second run changes nothing; another account's old call of
//! the same caller keeps its number. Calls counted by partner id.

use std::time::Duration;

use integration_tests::{eventually, TestEnv};
use serde_json::{json, Value};

const KEY: &str = "retention-test-key-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_calls_lose_their_callers_and_the_numbers_stay_the_same() {
    let env = TestEnv::new("retention").await;
    let _processor = env
        .start(
            "processor",
            &[
                ("PROCESSOR_BATCH__MAX_WAIT_MS", "20"),
                ("PROCESSOR_RETENTION__INTERVAL_S", "1"),
                ("PROCESSOR_RETENTION__HASH_KEY", KEY),
            ],
        )
        .await;
    let ingest = env.start("ingest", &[]).await;
    let api = env.start("api", &[]).await;
    let http = reqwest::Client::new();
    let client = env.client();
    let days_ago = |days: i64| {
        (chrono::Utc::now() - chrono::Duration::days(days))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let calls = [
        ("ret_old_1", "(312) 555-0170", 400),
        ("ret_old_2", "312-555-0170", 390),
        ("ret_old_3", "(312) 555-0171", 380),
        ("ret_new_1", "3125550170", 5),
    ];
    for (id, caller, days) in calls {
        let body = json!({"call": {"id": id, "caller": {"number": caller, "zip": "94103"},
                                    "started_at": days_ago(days), "payout": "10.00", "duration": "2:00"}});
        let (status, answer) = ingest
            .post_webhook("arroyo", "application/json", body.to_string())
            .await;
        assert_eq!(status, 202, "{answer}");
    }
    // Two dead letters of the account: one failed 40 days ago, one now.
    for (raw_id, days) in [
        ("00000000-0000-0000-0000-0000000000d1", 40),
        ("00000000-0000-0000-0000-0000000000d2", 0),
    ] {
        client
            .query(&format!(
                "INSERT INTO dead_letters (raw_id, client_id, account, source, stage, reason, received_at, failed_at, payload) \
                 VALUES (toUUID('{raw_id}'), 'arroyo', 'acme-leads', 'webhook', 'mapping', 'test', \
                 now() - {secs}, now() - {secs}, '{{\"caller\": \"3125550170\"}}')",
                secs = days * 86_400
            ))
            .execute()
            .await
            .unwrap();
    }
    let callers = || {
        let client = client.clone();
        async move {
            client
                .query("SELECT external_id, caller, zip FROM calls FINAL WHERE client_id = 'arroyo' AND external_id LIKE 'ret_%' ORDER BY external_id")
                .fetch_all::<(String, String, String)>()
                .await
                .unwrap()
        }
    };
    eventually("the 4 calls", Duration::from_secs(60), || async {
        (callers().await.len() == 4).then_some(())
    })
    .await;
    // Another account's old call from the same caller: its policy is not ours.
    // (Written once the processor has built its state: it refuses to start its
    // state over calls it did not store.)
    client
        .query(
            "INSERT INTO calls (id, version, account, client_id, external_id, caller, started_at, zip, received_at) \
             VALUES (toUUID('00000000-0000-0000-0000-00000000e1e1'), 1, 'other-account', 'other-hook', 'ret_other', '+13125550170', \
             toDateTime(toUInt32(now()) - 400 * 86400), '94103', now())",
        )
        .execute()
        .await
        .unwrap();
    let aggregates = |exact: bool| {
        let http = http.clone();
        let url = api.url(&format!(
            "/api/aggregates?bucket=month&group_by=status&client_id=arroyo&from={}&to={}&exact={exact}",
            "2024-01-01T00:00:00Z",
            chrono::Utc::now().format("%Y-%m-%dT%H:00:00Z")
        ));
        async move {
            let answer: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            answer["rows"].clone()
        }
    };
    // The rollup follows the calls by a batch: read both once they agree.
    let before = eventually(
        "the rollup to hold the calls",
        Duration::from_secs(60),
        || async {
            let (exact, rolled) = (aggregates(true).await, aggregates(false).await);
            (exact == rolled && exact.as_array().is_some_and(|r| !r.is_empty())).then_some(exact)
        },
    )
    .await;

    // A policy the processor could not keep is refused, naming the field.
    let put = |policy: Value| {
        let http = http.clone();
        let url = api.url("/api/privacy/retention");
        async move {
            let response = http.put(url).json(&policy).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, text) = put(json!({"account": "acme-leads", "personal_days": 10})).await;
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("personal_days"), "{text}");
    let (status, text) =
        put(json!({"account": "acme-leads", "personal_days": 365, "dead_letter_days": 30})).await;
    assert_eq!(status, 200, "{text}");

    let run = eventually(
        "a retention run that changed the old calls",
        Duration::from_secs(120),
        || async {
            let answer: Value = http
                .get(api.url("/api/privacy/retention?account=acme-leads"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            answer["runs"]
                .as_array()?
                .iter()
                .find(|r| r["calls_changed"].as_u64().unwrap_or(0) >= 3)
                .cloned()
        },
    )
    .await;
    assert_eq!(run["outcome"], "done", "{run}");
    assert_eq!(run["dead_letters_deleted"], 1, "{run}");

    let rows = callers().await;
    let by_id = |id: &str| rows.iter().find(|r| r.0 == id).unwrap().clone();
    let (old_1, old_2, old_3, new_1) = (
        by_id("ret_old_1"),
        by_id("ret_old_2"),
        by_id("ret_old_3"),
        by_id("ret_new_1"),
    );
    assert!(
        old_1.1.starts_with("h:") && old_1.1.len() == 66,
        "{old_1:?}"
    );
    assert_eq!(old_1.1, old_2.1, "the same caller hashes alike");
    assert!(old_3.1.starts_with("h:") && old_3.1 != old_1.1, "{old_3:?}");
    assert_eq!(
        (old_1.2.as_str(), old_3.2.as_str()),
        ("", ""),
        "ZIPs emptied"
    );
    assert_eq!(new_1.1, "+13125550170", "a recent call keeps its caller");
    assert_eq!(new_1.2, "94103");
    // The number is nowhere among the old calls, in either table that sorts by it.
    let left: u64 = client
        .query(
            "SELECT (SELECT count() FROM calls WHERE caller IN ('+13125550170', '+13125550171') AND external_id LIKE 'ret_old_%') \
             + (SELECT count() FROM calls_by_caller FINAL WHERE account = 'acme-leads' \
                AND caller IN ('+13125550170', '+13125550171') AND started_at < now() - 300 * 86400)",
        )
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(left, 0);
    // The two parts of a UNION ALL come back in either order (seen in CI).
    let mut other: Vec<(String, String)> = client
        .query(
            "SELECT caller, zip FROM calls FINAL WHERE account = 'other-account' \
             UNION ALL SELECT caller, '' FROM calls_by_caller FINAL WHERE account = 'other-account'",
        )
        .fetch_all()
        .await
        .unwrap();
    other.sort();
    assert_eq!(
        other,
        [
            ("+13125550170".to_owned(), String::new()),
            ("+13125550170".to_owned(), "94103".to_owned())
        ],
        "another account's call is not touched by acme-leads' policy"
    );
    let hashed: u64 = client
        .query(&format!(
            "SELECT count() FROM calls_by_caller FINAL WHERE caller = '{}'",
            old_1.1
        ))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        hashed, 2,
        "the caller's two old calls are found by the hash"
    );
    let letters: Vec<String> = client
        .query("SELECT toString(raw_id) FROM dead_letters FINAL WHERE account = 'acme-leads' AND reason = 'test' ORDER BY raw_id")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(letters, ["00000000-0000-0000-0000-0000000000d2"]);

    // Every number the dashboard shows for the range is what it was.
    assert_eq!(aggregates(true).await, before, "from the calls");
    assert_eq!(aggregates(false).await, before, "from the rollup");
    // The api reads the old calls: no number, the hash instead.
    let page: Value = http
        .get(api.url("/api/calls?client_id=arroyo&limit=100"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let old = page["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["external_id"] == "ret_old_1")
        .unwrap_or_else(|| panic!("{page}"))
        .clone();
    assert_eq!(old["caller"], Value::Null, "{old}");
    assert_eq!(old["caller_hash"], old_1.1.as_str(), "{old}");

    // Visible: the policy change in the audit trail, and a later run changes nothing.
    let audit: Value = http
        .get(api.url("/api/audit?action=retention.changed&account=acme-leads"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let change = &audit["entries"][0];
    assert!(
        change["changes"].to_string().contains("personal_days"),
        "{audit}"
    );
    let quiet = eventually("a run after it", Duration::from_secs(60), || async {
        let answer: Value = http
            .get(api.url("/api/privacy/retention?account=acme-leads"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let newest = answer["runs"].as_array()?.first()?.clone();
        (newest["started_at"] != run["started_at"]).then_some(newest)
    })
    .await;
    assert_eq!(
        (
            quiet["calls_changed"].as_u64(),
            quiet["dead_letters_deleted"].as_u64()
        ),
        (Some(0), Some(0)),
        "{quiet}"
    );
}
