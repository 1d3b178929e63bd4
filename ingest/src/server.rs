//! Routes of the ingest edge, read as a table:
//!
//! | method | path                                   | what                         |
//! |--------|----------------------------------------|------------------------------|
//! | POST   | /api/integrations/webhook/{clientId}   | partner records (webhook)    |
//! | GET    | /api/integrations/webhook/{clientId}   | one record in the query (pixel) |
//! | POST   | /api/integrations/{clientId}/imports   | a CSV import (upload or URL) |
//! | GET    | /api/imports/{id}                      | an import's progress         |
//! | GET    | /api/polls                             | poll status, this instance's |
//! | POST   | /api/integrations/{clientId}/poll      | poll now                     |
//! | POST   | /api/integrations/{clientId}/poll/test | one page, stored nowhere (dry run) |
//! | GET    | /api/openapi.json                      | the OpenAPI document         |
//! | GET    | /healthz                               | broker reachable, registry up |
//! | GET    | /metrics                               | Prometheus text              |
//!
//! Webhooks prove themselves per integration (bearer token or Standard Webhooks
//! signature). Every other `/api/*` route needs an admin token or the token of the
//! account that owns the integration (`runtime::access`, shared with the api);
//! `/healthz` lists the integration versions served only to an admin token.

use std::sync::Arc;
use std::time::Duration;

use http::header::ALLOW;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use metrics_exporter_prometheus::PrometheusHandle;
use runtime::http::{json, metrics, Body, Problem};
use runtime::kafka::{AckedProducer, ProduceError};
use runtime::registry::{IntegrationRegistry, RegistryError};
use runtime::shutdown::Shutdown;

use crate::config::IngestConfig;
use crate::imports::{self, ImportJobs, ImportState, Importer};
use crate::poll::Poller;
use crate::webhook::{self, WebhookState};
use runtime::access::{Scope, Tokens, TokensError};
use schemas::Integration;

