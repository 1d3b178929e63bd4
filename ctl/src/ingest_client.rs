//! Operator commands that talk to an ingest instance over HTTP: start a CSV import
//! (a file, with a progress bar over the bytes sent; or a URL, with the job's rows),
//! and trigger a poll.

use std::path::Path;
use std::time::Duration;

use futures::stream;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::CtlError;

fn failed(message: impl Into<String>) -> CtlError {
    CtlError::Remote(message.into())
}

fn with_token(request: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

/// Uploads `path` as an import of `client`; returns the job's final status.
pub async fn import_file(
    ingest: &str,
    client: &str,
    path: &Path,
    token: Option<&str>,
) -> Result<Value, CtlError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|source| CtlError::Read {
            path: path.display().to_string(),
            source,
        })?;
    let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} sent {wide_bar} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = bar.clone();
    let chunks = stream::unfold(file, move |mut file| {
        let progress = progress.clone();
        async move {
            let mut buffer = vec![0_u8; 256 * 1024];
            match file.read(&mut buffer).await {
                Ok(0) => None,
                Ok(n) => {
                    buffer.truncate(n);
                    progress.inc(n as u64);
                    Some((Ok::<_, std::io::Error>(buffer), file))
                }
                Err(error) => Some((Err(error), file)),
            }
        }
    });
    let url = format!(
        "{}/api/integrations/{client}/imports",
        ingest.trim_end_matches('/')
    );
    bar.println(format!(
        "importing {} into {client} (rows are checked as they arrive)",
        path.display()
    ));
    let response = with_token(reqwest::Client::new().post(&url), token)
        .header("content-type", "text/csv")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .map_err(|e| failed(format!("POST {url}: {e}")))?;
    bar.finish_and_clear();
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| failed(format!("the answer of {url}: {e}")))?;
    if status.is_success() || body.get("state").is_some() {
        Ok(body)
    } else {
        Err(failed(format!("POST {url} answered {status}: {body}")))
    }
}

/// Starts an import of `link` (a Google Sheets link or a CSV URL) and follows it.
pub async fn import_url(
    ingest: &str,
    client: &str,
    link: &str,
    token: Option<&str>,
) -> Result<Value, CtlError> {
    let base = ingest.trim_end_matches('/');
    let url = format!("{base}/api/integrations/{client}/imports");
    let http = reqwest::Client::new();
    let response = with_token(http.post(&url), token)
        .json(&serde_json::json!({ "url": link }))
        .send()
        .await
        .map_err(|e| failed(format!("POST {url}: {e}")))?;
    let status = response.status();
    let started: Value = response
        .json()
        .await
        .map_err(|e| failed(format!("the answer of {url}: {e}")))?;
    let Some(status_url) = started["status_url"].as_str() else {
        return Err(failed(format!("POST {url} answered {status}: {started}")));
    };
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    loop {
        let current: Value = with_token(http.get(format!("{base}{status_url}")), token)
            .send()
            .await
            .map_err(|e| failed(format!("GET {status_url}: {e}")))?
            .json()
            .await
            .map_err(|e| failed(format!("GET {status_url}: {e}")))?;
        bar.set_message(format!(
            "{}: {} rows read, {} accepted, {} rejected",
            current["state"].as_str().unwrap_or("?"),
            current["rows_read"],
            current["accepted"],
            current["rejected"]
        ));
        if current["state"] != "running" {
            bar.finish_and_clear();
            return Ok(current);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Asks ingest to poll `client` now.
pub async fn poll_now(ingest: &str, client: &str, token: Option<&str>) -> Result<Value, CtlError> {
    let url = format!(
        "{}/api/integrations/{client}/poll",
        ingest.trim_end_matches('/')
    );
    let response = with_token(reqwest::Client::new().post(&url), token)
        .send()
        .await
        .map_err(|e| failed(format!("POST {url}: {e}")))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(body)
    } else {
        Err(failed(format!("POST {url} answered {status}: {body}")))
    }
}

/// Asks ingest for a dry run of one page of `client`'s poll (or of `draft`,
/// `{"poll": {...}}`).
pub async fn poll_test(
    ingest: &str,
    client: &str,
    draft: Option<&Value>,
    token: Option<&str>,
) -> Result<Value, CtlError> {
    let url = format!(
        "{}/api/integrations/{client}/poll/test",
        ingest.trim_end_matches('/')
    );
    let mut request = with_token(reqwest::Client::new().post(&url), token);
    if let Some(draft) = draft {
        request = request.json(draft);
    }
    let response = request
        .send()
        .await
        .map_err(|e| failed(format!("POST {url}: {e}")))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(body)
    } else {
        Err(failed(format!("POST {url} answered {status}: {body}")))
    }
}

/// A one-screen summary of an import's final status.
pub fn summary(status: &Value) -> String {
    let mut out = format!(
        "import {}: {}; {} rows read, {} accepted, {} rejected",
        status["import_id"].as_str().unwrap_or("?"),
        status["state"].as_str().unwrap_or("?"),
        status["rows_read"],
        status["accepted"],
        status["rejected"]
    );
    if let Some(error) = status["error"].as_str() {
        out.push_str(&format!("\n  error: {error}"));
    }
    for row in status["rejected_rows"]
        .as_array()
        .into_iter()
        .flatten()
        .take(20)
    {
        out.push_str(&format!(
            "\n  row {}: {}",
            row["row"],
            row["reason"].as_str().unwrap_or("")
        ));
        for error in row["errors"].as_array().into_iter().flatten() {
            out.push_str(&format!("\n    {}", error.as_str().unwrap_or("")));
        }
    }
    out
}

/// Whether `target` names a URL rather than a file.
pub fn is_url(target: &str) -> bool {
    target.starts_with("https://") || target.starts_with("http://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_list_rejected_rows_with_their_errors() {
        let status = serde_json::json!({"import_id": "i1", "state": "done", "rows_read": 5, "accepted": 4, "rejected": 1,
            "rejected_rows": [{"row": 6, "reason": "required field(s) caller could not be mapped", "errors": ["caller (path Caller Phone) value not provided: ..."]}]});
        let text = summary(&status);
        assert!(text.starts_with("import i1: done; 5 rows read, 4 accepted, 1 rejected"));
        assert!(text.contains("\n  row 6: required field(s) caller"));
        assert!(text.contains("not provided"));
        assert!(is_url("https://docs.google.com/x") && !is_url("calls.csv"));
    }
}
