//! The Grafana dashboard (`deploy/grafana/callmatrix-pipeline.json`) names only
//! metrics the binaries export and recording rules `deploy/prometheus/rules.yml`
//! defines, every panel has a query, and it imports with its data source as an
//! input. (`deploy/test.sh` also has promtool parse every expression.)

use std::collections::BTreeSet;

use integration_tests::repo_root;

/// Every metric name the crates declare in their `metric_names.rs`.
fn exported() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for krate in ["runtime", "ingest", "processor", "api"] {
        let text =
            std::fs::read_to_string(repo_root().join(krate).join("src/metric_names.rs")).unwrap();
        names.extend(
            text.lines()
                .filter_map(|line| line.strip_prefix("pub const "))
                .filter_map(|rest| rest.split('"').nth(1))
                .map(str::to_owned),
        );
    }
    names
}

/// The recording rules' names.
fn recorded() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo_root().join("deploy/prometheus/rules.yml")).unwrap();
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("- record:"))
        .map(|name| name.trim().to_owned())
        .collect()
}

/// Metric-like words of an expression: our prefixes or a recording rule's `a:b`.
fn metrics_in(expr: &str) -> Vec<String> {
    const OURS: [&str; 11] = [
        "ingest_",
        "processor_",
        "api_",
        "kafka_",
        "clickhouse_",
        "worker_",
        "retries_",
        "table_",
        "fair_share_",
        "deadletter_",
        "callmatrix:",
    ];
    // Label names inside `{...}` and `by (...)` are not metrics.
    let mut words = Vec::new();
    let mut depth_braces = 0;
    let mut word = String::new();
    let mut previous = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            let in_by = previous == "by" || previous == "without";
            if depth_braces == 0 && !in_by && OURS.iter().any(|p| word.starts_with(p)) {
                words.push(word.clone());
            }
            previous = std::mem::take(&mut word);
        }
        match c {
            '{' => depth_braces += 1,
            '}' => depth_braces -= 1,
            '(' | ')' | ',' if previous == "by" => {}
            _ => {}
        }
        if c == ')' {
            previous.clear();
        }
    }
    words
}

#[test]
fn every_panel_queries_metrics_that_exist() {
    let text = std::fs::read_to_string(repo_root().join("deploy/grafana/callmatrix-pipeline.json"))
        .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(dashboard["__inputs"][0]["name"], "DS_PROMETHEUS");
    let (exported, recorded) = (exported(), recorded());
    let known = |name: &str| {
        recorded.contains(name)
            || exported.contains(name)
            || ["_sum", "_count", "_bucket"].iter().any(|suffix| {
                name.strip_suffix(suffix)
                    .is_some_and(|base| exported.contains(base))
            })
    };
    let panels: Vec<&serde_json::Value> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
        .collect();
    assert!(panels.len() >= 20, "{} panels", panels.len());
    let mut unknown = Vec::new();
    for panel in panels {
        let expr = panel["targets"][0]["expr"].as_str().unwrap_or_default();
        assert!(!expr.is_empty(), "panel {} has no query", panel["title"]);
        let names = metrics_in(expr);
        assert!(
            !names.is_empty() || expr.starts_with("up{"),
            "panel {}: no metric in {expr}",
            panel["title"]
        );
        unknown.extend(
            names
                .into_iter()
                .filter(|n| !known(n))
                .map(|n| format!("{}: {n}", panel["title"])),
        );
    }
    assert!(unknown.is_empty(), "unknown metrics: {unknown:?}");
    // The check itself catches a typo.
    assert!(!known("processor_recrods_total"));
    assert_eq!(
        metrics_in("sum by (client_id) (rate(processor_calls_total{job=\"x\"}[5m]))"),
        ["processor_calls_total"]
    );
}
