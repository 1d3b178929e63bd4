//! Routes of the api, read as a table:
//!
//! | method | path               | what                                          |
//! |--------|--------------------|-----------------------------------------------|
//! | GET    | /api/calls         | calls, newest first, keyset pages             |
//! | GET    | /api/calls/export.csv | the filtered calls as CSV, streamed        |
//! | GET    | /api/calls/{id}/story | one call: its decisions in words, versions, partner records |
//! | GET    | /api/aggregates    | counts and sums by time bucket and dimension  |
//! | GET    | /api/dead-letters  | refused records with reasons and payloads     |
//! | GET    | /api/integrations  | integrations with health and alert state      |
//! | POST   | /api/integrations  | create or update an integration               |
//! | POST   | /api/integrations/{clientId}/enable | enable (a new version)       |
//! | POST   | /api/integrations/{clientId}/disable | disable (a new version)     |
//! | DELETE | /api/integrations/{clientId} | delete an integration               |
//! | GET    | /api/integrations/{clientId}/refusals | deliveries ingest refused  |
//! | GET    | /api/audit         | who changed which integration, when, from where, and what |
//! | GET    | /api/privacy/retention | an account's retention policy and its recent runs |
//! | PUT    | /api/privacy/retention | set an account's retention policy          |
//! | GET    | /api/privacy/erasures  | an account's erasure receipts              |
//! | POST   | /api/privacy/erasures  | erase a caller of an account (done by the processor) |
//! | POST   | /api/privacy/suppression-lifts | take a caller off the suppression list |
//! | GET    | /api/ops           | alerts, consumer lag, freshness, processes down (admin; from Prometheus) |
//! | POST   | /api/integrations/{clientId}/replay | replay its dead letters (or all records) |
//! | POST   | /api/integrations/{clientId}/poll/test | one page of its poll, stored nowhere (forwarded to ingest) |
//! | GET    | /api/replays/{id}  | a replay's progress                           |
//! | GET    | /api/dead-letters/groups | dead letters counted by integration and reason |
//! | GET    | /api/events        | live calls (Server-Sent Events)               |
//! | POST   | /api/mappings/preview | a mapping applied to sample records, nothing written |
//! | GET    | /                  | the dashboard (one HTML page, no build step)  |
//! | GET    | /api/openapi.json  | the OpenAPI document of ingest and api        |
//! | GET    | /healthz           | ClickHouse answers                            |
//! | GET    | /metrics           | Prometheus text                               |

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use metrics_exporter_prometheus::PrometheusHandle;
use runtime::http::{json, metrics, Body, Problem};
use runtime::shutdown::Shutdown;

