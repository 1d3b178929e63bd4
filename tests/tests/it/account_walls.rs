//! Enrichment stays inside the account (issue 31): confirmed on a running stack, an
//! integration of account `mallory` that received a call to a number `acme-leads`
//! manages was stored as a duplicate of acme-leads' CmCall `cm_0001`, with the start
//! and duration differences: one account learned whether another's calls were
//! routed, and its call took another account's status. Two accounts here share a
//! caller and a called number; every cross-call decision must see only its own.

use std::time::Duration;

use integration_tests::{
    callmatrix_call_stored, eventually, fixture, load_callmatrix_samples, sample_integration,
    TestEnv,
};

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct Decided {
    status: String,
    is_duplicate: u8,
    cm_call_id: String,
    match_method: String,
    repeat_of: String,
}

async fn decided(
    client: &clickhouse::Client,
    client_id: &str,
    external_id: &str,
) -> Option<Decided> {
    client
        .query(
            "SELECT status, is_duplicate, cm_call_id, match_method, \
             repeat_of \
             FROM calls FINAL WHERE client_id = ? AND external_id = ?",
        )
        .bind(client_id)
        .bind(external_id)
        .fetch_optional()
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callmatrix_links_and_repeats_never_cross_accounts() {
    let env = TestEnv::new("walls").await;
    // mallory's integration takes the same payloads as acme-leads' arroyo.
    let mallory = sample_integration("arroyo", |v| {
        v["client_id"] = "mallory-hook".into();
        v["account"] = "mallory".into();
    });
    cmctl::publish_integrations(&env.kafka, &[mallory])
        .await
        .expect("publish mallory's integration");
    // acme-leads manages +18885550100; cm_0001 is its routed call of the sample's
    // first record (caller +14155552671, 2 s earlier).
    load_callmatrix_samples(&env).await;
    let _processor = env.start("processor", &[]).await;
    let ingest = env.start("ingest", &[]).await;
    ingest.wait_for_integration("mallory-hook", 1).await;
    let client = env.client();
    callmatrix_call_stored(&client, "cm_0001").await;

    // mallory first, so nothing of acme-leads' own traffic is stored yet either way.
    let (status, answer) = ingest
        .post_webhook(
            "mallory-hook",
            "application/json",
            fixture("arroyo-webhook.json"),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let (status, answer) = ingest
        .post_webhook("arroyo", "application/json", fixture("arroyo-webhook.json"))
        .await;
    assert_eq!(status, 202, "{answer}");

    let theirs = eventually(
        "acme-leads' link to cm_0001",
        Duration::from_secs(60),
        || async {
            decided(&client, "arroyo", "ar_9f8e7d6c")
                .await
                .filter(|d| d.cm_call_id == "cm_0001")
        },
    )
    .await;
    assert_eq!(
        (theirs.status.as_str(), theirs.match_method.as_str()),
        ("duplicate", "time_window")
    );

    let mine = eventually("mallory's call", Duration::from_secs(60), || async {
        decided(&client, "mallory-hook", "ar_9f8e7d6c").await
    })
    .await;
    assert_eq!(
        mine.is_duplicate, 0,
        "another account's managed number: {mine:?}"
    );
    assert_eq!(
        (mine.cm_call_id.as_str(), mine.match_method.as_str()),
        ("", ""),
        "{mine:?}"
    );
    assert_ne!(mine.status, "duplicate", "{mine:?}");

    // The same caller calls both accounts again a day later: each later call is a
    // repeat of its own account's earlier call only.
    let acme_later = eventually(
        "acme-leads' later call",
        Duration::from_secs(60),
        || async { decided(&client, "arroyo", "ar_5e6f7a8b").await },
    )
    .await;
    let mallory_later = eventually("mallory's later call", Duration::from_secs(60), || async {
        decided(&client, "mallory-hook", "ar_5e6f7a8b").await
    })
    .await;
    let acme_first: String = client
        .query("SELECT toString(id) FROM calls FINAL WHERE client_id = 'arroyo' AND external_id = 'ar_9f8e7d6c'")
        .fetch_one()
        .await
        .unwrap();
    let mallory_first: String = client
        .query("SELECT toString(id) FROM calls FINAL WHERE client_id = 'mallory-hook' AND external_id = 'ar_9f8e7d6c'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(acme_later.repeat_of, acme_first);
    assert_eq!(mallory_later.repeat_of, mallory_first);
}
