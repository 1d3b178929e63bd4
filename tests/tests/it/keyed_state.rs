//! The processor's keyed state (issue 32) against the real stack: decisions made by
//! a processor that was killed between batches and replaced by one that restored its
//! partitions from the state changelog (no local copy) are the same as those of one
//! that ran through; and an existing database gets its state built once
//! (`cmctl state build`), after which new calls are decided against the stored ones.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use integration_tests::{eventually, load_callmatrix_samples, metric_sum, Service, TestEnv};

/// Deliveries of a workload with every kind of decision: callers who call again
/// within 30 days (repeats) and after (not), late payouts sent alone (merges),
/// calls to a CallMatrix number (duplicates of cm_0001 and pending ones), in an
/// order that makes older calls arrive after newer ones.
fn deliveries() -> Vec<String> {
    let base = Utc.with_ymd_and_hms(2026, 10, 20, 15, 0, 0).unwrap();
    let mut records = Vec::new();
    for caller in 0..12_u32 {
        for n in 0..4_i64 {
            let day = [0, 12, 25, 60][n as usize] + i64::from(caller % 3);
            let at =
                base + chrono::Duration::days(day) + chrono::Duration::minutes(i64::from(caller));
            let connected = (i64::from(caller) + n) % 4 != 0;
            records.push(serde_json::json!({"call": {
                "id": format!("ks_{caller}_{n}"),
                "caller": {"number": format!("415555{:04}", 3000 + caller)},
                "tracking_number": if caller % 4 == 0 { "8885550177" } else { "8005550100" },
                "started_at": at.to_rfc3339(),
                "duration": if connected { "2:30" } else { "0" },
                "payout": if connected { "$12.00" } else { "$0.00" },
            }}));
        }
    }
    // The sample's first call: a duplicate of cm_0001 (loaded before).
    records.push(serde_json::json!({"call": {
        "id": "ks_cm", "caller": {"number": "(415) 555-2671"},
        "tracking_number": "+1 (888) 555-0100", "started_at": "2026-11-20T14:03:22-08:00",
        "duration": "00:04:12", "payout": "$45.00"
    }}));
    // Newest first, a few records a delivery.
    records.reverse();
    let mut bodies: Vec<String> = records
        .chunks(5)
        .map(|chunk| {
            chunk
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    // Late payouts sent alone, without a caller: merged over the stored calls.
    for caller in [1_u32, 5, 9] {
        bodies.push(format!(
            r#"{{"call": {{"id": "ks_{caller}_2", "payout": "$99.00"}}}}"#
        ));
    }
    bodies
}

#[derive(Debug, Clone, PartialEq, clickhouse::Row, serde::Deserialize)]
struct Decision {
    external_id: String,
    status: String,
    repeat_of: String,
    is_duplicate: u8,
    cm_call_id: String,
    match_method: String,
    payout: Option<i64>,
    duration_s: Option<u32>,
}

async fn decisions(client: &clickhouse::Client) -> BTreeMap<String, Decision> {
    client
        .query(
            "SELECT external_id, status, repeat_of, is_duplicate, cm_call_id, match_method, \
             toInt64(payout * 100) AS payout, duration_s FROM calls FINAL WHERE client_id = 'arroyo'",
        )
        .fetch_all::<Decision>()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|d| (d.external_id.clone(), d))
        .collect()
}

/// Sends each delivery and waits until it is stored (so a kill between two of them
/// is a kill between batches).
async fn deliver(env: &TestEnv, ingest: &Service, bodies: &[String], expected: &mut usize) {
    let client = env.client();
    for body in bodies {
        let (status, answer) = ingest
            .post_webhook("arroyo", "application/x-ndjson", body.clone())
            .await;
        assert_eq!(status, 202, "{answer}");
        let new_calls = body.lines().filter(|l| l.contains("\"caller\"")).count();
        *expected += new_calls;
        let want = *expected;
        eventually("the delivery stored", Duration::from_secs(60), || async {
            let stored: u64 = client
                .query("SELECT count() FROM calls FINAL WHERE client_id = 'arroyo'")
                .fetch_one()
                .await
                .unwrap_or(0);
            (stored as usize >= want).then_some(())
        })
        .await;
    }
}

/// The decisions once every delivery is settled (late payouts merged, re-decisions
/// written): the same two seconds apart.
async fn settled(client: &clickhouse::Client) -> BTreeMap<String, Decision> {
    let mut last = decisions(client).await;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = decisions(client).await;
        let merged = ["ks_1_2", "ks_5_2", "ks_9_2"]
            .iter()
            .all(|id| now.get(*id).is_some_and(|d| d.payout == Some(9900)));
        if now == last && merged {
            return now;
        }
        last = now;
    }
    panic!("the decisions did not settle: {last:?}")
}