const WEBHOOK_PREFIX: &str = "/api/integrations/webhook/";

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Producer(#[from] ProduceError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Bind(#[from] runtime::http::BindError),
    #[error(transparent)]
    Poll(#[from] crate::poll::PollError),
    #[error(transparent)]
    Tokens(#[from] TokensError),
    #[error("{key}: {problem}")]
    Config { key: String, problem: String },
}

struct Ingest {
    tokens: Tokens,
    webhook: WebhookState,
    imports: ImportState,
    poller: Option<Poller>,
    metrics: PrometheusHandle,
    /// The poller's loops: health fails while one is not running.
    workers: runtime::workers::Workers,
}

/// Loads the integrations, binds the listener and serves until `shutdown`.
pub async fn run(
    config: IngestConfig,
    metrics: PrometheusHandle,
    shutdown: Shutdown,
) -> Result<(), IngestError> {
    let registry = IntegrationRegistry::start(
        &config.kafka,
        shutdown.clone(),
        config.registry.initial_load(),
    )
    .await?;
    let tokens = config.auth.tokens(config.http.listen)?;
    let outbound = config
        .outbound
        .outbound()
        .map_err(|(key, problem)| IngestError::Config { key, problem })?;
    let producer = AckedProducer::new(&config.kafka)?;
    let key_rules = schemas::keys::KeyRulesCache::default();
    let limits = Arc::new(crate::limits::IngestLimits::new(config.limits.clone()));
    let workers = runtime::workers::Workers::default();
    let imports = ImportState {
        importer: Importer {
            producer: producer.clone(),
            topics: config.kafka.topics(),
            record_limits: config.kafka.record_limits(),
            limits: limits.clone(),
            jobs: ImportJobs::default(),
        },
        outbound: outbound.clone(),
        fetch_timeout: Duration::from_secs(config.imports.fetch_timeout_s),
        max_bytes: config.outbound.max_import_bytes,
        limits: limits.clone(),
        sheets_base_url: config.imports.sheets_base_url.clone(),
    };
    let poller = if config.poll.enabled {
        Some(
            Poller::start(
                &config.kafka,
                registry.clone(),
                producer.clone(),
                key_rules.clone(),
                crate::poll::PollFetch {
                    outbound,
                    max_page_bytes: config.outbound.max_page_bytes,
                    limits: limits.clone(),
                    workers: workers.clone(),
                },
                config.registry.initial_load(),
                shutdown.clone(),
            )
            .await?,
        )
    } else {
        None
    };
    // One shared state: a request clones the pointer, not the state (its topic names,
    // caches and registry handles were cloned per request before, a measured cost at
    // the edge: benches/README.md).
    let state = Arc::new(Ingest {
        tokens,
        imports,
        poller,
        workers,
        webhook: WebhookState {
            registry,
            key_rules,
            rate_limits: Default::default(),
            deliveries: crate::webhook::deliveries(
                config.http.delivery_cache,
                config.http.delivery_cache_bytes,
            ),
            refusals: crate::webhook::refusals::Refusals::new(
                producer.clone(),
                config.kafka.topics().refusals,
            ),
            producer,
            topics: config.kafka.topics(),
            body_limit: config.http.body_limit_bytes,
            body_timeout: std::time::Duration::from_millis(config.http.body_timeout_ms),
            max_records: config.http.max_records,
            record_limits: config.kafka.record_limits(),
            retry_after_s: config.http.retry_after_s,
            limits,
        },
        metrics,
    });
    let listener = runtime::http::bind(config.http.listen).await?;
    tracing::info!(listen = %config.http.listen, "ingest listening");
    runtime::http::serve(
        listener,
        move |request| route(state.clone(), request),
        shutdown,
        Duration::from_secs(5),
    )
    .await;
    Ok(())
}

async fn route(state: Arc<Ingest>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    if let Some(client) = path.strip_prefix(WEBHOOK_PREFIX) {
        if request.method() != Method::POST && request.method() != Method::GET {
            let mut response = Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "webhooks are delivered with POST (a body) or GET (the record in the query)",
            )
            .into_response();
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST, GET"));
            return response;
        }
        return webhook::handle(&state.webhook, client, request).await;
    }
    if path == "/api/openapi.json" && request.method() == Method::GET {
        return runtime::http::document("application/json", schemas::openapi::OPENAPI_JSON);
    }
    if path == "/healthz" && request.method() == Method::GET {
        // Load balancers ask without a token; only an admin sees which integrations
        // (and versions) this instance serves.
        let admin = matches!(
            state.tokens.scope(request.headers(), request.uri().query()),
            Ok(Scope::All)
        );
        return health(&state, admin).await;
    }
    if path == "/metrics" && request.method() == Method::GET {
        return metrics(&state.metrics);
    }
    if !path.starts_with("/api/") {
        return not_found(request.method(), &path);
    }
    let scope = match state.tokens.scope(request.headers(), None) {
        Ok(scope) => scope,
        Err(problem) => return problem.into_response(),
    };
    // A viewer token starts no import, poll or test (ingest answers it nothing
    // else a viewer may not see: import and poll status carry counts only).
    if let Err(problem) = scope.check_write(request.method()) {
        return problem.into_response();
    }
    let result = account_route(&state, &scope, &path, request).await;
    result.unwrap_or_else(Problem::into_response)
}

/// The routes an account (or an admin) uses, every one checked against the scope.
async fn account_route(
    state: &Ingest,
    scope: &Scope,
    path: &str,
    request: Request<Incoming>,
) -> Result<Response<Body>, Problem> {
    if path == "/api/polls" {
        let statuses: Vec<_> = state
            .poller
            .as_ref()
            .map(Poller::statuses)
            .unwrap_or_default()
            .into_iter()
            .filter(|status| {
                scope
                    .integration(&state.webhook.registry, &status.client_id)
                    .is_ok()
            })
            .collect();
        return Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "polls": statuses }),
        ));
    }
    if let Some(client) = path
        .strip_prefix("/api/integrations/")
        .and_then(|rest| rest.strip_suffix("/poll/test"))
    {
        let integration = scope.integration(&state.webhook.registry, client)?;
        return poll_test(state, &integration, request).await;
    }
    if let Some(client) = path
        .strip_prefix("/api/integrations/")
        .and_then(|rest| rest.strip_suffix("/poll"))
    {
        let integration = scope.integration(&state.webhook.registry, client)?;
        return poll_now(state, &integration, request.method());
    }
    if let Some(id) = path.strip_prefix("/api/imports/") {
        return imports::status(&state.imports, id, scope);
    }
    if let Some(client) = path
        .strip_prefix("/api/integrations/")
        .and_then(|rest| rest.strip_suffix("/imports"))
    {
        if request.method() != Method::POST {
            return Err(Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "imports are started with POST",
            ));
        }
        let integration = scope.integration(&state.webhook.registry, client)?;
        crate::webhook::accepting(&integration)?;
        return imports::create(&state.imports, integration, request).await;
    }
    Err(Problem::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {} {path}", request.method()),
    ))
}

