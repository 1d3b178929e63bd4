//! `GET /api/ops` (admin tokens only): what an operator asks first, read from the
//! deployment's Prometheus (`ops.prometheus_url`; `deploy/stack.sh` starts one that
//! scrapes every binary and evaluates `deploy/prometheus/rules.yml`): the alerts
//! pending and firing now, each consumer group's lag and partitions held, each
//! account's freshness (seconds since the newest stored call was received), the
//! workers and scrape targets that are down. The dashboard's operations view shows
//! it. Prometheus is ours (configuration, never an account's URL), read with a short
//! timeout; a query it refuses names the query.

use std::time::Duration;

use http::{Response, StatusCode};
use runtime::access::Scope;
use runtime::http::{json, Body, Problem};
use serde::Deserialize;
use serde_json::{json, Value};

/// The instant queries behind the view, by what they answer.
pub const QUERIES: &[(&str, &str)] = &[
    ("lag", "sum by (group) (kafka_group_lag_records)"),
    ("held", "sum by (group) (kafka_group_partitions_held)"),
    (
        "freshness",
        "time() - max by (account) (processor_newest_received_timestamp_seconds)",
    ),
    ("workers", "min by (job, worker) (worker_up)"),
    ("targets", "up{job=~\"callmatrix-.*\"}"),
];

pub struct Ops {
    http: reqwest::Client,
    /// Prometheus' base URL, without a trailing `/`; empty: not configured.
    base: String,
}

#[derive(Deserialize)]
struct Answer<T> {
    status: String,
    data: Option<T>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Vector {
    result: Vec<Sample>,
}

#[derive(Deserialize)]
struct Sample {
    metric: serde_json::Map<String, Value>,
    value: (f64, String),
}

#[derive(Deserialize)]
struct Alerts {
    alerts: Vec<Value>,
}

impl Ops {
    pub fn new(prometheus_url: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            base: prometheus_url.trim_end_matches('/').to_owned(),
        }
    }

    pub async fn answer(&self, scope: &Scope) -> Result<Response<Body>, Problem> {
        if *scope != Scope::All {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "admin_only",
                "the operations view is for admin tokens",
            ));
        }
        if self.base.is_empty() {
            return Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ops_unconfigured",
                "no Prometheus configured (ops.prometheus_url)",
            ));
        }
        let (alerts, answers) = tokio::join!(
            self.alerts(),
            futures::future::join_all(QUERIES.iter().map(|(_, q)| self.query(q)))
        );
        let mut by_name = std::collections::HashMap::new();
        for ((name, _), answer) in QUERIES.iter().zip(answers) {
            by_name.insert(*name, answer?);
        }
        let value = |s: &Sample| s.value.1.parse::<f64>().unwrap_or(f64::NAN);
        let label = |s: &Sample, name: &str| {
            s.metric
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let held = &by_name["held"];
        let mut groups: Vec<Value> = by_name["lag"]
            .iter()
            .map(|s| {
                let group = label(s, "group");
                let partitions = held.iter().find(|h| label(h, "group") == group).map(value);
                json!({"group": group, "lag_records": value(s), "partitions_held": partitions})
            })
            .collect();
        groups.sort_by_key(|g| g["group"].as_str().unwrap_or("").to_owned());
        let mut freshness: Vec<Value> = by_name["freshness"]
            .iter()
            .map(|s| json!({"account": label(s, "account"), "seconds": value(s).round()}))
            .collect();
        freshness.sort_by_key(|f| f["account"].as_str().unwrap_or("").to_owned());
        let workers: Vec<Value> = by_name["workers"]
            .iter()
            .map(|s| json!({"job": label(s, "job"), "worker": label(s, "worker"), "up": value(s) >= 1.0}))
            .collect();
        let targets: Vec<Value> = by_name["targets"]
            .iter()
            .map(|s| json!({"job": label(s, "job"), "instance": label(s, "instance"), "up": value(s) >= 1.0}))
            .collect();
        let alerts: Vec<Value> = alerts?
            .into_iter()
            .map(|a| {
                json!({
                    "name": a["labels"]["alertname"],
                    "state": a["state"],
                    "since": a["activeAt"],
                    "severity": a["labels"]["severity"],
                    "labels": a["labels"],
                    "summary": a["annotations"]["summary"],
                })
            })
            .collect();
        Ok(json(
            StatusCode::OK,
            &json!({
                "alerts": alerts,
                "groups": groups,
                "freshness": freshness,
                "workers": workers,
                "targets": targets,
            }),
        ))
    }

    async fn query(&self, query: &str) -> Result<Vec<Sample>, Problem> {
        let answer: Answer<Vector> = self
            .get("/api/v1/query", &[("query", query)])
            .await
            .map_err(|why| unavailable(&format!("query {query:?}: {why}")))?;
        match (answer.status.as_str(), answer.data) {
            ("success", Some(vector)) => Ok(vector.result),
            _ => Err(unavailable(&format!(
                "query {query:?}: {}",
                answer.error.unwrap_or_else(|| "no data".into())
            ))),
        }
    }

    async fn alerts(&self) -> Result<Vec<Value>, Problem> {
        let answer: Answer<Alerts> = self
            .get("/api/v1/alerts", &[])
            .await
            .map_err(|why| unavailable(&format!("alerts: {why}")))?;
        Ok(answer.data.map(|d| d.alerts).unwrap_or_default())
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<T, String> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .query(params)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !response.status().is_success() && response.status() != StatusCode::BAD_REQUEST {
            return Err(format!("Prometheus answered {}", response.status()));
        }
        response
            .json()
            .await
            .map_err(|e| e.without_url().to_string())
    }
}

fn unavailable(why: &str) -> Problem {
    tracing::warn!(%why, "operations view: Prometheus did not answer");
    Problem::new(
        StatusCode::BAD_GATEWAY,
        "prometheus_unavailable",
        format!("Prometheus: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_admin_tokens_see_it_and_an_unset_prometheus_says_so() {
        let ops = Ops::new("");
        for scope in [Scope::Account("acme".into()), Scope::Viewer("acme".into())] {
            let refused = ops.answer(&scope).await.unwrap_err();
            assert_eq!(
                (refused.status, refused.code),
                (StatusCode::FORBIDDEN, "admin_only")
            );
        }
        let unset = ops.answer(&Scope::All).await.unwrap_err();
        assert_eq!(unset.code, "ops_unconfigured");
        // A Prometheus that is not there: 502 naming what was asked.
        let gone = Ops::new("http://127.0.0.1:9")
            .answer(&Scope::All)
            .await
            .unwrap_err();
        assert_eq!(gone.status, StatusCode::BAD_GATEWAY);
        assert!(gone.message.contains("Prometheus"), "{}", gone.message);
    }
}
