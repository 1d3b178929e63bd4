//! Polling a partner API against the real stack: a local server plays the partner
//! (pages with a cursor, a 500 on the way, 429 when called more than once a second,
//! an API key). Every record is stored exactly once, the cursor lands on the newest
//! record's `UpdatedAt`, and after a restart the next run starts from it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration_tests::fake_http::{query, Canned, FakeHttp};
use integration_tests::{
    eventually, final_count, fixture, latest_receipt, metric_sum, sample_integration,
    wait_for_newer_receipt, PrivateBroker, TestEnv,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_paging_rate_limiting_partner_is_read_exactly_once() {
    let env = TestEnv::new("polling").await;
    let page1 = fixture("ringpartner-api/page1.json");
    let page2 = fixture("ringpartner-api/page2.json");
    let last_call: Arc<Mutex<Option<Instant>>> = Arc::default();
    let failed_once = Arc::new(Mutex::new(false));
    let partner = FakeHttp::start(move |target| {
        if !target.starts_with("/v2/calls?") {
            return Canned::status(404);
        }
        {
            let mut last = last_call.lock().unwrap();
            let now = Instant::now();
            if last.is_some_and(|at| now - at < Duration::from_millis(900)) {
                let mut limited = Canned::status(429);
                limited.headers.push(("retry-after".into(), "1".into()));
                return limited;
            }
            *last = Some(now);
        }
        let q = query(target);
        match q.get("cursor").map(String::as_str) {
            None => Canned::ok("application/json", page1.clone()),
            Some("eyJwIjoyfQ") => {
                let mut failed = failed_once.lock().unwrap();
                if !*failed {
                    *failed = true;
                    return Canned::status(502);
                }
                // Compressed, as high-volume APIs answer: read decoded.
                Canned::gzip("application/json", page2.clone())
            }
            Some(_) => Canned::status(400),
        }
    })
    .await;
    let poll = json!({
        "interval_s": 3600,
        "url": format!("{}/v2/calls", partner.base_url),
        "query": {"updated_since": "{since}", "page_size": "2"},
        "auth": {"type": "api_key_header", "header": "X-Api-Key", "key": "k_test_123"},
        "records_path": "data",
        "paging": {"type": "next_cursor", "cursor_path": "next_cursor", "param": "cursor"},
        "cursor_field": "UpdatedAt",
        "overlap_s": 300,
        "initial_since": "2026-11-20T00:00:00Z",
        "budget": {"account": "ringpartner-acme", "per_second": 5, "burst": 5}
    });
    let ringpartner = sample_integration("ringpartner", |value| value["poll"] = poll);
    cmctl::publish_integrations(&env.kafka, &[ringpartner])
        .await
        .unwrap();

    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "50")])
        .await;
    // Static membership, as for the processor: tansu 0.6 never evicts a killed
    // member, so the restarted instance takes its place by name.
    let same_instance = [("INGEST_KAFKA__INSTANCE_ID", "ingest-0")];
    let mut ingest = env.start("ingest", &same_instance).await;
    let client = env.client();
    eventually("the 3 partner calls", Duration::from_secs(90), || async {
        (final_count(&client, "ringpartner").await == 3).then_some(())
    })
    .await;
    let status = eventually("the run's status", Duration::from_secs(30), || {
        finished_run(ingest.url("/api/polls"))
    })
    .await;
    assert_eq!(
        status["cursor"], "2026-11-20T23:46:30Z",
        "the newest UpdatedAt: {status}"
    );
    assert_eq!(status["last_records"], 3, "{status}");
    let first_run = partner.requests();
    assert!(
        first_run
            .iter()
            .all(|r| r.contains("x-api-key: k_test_123")),
        "the API key is sent"
    );
    assert!(
        first_run.iter().all(|r| r
            .to_ascii_lowercase()
            .contains("accept-encoding: zstd,gzip,deflate")),
        "compressed answers are asked for: {}",
        first_run[0]
    );
    assert!(
        first_run[0].starts_with("GET /v2/calls?")
            && first_run[0].contains("updated_since=2026-11-19T23%3A55%3A00Z"),
        "initial_since minus the overlap: {}",
        first_run[0]
    );
    assert!(
        first_run.len() >= 3,
        "page 1, a failed page 2, page 2 again (plus any 429s): {}",
        first_run.len()
    );

    // The api shows the run in the integration's health, whichever ingest polled.
    let api = env.start("api", &[]).await;
    let health = eventually(
        "the poll status in the api",
        Duration::from_secs(30),
        || async {
            let body: serde_json::Value = reqwest::get(api.url("/api/integrations"))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let entry = body["integrations"]
                .as_array()?
                .iter()
                .find(|i| i["integration"]["client_id"] == "ringpartner")?
                .clone();
            (entry["health"]["poll"]["last_ok"] == true).then_some(entry)
        },
    )
    .await;
    assert_eq!(
        health["health"]["poll"]["cursor"], "2026-11-20T23:46:30Z",
        "{health}"
    );
    assert!(
        !health.to_string().contains("k_test_123"),
        "the poll key is never shown"
    );

    // A restart resumes from the stored cursor (minus the overlap).
    let first_receipt = latest_receipt(&client, "ringpartner").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ingest.kill();
    ingest = env.start("ingest", &same_instance).await;
    let resumed = eventually(
        "the first request after the restart",
        Duration::from_secs(60),
        || async {
            partner
                .requests()
                .into_iter()
                .skip(first_run.len())
                .find(|r| r.starts_with("GET /v2/calls?"))
        },
    )
    .await;
    assert!(
        resumed.contains("updated_since=2026-11-20T23%3A41%3A30Z"),
        "cursor 23:46:30 minus 300 s: {}",
        resumed.lines().next().unwrap_or("")
    );
    eventually("the second run to finish", Duration::from_secs(30), || {
        finished_run(ingest.url("/api/polls"))
    })
    .await;
    // The partner serves every page again (it ignores updated_since): wait until the
    // re-read records replaced the stored ones, then count.
    wait_for_newer_receipt(&client, "ringpartner", first_receipt).await;
    assert_eq!(
        final_count(&client, "ringpartner").await,
        3,
        "re-read records are not doubled"
    );
}

