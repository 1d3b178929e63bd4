//! Issue 36's audit trail on the real stack: an account manager's token creates an
//! integration, changes its payout path and rotates its webhook token, disables and
//! enables it, starts a replay and deletes it; an operator publishes a definition
//! with cmctl. `GET /api/audit` then lists each change once, newest first, with who
//! (the token's name, never a token), the role, where from, the version and the
//! changed paths (the rotated token said, not shown). Another account sees none of
//! it; a viewer reads it; nothing can change or remove an entry: the api has no
//! such route and its ClickHouse user is read-only.

use std::time::Duration;

use integration_tests::{eventually, sample_integration, TestEnv};
use serde_json::{json, Value};

const ADMIN: &str = "adm_audit_test_0123456789abcdefgh";
const BOB: &str = "acm_audit_test_0123456789abcdefgh";
const MALLORY: &str = "mal_audit_test_0123456789abcdefgh";
const VIEWER: &str = "vwr_audit_test_0123456789abcdefgh";
const HOOK_1: &str = "whk_audit_first_0123456789abcdef";
const HOOK_2: &str = "whk_audit_second_0123456789abcde";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_recorded_once_with_who_where_and_what() {
    let env = TestEnv::new("audit").await;
    let dir = tempfile::tempdir().unwrap();
    let tokens_file = dir.path().join("tokens.json");
    std::fs::write(
        &tokens_file,
        json!({"admin": [{"token": ADMIN, "name": "ops-alice"}],
               "accounts": {"acme-leads": [{"token": BOB, "name": "bob"}], "mallory": [MALLORY]},
               "viewers": {"acme-leads": [VIEWER]}})
        .to_string(),
    )
    .unwrap();
    let tokens_path = tokens_file.to_str().unwrap();
    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "20")])
        .await;
    let api = env
        .start("api", &[("API_AUTH__TOKENS_FILE", tokens_path)])
        .await;
    let http = reqwest::Client::new();
    let send = |method: reqwest::Method, path: &str, token: &'static str, body: Option<Value>| {
        let mut request = http.request(method, api.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    let definition = |version: u32, payout: &str, token: &str| {
        let mut integration = serde_json::to_value(sample_integration("arroyo", |v| {
            v["client_id"] = json!("audited");
            v["auth"] = json!({"scheme": "bearer", "tokens": [token]});
        }))
        .unwrap();
        integration["version"] = json!(version);
        integration["mapping"]["fields"]["payout"] = json!({"path": payout});
        integration
    };
    let post = reqwest::Method::POST;
    let (status, text) = send(
        post.clone(),
        "/api/integrations",
        BOB,
        Some(definition(1, "call.payout", HOOK_1)),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let (status, text) = send(
        post.clone(),
        "/api/integrations",
        BOB,
        Some(definition(2, "call.payoutAmount", HOOK_2)),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    for action in ["disable", "enable"] {
        let (status, text) = send(
            post.clone(),
            &format!("/api/integrations/audited/{action}"),
            BOB,
            None,
        )
        .await;
        assert_eq!(status, 200, "{action}: {text}");
    }
    let (status, text) = send(
        post.clone(),
        "/api/integrations/audited/replay",
        BOB,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 202, "{text}");
    // Refused before anything runs: no entry.
    let (status, _) = send(
        reqwest::Method::DELETE,
        "/api/integrations/audited",
        VIEWER,
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = send(
        reqwest::Method::DELETE,
        "/api/integrations/audited",
        MALLORY,
        None,
    )
    .await;
    assert_eq!(
        status, 404,
        "another account's integration is not there for mallory"
    );
    // The replay must be done before a delete (a running one holds the integration).
    eventually("the replay to finish", Duration::from_secs(60), || async {
        let (status, text) = send(
            reqwest::Method::DELETE,
            "/api/integrations/audited",
            BOB,
            None,
        )
        .await;
        (status == 200).then_some(()).or_else(|| {
            assert!(status == 409 || status == 200, "{status}: {text}");
            None
        })
    })
    .await;
    // An operator's cmctl publish.
    let mut renamed = sample_integration("arroyo", |_| {});
    renamed.version += 1;
    renamed.name = "Arroyo (renamed by ops)".into();
    let operator = schemas::audit::Actor {
        name: "cmctl as ops@bastion".into(),
        role: "cli".into(),
        from: "bastion".into(),
    };
    cmctl::publish_audited(&env.kafka, std::slice::from_ref(&renamed), &operator)
        .await
        .unwrap();

    let entries = eventually(
        "six entries of audited",
        Duration::from_secs(60),
        || async {
            let (status, text) = send(
                reqwest::Method::GET,
                "/api/audit?client_id=audited",
                BOB,
                None,
            )
            .await;
            assert_eq!(status, 200, "{text}");
            let answer: Value = serde_json::from_str(&text).ok()?;
            let entries = answer["entries"].as_array()?.clone();
            (entries.len() >= 6).then_some((entries, text))
        },
    )
    .await;
    let (entries, text) = entries;
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "integration.deleted",
            "replay.started",
            "integration.enabled",
            "integration.disabled",
            "integration.updated",
            "integration.created"
        ],
        "each change once, newest first: {text}"
    );
    for entry in &entries {
        assert_eq!(
            entry["actor"]["name"], "account token \"bob\" (acme-leads)",
            "{entry}"
        );
        assert_eq!(entry["actor"]["role"], "account", "{entry}");
        assert!(
            entry["actor"]["from"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:"),
            "{entry}"
        );
        assert_eq!(entry["account"], "acme-leads");
    }
    let versions: Vec<u64> = entries
        .iter()
        .rev()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(
        &versions[..4],
        [1, 2, 3, 4],
        "created, updated, disabled, enabled: {text}"
    );
    let updated = &entries[4]["changes"];
    let payout = updated
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "mapping.fields.payout.path")
        .unwrap_or_else(|| panic!("no payout change in {updated}"));
    assert_eq!(
        (&payout["before"], &payout["after"]),
        (&json!("call.payout"), &json!("call.payoutAmount"))
    );
    assert!(
        updated
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["path"] == "auth" && c["after"] == "credentials changed (not shown)"),
        "the rotation is said: {updated}"
    );
    assert_eq!(
        entries[1]["detail"]["source"], "dead_letters",
        "{}",
        entries[1]
    );
    for secret in [HOOK_1, HOOK_2, BOB, ADMIN, MALLORY, VIEWER] {
        assert!(!text.contains(secret), "a secret in the trail: {text}");
    }

    // The operator's change, read by an admin.
    let ops = eventually("the operator's entry", Duration::from_secs(60), || async {
        let (status, text) = send(
            reqwest::Method::GET,
            "/api/audit?client_id=arroyo",
            ADMIN,
            None,
        )
        .await;
        assert_eq!(status, 200, "{text}");
        let answer: Value = serde_json::from_str(&text).ok()?;
        answer["entries"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(ops["action"], "integration.updated", "{ops}");
    assert_eq!(ops["actor"]["name"], "cmctl as ops@bastion", "{ops}");
    assert_eq!(ops["actor"]["role"], "cli");
    let name = ops["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "name")
        .unwrap_or_else(|| panic!("no name change: {ops}"))
        .clone();
    assert_eq!(name["after"], "Arroyo (renamed by ops)", "{ops}");
    let (status, text) = send(
        reqwest::Method::GET,
        "/api/audit?action=integration.updated",
        ADMIN,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let updated: Value = serde_json::from_str(&text).unwrap();
    assert!(
        updated["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["action"] == "integration.updated"),
        "{text}"
    );
    let (status, text) = send(
        reqwest::Method::GET,
        "/api/audit?action=integration.renamed",
        ADMIN,
        None,
    )
    .await;
    assert!(status == 400 && text.contains("action"), "{status} {text}");

    // Walls: mallory sees nothing of acme's; the viewer reads it.
    // (mallory's own trail holds the api's record of mallory's token, below.)
    let (status, text) = send(reqwest::Method::GET, "/api/audit", MALLORY, None).await;
    assert_eq!(status, 200, "{text}");
    let seen: Vec<(String, String)> = serde_json::from_str::<Value>(&text).unwrap()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["account"].to_string(), e["action"].to_string()))
        .collect();
    assert_eq!(
        seen,
        [("\"mallory\"".to_owned(), "\"token.added\"".to_owned())],
        "{text}"
    );
    let (status, _) = send(
        reqwest::Method::GET,
        "/api/audit?client_id=audited",
        MALLORY,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = send(
        reqwest::Method::GET,
        "/api/audit?account=acme-leads",
        MALLORY,
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, text) = send(
        reqwest::Method::GET,
        "/api/audit?client_id=audited",
        VIEWER,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["entries"]
            .as_array()
            .unwrap()
            .len(),
        6
    );

    // Append-only: no route changes an entry, and the api's ClickHouse user cannot.
    for method in [
        reqwest::Method::DELETE,
        reqwest::Method::PUT,
        reqwest::Method::POST,
    ] {
        let (status, text) = send(method.clone(), "/api/audit", ADMIN, Some(json!({}))).await;
        assert_eq!(status, 404, "{method} /api/audit: {text}");
    }
    let reader = clickhouse::Client::default()
        .with_url(&env.clickhouse.url)
        .with_database(&env.clickhouse.database)
        .with_user("callmatrix_reader")
        .with_password(std::env::var("CM_TEST_CLICKHOUSE_READER_PASSWORD").unwrap_or_default());
    let attempt = reader
        .query("ALTER TABLE audit_log DELETE WHERE client_id = 'audited'")
        .execute()
        .await;
    assert!(attempt.is_err(), "the api's user changed the trail");
    let kept: u64 = env
        .client()
        .query("SELECT count() FROM audit_log FINAL WHERE client_id = 'audited'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(kept, 6);
}

/// Token role changes: tokens live in the api's tokens file, so a role changes when
/// an operator edits the file and restarts the api. The api records, at start-up,
/// each token added, changed or removed since the trail last saw the file (who: the
/// tokens file; the token named by its identity, never shown); a restart with the
/// same file records nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_tokens_file_is_recorded_when_the_api_starts() {
    const ADMIN: &str = "adm_tokens_audit_0123456789abcdef";
    const CAROL: &str = "acm_tokens_audit_0123456789abcdef";
    const DAVE: &str = "dav_tokens_audit_0123456789abcdef";
    const ERIN: &str = "eri_tokens_audit_0123456789abcdef";
    let env = TestEnv::new("audit-tokens").await;
    let dir = tempfile::tempdir().unwrap();
    let tokens_file = dir.path().join("tokens.json");
    let tokens_path = tokens_file.to_str().unwrap().to_owned();
    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "20")])
        .await;
    let api_with = |file: Value| {
        std::fs::write(&tokens_file, file.to_string()).unwrap();
        let (env, tokens_path) = (&env, tokens_path.clone());
        async move {
            env.start("api", &[("API_AUTH__TOKENS_FILE", tokens_path.as_str())])
                .await
        }
    };
    let token_entries = |api_url: String| async move {
        let text = reqwest::Client::new()
            .get(api_url)
            .bearer_auth(ADMIN)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let answer: Value = serde_json::from_str(&text).ok()?;
        let entries: Vec<Value> = answer["entries"]
            .as_array()?
            .iter()
            .filter(|e| {
                e["action"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("token."))
            })
            .cloned()
            .collect();
        Some((entries, text))
    };

    let first = api_with(json!({"admin": [{"token": ADMIN, "name": "ops"}],
        "accounts": {"acme-leads": [{"token": CAROL, "name": "carol"}], "mallory": [DAVE]}}))
    .await;
    let url = first.url("/api/audit?limit=1000");
    let (added, _) = eventually("three tokens added", Duration::from_secs(60), || async {
        token_entries(url.clone())
            .await
            .filter(|(e, _)| e.len() == 3)
    })
    .await;
    assert!(
        added.iter().all(|e| e["action"] == "token.added"),
        "{added:?}"
    );
    drop(first);

    // Carol becomes a viewer, mallory's token goes, a token for globex comes.
    let second = api_with(json!({"admin": [{"token": ADMIN, "name": "ops"}],
        "viewers": {"acme-leads": [{"token": CAROL, "name": "carol"}]},
        "accounts": {"globex": [{"token": ERIN, "name": "erin"}]}}))
    .await;
    let url = second.url("/api/audit?limit=1000");
    let (entries, text) = eventually("three more entries", Duration::from_secs(60), || async {
        token_entries(url.clone())
            .await
            .filter(|(e, _)| e.len() == 6)
    })
    .await;
    let newest: Vec<(&str, &str)> = entries[..3]
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["account"].as_str().unwrap(),
            )
        })
        .collect();
    let mut sorted = newest.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            ("token.added", "globex"),
            ("token.changed", "acme-leads"),
            ("token.removed", "mallory")
        ],
        "{text}"
    );
    let changed = entries[..3]
        .iter()
        .find(|e| e["action"] == "token.changed")
        .unwrap();
    let role = changed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "role")
        .unwrap_or_else(|| panic!("{changed}"));
    assert_eq!(
        (&role["before"], &role["after"]),
        (&json!("account"), &json!("viewer"))
    );
    assert_eq!(
        changed["detail"]["token"],
        "viewer token \"carol\" (acme-leads)"
    );
    assert_eq!(changed["actor"]["role"], "config", "{changed}");
    assert!(
        changed["actor"]["name"]
            .as_str()
            .unwrap()
            .starts_with("tokens file "),
        "{changed}"
    );
    for token in [ADMIN, CAROL, DAVE, ERIN] {
        assert!(!text.contains(token), "a token in the audit trail: {text}");
    }
    // Carol, a viewer now, reads her account's record of it.
    let (status, mine) = {
        let response = reqwest::Client::new()
            .get(second.url("/api/audit?action=token.changed"))
            .bearer_auth(CAROL)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    assert_eq!(status, 200, "{mine}");
    assert!(mine.contains("token.changed"), "{mine}");
    drop(second);

    // The same file again: nothing new.
    let third = api_with(json!({"admin": [{"token": ADMIN, "name": "ops"}],
        "viewers": {"acme-leads": [{"token": CAROL, "name": "carol"}]},
        "accounts": {"globex": [{"token": ERIN, "name": "erin"}]}}))
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (entries, text) = token_entries(third.url("/api/audit?limit=1000"))
        .await
        .unwrap();
    assert_eq!(entries.len(), 6, "a restart with the same file: {text}");
    drop(third);

    // Two instances started together with the same new file (erin's token gone)
    // each record the change. Made certain here: the second reads the recorded set
    // as it was before the first wrote (put back as the first found it). The trail
    // shows the change once.
    let topic = env.kafka.topics().audit_tokens;
    let mut as_found: std::collections::BTreeMap<String, Option<Vec<u8>>> = Default::default();
    for record in integration_tests::read_topic(&env, &topic, 1) {
        as_found.insert(record.key, record.payload);
    }
    let fourth_file = json!({"admin": [{"token": ADMIN, "name": "ops"}],
        "viewers": {"acme-leads": [{"token": CAROL, "name": "carol"}]}});
    let fourth = api_with(fourth_file.clone()).await;
    let url = fourth.url("/api/audit?limit=1000");
    eventually("erin's token removed", Duration::from_secs(60), || async {
        token_entries(url.clone()).await.filter(|(e, _)| {
            e.iter()
                .any(|e| e["action"] == "token.removed" && e["account"] == "globex")
        })
    })
    .await;
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &env.kafka.brokers)
        .create()
        .unwrap();
    for (key, payload) in &as_found {
        let mut record = rdkafka::producer::FutureRecord::<str, Vec<u8>>::to(&topic).key(key);
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    let twin = api_with(fourth_file).await;
    // Both instances' entries reach ClickHouse (two rows: one each)...
    let client = env.client();
    eventually("both rows copied", Duration::from_secs(60), || async {
        let rows: u64 = client
            .query("SELECT count() FROM audit_log WHERE action = 'token.removed' AND account = 'globex'")
            .fetch_one()
            .await
            .ok()?;
        (rows == 2).then_some(())
    })
    .await;
    // ...and the trail shows the change once.
    let (entries, text) = token_entries(twin.url("/api/audit?limit=1000"))
        .await
        .unwrap();
    let removed = entries
        .iter()
        .filter(|e| e["action"] == "token.removed" && e["account"] == "globex")
        .count();
    assert_eq!(
        (entries.len(), removed),
        (7, 1),
        "one change recorded by two instances is one entry: {text}"
    );
}
