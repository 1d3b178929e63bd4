//! How a poll signs its requests, one file per kind, listed in [`authenticator`].
//! Kinds that fetch a token (OAuth 2.0, a session login) keep it in the poller's
//! [`TokenCache`], so one token serves many runs until shortly before it expires;
//! a 401 drops it and the request is made once more with a new one.

mod oauth2;
mod session_token;
mod static_key;
mod token_cache;

use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::header::{HeaderName, HeaderValue};
use schemas::poll::PollAuth;

use crate::outbound::Outbound;

pub use token_cache::TokenCache;

/// What a request carries to prove who sent it.
#[derive(Default)]
pub struct Credentials {
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Query parameters (their names are secret names: masked when shown).
    pub query: Vec<(String, String)>,
}

impl Credentials {
    fn header(name: &str, value: &str) -> Result<Self, String> {
        let name =
            HeaderName::try_from(name).map_err(|_| format!("{name:?} is not a header name"))?;
        let mut value = HeaderValue::try_from(value)
            .map_err(|_| format!("the {name} value has characters a header cannot hold"))?;
        value.set_sensitive(true);
        Ok(Self {
            headers: vec![(name, value)],
            query: vec![],
        })
    }
}

/// What a token request needs.
pub struct AuthContext<'a> {
    pub outbound: &'a Outbound,
    pub timeout: Duration,
    pub secret_names: &'a [String],
    pub max_bytes: u64,
}

pub trait Authenticator: Send + Sync {
    /// The credentials for the next request (fetching a token if none is fresh).
    fn credentials<'a>(
        &'a self,
        ctx: &'a AuthContext<'a>,
    ) -> BoxFuture<'a, Result<Credentials, String>>;

    /// The partner answered 401: forget any cached token. `true` when a new one
    /// may be fetched, so the request is worth making once more.
    fn rejected(&self) -> bool {
        false
    }
}

/// The authenticator for `auth`; tokens it fetches are cached under `owner` (the
/// integration), so a changed definition starts afresh.
pub fn authenticator(
    auth: Option<&PollAuth>,
    cache: &TokenCache,
    owner: &str,
) -> Box<dyn Authenticator> {
    let Some(auth) = auth else {
        return Box::new(static_key::Anonymous);
    };
    let key = token_cache::key(owner, auth);
    match auth {
        PollAuth::ApiKeyHeader {
            header,
            key: secret,
            format,
        } => Box::new(static_key::HeaderKey {
            header: header.clone(),
            value: match format {
                Some(format) => format.replace("{key}", secret.expose()),
                None => secret.expose().to_owned(),
            },
        }),
        PollAuth::ApiKeyQuery { param, key: secret } => Box::new(static_key::QueryKey {
            param: param.clone(),
            key: secret.expose().to_owned(),
        }),
        PollAuth::Bearer { token } => Box::new(static_key::HeaderKey {
            header: "authorization".into(),
            value: format!("Bearer {}", token.expose()),
        }),
        PollAuth::Basic { user, password } => {
            use base64::Engine;
            let pair = format!("{user}:{}", password.expose());
            Box::new(static_key::HeaderKey {
                header: "authorization".into(),
                value: format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ),
            })
        }
        PollAuth::Oauth2 { .. } => Box::new(oauth2::OAuth2 {
            auth: auth.clone(),
            cache: cache.clone(),
            key,
        }),
        PollAuth::SessionToken { .. } => Box::new(session_token::SessionToken {
            auth: auth.clone(),
            cache: cache.clone(),
            key,
        }),
    }
}

/// Reads a token endpoint's JSON answer (capped), or says why not without quoting
/// anything the endpoint echoed back (it may echo the credentials).
pub(crate) async fn token_answer(
    ctx: &AuthContext<'_>,
    what: &str,
    url: &str,
    request: crate::outbound::OutboundRequest<'_>,
) -> Result<serde_json::Value, String> {
    use schemas::redact::redact_url;
    let shown = redact_url(url, ctx.secret_names);
    let response = ctx
        .outbound
        .send(request)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        metrics::counter!(crate::metric_names::INGEST_POLL_TOKENS_TOTAL, "outcome" => "refused")
            .increment(1);
        return Err(format!(
            "{what}: {shown} answered {status} (check the credentials)"
        ));
    }
    let bytes = crate::outbound::read_capped(response, ctx.max_bytes, &shown)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    metrics::counter!(crate::metric_names::INGEST_POLL_TOKENS_TOTAL, "outcome" => "issued")
        .increment(1);
    serde_json::from_slice(&bytes).map_err(|_| format!("{what}: {shown} did not answer JSON"))
}
