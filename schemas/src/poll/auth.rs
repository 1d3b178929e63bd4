//! How a poll proves who it is to the partner. Every secret is a [`Secret`]: kept
//! out of `Debug`, and the integrations API shows only the `type`.

use serde::{Deserialize, Serialize};

use crate::webhook_auth::Secret;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PollAuth {
    /// A key in a header. `format` writes the header's value around the key
    /// (`Token token="{key}"` for CallRail, `Token {key}` for Ringba); absent, the
    /// value is the key.
    ApiKeyHeader {
        header: String,
        key: Secret,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<String>,
    },
    /// A key in a query parameter (`oauth_token`, `api_key`): the parameter is a
    /// secret name, so every URL shown masks it.
    ApiKeyQuery {
        param: String,
        key: Secret,
    },
    Bearer {
        token: Secret,
    },
    Basic {
        user: String,
        password: Secret,
    },
    /// OAuth 2.0 (RFC 6749): an access token from `token_url`, by the client
    /// credentials grant or a refresh token; cached, fetched again shortly before it
    /// expires and once when the partner answers 401.
    Oauth2 {
        token_url: String,
        client_id: String,
        client_secret: Secret,
        /// Present: the refresh-token grant; absent: client credentials.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refresh_token: Option<Secret>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        scopes: Vec<String>,
    },
    /// A login request whose answer holds a token (and maybe its lifetime), sent
    /// on each request as `header: prefix + token` until it expires.
    SessionToken {
        login_url: String,
        /// JSON sent to `login_url`; the strings `{username}` and `{password}` are
        /// replaced by the credentials below.
        login_body: serde_json::Value,
        username: String,
        password: Secret,
        /// Where the token is in the login answer (`data.token`).
        token_path: String,
        /// Where its lifetime in seconds is, if the answer says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_in_path: Option<String>,
        /// The lifetime when the answer does not say.
        #[serde(default = "default_lifetime_s")]
        lifetime_s: u64,
        #[serde(default = "default_header")]
        header: String,
        #[serde(default = "default_prefix")]
        prefix: String,
    },
}

fn default_lifetime_s() -> u64 {
    3600
}
fn default_header() -> String {
    "Authorization".into()
}
fn default_prefix() -> String {
    "Bearer ".into()
}

impl PollAuth {
    /// The first problem, as (field path, problem).
    pub fn problem(&self) -> Option<(String, String)> {
        let bad =
            |field: &str, problem: &str| Some((format!("poll.auth.{field}"), problem.to_owned()));
        let url_ok =
            |url: &str| url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        match self {
            Self::ApiKeyHeader { header, format, .. } => {
                if http_name_bad(header) {
                    return bad("header", "is not a valid header name");
                }
                if format.as_ref().is_some_and(|f| !f.contains("{key}")) {
                    return bad("format", "must contain {key}");
                }
            }
            Self::ApiKeyQuery { param, .. } if param.trim().is_empty() => {
                return bad("param", "must name the query parameter")
            }
            Self::Oauth2 { token_url, .. } if !url_ok(token_url) => {
                return bad("token_url", "must be an http(s) URL")
            }
            Self::SessionToken {
                login_url,
                token_path,
                expires_in_path,
                lifetime_s,
                header,
                ..
            } => {
                if !url_ok(login_url) {
                    return bad("login_url", "must be an http(s) URL");
                }
                if crate::path::FieldPath::parse(token_path).is_err() {
                    return bad("token_path", "is not a valid path");
                }
                if expires_in_path
                    .as_ref()
                    .is_some_and(|p| crate::path::FieldPath::parse(p).is_err())
                {
                    return bad("expires_in_path", "is not a valid path");
                }
                if *lifetime_s == 0 || *lifetime_s > 30 * 86_400 {
                    return bad("lifetime_s", "must be between 1 and 2592000");
                }
                if http_name_bad(header) {
                    return bad("header", "is not a valid header name");
                }
            }
            _ => {}
        }
        None
    }

    /// A query parameter this auth writes (masked wherever a URL is shown).
    pub fn query_param(&self) -> Option<&str> {
        match self {
            Self::ApiKeyQuery { param, .. } => Some(param),
            _ => None,
        }
    }
}

fn http_name_bad(name: &str) -> bool {
    name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
