//! Checks that a webhook request comes from the integration's partner. Every
//! comparison of a secret-derived value is constant-time; answers say what was
//! wrong with the request, never anything about the secrets.

use base64::Engine;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use schemas::webhook_auth::{secret_key, WebhookAuth};
use sha2::Sha256;
use subtle::ConstantTimeEq;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("the bearer token is not valid for this integration")]
    BadToken,
    #[error("webhook-timestamp {0:?} is not a Unix time in seconds")]
    BadTimestamp(String),
    #[error("webhook-timestamp is {skew_s} s away from our clock; at most {tolerance_s} s is accepted (replays are refused)")]
    Stale { skew_s: i64, tolerance_s: u64 },
    #[error("no webhook-signature matches the body with a current secret")]
    BadSignature,
    /// Nothing in `webhook-signature` could prove anything: each entry empty, of the
    /// wrong length, not base64, or of a scheme other than `v1`; or the header has
    /// more entries or bytes than any sender needs.
    #[error("webhook-signature has no usable signature: {0}")]
    UnusableSignature(String),
}

/// Most entries in `webhook-signature`: a sender rotating its secret sends two.
/// Each entry is compared with every secret's MAC (computed once per secret), so
/// the bound keeps a request's cost at the body's size whatever it carries.
pub const MAX_SIGNATURES: usize = 8;
/// Longest `webhook-signature` header: eight `v1,<44 base64 chars>` entries.
pub const MAX_SIGNATURE_HEADER_BYTES: usize = 512;

impl AuthError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing(_) => "missing_credentials",
            Self::BadToken => "bad_token",
            Self::BadTimestamp(_) | Self::Stale { .. } => "bad_timestamp",
            Self::BadSignature | Self::UnusableSignature(_) => "bad_signature",
        }
    }
}

/// What can be checked before the body is read: a bearer token, and that a
/// signature scheme's headers are there at all (so a request without them costs no
/// body read).
pub fn check_before_body(auth: &WebhookAuth, headers: &HeaderMap) -> Result<(), AuthError> {
    match auth {
        WebhookAuth::None {} => Ok(()),
        WebhookAuth::Bearer { .. } => check_bearer(auth, headers),
        WebhookAuth::StandardWebhooks { .. } => {
            for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
                header(headers, name)?;
            }
            Ok(())
        }
    }
}

/// Whether the bearer token is one of the integration's.
pub fn check_bearer(auth: &WebhookAuth, headers: &HeaderMap) -> Result<(), AuthError> {
    let WebhookAuth::Bearer { tokens } = auth else {
        return Ok(());
    };
    let presented = header(headers, "authorization")?
        .strip_prefix("Bearer ")
        .ok_or(AuthError::BadToken)?
        .trim();
    // Every token is compared (no early exit on a match), in constant time each.
    let matched = tokens.iter().fold(0_u8, |found, token| {
        found
            | presented
                .as_bytes()
                .ct_eq(token.expose().as_bytes())
                .unwrap_u8()
    });
    if matched == 1 {
        Ok(())
    } else {
        Err(AuthError::BadToken)
    }
}

/// Verifies a Standard Webhooks signature over `body` at `now_s` (Unix seconds).
pub fn check_signature(
    auth: &WebhookAuth,
    headers: &HeaderMap,
    body: &[u8],
    now_s: i64,
) -> Result<(), AuthError> {
    let WebhookAuth::StandardWebhooks {
        secrets,
        tolerance_s,
    } = auth
    else {
        return Ok(());
    };
    let id = header(headers, "webhook-id")?;
    let timestamp = header(headers, "webhook-timestamp")?;
    let signatures = header(headers, "webhook-signature")?;
    let sent_s: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| AuthError::BadTimestamp(timestamp.chars().take(40).collect()))?;
    let skew_s = now_s - sent_s;
    if skew_s.unsigned_abs() > *tolerance_s {
        return Err(AuthError::Stale {
            skew_s,
            tolerance_s: *tolerance_s,
        });
    }
    let presented = usable_signatures(signatures)?;
    // One MAC of the body per secret, compared with every presented signature in
    // constant time (no early exit), so a request costs a MAC per secret however
    // many entries it carries.
    let mut matched = 0_u8;
    for key in secrets.iter().filter_map(secret_key) {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
            continue;
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.trim().as_bytes());
        mac.update(b".");
        mac.update(body);
        let expected = mac.finalize().into_bytes();
        for signature in &presented {
            matched |= expected.as_slice().ct_eq(signature).unwrap_u8();
        }
    }
    if matched == 1 {
        Ok(())
    } else {
        Err(AuthError::BadSignature)
    }
}

