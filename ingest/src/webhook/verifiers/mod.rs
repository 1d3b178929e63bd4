//! Checks that a webhook request comes from the integration's partner: one verifier
//! per scheme (`schemas::webhook_auth::WebhookAuth`), one file each, chosen in
//! [`of`]. Every comparison of a secret-derived value is constant-time; answers say
//! what was wrong with the request, never anything about the secrets.
//!
//! | scheme | checked | before the body |
//! | --- | --- | --- |
//! | `bearer` | `Authorization: Bearer` | yes |
//! | `basic` | `Authorization: Basic` | yes |
//! | `api_key` | a header or a query parameter | yes |
//! | `standard_webhooks` | `webhook-signature` over id, timestamp, body | headers present |
//! | `twilio` | `X-Twilio-Signature` over public URL and sorted parameters | header present |
//! | `hmac` | a partner's header: MAC of the body (or timestamp.body) | header present |

mod api_key;
mod basic;
mod bearer;
mod hmac;
mod standard_webhooks;
mod twilio;

use http::HeaderMap;
use schemas::webhook_auth::WebhookAuth;

pub use api_key::without_query_key;
pub use standard_webhooks::{check_signature, MAX_SIGNATURES, MAX_SIGNATURE_HEADER_BYTES};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing {0}")]
    Missing(String),
    #[error("the bearer token is not valid for this integration")]
    BadToken,
    #[error("the credentials are not valid for this integration")]
    BadCredentials,
    #[error("{header} {value:?} is not a Unix time in seconds")]
    BadTimestamp { header: String, value: String },
    #[error("the request's timestamp is {skew_s} s away from our clock; at most {tolerance_s} s is accepted (replays are refused)")]
    Stale { skew_s: i64, tolerance_s: u64 },
    #[error("the signature does not match the request with a current secret")]
    BadSignature,
    /// Nothing in the signature header could prove anything: empty, of the wrong
    /// length or encoding, of another scheme; or more entries or bytes than any
    /// sender needs.
    #[error("{header} has no usable signature: {reason}")]
    UnusableSignature { header: String, reason: String },
}

impl AuthError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing(_) => "missing_credentials",
            Self::BadToken => "bad_token",
            Self::BadCredentials => "bad_credentials",
            Self::BadTimestamp { .. } | Self::Stale { .. } => "bad_timestamp",
            Self::BadSignature | Self::UnusableSignature { .. } => "bad_signature",
        }
    }
}

/// A request as its verifier sees it.
pub struct Delivery<'a> {
    pub headers: &'a HeaderMap,
    /// The request URI's query, as sent (percent-encoded).
    pub query: Option<&'a str>,
    /// The body as sent (before any `Content-Encoding` is undone).
    pub body: &'a [u8],
    /// The body is a URL-encoded form (its parameters are signed, as Twilio does).
    pub form: bool,
    /// Now, in Unix seconds.
    pub now_s: i64,
}

/// One scheme's checks.
pub trait Verifier: Send + Sync {
    /// What can be checked before the body is read: credentials in headers or the
    /// query, and that a signature's headers are there at all (a request without
    /// them costs no body read).
    fn before_body(&self, headers: &HeaderMap, query: Option<&str>) -> Result<(), AuthError>;

    /// What needs the body (signatures).
    fn after_body(&self, _delivery: &Delivery<'_>) -> Result<(), AuthError> {
        Ok(())
    }
}

/// No check (`none`).
struct Open;

impl Verifier for Open {
    fn before_body(&self, _: &HeaderMap, _: Option<&str>) -> Result<(), AuthError> {
        Ok(())
    }
}

/// The verifier of `auth`: the registry of schemes.
pub fn of(auth: &WebhookAuth) -> Box<dyn Verifier + '_> {
    match auth {
        WebhookAuth::None {} => Box::new(Open),
        WebhookAuth::Bearer { tokens } => Box::new(bearer::Bearer { tokens }),
        WebhookAuth::StandardWebhooks {
            secrets,
            tolerance_s,
        } => Box::new(standard_webhooks::StandardWebhooks {
            secrets,
            tolerance_s: *tolerance_s,
        }),
        WebhookAuth::Twilio {
            auth_tokens,
            public_url,
        } => Box::new(twilio::Twilio {
            auth_tokens,
            public_url,
        }),
        WebhookAuth::Hmac {
            secrets,
            header,
            prefix,
            hash,
            encoding,
            timestamp_header,
            tolerance_s,
        } => Box::new(hmac::PartnerHmac {
            secrets,
            header,
            prefix,
            hash: *hash,
            encoding: *encoding,
            timestamp_header: timestamp_header.as_deref(),
            tolerance_s: *tolerance_s,
        }),
        WebhookAuth::Basic { users } => Box::new(basic::Basic { users }),
        WebhookAuth::ApiKey {
            keys,
            header,
            query,
        } => Box::new(api_key::ApiKey {
            keys,
            header: header.as_deref(),
            query: query.as_deref(),
        }),
    }
}

/// A header's value, present and not blank.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, AuthError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| AuthError::Missing(format!("{name} header")))
}

/// Whether `presented` equals one of `candidates`: every candidate compared (no
/// early exit on a match), each in constant time.
pub(crate) fn any_equal<'a>(presented: &[u8], candidates: impl Iterator<Item = &'a [u8]>) -> bool {
    use subtle::ConstantTimeEq;
    candidates.fold(0_u8, |found, candidate| {
        found | presented.ct_eq(candidate).unwrap_u8()
    }) == 1
}
