//! `standard_webhooks`: `webhook-id`, `webhook-timestamp` and `webhook-signature`
//! (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, space separated), secrets
//! `whsec_<base64>`; timestamps past the tolerance are replays.

use base64::Engine;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use schemas::webhook_auth::{secret_key, Secret, WebhookAuth};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{header, AuthError, Verifier};

/// Most entries in `webhook-signature`: a sender rotating its secret sends two.
/// Each entry is compared with every secret's MAC (computed once per secret), so
/// the bound keeps a request's cost at the body's size whatever it carries.
pub const MAX_SIGNATURES: usize = 8;
/// Longest `webhook-signature` header: eight `v1,<44 base64 chars>` entries.
pub const MAX_SIGNATURE_HEADER_BYTES: usize = 512;

pub struct StandardWebhooks<'a> {
    pub secrets: &'a [Secret],
    pub tolerance_s: u64,
}

impl Verifier for StandardWebhooks<'_> {
    fn before_body(&self, headers: &HeaderMap, _: Option<&str>) -> Result<(), AuthError> {
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            header(headers, name)?;
        }
        Ok(())
    }

    fn after_body(&self, delivery: &super::Delivery<'_>) -> Result<(), AuthError> {
        verify(
            self.secrets,
            self.tolerance_s,
            delivery.headers,
            delivery.body,
            delivery.now_s,
        )
    }
}

fn unusable(reason: String) -> AuthError {
    AuthError::UnusableSignature {
        header: "webhook-signature".into(),
        reason,
    }
}

/// Verifies a Standard Webhooks signature over `body` at `now_s` (Unix seconds).
/// (The fuzz target's entry: any scheme but Standard Webhooks passes.)
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
    verify(secrets, *tolerance_s, headers, body, now_s)
}

fn verify(
    secrets: &[Secret],
    tolerance_s: u64,
    headers: &HeaderMap,
    body: &[u8],
    now_s: i64,
) -> Result<(), AuthError> {
    let id = header(headers, "webhook-id")?;
    let timestamp = header(headers, "webhook-timestamp")?;
    let signatures = header(headers, "webhook-signature")?;
    let sent_s: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| AuthError::BadTimestamp {
            header: "webhook-timestamp".into(),
            value: timestamp.chars().take(40).collect(),
        })?;
    let skew_s = now_s - sent_s;
    if skew_s.unsigned_abs() > tolerance_s {
        return Err(AuthError::Stale {
            skew_s,
            tolerance_s,
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
        return Err(unusable(format!(
            "the header is {} bytes; at most {MAX_SIGNATURE_HEADER_BYTES}",
            header.len()
        )));
    }
    let entries = header.split_whitespace().count();
    if entries > MAX_SIGNATURES {
        return Err(unusable(format!(
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
        return Err(unusable(
            first_problem.unwrap_or_else(|| "no entries".to_owned()),
        ));
    }
    Ok(usable)
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
            Err(AuthError::Missing("webhook-id header".into()))
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
            Err(AuthError::UnusableSignature { reason, .. }) => reason,
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
}
