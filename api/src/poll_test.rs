//! `POST /api/integrations/{clientId}/poll/test`: the dashboard's "test this poll".
//! Ingest holds the poll workers, the token cache and the outbound guard, so the
//! api checks that the caller's token may see the integration (the same shared
//! check as every account-scoped route) and forwards the request, with the
//! caller's own `Authorization` (ingest checks it again), to `ingest.url`.

use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use runtime::access::Scope;
use runtime::http::{json, read_body, Body, Problem, BODY_TIMEOUT};
use runtime::registry::IntegrationRegistry;

/// Largest draft forwarded.
const MAX_DRAFT_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct IngestLink {
    client: reqwest::Client,
    /// Ingest's base URL; empty: not configured.
    url: String,
}

impl IngestLink {
    pub fn new(url: &str) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap_or_default(),
            url: url.trim_end_matches('/').to_owned(),
        }
    }

    pub async fn poll_test(
        &self,
        scope: &Scope,
        registry: &IntegrationRegistry,
        client: &str,
        request: Request<Incoming>,
    ) -> Result<Response<Body>, Problem> {
        let integration = scope.integration(registry, client)?;
        if self.url.is_empty() {
            return Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ingest_not_configured",
                "this api does not know where ingest is (set ingest.url); use cmctl poll --test",
            ));
        }
        let authorization = request.headers().get(http::header::AUTHORIZATION).cloned();
        let body = read_body(request, MAX_DRAFT_BYTES, BODY_TIMEOUT).await?;
        let url = format!(
            "{}/api/integrations/{}/poll/test",
            self.url, integration.client_id
        );
        let mut forwarded = self
            .client
            .post(&url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if let Some(authorization) = authorization {
            forwarded = forwarded.header(http::header::AUTHORIZATION, authorization);
        }
        let unreachable = |e: reqwest::Error| {
            Problem::new(
                StatusCode::BAD_GATEWAY,
                "ingest_unreachable",
                format!("ingest did not answer the poll test: {e}"),
            )
        };
        let answer = forwarded.send().await.map_err(unreachable)?;
        let status =
            StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let value: serde_json::Value = answer.json().await.map_err(unreachable)?;
        Ok(json(status, &value))
    }
}
