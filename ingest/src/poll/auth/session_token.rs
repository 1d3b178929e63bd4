//! A session login: `login_body` (with `{username}` and `{password}` filled in) is
//! posted to `login_url`; the token at `token_path` is sent as `header: prefix +
//! token` until its lifetime (`expires_in_path`, else `lifetime_s`) nearly ends.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use schemas::path::FieldPath;
use schemas::poll::PollAuth;
use serde_json::Value;

use super::token_cache::{renew_at, Cached, TokenCache};
use super::{token_answer, AuthContext, Authenticator, Credentials};
use crate::outbound::OutboundRequest;

pub struct SessionToken {
    pub auth: PollAuth,
    pub cache: TokenCache,
    pub key: u64,
}

impl Authenticator for SessionToken {
    fn credentials<'a>(
        &'a self,
        ctx: &'a AuthContext<'a>,
    ) -> BoxFuture<'a, Result<Credentials, String>> {
        Box::pin(async move {
            let PollAuth::SessionToken { header, prefix, .. } = &self.auth else {
                return Err("not a session_token definition".into());
            };
            let token = self.cache.get_or_fetch(self.key, self.login(ctx)).await?;
            Credentials::header(header, &format!("{prefix}{token}"))
        })
    }

    fn rejected(&self) -> bool {
        self.cache.expire(self.key);
        true
    }
}

impl SessionToken {
    async fn login(&self, ctx: &AuthContext<'_>) -> Result<Cached, String> {
        let PollAuth::SessionToken {
            login_url,
            login_body,
            username,
            password,
            token_path,
            expires_in_path,
            lifetime_s,
            ..
        } = &self.auth
        else {
            return Err("not a session_token definition".into());
        };
        let body = fill(login_body, username, password.expose());
        let url = url::Url::parse(login_url).map_err(|e| format!("poll.auth.login_url: {e}"))?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let answer = token_answer(
            ctx,
            "the session login",
            login_url,
            OutboundRequest {
                method: reqwest::Method::POST,
                url,
                headers,
                timeout: ctx.timeout,
                secret_names: ctx.secret_names,
                body: Some(body.to_string().into()),
            },
        )
        .await?;
        let lookup = |path: &str| {
            FieldPath::parse(path)
                .ok()
                .and_then(|p| p.lookup(&answer).map(|v| v.into_owned()))
        };
        let token = lookup(token_path)
            .and_then(|v| v.as_str().map(str::to_owned))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| format!("the session login answer has no token at {token_path}"))?;
        let lifetime = expires_in_path
            .as_deref()
            .and_then(lookup)
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .unwrap_or(*lifetime_s)
            .clamp(1, 30 * 86_400);
        Ok(Cached {
            token,
            renew_at: renew_at(Instant::now(), Duration::from_secs(lifetime)),
            refresh_token: None,
        })
    }
}

/// `body` with the strings `{username}` and `{password}` replaced.
fn fill(body: &Value, username: &str, password: &str) -> Value {
    match body {
        Value::String(text) => Value::String(
            text.replace("{username}", username)
                .replace("{password}", password),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| fill(i, username, password)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), fill(v, username, password)))
                .collect(),
        ),
        other => other.clone(),
    }
}
