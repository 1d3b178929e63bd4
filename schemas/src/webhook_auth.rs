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
                (*tolerance_s == 0 || *tolerance_s > 3600).then(|| {
                    (
                        "auth.tolerance_s".into(),
                        "must be between 1 and 3600".into(),
                    )
                })
            }
        }
    }
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
    }
}