/// Ringpartner's status from `GET /api/polls` once a run has finished well.
async fn finished_run(url: String) -> Option<serde_json::Value> {
    let polls: serde_json::Value = reqwest::get(url).await.ok()?.json().await.ok()?;
    let status = polls["polls"]
        .as_array()?
        .iter()
        .find(|p| p["client_id"] == "ringpartner")?
        .clone();
    (status["last_ok"] == true).then_some(status)
}

/// Issue 37: ingest and the broker killed together and started again, with
/// dynamic membership (no `kafka.instance_id`, the stack's default). On tansu 0.6.0
/// the dead member came back with the broker and kept the poller group's
/// partitions; the new ingest held none and never polled again (120 s watched, in
/// each of the first runs of this test; a restart of ingest alone, or of the
/// broker alone, recovered in 7 to 13 s). The poller's group reader notices (no
/// partition, the group behind on its ticks and not moving) and joins again, as
/// the processor's does. Counted by the partner's own log of requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranded_poller_joins_again() {
    let mut broker = PrivateBroker::start().await;
    let env = TestEnv::with_brokers("poll_rejoin", broker.brokers()).await;
    let partner = FakeHttp::start(|target| {
        if target.starts_with("/v2/calls?") {
            Canned::ok("application/json", r#"{"data": [], "next_cursor": null}"#)
        } else {
            Canned::status(404)
        }
    })
    .await;
    let poll = json!({
        "interval_s": 10,
        "url": format!("{}/v2/calls", partner.base_url),
        "query": {"updated_since": "{since}"},
        "records_path": "data",
        "cursor_field": "UpdatedAt",
        "initial_since": "2026-11-20T00:00:00Z"
    });
    let ringpartner = sample_integration("ringpartner", |value| value["poll"] = poll);
    cmctl::publish_integrations(&env.kafka, &[ringpartner])
        .await
        .unwrap();
    let polls = || {
        partner
            .requests()
            .iter()
            .filter(|r| r.starts_with("GET /v2/calls?"))
            .count()
    };

    let mut ingest = env.start("ingest", &[]).await;
    eventually("two polls", Duration::from_secs(90), || async {
        (polls() >= 2).then_some(())
    })
    .await;
    ingest.kill();
    broker.kill();
    broker.resume().await;
    // Started at once, the new member was given the partitions in one run of two.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = polls();
    let ingest = env.start("ingest", &[]).await;
    // A rejoin comes after STALLED_AFTER (30 s) of holding nothing, and a rebalance.
    let started = Instant::now();
    let rejoined = eventually(
        "polls again after the crash",
        Duration::from_secs(150),
        || async { (polls() > before).then_some(started.elapsed()) },
    )
    .await;
    let rejoins = metric_sum(&ingest, "kafka_group_rejoins_total", Some("poller")).await;
    eprintln!(
        "the restarted poller polled again after {:.0} s; rejoins of its group: {rejoins}",
        rejoined.as_secs_f64()
    );
    // The gauge is refreshed every 15 s.
    eventually(
        "every lease partition held",
        Duration::from_secs(40),
        || async {
            let held = metric_sum(&ingest, "kafka_group_partitions_held", Some("poller")).await;
            (held == 12.0).then_some(())
        },
    )
    .await;
}
