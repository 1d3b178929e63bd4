//! CSV imports: `POST /api/integrations/{clientId}/imports` with a CSV body (an
//! upload, streamed through as it arrives) or with `{"url": "..."}` (a Google Sheets
//! link or any CSV URL, fetched and streamed); `GET /api/imports/{id}` for progress.

mod job;
mod reader;
mod sheets;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use runtime::http::{json, read_body, Body, Problem};
use schemas::Integration;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;
use uuid::Uuid;

pub use job::{ImportJobs, ImportStatus, Importer, State};

/// How imports reach the outside world.
#[derive(Clone)]
pub struct ImportState {
    pub importer: Importer,
    pub http: reqwest::Client,
    /// Where Google Sheets links are fetched from (tests point it at a local server).
    pub sheets_base_url: String,
    /// When set, imports need `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FromUrl {
    url: String,
}

/// `POST /api/integrations/{clientId}/imports`, after finding the integration.
pub async fn create_for(
    registry: &runtime::registry::IntegrationRegistry,
    state: &ImportState,
    client: &str,
    request: Request<Incoming>,
) -> Result<Response<Body>, Problem> {
    let integration = crate::webhook::find_integration(registry, client)?;
    create(state, integration, request).await
}

/// `POST /api/integrations/{clientId}/imports`.
pub async fn create(
    state: &ImportState,
    integration: Arc<Integration>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Problem> {
    check_token(state, &request)?;
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "text/csv" | "application/csv" => upload(state, integration, request).await,
        "application/json" => {
            let body = read_body(request, 64 * 1024).await?;
            let from: FromUrl = serde_json::from_slice(&body).map_err(|e| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("expected {{\"url\": \"...\"}}: {e}"),
                )
            })?;
            let url = from.url.trim().to_owned();
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "bad_url",
                    "url must be http(s)",
                ));
            }
            let status = state.importer.start(&integration, url.clone());
            let (state, id) = (state.clone(), status.import_id);
            tokio::spawn(async move { fetch(&state, integration, status, &url).await });
            Ok(json(
                StatusCode::ACCEPTED,
                &serde_json::json!({"import_id": id, "status_url": format!("/api/imports/{id}")}),
            ))
        }
        _ => Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the file as text/csv, or {\"url\": ...} as application/json",
        )),
    }
}

/// `GET /api/imports/{id}`.
pub fn status(state: &ImportState, id: &str) -> Result<Response<Body>, Problem> {
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            "unknown_import",
            format!("no import {id:?} on this instance"),
        )
    };
    let id: Uuid = id.parse().map_err(|_| not_found())?;
    let status = state.importer.jobs.get(&id).ok_or_else(not_found)?;
    Ok(json(StatusCode::OK, &status))
}

fn check_token(state: &ImportState, request: &Request<Incoming>) -> Result<(), Problem> {
    let Some(token) = &state.token else {
        return Ok(());
    };
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if presented.as_bytes().ct_eq(token.as_bytes()).into() {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "bad_token",
            "imports need the operator token (Authorization: Bearer ...)",
        ))
    }
}

/// Streams the request body through the job; answers when every row is handled.
async fn upload(
    state: &ImportState,
    integration: Arc<Integration>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Problem> {
    let status = state.importer.start(&integration, "upload".into());
    let (tx, rx) = mpsc::channel(reader::CHUNK_BUFFER);
    let mut body = request.into_body();
    let forward = async move {
        while let Some(frame) = body.frame().await {
            let chunk = match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => Ok(data),
                    Err(_) => continue,
                },
                Err(error) => Err(format!("reading the upload: {error}")),
            };
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
    };
    let (_, status) = tokio::join!(
        forward,
        state.importer.run(integration, status, reader::rows(rx))
    );
    let code = match status.state {
        State::Failed => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    };
    Ok(json(code, &status))
}

/// Fetches `link` (trying the Sheets export URL, then the gviz form) and runs the job.
async fn fetch(
    state: &ImportState,
    integration: Arc<Integration>,
    status: ImportStatus,
    link: &str,
) {
    let mut failures = Vec::new();
    for url in sheets::csv_urls(link, &state.sheets_base_url) {
        let response = match state.http.get(&url).send().await {
            Ok(response) if response.status().is_success() => response,
            Ok(response) => {
                failures.push(format!("GET {url} answered {}", response.status()));
                continue;
            }
            Err(error) => {
                failures.push(format!("GET {url}: {error}"));
                continue;
            }
        };
        let (tx, rx) = mpsc::channel(reader::CHUNK_BUFFER);
        let mut stream = response.bytes_stream();
        let forward = async move {
            while let Some(chunk) = stream.next().await {
                let chunk: Result<Bytes, String> = chunk.map_err(|e| format!("reading {url}: {e}"));
                let failed = chunk.is_err();
                if tx.send(chunk).await.is_err() || failed {
                    break;
                }
            }
        };
        tokio::join!(
            forward,
            state.importer.run(integration, status, reader::rows(rx))
        );
        return;
    }
    state.importer.fail(status, failures.join("; ")).await;
}

/// The HTTP client for fetches: bounded connect and overall time.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(timeout)
        .build()
        .unwrap_or_default()
}