fn not_found(method: &Method, path: &str) -> Response<Body> {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {method} {path}"),
    )
    .into_response()
}

fn poll_now(
    state: &Ingest,
    integration: &Integration,
    method: &Method,
) -> Result<Response<Body>, Problem> {
    if method != Method::POST {
        return Err(Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "a poll is triggered with POST",
        ));
    }
    let client = &integration.client_id;
    crate::webhook::accepting(integration)?;
    state.webhook.limits.poll_now(client)?;
    let Some(poller) = state.poller.as_ref().filter(|_| integration.poll.is_some()) else {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "not_polled",
            format!("integration {client} has no poll configuration here"),
        ));
    };
    if poller.trigger(client) {
        Ok(json(
            StatusCode::ACCEPTED,
            &serde_json::json!({"client_id": client, "triggered": true}),
        ))
    } else {
        Err(Problem::new(StatusCode::CONFLICT, "not_owner", format!("another ingest instance polls {client}; ask it (or any instance again after a rebalance)")))
    }
}

/// `POST …/poll/test`: one page of the saved poll, or of a draft sent as
/// `{"poll": {…}}` (validated first, its problem naming the field), stored nowhere.
async fn poll_test(
    state: &Ingest,
    integration: &Integration,
    request: Request<Incoming>,
) -> Result<Response<Body>, Problem> {
    if request.method() != Method::POST {
        return Err(Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "a poll test is run with POST",
        ));
    }
    state.webhook.limits.poll_now(&integration.client_id)?;
    let bytes = runtime::http::read_body(request, 1024 * 1024, runtime::http::BODY_TIMEOUT).await?;
    let draft: Option<schemas::poll::PollConfig> = if bytes.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Draft {
            poll: schemas::poll::PollConfig,
        }
        let draft: Draft = serde_json::from_slice(&bytes).map_err(|e| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_poll",
                format!("the body must be {{\"poll\": {{…}}}}: {e}"),
            )
        })?;
        if let Some((field, problem)) = draft.poll.problem() {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_poll",
                format!("{field}: {problem}"),
            ));
        }
        Some(draft.poll)
    };
    let Some(poller) = state.poller.as_ref() else {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "not_polled",
            "polling is off on this ingest instance",
        ));
    };
    match poller.dry_run(integration, draft.as_ref()).await {
        Some(result) => Ok(json(StatusCode::OK, &result)),
        None => Err(Problem::new(
            StatusCode::CONFLICT,
            "not_polled",
            format!(
                "integration {} has no poll configuration (send a draft as {{\"poll\": {{…}}}})",
                integration.client_id
            ),
        )),
    }
}

async fn health(state: &Ingest, admin: bool) -> Response<Body> {
    let kafka = state
        .webhook
        .producer
        .check_broker(Duration::from_secs(2))
        .await;
    // Which version of each integration this instance serves: a published change
    // is live here once its version shows.
    let integrations: serde_json::Map<String, serde_json::Value> = state
        .webhook
        .registry
        .all()
        .iter()
        .map(|i| (i.client_id.to_string(), i.version.into()))
        .collect();
    let workers = state.workers.health();
    let healthy = kafka.is_ok() && workers.healthy;
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut answer = serde_json::json!({
        "status": if healthy { "ok" } else { "unavailable" },
        "kafka": kafka.map(|_| "ok".to_owned()).unwrap_or_else(|e| e.to_string()),
        "workers": workers.workers,
        "integrations_served": integrations.len(),
    });
    if admin {
        answer["integrations"] = integrations.into();
    }
    json(status, &answer)
}