use crate::config::ApiConfig;
use crate::events::EventHub;
use crate::integrations::IntegrationsApi;
use crate::recent::RecentPayloads;
use crate::replays::Replays;
use crate::story::Stories;
use crate::{aggregates, calls, dead_letters, preview};
use runtime::access::{self, Scope, Tokens, TokensError};
use runtime::kafka::ConsumerError;
use runtime::registry::{IntegrationRegistry, RegistryError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Kafka(#[from] ConsumerError),
    #[error(transparent)]
    Bind(#[from] runtime::http::BindError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Tokens(#[from] TokensError),
    #[error(transparent)]
    Producer(#[from] runtime::kafka::ProduceError),
    #[error(transparent)]
    Table(#[from] runtime::table::TableError),
}

struct Api {
    privacy: crate::privacy::Privacy,
    ops: crate::ops::Ops,
    clickhouse: clickhouse::Client,
    registry: IntegrationRegistry,
    recent: RecentPayloads,
    events: EventHub,
    metrics: PrometheusHandle,
    max_page: u32,
    tokens: Tokens,
    integrations: IntegrationsApi,
    stories: Stories,
    replays: Replays,
    /// Where ingest is, for the routes it answers (poll tests).
    ingest: crate::poll_test::IngestLink,
    limits: crate::limits::ApiLimits,
    /// The event stream's catch-up reader: health fails while it is not running.
    workers: runtime::workers::Workers,
}

/// Which per-account gate a route goes through (`crate::limits`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Reads ClickHouse.
    Query,
    /// An event stream.
    Stream,
    Preview,
    /// An erasure order or a suppression lift: ClickHouse mutations later.
    PrivacyOrder,
    None,
}

fn gate_of(method: &Method, path: &str) -> Gate {
    match (method, path) {
        (&Method::GET, "/api/events") => Gate::Stream,
        (&Method::POST, "/api/mappings/preview") => Gate::Preview,
        (&Method::POST, "/api/privacy/erasures" | "/api/privacy/suppression-lifts") => {
            Gate::PrivacyOrder
        }
        (
            &Method::GET,
            "/api/calls" | "/api/calls/export.csv" | "/api/aggregates" | "/api/audit",
        )
        | (&Method::GET, "/api/dead-letters" | "/api/dead-letters/groups" | "/api/integrations") => {
            Gate::Query
        }
        (&Method::GET, path) if story_id(path).is_some() => Gate::Query,
        _ => Gate::None,
    }
}

pub async fn run(
    config: ApiConfig,
    metrics: PrometheusHandle,
    shutdown: Shutdown,
) -> Result<(), ApiError> {
    let workers = runtime::workers::Workers::default();
    let events = EventHub::start(
        &config.kafka,
        config.http.sse_buffer,
        Duration::from_secs(config.http.heartbeat_s),
        crate::events::ResumeLimits {
            ring_events: config.http.sse_replay_events,
            ring_bytes: config.http.sse_replay_bytes,
            catch_up: crate::events::CatchUpLimits {
                queue: config.http.sse_catch_up_queue,
                rate: config.http.sse_catch_up_rate,
                max_events: config.http.sse_catch_up_max_events,
                per_account: config.limits.sse_catch_ups.max(1) as usize,
            },
        },
        &workers,
        shutdown.clone(),
    )
    .await?;
    let registry = IntegrationRegistry::start(
        &config.kafka,
        shutdown.clone(),
        config.registry.initial_load(),
    )
    .await?;
    let accounts = registry.clone();
    let recent = RecentPayloads::start(
        &config.kafka,
        config.http.recent_payloads,
        config.limits.recent_payload_bytes,
        move |client| accounts.get(client).map(|i| i.account.clone()),
        config.registry.initial_load(),
        shutdown.clone(),
    )
    .await?;
    let tokens = config.auth.tokens(config.http.listen)?;
    let polls: runtime::table::CompactedTable<serde_json::Value> =
        runtime::table::CompactedTable::start(
            &config.kafka,
            &config.kafka.topics().poll_status,
            "poll-status",
            config.registry.initial_load(),
            shutdown.clone(),
            runtime::table::json,
        )
        .await?;
    let audit = crate::audit::Auditor {
        producer: runtime::kafka::AckedProducer::new(&config.kafka)?,
        topic: config.kafka.topics().audit,
    };
    crate::token_audit::record_changes(
        &config.kafka,
        &tokens,
        &config.auth.tokens_file,
        &audit,
        config.registry.initial_load(),
    )
    .await?;
    let integrations = IntegrationsApi {
        audit: audit.clone(),
        polls,
        registry: registry.clone(),
        producer: runtime::kafka::AckedProducer::new(&config.kafka)?,
        kafka: config.kafka.clone(),
        clickhouse: config.clickhouse.client(),
        health: config.health,
        refusals: crate::refusals::RecentRefusals::start(&config.kafka, shutdown.clone()).await?,
    };
    // Shared by pointer: a request clones the Arc, not the clients and caches (ingest
    // measured that per-request copy as a cost at its edge, benches/README.md).
    let stories = Stories {
        clickhouse: config.clickhouse.client(),
        registry: registry.clone(),
        kafka: config.kafka.clone(),
        reader: std::sync::Arc::default(),
    };
    let privacy = crate::privacy::Privacy {
        policies: runtime::table::CompactedTable::start(
            &config.kafka,
            &config.kafka.topics().retention,
            "retention-policies",
            config.registry.initial_load(),
            shutdown.clone(),
            runtime::table::json,
        )
        .await?,
        suppressions: runtime::table::CompactedTable::start(
            &config.kafka,
            &config.kafka.topics().suppressions,
            "suppressions",
            config.registry.initial_load(),
            shutdown.clone(),
            runtime::table::json,
        )
        .await?,
        producer: runtime::kafka::AckedProducer::new(&config.kafka)?,
        topic: config.kafka.topics().retention,
        raw_topic: config.kafka.topics().raw,
        audit: audit.clone(),
    };
    let replays = Replays::new(config.kafka.clone(), registry.clone(), audit);
    let state = Arc::new(Api {
        ops: crate::ops::Ops::new(&config.ops.prometheus_url),
        privacy,
        replays,
        ingest: crate::poll_test::IngestLink::new(&config.ingest.url),
        integrations,
        stories,
        tokens,
        clickhouse: config.clickhouse.client(),
        registry,
        recent,
        events,
        metrics,
        max_page: config.http.max_page,
        limits: crate::limits::ApiLimits::new(config.limits.clone()),
        workers,
    });
    let listener = runtime::http::bind(config.http.listen).await?;
    tracing::info!(listen = %config.http.listen, "api listening");
    runtime::http::serve(
        listener,
        move |request| route(state.clone(), request),
        shutdown,
        Duration::from_secs(2),
    )
    .await;
    Ok(())
}

/// The `{id}` of `/api/calls/{id}/story`.
fn story_id(path: &str) -> Option<&str> {
    path.strip_prefix("/api/calls/")?.strip_suffix("/story")
}

/// A refusal before any route read the request: counted, and what the sender still
/// writes of a body read and dropped in the background (`runtime::http::drain`), so
/// that a client pushing a definition with an expired token reads its 401 instead of
/// a reset connection.
fn refuse(request: Request<Incoming>, problem: Problem) -> Response<Body> {
    metrics::counter!(crate::metric_names::API_REQUESTS_TOTAL, "status" => problem.status.as_u16().to_string()).increment(1);
    let (parts, body) = request.into_parts();
    runtime::http::drain(body, &parts.headers);
    problem.into_response()
}

async fn route(state: Arc<Api>, request: Request<Incoming>) -> Response<Body> {
    // Owned copies, so the preview arm can take the request (it reads the body).
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let raw_query = request.uri().query().map(str::to_owned);
    // The token is looked up once: its scope, and who it is for the audit trail.
    let (scope, identity) = if path.starts_with("/api/") && path != "/api/openapi.json" {
        match state.tokens.caller(request.headers(), raw_query.as_deref()) {
            Ok(found) => found,
            Err(problem) => return refuse(request, problem),
        }
    } else {
        (Scope::All, String::new())
    };
    // A viewer token changes nothing, here for every route.
    if let Err(problem) = scope.check_write(&method) {
        return refuse(request, problem);
    }
    // Who asks, for the audit trail of what they change.
    let actor = crate::audit::actor(&state.tokens, &scope, identity, &request);
    let query = access::without_token(raw_query.as_deref());
    let query = query.as_deref();
    // Fair shares: one account's reads, streams, previews and privacy orders never
    // take another's.
    let gate = gate_of(&method, &path);
    let resuming = request.headers().contains_key("last-event-id")
        || query.is_some_and(|q| q.contains("last_event_id="));
    let pass = match gate {
        Gate::Query => state.limits.query(&scope).map(Some),
        Gate::Stream if resuming => state
            .limits
            .resume(&scope)
            .and_then(|_| state.limits.stream(&scope))
            .map(Some),
        Gate::Stream => state.limits.stream(&scope).map(Some),
        Gate::Preview => state.limits.preview(&scope).map(Some),
        Gate::PrivacyOrder => state.limits.privacy_order(&scope).map(Some),
        Gate::None => Ok(None),
    };
    let pass = match pass {
        Ok(pass) => pass,
        Err(problem) => return refuse(request, problem),
    };
    // Every read that names a client id is checked against the token here, once.
    if method == Method::GET && path.starts_with("/api/") {
        if let Err(problem) = client_ids_in(query)
            .iter()
            .try_for_each(|client| scope.check_client(&state.registry, client))
        {
            return refuse(request, problem);
        }
    }
    let result = match (&method, path.as_str()) {
        (&Method::GET, "/api/aggregates") => {
            aggregates::aggregates(&state.clickhouse, query, &scope).await
        }
        (&Method::GET, "/api/calls/export.csv") => {
            calls::export(&state.clickhouse, query, &scope).await
        }
        (&Method::GET, "/api/calls") => {
            calls::list(&state.clickhouse, state.max_page, query, &scope).await
        }
        (&Method::GET, path) if story_id(path).is_some() => {
            let id = story_id(path).unwrap_or_default();
            state.stories.story(id, query, &scope).await
        }
        (&Method::GET, "/api/dead-letters/groups") => {
            dead_letters::groups(&state.clickhouse, query, &scope, &state.registry).await
        }
        (&Method::GET, path) if path.starts_with("/api/replays/") => {
            state.replays.get(&scope, &path["/api/replays/".len()..])
        }
        (&Method::GET, "/api/dead-letters") => match scope.check_payloads() {
            Ok(()) => {
                dead_letters::list(
                    &state.clickhouse,
                    state.max_page,
                    query,
                    &scope,
                    &state.registry,
                )
                .await
            }
            Err(problem) => Err(problem),
        },
        (&Method::GET, "/api/events") => {
            let last_event_id = request
                .headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            state
                .events
                .subscribe(query, last_event_id.as_deref(), &scope)
                .await
        }
        (&Method::POST, "/api/mappings/preview") => {
            preview::preview(
                &state.registry,
                &state.recent,
                &state.clickhouse,
                request,
                &scope,
                state.limits.config.preview_bytes,
            )
            .await
        }
        (&Method::GET, "/api/integrations") => state.integrations.list(&scope).await,
        (&Method::GET, "/api/audit") => crate::audit::list(&state.clickhouse, query, &scope).await,
        (&Method::GET, "/api/privacy/retention") => {
            state.privacy.get(&state.clickhouse, query, &scope).await
        }
        (&Method::GET, "/api/ops") => state.ops.answer(&scope).await,
        (&Method::GET, "/api/privacy/erasures") => {
            state
                .privacy
                .erasures(&state.clickhouse, query, &scope)
                .await
        }
        (&Method::POST, "/api/privacy/erasures") => {
            state.privacy.request_erasure(&scope, &actor, request).await
        }
        (&Method::POST, "/api/privacy/suppression-lifts") => {
            state
                .privacy
                .lift_suppression(&scope, &actor, request)
                .await
        }
        (&Method::PUT, "/api/privacy/retention") => {
            state.privacy.put(&scope, &actor, request).await
        }
        (&Method::POST, "/api/integrations") => {
            state
                .integrations
                .save(&scope, &actor, request, &state.limits.config)
                .await
        }
        (method, path) if path.starts_with("/api/integrations/") => {
            let rest = &path["/api/integrations/".len()..];
            match (method, rest.split_once('/')) {
                (&Method::POST, Some((client, "enable"))) => {
                    state
                        .integrations
                        .set_enabled(&scope, &actor, client, true)
                        .await
                }
                (&Method::POST, Some((client, "disable"))) => {
                    state
                        .integrations
                        .set_enabled(&scope, &actor, client, false)
                        .await
                }
                (&Method::GET, Some((client, "refusals"))) => scope
                    .check_payloads()
                    .and_then(|()| state.integrations.refused(&scope, client)),
                (&Method::POST, Some((client, "replay"))) => {
                    state.replays.start(&scope, &actor, client, request).await
                }
                (&Method::POST, Some((client, "poll/test"))) => {
                    state
                        .ingest
                        .poll_test(&scope, &state.registry, client, request)
                        .await
                }
                (&Method::DELETE, None) => state.integrations.delete(&scope, &actor, rest).await,
                _ => Err(Problem::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no route for {method} {path}"),
                )),
            }
        }
        // The dashboard: one page that reads the same API as everyone else (with the
        // token typed into it), so it needs no build step and no server state.
        (&Method::GET, "/") => Ok(runtime::http::document(
            "text/html; charset=utf-8",
            include_str!("../static/dashboard.html"),
        )),
        (&Method::GET, "/api/openapi.json") => Ok(runtime::http::document(
            "application/json",
            schemas::openapi::OPENAPI_JSON,
        )),
        (&Method::GET, "/healthz") => Ok(health(&state).await),
        (&Method::GET, "/metrics") => {
            state.events.report_slowest_client();
            Ok(metrics(&state.metrics))
        }
        (method, path) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route for {method} {path}"),
        )),
    };
    let mut response = result.unwrap_or_else(Problem::into_response);
    // The one place a viewer's answers are masked, whatever route made them.
    if scope.is_viewer() {
        response = crate::masking::masked(response);
    }
    if let Some(pass) = pass {
        // Held by the body: an export or a stream keeps its slot while it streams.
        response = response.map(|body| runtime::fair::hold(body, pass));
    }
    metrics::counter!(crate::metric_names::API_REQUESTS_TOTAL, "status" => response.status().as_u16().to_string())
        .increment(1);
    response
}

/// Every `client_id` parameter of a query (a repeated one is checked each time).
fn client_ids_in(query: Option<&str>) -> Vec<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or(""))
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, _)| name == "client_id")
        .map(|(_, value)| value)
        .collect()
}

async fn health(state: &Api) -> Response<Body> {
    let clickhouse = runtime::clickhouse::ping(&state.clickhouse, Duration::from_secs(2)).await;
    let workers = state.workers.health();
    let healthy = clickhouse.is_ok() && workers.healthy;
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(
        status,
        &serde_json::json!({
            "status": if healthy { "ok" } else { "unavailable" },
            "clickhouse": clickhouse.err().unwrap_or_else(|| "ok".into()),
            "workers": workers.workers,
        }),
    )
}
