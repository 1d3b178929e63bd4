//! A webhook delivery the edge refused, as its integration's owner sees it: when,
//! why (the real reason, which the sender's answer does not give: it says nothing
//! about which integrations exist or what was wrong with the credentials), the
//! request's headers with every credential masked, and the start of its body.
//! Ingest writes a sample of them to the `ingest.refusals` topic; the api lists
//! the recent ones per integration and counts them in its health.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ClientId;

/// Bytes of a refused body kept (as text, invalid UTF-8 replaced).
pub const BODY_SAMPLE_BYTES: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub client_id: ClientId,
    pub account: String,
    pub at: DateTime<Utc>,
    /// The answer's status and code (`401` `not_accepted`, `413` `body_too_large`, …).
    pub status: u16,
    pub code: String,
    /// What was wrong: the verifier's own words for a credential problem (never a
    /// secret), the answer's message otherwise.
    pub reason: String,
    pub method: String,
    /// Header names and values, credentials shown as `***`.
    pub headers: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_sample: Option<String>,
    /// Refusals of the same integration not written before this one (at most a
    /// few are written a minute; the rest are counted here).
    #[serde(default)]
    pub not_recorded_before: u64,
}

/// Whether a header's value is a credential (masked in a [`Refusal`]): the usual
/// names, anything naming a key, token, secret, signature or password, and the
/// integration's own credential headers (`extra`).
pub fn is_credential_header(name: &str, extra: &[&str]) -> bool {
    let name = name.to_ascii_lowercase();
    ["authorization", "cookie", "proxy-authorization"].contains(&name.as_str())
        || ["key", "token", "secret", "signature", "password", "auth"]
            .iter()
            .any(|word| name.contains(word))
        || extra.iter().any(|e| e.eq_ignore_ascii_case(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_headers_are_known_by_name() {
        for name in [
            "Authorization",
            "X-Twilio-Signature",
            "webhook-signature",
            "X-Api-Key",
            "x-hub-signature-256",
            "X-Auth-Token",
        ] {
            assert!(is_credential_header(name, &[]), "{name}");
        }
        assert!(is_credential_header("X-Partner-Mac", &["x-partner-mac"]));
        for name in ["content-type", "user-agent", "webhook-id", "content-length"] {
            assert!(!is_credential_header(name, &[]), "{name}");
        }
    }
}
