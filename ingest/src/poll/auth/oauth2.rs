//! OAuth 2.0 (RFC 6749 §4.4 client credentials, §6 refresh token): the token
//! endpoint is asked with the client's id and secret in the form body, the answer's
//! `access_token` is sent as `Authorization: Bearer`, and `expires_in` (default an
//! hour) says when to ask again.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use schemas::poll::PollAuth;

use super::token_cache::{renew_at, Cached, TokenCache};
use super::{token_answer, AuthContext, Authenticator, Credentials};
use crate::outbound::OutboundRequest;

pub struct OAuth2 {
    pub auth: PollAuth,
    pub cache: TokenCache,
    pub key: u64,
}

impl Authenticator for OAuth2 {
    fn credentials<'a>(
        &'a self,
        ctx: &'a AuthContext<'a>,
    ) -> BoxFuture<'a, Result<Credentials, String>> {
        Box::pin(async move {
            let token = self.cache.get_or_fetch(self.key, self.fetch(ctx)).await?;
            Credentials::header("authorization", &format!("Bearer {token}"))
        })
    }

    fn rejected(&self) -> bool {
        self.cache.expire(self.key);
        true
    }
}

impl OAuth2 {
    async fn fetch(&self, ctx: &AuthContext<'_>) -> Result<Cached, String> {
        let PollAuth::Oauth2 {
            token_url,
            client_id,
            client_secret,
            refresh_token,
            scopes,
        } = &self.auth
        else {
            return Err("not an oauth2 definition".into());
        };
        // A refresh token the server rotated to replaces the configured one.
        let rotated = self.cache.any(self.key).and_then(|c| c.refresh_token);
        let refresh = rotated.or_else(|| refresh_token.as_ref().map(|t| t.expose().to_owned()));
        // Finished before any await: the serializer is not `Send`.
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            match &refresh {
                Some(refresh) => form
                    .append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", refresh),
                None => form.append_pair("grant_type", "client_credentials"),
            };
            form.append_pair("client_id", client_id)
                .append_pair("client_secret", client_secret.expose());
            if !scopes.is_empty() {
                form.append_pair("scope", &scopes.join(" "));
            }
            form.finish()
        };
        let url = url::Url::parse(token_url).map_err(|e| format!("poll.auth.token_url: {e}"))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        let answer = token_answer(
            ctx,
            "the OAuth2 token request",
            token_url,
            OutboundRequest {
                method: reqwest::Method::POST,
                url,
                headers,
                timeout: ctx.timeout,
                secret_names: ctx.secret_names,
                body: Some(form.into()),
            },
        )
        .await?;
        let token = answer["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or("the OAuth2 token answer has no access_token")?
            .to_owned();
        let lifetime = answer["expires_in"]
            .as_u64()
            .or_else(|| answer["expires_in"].as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(3600)
            .clamp(1, 30 * 86_400);
        tracing::info!(lifetime_s = lifetime, "poll: OAuth2 token issued");
        Ok(Cached {
            token,
            renew_at: renew_at(Instant::now(), Duration::from_secs(lifetime)),
            refresh_token: answer["refresh_token"]
                .as_str()
                .map(str::to_owned)
                .or(refresh),
        })
    }
}