/// The decisions of a processor that ran through every delivery, in a world of
/// its own named `name`.
async fn decided_through(bodies: &[String], name: &str) -> BTreeMap<String, Decision> {
    let through = TestEnv::new(name).await;
    load_callmatrix_samples(&through).await;
    let _processor = through.start("processor", &[]).await;
    let ingest = through.start("ingest", &[]).await;
    let mut expected = 0;
    deliver(&through, &ingest, bodies, &mut expected).await;
    settled(&through.client()).await
}

/// Repeat links are by call id, the same in both worlds (ids are deterministic).
fn same_decisions(
    want: &BTreeMap<String, Decision>,
    got: &BTreeMap<String, Decision>,
    after: &str,
) {
    assert_eq!(got.len(), want.len());
    for (id, decision) in want {
        assert_eq!(
            got.get(id),
            Some(decision),
            "{id} decided differently {after}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_after_a_restore_from_the_changelog_are_the_same_as_without_one() {
    let bodies = deliveries();
    let half = bodies.len() / 2;

    let want = decided_through(&bodies, "state_through").await;

    // Killed between batches half way; its replacement has no local copy (another
    // directory) and restores every partition from the changelog.
    let restored = TestEnv::new("state_restored").await;
    load_callmatrix_samples(&restored).await;
    let dirs = tempfile::tempdir().unwrap();
    let first_dir = dirs.path().join("first");
    let second_dir = dirs.path().join("second");
    let mut first = restored
        .start(
            "processor",
            &[("PROCESSOR_STATE__DIR", first_dir.to_str().unwrap())],
        )
        .await;
    let ingest = restored.start("ingest", &[]).await;
    let mut expected = 0;
    deliver(&restored, &ingest, &bodies[..half], &mut expected).await;
    first.kill();
    let second = restored
        .start(
            "processor",
            &[("PROCESSOR_STATE__DIR", second_dir.to_str().unwrap())],
        )
        .await;
    deliver(&restored, &ingest, &bodies[half..], &mut expected).await;
    let got = settled(&restored.client()).await;
    let restored_entries =
        metric_sum(&second, "processor_state_restored_entries_total", None).await;
    assert!(
        restored_entries > 0.0,
        "the replacement restored nothing from the changelog"
    );

    same_decisions(&want, &got, "after a restore");
    // The workload did exercise each kind of decision.
    let statuses: Vec<&str> = want.values().map(|d| d.status.as_str()).collect();
    for status in ["repeat", "qualified", "unqualified", "duplicate"] {
        assert!(statuses.contains(&status), "no {status} in {statuses:?}");
    }
    assert_eq!(want["ks_cm"].cm_call_id, "cm_0001");
}

/// A standby (`state.standby_interval_ms`) follows the partitions the other
/// instance owns; when that one leaves (stopped, as in a rolling deploy: a killed
/// member leaves only after its session times out on Apache Kafka, and tansu 0.6
/// never evicts one, `processor_crash.rs`), it takes them over from its copy (the
/// changelog's tail, not the whole of it) and decides as a processor that ran
/// through would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_from_its_copy_and_decides_the_same() {
    let bodies = deliveries();
    let half = bodies.len() / 2;
    let want = decided_through(&bodies, "standby_through").await;

    let env = TestEnv::new("state_standby").await;
    load_callmatrix_samples(&env).await;
    let dirs = tempfile::tempdir().unwrap();
    let (owner_dir, standby_dir) = (dirs.path().join("owner"), dirs.path().join("standby"));
    let mut owner = env
        .start(
            "processor",
            &[("PROCESSOR_STATE__DIR", owner_dir.to_str().unwrap())],
        )
        .await;
    let ingest = env.start("ingest", &[]).await;
    let mut expected = 0;
    // One call through first: the owner holds every partition before the standby
    // joins, so that the owner keeps some of them after.
    deliver(&env, &ingest, &bodies[..1], &mut expected).await;
    let standby = env
        .start(
            "processor",
            &[
                ("PROCESSOR_STATE__DIR", standby_dir.to_str().unwrap()),
                ("PROCESSOR_STATE__STANDBY_INTERVAL_MS", "200"),
            ],
        )
        .await;
    deliver(&env, &ingest, &bodies[1..half], &mut expected).await;
    // The owner's last entries followed: what the standby read stops growing.
    let mut followed = 0.0;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = metric_sum(&standby, "processor_state_standby_entries_total", None).await;
        if now > 0.0 && now == followed {
            break;
        }
        followed = now;
    }
    assert!(followed > 0.0, "the standby followed nothing");
    let restored_before =
        metric_sum(&standby, "processor_state_restored_entries_total", None).await;
    let pid = owner.pid().expect("the owner runs").to_string();
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    assert!(stopped.success());
    assert!(
        owner.exited(Duration::from_secs(30)).await.is_some(),
        "the owner did not stop on SIGTERM"
    );
    deliver(&env, &ingest, &bodies[half..], &mut expected).await;
    let got = settled(&env.client()).await;
    let taken_over = metric_sum(&standby, "processor_state_restored_entries_total", None).await
        - restored_before;
    eprintln!("standby: followed {followed} changelog entries; the takeover read {taken_over}");
    assert!(
        taken_over < followed,
        "the takeover read {taken_over} changelog entries, no fewer than the {followed} its standby had followed"
    );
    same_decisions(&want, &got, "after a takeover by a standby");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_database_gets_its_state_built_once_then_decides_against_it() {
    let env = TestEnv::new("state_build").await;
    let client = env.client();
    // A call stored before the processor kept state of its own (as an older
    // version wrote it): caller +13125550777, ten days before the new one.
    client
        .query(
            "INSERT INTO calls (id, version, account, client_id, source, external_id, caller, \
             started_at, duration_s, connected, qualified, status, received_at, processed_at) \
             SELECT generateUUIDv4(), 1, 'acme-leads', 'arroyo', 'webhook', 'old_1', '+13125550777', \
             toDateTime('2026-11-10 10:00:00', 'UTC'), 120, 1, 1, 'qualified', now(), now()",
        )
        .execute()
        .await
        .unwrap();
    let processor = env.start_unhealthy_ok("processor", &[]).await;
    let ingest = env.start("ingest", &[]).await;
    let record = r#"{"call": {"id": "new_1", "caller": {"number": "3125550777"}, "started_at": "2026-11-20T10:00:00Z", "duration": "1:00", "payout": "$5.00"}}"#;
    let (status, _) = ingest
        .post_webhook("arroyo", "application/json", record)
        .await;
    assert_eq!(status, 202);
    // Not decided without the state: the pipeline says why, health fails.
    unhealthy_naming(&processor, "cmctl state build").await;

    let producer = runtime::kafka::AckedProducer::new(&env.kafka).unwrap();
    let changelog = processor::state::Changelog::new(producer, &env.kafka);
    let built = processor::state::build(
        &changelog,
        &client,
        &processor::state::CallerNames::new(""),
        45,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!((built.calls, built.callers), (1, 1));

    // The pipeline starts again by itself and decides the new call a repeat of the
    // stored one.
    let decided = eventually("the new call decided", Duration::from_secs(120), || async {
        decisions(&client).await.remove("new_1")
    })
    .await;
    assert_eq!(decided.status, "repeat", "{decided:?}");
    let old_id: String = client
        .query("SELECT toString(id) FROM calls FINAL WHERE external_id = 'old_1'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(decided.repeat_of, old_id);
}

/// Waits until `service`'s health is unavailable and says `words`.
async fn unhealthy_naming(service: &Service, words: &str) {
    let health = eventually(
        &format!("health to say {words:?}"),
        Duration::from_secs(60),
        || async {
            let health: serde_json::Value = reqwest::get(service.url("/healthz"))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            health.to_string().contains(words).then_some(health)
        },
    )
    .await;
    assert_eq!(health["status"], "unavailable", "{health}");
}

/// The newest value of each key of the state changelog, every partition. Blocking.
fn newest_entries(
    changelog: &processor::state::Changelog,
) -> std::collections::HashMap<(i32, Vec<u8>), Option<Vec<u8>>> {
    let mut newest = std::collections::HashMap::new();
    for partition in 0..changelog.partitions().unwrap() {
        changelog
            .read(partition, 0, |key, value, _| {
                newest.insert((partition, key.to_vec()), value.map(<[u8]>::to_vec));
            })
            .unwrap();
    }
    newest
}

/// A state written before callers were named by a keyed hash (`k` and the caller
/// key in clear) is renamed when a processor restores it, and decided against as
/// before; a processor with another `retention.hash_key` refuses the state instead
/// of taking every kept caller for a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_from_before_hashed_names_is_renamed_and_another_key_is_refused() {
    let env = TestEnv::new("state_names").await;
    let client = env.client();
    let mut first = env.start("processor", &[]).await;
    let ingest = env.start("ingest", &[]).await;
    let old = r#"{"call": {"id": "old_1", "caller": {"number": "3125550777"}, "started_at": "2026-11-10T10:00:00Z", "duration": "2:00", "payout": "$5.00"}}"#;
    let (status, _) = ingest.post_webhook("arroyo", "application/json", old).await;
    assert_eq!(status, 202);
    let old_id: String = eventually("the old call", Duration::from_secs(60), || async {
        client
            .query("SELECT toString(id) FROM calls FINAL WHERE external_id = 'old_1'")
            .fetch_one()
            .await
            .ok()
    })
    .await;
    // The caller's entry as the state kept it before: the number in the key, no
    // fingerprint of a hash key.
    let producer = runtime::kafka::AckedProducer::new(&env.kafka).unwrap();
    let changelog = std::sync::Arc::new(processor::state::Changelog::new(producer, &env.kafka));
    let caller_key = schemas::ids::caller_key("acme-leads", "+13125550777");
    let hashed = processor::state::CallerNames::new("").key(&caller_key);
    let mut clear = b"k".to_vec();
    clear.extend_from_slice(caller_key.as_bytes());
    // (The changelog is written beside the insert: waited for.)
    let (partition, value) = eventually(
        "the caller kept by its hashed name",
        Duration::from_secs(60),
        || {
            let (reader, hashed) = (changelog.clone(), hashed.clone());
            async move {
                let newest = tokio::task::spawn_blocking(move || newest_entries(&reader))
                    .await
                    .ok()?;
                newest
                    .into_iter()
                    .find_map(|((p, k), v)| (k == hashed).then_some((p, v?)))
            }
        },
    )
    .await;
    first.kill();
    let value = Some(value);
    let mut old_format = vec![
        (partition, clear.clone(), value),
        (partition, hashed.clone(), None),
    ];
    for p in 0..changelog.partitions().unwrap() {
        old_format.push((p, b"mcallernames".to_vec(), None));
    }
    changelog.write(&old_format).await.unwrap();

    // A new processor (its state in memory: restored from the changelog) renames
    // the caller and decides the caller's next call a repeat of the old one.
    let mut second = env.start("processor", &[]).await;
    let record = r#"{"call": {"id": "new_1", "caller": {"number": "3125550777"}, "started_at": "2026-11-20T10:00:00Z", "duration": "1:00", "payout": "$5.00"}}"#;
    let (status, _) = ingest
        .post_webhook("arroyo", "application/json", record)
        .await;
    assert_eq!(status, 202);
    let decided = eventually("the new call decided", Duration::from_secs(120), || async {
        decisions(&client).await.remove("new_1")
    })
    .await;
    assert_eq!(decided.status, "repeat", "{decided:?}");
    assert_eq!(decided.repeat_of, old_id, "{decided:?}");
    let reader = changelog.clone();
    let newest = tokio::task::spawn_blocking(move || newest_entries(&reader))
        .await
        .unwrap();
    assert_eq!(
        newest.get(&(partition, clear.clone())),
        Some(&None),
        "the clear name is tombstoned"
    );
    assert!(
        matches!(newest.get(&(partition, hashed.clone())), Some(Some(_))),
        "the caller is kept by its hashed name again"
    );
    // (A partition is caught up when a batch first needs it: the caller's was.)
    assert!(
        matches!(
            newest.get(&(partition, b"mcallernames".to_vec())),
            Some(Some(_))
        ),
        "the caller's partition records its hash key's fingerprint"
    );
    assert!(
        !newest
            .iter()
            .any(|((_, k), v)| k.first() == Some(&b'k') && v.is_some()),
        "no caller left under a clear name"
    );
    second.kill();

    // Another hash key: the state is not decided with it, and health says why.
    let third = env
        .start_unhealthy_ok(
            "processor",
            &[(
                "PROCESSOR_RETENTION__HASH_KEY",
                "another-deployment-key-0001",
            )],
        )
        .await;
    // (A partition is caught up when a batch first needs it.)
    let record = r#"{"call": {"id": "new_2", "caller": {"number": "3125550777"}, "started_at": "2026-11-21T10:00:00Z", "duration": "1:00"}}"#;
    let (status, _) = ingest
        .post_webhook("arroyo", "application/json", record)
        .await;
    assert_eq!(status, 202);
    unhealthy_naming(&third, "retention.hash_key").await;
    assert!(
        !decisions(&client).await.contains_key("new_2"),
        "a call decided with callers taken for new"
    );
}
