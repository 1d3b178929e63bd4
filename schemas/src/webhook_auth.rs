//! How a partner proves a webhook is theirs, and how fast they may send: per
//! integration. Secrets are kept in [`Secret`], whose `Debug` never shows them, so
//! logging an integration cannot leak one.

use std::fmt;

use base64::Engine;
use serde::{Deserialize, Serialize};

/// A token or signing secret. Serialized as its text (integration definitions carry
/// it to every instance), but printed as `***`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Webhook authentication. Several tokens or secrets may be valid at once, so a
/// partner can rotate without downtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "snake_case", deny_unknown_fields)]
pub enum WebhookAuth {
    /// No check: anyone who knows the URL can send records, including records that
    /// replace or re-decide real calls. Unsafe; must be said explicitly, and
    /// integration health shows it.
    None {},
    /// `Authorization: Bearer <token>`.
    Bearer { tokens: Vec<Secret> },
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp` and `webhook-signature`
    /// (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, space separated). Secrets
    /// are `whsec_<base64>`.
    StandardWebhooks {
        secrets: Vec<Secret>,
        /// Largest accepted difference between the timestamp and our clock.
        #[serde(default = "default_tolerance_s")]
        tolerance_s: u64,
    },
    /// Twilio's `X-Twilio-Signature`: base64 HMAC-SHA1, keyed by the account's
    /// auth token, of the URL Twilio called followed by the form's parameters
    /// sorted by name (each name then its value). Behind a load balancer or proxy
    /// the URL we see is not the one Twilio signed: `public_url` is the webhook URL
    /// exactly as configured in Twilio (the request's query is appended to it).
    Twilio {
        auth_tokens: Vec<Secret>,
        public_url: String,
    },
    /// A partner's own HMAC: `header` carries `prefix` then the MAC of the body
    /// (or of `timestamp.body` when `timestamp_header` is set, with replays refused
    /// past `tolerance_s`), keyed by the secret's bytes.
    Hmac {
        secrets: Vec<Secret>,
        header: String,
        #[serde(default)]
        prefix: String,
        #[serde(default)]
        hash: HmacHash,
        #[serde(default)]
        encoding: SignatureEncoding,
        #[serde(default)]
        timestamp_header: Option<String>,
        #[serde(default = "default_tolerance_s")]
        tolerance_s: u64,
    },
    /// HTTP Basic: `Authorization: Basic base64(username:password)`.
    Basic { users: Vec<BasicUser> },
    /// A key in a header (`header`) or a query parameter (`query`; for senders
    /// that can only put it in the URL, as pixels do). A query key is removed
    /// from the record and never logged.
    ApiKey {
        keys: Vec<Secret>,
        #[serde(default)]
        header: Option<String>,
        #[serde(default)]
        query: Option<String>,
    },
}

/// The hash of an [`WebhookAuth::Hmac`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HmacHash {
    Sha1,
    #[default]
    Sha256,
    Sha512,
}

/// How an [`WebhookAuth::Hmac`] signature is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    #[default]
    Hex,
    Base64,
}

/// One user of [`WebhookAuth::Basic`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicUser {
    pub username: String,
    pub password: Secret,
}

fn default_tolerance_s() -> u64 {
    300
}

/// Shortest bearer token accepted: guessing must be hopeless.
pub const MIN_TOKEN_LEN: usize = 24;

/// Most tokens or secrets valid at once: rotation needs two; each costs a MAC of
/// the body per request.
pub const MAX_SECRETS: usize = 5;

impl WebhookAuth {
    /// The scheme's name, as health shows it.
    pub fn scheme(&self) -> &'static str {
        match self {
            Self::None {} => "none",
            Self::Bearer { .. } => "bearer",
            Self::StandardWebhooks { .. } => "standard_webhooks",
            Self::Twilio { .. } => "twilio",
            Self::Hmac { .. } => "hmac",
            Self::Basic { .. } => "basic",
            Self::ApiKey { .. } => "api_key",
        }
    }

    /// The first problem, as (field path under `auth`, problem); never quotes a secret.
    pub fn problem(&self) -> Option<(String, String)> {
        match self {
            Self::None {} => None,
            Self::Bearer { tokens } => {
                if tokens.is_empty() {
                    return Some(("auth.tokens".into(), "needs at least one token".into()));
                }
                if tokens.len() > MAX_SECRETS {
                    return Some((
                        "auth.tokens".into(),
                        format!("at most {MAX_SECRETS} tokens at once"),
                    ));
                }
                tokens
                    .iter()
                    .position(|t| t.0.len() < MIN_TOKEN_LEN || t.0.chars().any(char::is_whitespace))
                    .map(|i| {
                        (
                            format!("auth.tokens[{i}]"),
                            format!("must be at least {MIN_TOKEN_LEN} characters without spaces"),
                        )
                    })
            }
            Self::StandardWebhooks {
                secrets,
                tolerance_s,
            } => {
                if secrets.is_empty() {
                    return Some(("auth.secrets".into(), "needs at least one secret".into()));
                }
                if secrets.len() > MAX_SECRETS {
                    return Some((
                        "auth.secrets".into(),
                        format!("at most {MAX_SECRETS} secrets at once"),
                    ));
                }
                if let Some(i) = secrets.iter().position(|s| secret_key(s).is_none()) {
                    return Some((
                        format!("auth.secrets[{i}]"),
                        "must be whsec_ followed by base64 of at least 24 bytes".into(),
                    ));
                }
                tolerance_problem(*tolerance_s)
            }
            Self::Twilio {
                auth_tokens,
                public_url,
            } => {
                if let Some(problem) = count_problem("auth.auth_tokens", auth_tokens.len()) {
                    return Some(problem);
                }
                if let Some(i) = auth_tokens.iter().position(|t| t.0.trim().is_empty()) {
                    return Some((format!("auth.auth_tokens[{i}]"), "must not be empty".into()));
                }
                let parsed = url::Url::parse(public_url).ok();
                parsed
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                    .is_none()
                    .then(|| {
                        (
                            "auth.public_url".into(),
                            "must be the http(s) URL configured in Twilio".into(),
                        )
                    })
            }
            Self::Hmac {
                secrets,
                header,
                timestamp_header,
                tolerance_s,
                ..
            } => {
                if let Some(problem) = count_problem("auth.secrets", secrets.len()) {
                    return Some(problem);
                }
                if let Some(i) = secrets.iter().position(|s| s.0.len() < MIN_SECRET_LEN) {
                    return Some((
                        format!("auth.secrets[{i}]"),
                        format!("must be at least {MIN_SECRET_LEN} characters"),
                    ));
                }
                if let Some(problem) = header_problem("auth.header", header) {
                    return Some(problem);
                }
                if let Some(name) = timestamp_header {
                    if let Some(problem) = header_problem("auth.timestamp_header", name) {
                        return Some(problem);
                    }
                    return tolerance_problem(*tolerance_s);
                }
                None
            }
            Self::Basic { users } => {
                if let Some(problem) = count_problem("auth.users", users.len()) {
                    return Some(problem);
                }
                users.iter().enumerate().find_map(|(i, user)| {
                    if user.username.is_empty() || user.username.contains(':') {
                        Some((
                            format!("auth.users[{i}].username"),
                            "must be non-empty and without ':'".into(),
                        ))
                    } else if user.password.0.len() < MIN_SECRET_LEN {
                        Some((
                            format!("auth.users[{i}].password"),
                            format!("must be at least {MIN_SECRET_LEN} characters"),
                        ))
                    } else {
                        None
                    }
                })
            }
            Self::ApiKey {
                keys,
                header,
                query,
            } => {
                if let Some(problem) = count_problem("auth.keys", keys.len()) {
                    return Some(problem);
                }
                if let Some(i) = keys.iter().position(|k| {
                    k.0.len() < MIN_TOKEN_LEN || !k.0.chars().all(|c| c.is_ascii_graphic())
                }) {
                    return Some((
                        format!("auth.keys[{i}]"),
                        format!(
                            "must be at least {MIN_TOKEN_LEN} printable characters without spaces"
                        ),
                    ));
                }
                match (header, query) {
                    (Some(name), None) => header_problem("auth.header", name),
                    (None, Some(name)) => (name.is_empty()
                        || !name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)))
                    .then(|| {
                        (
                            "auth.query".into(),
                            "must be a parameter name (letters, digits, _ - .)".into(),
                        )
                    }),
                    _ => Some((
                        "auth".into(),
                        "an api_key scheme names exactly one of header or query".into(),
                    )),
                }
            }
        }
    }
}

/// Shortest HMAC secret or Basic password accepted.
pub const MIN_SECRET_LEN: usize = 16;

fn count_problem(field: &str, count: usize) -> Option<(String, String)> {
    if count == 0 {
        return Some((field.into(), "needs at least one".into()));
    }
    (count > MAX_SECRETS).then(|| (field.into(), format!("at most {MAX_SECRETS} at once")))
}

fn header_problem(field: &str, name: &str) -> Option<(String, String)> {
    http_header_name(name)
        .is_none()
        .then(|| (field.into(), format!("{name:?} is not a header name")))
}

/// Whether `name` is a valid HTTP header name (a token), lower-cased.
pub fn http_header_name(name: &str) -> Option<String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
    valid.then(|| name.to_ascii_lowercase())
}

fn tolerance_problem(tolerance_s: u64) -> Option<(String, String)> {
    (tolerance_s == 0 || tolerance_s > 3600).then(|| {
        (
            "auth.tolerance_s".into(),
            "must be between 1 and 3600".into(),
        )
    })
}

/// The HMAC key of a `whsec_` secret.
pub fn secret_key(secret: &Secret) -> Option<Vec<u8>> {
    let encoded = secret.0.strip_prefix("whsec_")?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    (key.len() >= 24).then_some(key)
}

/// Requests per second an integration's webhooks may make, with a burst allowance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: u32,
    #[serde(default)]
    pub burst: Option<u32>,
}

impl RateLimit {
    pub fn problem(&self) -> Option<(String, String)> {
        if self.per_second == 0 || self.per_second > 100_000 {
            return Some((
                "rate_limit.per_second".into(),
                "must be between 1 and 100000".into(),
            ));
        }
        (self.burst == Some(0)).then(|| ("rate_limit.burst".into(), "must be at least 1".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let auth = WebhookAuth::Bearer {
            tokens: vec![Secret::new("super-secret-token-value-123")],
        };
        let shown = format!("{auth:?}");
        assert!(!shown.contains("super-secret"), "{shown}");
        assert!(shown.contains("***"));
    }

    #[test]
    fn problems_name_the_field_not_the_secret() {
        let short = WebhookAuth::Bearer {
            tokens: vec![
                Secret::new("long-enough-token-abcdefghijk"),
                Secret::new("short"),
            ],
        };
        let (field, problem) = short.problem().unwrap();
        assert_eq!(field, "auth.tokens[1]");
        assert!(!problem.contains("short"));
        let bad: WebhookAuth =
            serde_json::from_str(r#"{"scheme": "standard_webhooks", "secrets": ["not-whsec"]}"#)
                .unwrap();
        assert_eq!(bad.problem().unwrap().0, "auth.secrets[0]");
        let good: WebhookAuth = serde_json::from_str(
            r#"{"scheme": "standard_webhooks", "secrets": ["whsec_Y2FsbG1hdHJpeC10ZXN0LXNlY3JldC0zMi1ieXRlcyE="]}"#,
        )
        .unwrap();
        assert_eq!(good.problem(), None);
        assert!(serde_json::from_str::<WebhookAuth>(r#"{"scheme": "basic"}"#).is_err());
        assert!(serde_json::from_str::<WebhookAuth>(r#"{"scheme": "kerberos"}"#).is_err());
    }

    #[test]
    fn each_new_scheme_reads_and_names_its_bad_field() {
        let twilio: WebhookAuth = serde_json::from_str(
            r#"{"scheme": "twilio", "auth_tokens": ["12345"], "public_url": "https://calls.example.com/api/integrations/webhook/tw"}"#,
        )
        .unwrap();
        assert_eq!(twilio.problem(), None);
        let relative: WebhookAuth = serde_json::from_str(
            r#"{"scheme": "twilio", "auth_tokens": ["12345"], "public_url": "/webhook/tw"}"#,
        )
        .unwrap();
        assert_eq!(relative.problem().unwrap().0, "auth.public_url");
        let hmac: WebhookAuth = serde_json::from_str(
            r#"{"scheme": "hmac", "secrets": ["a-shared-secret-of-some-length"], "header": "X-Signature", "prefix": "sha256=", "encoding": "hex"}"#,
        )
        .unwrap();
        assert_eq!(hmac.problem(), None);
        let bad_header: WebhookAuth = serde_json::from_str(
            r#"{"scheme": "hmac", "secrets": ["a-shared-secret-of-some-length"], "header": "X Signature"}"#,
        )
        .unwrap();
        assert_eq!(bad_header.problem().unwrap().0, "auth.header");
        let basic: WebhookAuth = serde_json::from_str(
            r#"{"scheme": "basic", "users": [{"username": "ringba", "password": "short"}]}"#,
        )
        .unwrap();
        let (field, problem) = basic.problem().unwrap();
        assert_eq!(field, "auth.users[0].password");
        assert!(!problem.contains("short"));
        let both: WebhookAuth = serde_json::from_str(
            r#"{"scheme": "api_key", "keys": ["key_aaaaaaaaaaaaaaaaaaaaaaaa"], "header": "x-api-key", "query": "key"}"#,
        )
        .unwrap();
        assert_eq!(both.problem().unwrap().0, "auth");
        let query: WebhookAuth = serde_json::from_str(
            r#"{"scheme": "api_key", "keys": ["key_aaaaaaaaaaaaaaaaaaaaaaaa"], "query": "api_key"}"#,
        )
        .unwrap();
        assert_eq!(query.problem(), None);
        assert!(!format!("{query:?}").contains("key_aaaa"));
    }
}
