//! HTTP serving shared by ingest, api and the processor's ops port: one accept loop,
//! one JSON error shape, one `/metrics` renderer.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::shutdown::Shutdown;

#[path = "http_drain.rs"]
mod drain;
pub use drain::{drain, Unread, DRAIN_MAX_BYTES, DRAIN_TIME};

pub type Body = BoxBody<Bytes, Infallible>;

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot listen on {addr}: the port is already in use (is another instance running? change the `listen` setting)")]
    InUse { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Other {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            BindError::InUse { addr }
        } else {
            BindError::Other { addr, source }
        }
    })
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A fixed document (an embedded page or file) with its content type, not cached
/// by clients so a new release shows at once.
pub fn document(content_type: &'static str, body: &'static str) -> Response<Body> {
    let mut response = Response::new(full(body));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    response
}

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The one error shape of every endpoint: `{"error": {"status", "code", "message", ...details}}`.
#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(skip)]
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(skip)]
    pub retry_after_s: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after_s: None,
        }
    }

    /// 404 for a client id no integration has.
    pub fn unknown_integration(client: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown_integration",
            format!("no integration with client id {client:?}"),
        )
    }

    pub fn with_detail(mut self, key: &str, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.details
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value);
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    pub fn into_response(self) -> Response<Body> {
        #[derive(Serialize)]
        struct Envelope<'a> {
            error: &'a Problem,
            status: u16,
        }
        let mut response = json(
            self.status,
            &Envelope {
                error: &self,
                status: self.status.as_u16(),
            },
        );
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// How long a body may take to arrive where the binary does not configure it: a
/// client that trickles a body (slowloris) holds a connection only this long.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads a request body of at most `limit` bytes within `timeout`: 413 from
/// `Content-Length` before reading when it says too much, and while reading when it
/// lied or was absent; 408 when the body has not all arrived in time.
pub async fn read_body(
    request: Request<Incoming>,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Problem> {
    let (parts, body) = request.into_parts();
    read_incoming(&parts.headers, body, limit, timeout).await
}

/// [`read_body`] of a request taken apart (its head kept by the caller).
pub async fn read_incoming(
    headers: &http::HeaderMap,
    body: Incoming,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Problem> {
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("body is larger than the limit of {limit} bytes"),
        )
        .with_detail("limit_bytes", limit)
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        // Answered from the head; what the sender still writes is read and dropped
        // (up to a bound) so that it reads this answer instead of a reset.
        drain(body, headers);
        return Err(too_large());
    }
    let collect = Limited::new(body, limit).collect();
    let Ok(collected) = tokio::time::timeout(timeout, collect).await else {
        return Err(Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!("the body did not arrive within {} ms", timeout.as_millis()),
        )
        .with_detail("timeout_ms", timeout.as_millis() as u64));
    };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(error) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "body_unreadable",
            format!("reading the body failed: {error}"),
        )),
    }
}

/// 415 unless the request says it sends JSON.
pub fn require_json(request: &Request<Incoming>) -> Result<(), Problem> {
    let value = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = value.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Content-Type {value:?} is not accepted; send application/json"),
        ))
    }
}

pub fn metrics(handle: &PrometheusHandle) -> Response<Body> {
    crate::kafka::refresh_lag_seconds();
    let mut response = Response::new(full(handle.render()));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// The address a request came from, put in its extensions by [`serve`] (the audit
/// trail says where a change came from).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// Accepts connections until `shutdown`, then gives open requests `grace` to finish
/// (long-lived SSE streams are cut after it).
pub async fn serve<H, F>(listener: TcpListener, handler: H, mut shutdown: Shutdown, grace: Duration)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let handler = handler.clone();
        let service = service_fn(move |mut request: Request<Incoming>| {
            let handler = handler.clone();
            request.extensions_mut().insert(Peer(peer));
            async move { Ok::<_, Infallible>(handler(request).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            // Slow-loris guard: a client gets this long to finish sending headers.
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("open connections cut after the grace period");
    }
}

#[cfg(test)]
#[path = "http_refusal_test.rs"]
mod refusal_test;