/// Length of an HMAC-SHA256 signature.
const SIGNATURE_LEN: usize = 32;

/// The `v1` signatures that could match: each exactly 32 bytes. When there is none,
/// why the first entry is unusable. An empty `v1,` must never reach a comparison
/// (a comparison of nothing with a truncated MAC "matches" in some libraries).
fn usable_signatures(header: &str) -> Result<Vec<Vec<u8>>, AuthError> {
    if header.len() > MAX_SIGNATURE_HEADER_BYTES {
        return Err(AuthError::UnusableSignature(format!(
            "the header is {} bytes; at most {MAX_SIGNATURE_HEADER_BYTES}",
            header.len()
        )));
    }
    let entries = header.split_whitespace().count();
    if entries > MAX_SIGNATURES {
        return Err(AuthError::UnusableSignature(format!(
            "{entries} entries; at most {MAX_SIGNATURES}"
        )));
    }
    let mut usable = Vec::new();
    let mut first_problem = None;
    for entry in header.split_whitespace() {
        let problem = match entry.split_once(',') {
            Some(("v1", "")) => "v1 with an empty signature".to_owned(),
            Some(("v1", encoded)) => {
                match base64::engine::general_purpose::STANDARD.decode(encoded) {
                    Ok(bytes) if bytes.len() == SIGNATURE_LEN => {
                        usable.push(bytes);
                        continue;
                    }
                    Ok(bytes) => format!(
                        "a v1 signature of {} bytes (HMAC-SHA256 gives {SIGNATURE_LEN})",
                        bytes.len()
                    ),
                    Err(_) => "a v1 signature that is not base64".to_owned(),
                }
            }
            Some((scheme, _)) => format!(
                "scheme {:?} is not supported (only v1)",
                scheme.chars().take(16).collect::<String>()
            ),
            None => "an entry without a scheme (expected v1,<base64>)".to_owned(),
        };
        first_problem.get_or_insert(problem);
    }
    if usable.is_empty() {
        return Err(AuthError::UnusableSignature(
            first_problem.unwrap_or_else(|| "no entries".to_owned()),
        ));
    }
    Ok(usable)
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, AuthError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
        .ok_or(AuthError::Missing(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::webhook_auth::Secret;

    /// Signed by the official `standardwebhooks` Python library (1.1.0):
    /// `Webhook(SECRET).sign("msg_2Lh9KQ", datetime.fromtimestamp(1795917600, utc), BODY)`.
    const SECRET: &str = "whsec_Y2FsbG1hdHJpeC10ZXN0LXNlY3JldC0zMi1ieXRlcyE=";
    const BODY: &str = r#"{"call":{"id":"ar_sig","caller":{"number":"4155552671"},"started_at":"2026-11-20T10:00:00Z"}}"#;
    const SIGNATURE: &str = "v1,60TL5L6fPUKq5tyt/QcZK/iEigYjGKlHr0M5BqTbhPk=";
    const SENT: i64 = 1_795_917_600;

    fn signed(signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("webhook-id", "msg_2Lh9KQ".parse().unwrap());
        headers.insert("webhook-timestamp", SENT.to_string().parse().unwrap());
        headers.insert("webhook-signature", signature.parse().unwrap());
        headers
    }

    fn standard(secrets: &[&str]) -> WebhookAuth {
        WebhookAuth::StandardWebhooks {
            secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
            tolerance_s: 300,
        }
    }

    #[test]
    fn the_official_librarys_signature_verifies() {
        assert_eq!(
            check_signature(
                &standard(&[SECRET]),
                &signed(SIGNATURE),
                BODY.as_bytes(),
                SENT + 10
            ),
            Ok(())
        );
    }

    #[test]
    fn a_tampered_body_or_signature_is_refused() {
        let auth = standard(&[SECRET]);
        let tampered = BODY.replace("ar_sig", "ar_sIg");
        assert_eq!(
            check_signature(&auth, &signed(SIGNATURE), tampered.as_bytes(), SENT),
            Err(AuthError::BadSignature)
        );
        let flipped = SIGNATURE.replace("60TL", "60TM");
        assert_eq!(
            check_signature(&auth, &signed(&flipped), BODY.as_bytes(), SENT),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn rotation_any_listed_secret_and_any_listed_signature() {
        let old = "whsec_b2xkLXNlY3JldC1vbGQtc2VjcmV0LW9sZC1zZWNyZXQ=";
        let auth = standard(&[old, SECRET]);
        let several = format!("v1,AAAA {SIGNATURE} v2,ignored");
        assert_eq!(
            check_signature(&auth, &signed(&several), BODY.as_bytes(), SENT),
            Ok(())
        );
    }

    #[test]
    fn old_or_future_timestamps_are_replays() {
        let auth = standard(&[SECRET]);
        let error =
            check_signature(&auth, &signed(SIGNATURE), BODY.as_bytes(), SENT + 301).unwrap_err();
        assert_eq!(
            error,
            AuthError::Stale {
                skew_s: 301,
                tolerance_s: 300
            }
        );
        assert!(check_signature(&auth, &signed(SIGNATURE), BODY.as_bytes(), SENT - 301).is_err());
        let mut headers = signed(SIGNATURE);
        headers.remove("webhook-id");
        assert_eq!(
            check_signature(&auth, &headers, BODY.as_bytes(), SENT),
            Err(AuthError::Missing("webhook-id"))
        );
    }

    /// The reference Rust Standard Webhooks library once accepted `v1,` for any
    /// body. Each signature that proves nothing is refused with its reason.
    #[test]
    fn signatures_that_prove_nothing_are_refused_with_their_reason() {
        let auth = standard(&[SECRET]);
        let reason = |signature: &str| match check_signature(
            &auth,
            &signed(signature),
            BODY.as_bytes(),
            SENT,
        ) {
            Err(AuthError::UnusableSignature(reason)) => reason,
            other => panic!("{signature:?}: {other:?}"),
        };
        assert!(reason("v1,").contains("empty"));
        assert!(reason("v1, v1,").contains("empty"));
        assert!(reason("v1,AAAA").contains("3 bytes"));
        let truncated = &SIGNATURE[..SIGNATURE.len() - 8];
        assert!(reason(truncated).contains("bytes"), "{truncated}");
        assert!(reason("v1a,60TL5L6fPUKq5tyt/QcZK/iEigYjGKlHr0M5BqTbhPk=").contains("only v1"));
        assert!(reason("v2,60TL5L6fPUKq5tyt/QcZK/iEigYjGKlHr0M5BqTbhPk=").contains("only v1"));
        assert!(reason("60TL5L6fPUKq5tyt").contains("without a scheme"));
        assert!(reason("v1,!!!notbase64!!!").contains("base64"));
        // A right-length signature that does not match is still a mismatch.
        assert_eq!(
            check_signature(
                &auth,
                &signed(&format!("v1,{}", "A".repeat(43) + "=")),
                BODY.as_bytes(),
                SENT
            ),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn timestamps_beyond_the_tolerance_either_way_say_so() {
        let auth = standard(&[SECRET]);
        for (now, skew) in [(SENT + 301, 301), (SENT - 301, -301)] {
            let error =
                check_signature(&auth, &signed(SIGNATURE), BODY.as_bytes(), now).unwrap_err();
            assert_eq!(
                error,
                AuthError::Stale {
                    skew_s: skew,
                    tolerance_s: 300
                }
            );
            assert!(error.to_string().contains("300 s"), "{error}");
        }
        assert!(check_signature(&auth, &signed(SIGNATURE), BODY.as_bytes(), SENT + 300).is_ok());
        assert!(check_signature(&auth, &signed(SIGNATURE), BODY.as_bytes(), SENT - 300).is_ok());
    }

    #[test]
    fn bearer_tokens_compare_exactly() {
        let auth = WebhookAuth::Bearer {
            tokens: vec![
                Secret::new("tok_aaaaaaaaaaaaaaaaaaaaaaaa"),
                Secret::new("tok_bbbbbbbbbbbbbbbbbbbbbbbb"),
            ],
        };
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("authorization", value.parse().unwrap());
            headers
        };
        assert_eq!(
            check_bearer(&auth, &with("Bearer tok_bbbbbbbbbbbbbbbbbbbbbbbb")),
            Ok(())
        );
        assert_eq!(
            check_bearer(&auth, &with("Bearer tok_bbbbbbbbbbbbbbbbbbbbbbb")),
            Err(AuthError::BadToken)
        );
        assert_eq!(
            check_bearer(&auth, &with("Basic dG9rOng=")),
            Err(AuthError::BadToken)
        );
        assert_eq!(
            check_bearer(&auth, &HeaderMap::new()),
            Err(AuthError::Missing("authorization"))
        );
    }
}
