//! The noisy-neighbour test, short (issue 31; the longer run is
//! `benches/load/noisy_neighbour.sh`, figures in docs/reliability.md). Account A
//! streams webhooks at a steady rate, first alone, then while account B sends the
//! worst it can (`integration_tests::neighbours`). Asserted: none of A's calls is
//! refused or lost (by A's own log of partner ids against its dashboard's events),
//! every refusal B gets names its limit, B met the limits it pushed against, and
//! the processor never stopped. A's latencies are printed, not asserted (a shared
//! 2-core box is too noisy for a timed test; the longer run reports them).

use integration_tests::neighbours::{run, Plan, Stack};
use integration_tests::{metric_sum, sample_integration, TestEnv};
use std::time::Duration;

const ADMIN: &str = "adm_neighbour_0123456789abcdefghij";
const A: &str = "acme_neighbour_0123456789abcdefghij";
const B: &str = "noisy_neighbour_0123456789abcdefghij";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_noisy_neighbour_starves_nobody_and_every_refusal_names_its_limit() {
    let env = TestEnv::new("neighbour").await;
    let hook = |client: &str, auth: serde_json::Value| {
        sample_integration("arroyo", |v| {
            v["client_id"] = client.into();
            v["account"] = "noisy".into();
            v["auth"] = auth;
            v["mapping"] = serde_json::json!({"fields": {
                "caller": {"first_of": ["c", "caller"]},
                "started_at": {"first_of": ["s", "started_at"]}
            }});
        })
    };
    let signed = serde_json::json!({"scheme": "standard_webhooks", "secrets": [
        "whsec_Y2FsbG1hdHJpeC10ZXN0LXNlY3JldC0zMi1ieXRlcyE=",
        "whsec_b2xkLXNlY3JldC1vbGQtc2VjcmV0LW9sZC1zZWNyZXQ="
    ]});
    cmctl::publish_integrations(
        &env.kafka,
        &[
            hook("noisy-hook", serde_json::json!({"scheme": "none"})),
            hook("noisy-signed", signed),
        ],
    )
    .await
    .expect("B's integrations");
    let tokens = tempfile::tempdir().unwrap();
    let tokens_file = tokens.path().join("tokens.json");
    std::fs::write(
        &tokens_file,
        serde_json::json!({"admin": [ADMIN], "accounts": {"acme-leads": [A], "noisy": [B]}})
            .to_string(),
    )
    .unwrap();
    let tokens_path = tokens_file.to_str().unwrap();
    let processor = env.start("processor", &[]).await;
    let ingest = env
        .start("ingest", &[("INGEST_AUTH__TOKENS_FILE", tokens_path)])
        .await;
    let api = env
        .start(
            "api",
            &[
                ("API_AUTH__TOKENS_FILE", tokens_path),
                // Low enough for B to reach within the short run.
                ("API_LIMITS__INTEGRATIONS", "10"),
            ],
        )
        .await;
    // Ingest serves B's integrations once an admin sees them on its /healthz.
    integration_tests::eventually(
        "ingest to serve noisy-signed",
        Duration::from_secs(30),
        || async {
            let health: serde_json::Value =
                reqwest::get(ingest.url(&format!("/healthz?access_token={ADMIN}")))
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
            health["integrations"]["noisy-signed"].as_u64().map(|_| ())
        },
    )
    .await;
    let stack = Stack {
        ingest: ingest.url(""),
        api: api.url(""),
        token_a: A.into(),
        token_b: B.into(),
        a_client: "arroyo".into(),
        b_client: "noisy-hook".into(),
        b_signed_client: "noisy-signed".into(),
        b_account: "noisy".into(),
    };
    let alone = run(
        &stack,
        Plan {
            duration: Duration::from_secs(8),
            a_rate: 20,
            attack: false,
        },
        "alone",
    )
    .await;
    println!("A alone: {}", serde_json::to_string(&alone).unwrap());
    let noisy = run(
        &stack,
        Plan {
            duration: Duration::from_secs(15),
            a_rate: 20,
            attack: true,
        },
        "noisy",
    )
    .await;
    println!("A beside B: {}", serde_json::to_string(&noisy).unwrap());

    for (when, report) in [("alone", &alone), ("beside B", &noisy)] {
        assert_eq!(report.a_refused, 0, "A refused {when}: {report:?}");
        assert_eq!(report.a_lost, 0, "A's calls lost {when}: {report:?}");
        assert_eq!(report.a_acknowledged, report.a_sent, "{report:?}");
    }
    assert!(
        noisy.b_unnamed.is_empty(),
        "refusals that name no limit: {:?}",
        noisy.b_unnamed
    );
    let answers = |attack: &str, status: u16| {
        noisy
            .b_answers
            .get(attack)
            .and_then(|s| s.get(&status))
            .copied()
            .unwrap_or(0)
    };
    if std::env::var("CM_NEIGHBOUR_ATTACKS").is_err() {
        assert!(
            answers("oversized records", 413) > 0,
            "{:?}",
            noisy.b_answers
        );
        assert!(
            answers("signature floods", 401) > 0,
            "{:?}",
            noisy.b_answers
        );
        assert!(answers("integrations", 429) > 0, "{:?}", noisy.b_answers);
        assert!(
            answers("event stream resumes", 429) > 0,
            "{:?}",
            noisy.b_answers
        );
        assert!(answers("heavy queries", 429) > 0, "{:?}", noisy.b_answers);
    }
    for attack in noisy.b_answers.keys() {
        assert_eq!(answers(attack, 500), 0, "{attack}: {:?}", noisy.b_answers);
        // A large body refused before it is read has its connection closed under
        // it (no answer reaches the sender, as with nginx's early 413); the rest
        // always get one.
        if !["oversized records", "signature floods", "big imports"].contains(attack) {
            assert_eq!(
                answers(attack, 0),
                0,
                "{attack} got no answer: {:?}",
                noisy.b_answers
            );
        }
    }
    let health = reqwest::get(processor.url("/healthz")).await.unwrap();
    assert_eq!(
        health.status(),
        200,
        "{}",
        health.text().await.unwrap_or_default()
    );
    assert_eq!(
        metric_sum(&processor, "worker_restarts_total", None).await,
        0.0,
        "a processor worker stopped"
    );
}
