//! CSV imports: `POST /api/integrations/{clientId}/imports` with a CSV body (an
//! upload, streamed through as it arrives) or with `{"url": "..."}` (a Google Sheets
//! link or any CSV URL, fetched and streamed); `GET /api/imports/{id}` for progress.

mod job;
pub(crate) mod reader;
mod sheets;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::header::CONTENT_TYPE;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use runtime::http::{json, read_body, Body, Problem};
use schemas::Integration;
use serde::Deserialize;

use crate::outbound::{capped_stream, Outbound, OutboundError, OutboundRequest};
use tokio::sync::mpsc;
use uuid::Uuid;

pub use job::{ImportJobs, ImportStatus, Importer, State};

/// How imports reach the outside world: only through the outbound guard.
#[derive(Clone)]
pub struct ImportState {
    pub importer: Importer,
    pub outbound: Outbound,
    /// Longest a URL import's download may take.
    pub fetch_timeout: Duration,
    /// Largest CSV a URL import reads.
    pub max_bytes: u64,
    /// Imports one account may run at once (`limits.imports_in_flight`).
    pub limits: Arc<crate::limits::IngestLimits>,
    /// Where Google Sheets links are fetched from (tests point it at a local server).
    pub sheets_base_url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FromUrl {
    url: String,
}

/// `POST /api/integrations/{clientId}/imports`, for an integration the token's
/// scope may see (checked by the caller, `server.rs`).
pub async fn create(
    state: &ImportState,
    integration: Arc<Integration>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Problem> {
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
    // The pass is held until the import ends (with the upload, or by the fetch task).
    let pass = match content_type.as_str() {
        "text/csv" | "application/csv" | "application/json" => {
            state.limits.import(&integration.account)?
        }
        _ => {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the file as text/csv, or {\"url\": ...} as application/json",
            ))
        }
    };
    match content_type.as_str() {
        "text/csv" | "application/csv" => {
            let answer = upload(state, integration, request).await;
            drop(pass);
            answer
        }
        "application/json" => {
            let body = read_body(request, 64 * 1024, runtime::http::BODY_TIMEOUT).await?;
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
            // Refused at once when the link itself points at our own network (the
            // fetch checks again, with every redirect).
            for candidate in sheets::csv_urls(&url, &state.sheets_base_url) {
                let parsed = url::Url::parse(&candidate).map_err(|e| {
                    Problem::new(StatusCode::BAD_REQUEST, "bad_url", format!("url: {e}"))
                })?;
                if let Err(error @ OutboundError::Refused { .. }) =
                    state.outbound.check(&parsed, &[]).await
                {
                    return Err(Problem::new(
                        StatusCode::BAD_REQUEST,
                        "url_refused",
                        error.to_string(),
                    ));
                }
            }
            // The status (and its SSE events) name the URL without credentials.
            let status = state
                .importer
                .start(&integration, schemas::redact::redact_url(&url, &[]));
            let (state, id) = (state.clone(), status.import_id);
            tokio::spawn(async move {
                fetch(&state, integration, status, &url).await;
                drop(pass);
            });
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

/// `GET /api/imports/{id}`: only for the account whose integration it imports
/// into (another account's import is as unknown as a missing one).
pub fn status(
    state: &ImportState,
    id: &str,
    scope: &runtime::access::Scope,
) -> Result<Response<Body>, Problem> {
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            "unknown_import",
            format!("no import {id:?} on this instance"),
        )
    };
    let id: Uuid = id.parse().map_err(|_| not_found())?;
    let status = state
        .importer
        .jobs
        .get(&id)
        .filter(|status| scope.permits(&status.account))
        .ok_or_else(not_found)?;
    let mut status = status;
    if scope.is_viewer() {
        // A rejected row's errors quote its values (numbers in any spelling): a
        // viewer sees which rows and why, not what they held.
        for row in &mut status.rejected_rows {
            row.errors.clear();
        }
    }
    Ok(json(StatusCode::OK, &status))
}

/// Streams the request body through the job; answers when every row is handled.
async fn upload(
    state: &ImportState,
    integration: Arc<Integration>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Problem> {
    let header = |name| {
        request
            .headers()
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let dialect = reader::Dialect {
        csv: integration.csv.clone(),
        charset: header(CONTENT_TYPE).as_deref().and_then(charset),
        codings: crate::webhook::decoders::codings(
            header(http::header::CONTENT_ENCODING).as_deref(),
        )?,
        max_decoded_bytes: Some(state.max_bytes),
    };
    let status = state.importer.start(&integration, "upload".into());
    let (tx, rx) = mpsc::channel(reader::CHUNK_BUFFER);
    let mut body = request.into_body();
    let max_bytes = state.max_bytes;
    let forward = async move {
        let mut read = 0_u64;
        while let Some(frame) = body.frame().await {
            let chunk = match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => {
                        read += data.len() as u64;
                        if read > max_bytes {
                            Err(format!(
                                "the upload is over {max_bytes} bytes (outbound.max_import_bytes); split the file"
                            ))
                        } else {
                            Ok(data)
                        }
                    }
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
        state
            .importer
            .run(integration, status, reader::rows(rx, dialect))
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
        let shown = schemas::redact::redact_url(&url, &[]);
        let Ok(parsed) = url::Url::parse(&url) else {
            failures.push(format!("{shown} is not a URL"));
            continue;
        };
        let sent = state
            .outbound
            .send(OutboundRequest {
                method: reqwest::Method::GET,
                url: parsed,
                headers: Default::default(),
                timeout: state.fetch_timeout,
                secret_names: &[],
                body: None,
            })
            .await;
        let response = match sent {
            Ok(response) if response.status().is_success() => response,
            Ok(response) => {
                failures.push(format!("GET {shown} answered {}", response.status()));
                continue;
            }
            Err(error) => {
                failures.push(format!("GET {error}"));
                continue;
            }
        };
        let dialect = reader::Dialect {
            csv: integration.csv.clone(),
            charset: response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(charset),
            ..Default::default()
        };
        let (tx, rx) = mpsc::channel(reader::CHUNK_BUFFER);
        let mut stream = Box::pin(capped_stream(response, state.max_bytes, shown));
        let forward = async move {
            while let Some(chunk) = stream.next().await {
                let chunk: Result<Bytes, String> = chunk.map_err(|e| e.to_string());
                let failed = chunk.is_err();
                if tx.send(chunk).await.is_err() || failed {
                    break;
                }
            }
        };
        tokio::join!(
            forward,
            state
                .importer
                .run(integration, status, reader::rows(rx, dialect))
        );
        return;
    }
    state.importer.fail(status, failures.join("; ")).await;
}

/// The `charset` parameter of a `Content-Type` value.
fn charset(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}
