//! Issue 37's operations view against a real Prometheus (Debian's, as
//! `deploy/stack.sh` runs it): Prometheus scrapes this test's ingest, processor and
//! api every second and evaluates `deploy/prometheus/rules.yml`; traffic flows (the
//! arroyo samples and a refused record). Then:
//! - every recording rule's and every Grafana panel's PromQL answers with data, and
//!   every alert's expression evaluates (an alert's is empty while nothing is wrong);
//! - `GET /api/ops` shows the processor's group holding its partitions, acme-leads'
//!   freshness, every target up;
//! - ingest is killed: the view shows its scrape failing and `CallMatrixProcessDown`
//!   pending (it fires after its `for: 1m`);
//! - the dashboard, in a real browser, shows the same (tests/browser/ops.mjs), with a
//!   screenshot.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use integration_tests::fake_http::{Canned, FakeHttp};
use integration_tests::{
    browser_check, eventually, fixture, json_of, repo_root, sample_integration, TestEnv,
};
use serde_json::{json, Value};

/// Metrics that exist only once something failed (their labels name the failing
/// operation, so they cannot be made at zero beforehand): their panels may answer
/// nothing on a healthy stack.
const FAILURES_ONLY: &[&str] = &["retries_total"];

/// A Prometheus of this test's own; killed when dropped.
struct Prometheus {
    child: Child,
    _data: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_prometheus(port: u16, targets: &[(&str, String)]) -> Prometheus {
    let data = tempfile::tempdir().unwrap();
    let rules = repo_root().join("deploy/prometheus/rules.yml");
    let jobs: String = targets
        .iter()
        .map(|(job, target)| {
            format!("  - job_name: {job}\n    static_configs: [{{targets: [\"{target}\"]}}]\n")
        })
        .collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n{jobs}",
        rules.display()
    );
    let config_path = data.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let child = Command::new("prometheus")
        .arg("--config.file")
        .arg(&config_path)
        .arg("--storage.tsdb.path")
        .arg(data.path().join("tsdb"))
        .arg("--web.listen-address")
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus runs (deploy/test.sh installs Debian's)");
    Prometheus { child, _data: data }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operations_view_reads_a_real_prometheus() {
    let env = TestEnv::new("ops").await;
    let processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "20")])
        .await;
    let ingest = env.start("ingest", &[]).await;
    let prometheus_port = free_port();
    let prometheus_url = format!("http://127.0.0.1:{prometheus_port}");
    let api = env
        .start(
            "api",
            &[("API_OPS__PROMETHEUS_URL", prometheus_url.as_str())],
        )
        .await;
    let host = |url: String| url.trim_start_matches("http://").to_owned();
    let _prometheus = start_prometheus(
        prometheus_port,
        &[
            ("callmatrix-ingest", host(ingest.url(""))),
            ("callmatrix-processor", host(processor.url(""))),
            ("callmatrix-api", host(api.url(""))),
        ],
    );
    let http = reqwest::Client::new();

    // Traffic of every kind the dashboard and the rules count: the arroyo samples, a
    // record its mapping refuses, one a filter drops, a delivery ingest refuses, a
    // partner polled, a dashboard watching the event stream.
    let (status, _) = ingest
        .post_webhook("arroyo", "application/json", fixture("arroyo-webhook.json"))
        .await;
    assert_eq!(status, 202);
    let refused = json!({"call": {"id": "ops_bad", "caller": {"number": "3125550100"}, "started_at": "not a time"}});
    let (status, _) = ingest
        .post_webhook("arroyo", "application/json", refused.to_string())
        .await;
    assert_eq!(status, 202);
    let (status, _) = ingest
        .post_webhook("arroyo", "text/plain", "not json".to_owned())
        .await;
    assert_eq!(status, 415, "a delivery ingest refuses");
    let page = fixture("ringpartner-api/page1.json");
    let partner = FakeHttp::start(move |target| {
        if target.starts_with("/v2/calls") {
            Canned::ok("application/json", page.clone())
        } else {
            Canned::status(404)
        }
    })
    .await;
    let polled = sample_integration("ringpartner", |v| {
        v["poll"] = json!({
            "interval_s": 3600,
            "url": format!("{}/v2/calls", partner.base_url),
            "auth": {"type": "api_key_header", "header": "X-Api-Key", "key": "k_ops"},
            "records_path": "data",
            "cursor_field": "UpdatedAt",
            "initial_since": "2026-11-20T00:00:00Z"
        });
    });
    let filtered = sample_integration("arroyo", |v| {
        v["client_id"] = json!("ops-filtered");
        v["mapping"]["filters"] = json!([{"reason": "test call", "when": {"path": "call.campaign.name", "equals": "Test"}}]);
    });
    cmctl::publish_integrations(&env.kafka, &[polled, filtered])
        .await
        .unwrap();
    ingest.wait_for_integration("ops-filtered", 1).await;
    let test_call = json!({"call": {"id": "ops_test", "caller": {"number": "3125550101"},
        "started_at": "2026-11-20T10:00:00Z", "campaign": {"name": "Test"}}});
    let (status, _) = ingest
        .post_webhook("ops-filtered", "application/json", test_call.to_string())
        .await;
    assert_eq!(status, 202);
    let _watching = http.get(api.url("/api/events")).send().await.unwrap();

    let query = |expr: String| {
        let (http, url) = (http.clone(), format!("{prometheus_url}/api/v1/query"));
        async move { json_of(http.get(url).query(&[("query", expr.as_str())])).await }
    };
    // Every recording rule's and Grafana panel's expression answers with data;
    // every alert's evaluates. The rules as Prometheus loaded them.
    let loaded: Value = eventually("the rules loaded", Duration::from_secs(30), || async {
        let answer = json_of(http.get(format!("{prometheus_url}/api/v1/rules"))).await?;
        (answer["status"] == "success").then_some(answer)
    })
    .await;
    let mut expressions: Vec<(&str, String, String)> = Vec::new();
    for group in loaded["data"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let kind = if rule["type"] == "alerting" {
                "alert"
            } else {
                "record"
            };
            expressions.push((
                kind,
                rule["name"].as_str().unwrap_or("").to_owned(),
                rule["query"].as_str().unwrap_or("").to_owned(),
            ));
        }
    }
    let grafana: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("deploy/grafana/callmatrix-pipeline.json"))
            .unwrap(),
    )
    .unwrap();
    for panel in grafana["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                expressions.push((
                    "grafana",
                    panel["title"].as_str().unwrap_or("").to_owned(),
                    expr.to_owned(),
                ));
            }
        }
    }
    assert!(
        expressions.iter().filter(|(k, _, _)| *k == "alert").count() >= 10
            && expressions
                .iter()
                .filter(|(k, _, _)| *k == "grafana")
                .count()
                >= 5,
        "the rules and the dashboard were read: {expressions:?}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let mut silent = Vec::new();
        for (kind, name, expr) in &expressions {
            let Some(answer) = query(expr.clone()).await else {
                silent.push(format!("{kind} {name}: Prometheus did not answer"));
                continue;
            };
            assert_eq!(
                answer["status"], "success",
                "{kind} {name}: {expr} does not evaluate: {answer}"
            );
            let empty = answer["data"]["result"]
                .as_array()
                .is_none_or(Vec::is_empty);
            if *kind != "alert" && empty && !FAILURES_ONLY.iter().any(|f| expr.contains(f)) {
                silent.push(format!("{kind} {name}: {expr}"));
            }
        }
        if silent.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "expressions with no data while traffic flows: {silent:#?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // The view: the processor's group holding its partitions with nothing left
    // uncommitted once the traffic is stored (its last batch is committed without
    // waiting for another to arrive), acme-leads' freshness, every target up.
    let group = env.kafka.group_id("processor");
    let ops = |token: Option<&'static str>| {
        let (http, url) = (http.clone(), api.url("/api/ops"));
        async move {
            let mut request = http.get(url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.ok()?;
            let status = response.status().as_u16();
            Some((
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            ))
        }
    };
    let view = eventually("the view with traffic", Duration::from_secs(60), || async {
        let (status, view) = ops(None).await?;
        let held = view["groups"].as_array()?.iter().any(|g| {
            g["group"] == group.as_str()
                && g["partitions_held"].as_f64().unwrap_or(0.0) > 0.0
                && g["lag_records"].as_f64() == Some(0.0)
        });
        let fresh = view["freshness"]
            .as_array()?
            .iter()
            .any(|f| f["account"] == "acme-leads");
        let all_up = view["targets"].as_array()?.len() == 3
            && view["targets"].as_array()?.iter().all(|t| t["up"] == true);
        (status == 200 && held && fresh && all_up).then_some(view)
    })
    .await;
    assert!(view["alerts"].is_array(), "{view}");

    // Ingest down: its scrape fails and the process-down alert is on its way.
    drop(ingest);
    let view = eventually("ingest seen down", Duration::from_secs(60), || async {
        let (_, view) = ops(None).await?;
        let down = view["targets"]
            .as_array()?
            .iter()
            .any(|t| t["job"] == "callmatrix-ingest" && t["up"] == false);
        let alert = view["alerts"].as_array()?.iter().any(|a| {
            a["name"] == "CallMatrixProcessDown" && a["labels"]["job"] == "callmatrix-ingest"
        });
        (down && alert).then_some(view)
    })
    .await;

    // In a real browser: the dashboard's operations view says the same.
    let shown = browser_check(
        "ops.mjs",
        &[api.url("").as_str(), group.as_str()],
        "dashboard-ops.png",
        Duration::from_secs(120),
    )
    .await;
    assert!(
        shown.contains("the operations view shows"),
        "{shown} (view {view})"
    );
}
