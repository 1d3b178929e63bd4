//! `hmac`: a partner's own signature header, as Convoy, Hookdeck and Svix let a
//! source declare it: the header, a prefix (`sha256=`), the hash, hex or base64,
//! and optionally a timestamp header whose value is signed before the body
//! (`timestamp.body`) and must be within the tolerance (replays refused).

use base64::Engine;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use schemas::webhook_auth::{HmacHash, Secret, SignatureEncoding};

use super::{any_equal, header, AuthError, Delivery, Verifier};

pub struct PartnerHmac<'a> {
    pub secrets: &'a [Secret],
    pub header: &'a str,
    pub prefix: &'a str,
    pub hash: HmacHash,
    pub encoding: SignatureEncoding,
    pub timestamp_header: Option<&'a str>,
    pub tolerance_s: u64,
}

/// Longest signature header value read (a SHA-512 in hex with a prefix is ~140).
const MAX_HEADER_BYTES: usize = 512;

impl Verifier for PartnerHmac<'_> {
    fn before_body(&self, headers: &HeaderMap, _: Option<&str>) -> Result<(), AuthError> {
        header(headers, self.header)?;
        if let Some(name) = self.timestamp_header {
            header(headers, name)?;
        }
        Ok(())
    }

    fn after_body(&self, delivery: &Delivery<'_>) -> Result<(), AuthError> {
        let unusable = |reason: String| AuthError::UnusableSignature {
            header: self.header.to_owned(),
            reason,
        };
        let value = header(delivery.headers, self.header)?.trim();
        if value.len() > MAX_HEADER_BYTES {
            return Err(unusable(format!("longer than {MAX_HEADER_BYTES} bytes")));
        }
        let encoded = value
            .strip_prefix(self.prefix)
            .ok_or_else(|| unusable(format!("does not start with {:?}", self.prefix)))?;
        let presented = match self.encoding {
            SignatureEncoding::Hex => decode_hex(encoded),
            SignatureEncoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok(),
        }
        .ok_or_else(|| unusable(format!("not {:?}", self.encoding).to_lowercase()))?;
        let want = match self.hash {
            HmacHash::Sha1 => 20,
            HmacHash::Sha256 => 32,
            HmacHash::Sha512 => 64,
        };
        if presented.len() != want {
            return Err(unusable(format!(
                "{} bytes; {:?} gives {want}",
                presented.len(),
                self.hash
            )));
        }
        let timestamp = match self.timestamp_header {
            Some(name) => {
                let sent = header(delivery.headers, name)?.trim();
                let sent_s: i64 = sent.parse().map_err(|_| AuthError::BadTimestamp {
                    header: name.to_owned(),
                    value: sent.chars().take(40).collect(),
                })?;
                let skew_s = delivery.now_s - sent_s;
                if skew_s.unsigned_abs() > self.tolerance_s {
                    return Err(AuthError::Stale {
                        skew_s,
                        tolerance_s: self.tolerance_s,
                    });
                }
                Some(sent)
            }
            None => None,
        };
        let macs: Vec<Vec<u8>> = self
            .secrets
            .iter()
            .map(|s| mac(self.hash, s.expose().as_bytes(), timestamp, delivery.body))
            .collect();
        if any_equal(&presented, macs.iter().map(Vec::as_slice)) {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }
}

fn mac(hash: HmacHash, key: &[u8], timestamp: Option<&str>, body: &[u8]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(
        key: &[u8],
        timestamp: Option<&str>,
        body: &[u8],
    ) -> Vec<u8> {
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        if let Some(timestamp) = timestamp {
            mac.update(timestamp.as_bytes());
            mac.update(b".");
        }
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }
    match hash {
        HmacHash::Sha1 => run::<Hmac<sha1::Sha1>>(key, timestamp, body),
        HmacHash::Sha256 => run::<Hmac<sha2::Sha256>>(key, timestamp, body),
        HmacHash::Sha512 => run::<Hmac<sha2::Sha512>>(key, timestamp, body),
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::webhook_auth::WebhookAuth;

    /// GitHub's documented example (docs "Validating webhook deliveries"): secret
    /// "It's a Secret to Everybody", payload "Hello, World!", header
    /// `X-Hub-Signature-256: sha256=757107ea…`.
    #[test]
    fn githubs_documented_example_verifies() {
        let auth: WebhookAuth = serde_json::from_str(
            r#"{"scheme": "hmac", "secrets": ["It's a Secret to Everybody"], "header": "X-Hub-Signature-256", "prefix": "sha256="}"#,
        )
        .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-hub-signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
                .parse()
                .unwrap(),
        );
        let verifier = super::super::of(&auth);
        let delivery = |body: &'static [u8]| Delivery {
            headers: &headers,
            query: None,
            body,
            form: false,
            now_s: 0,
        };
        assert_eq!(verifier.after_body(&delivery(b"Hello, World!")), Ok(()));
        assert_eq!(
            verifier.after_body(&delivery(b"Hello, World?")),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn a_timestamped_base64_signature_and_its_replay() {
        let auth: WebhookAuth = serde_json::from_str(
            r#"{"scheme": "hmac", "secrets": ["partner-secret-0123456789"], "header": "X-Sig", "hash": "sha512", "encoding": "base64", "timestamp_header": "X-Ts", "tolerance_s": 60}"#,
        )
        .unwrap();
        let body = br#"{"call":{"id":"x"}}"#;
        let mac = mac(
            HmacHash::Sha512,
            b"partner-secret-0123456789",
            Some("1000"),
            body,
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-sig",
            base64::engine::general_purpose::STANDARD
                .encode(&mac)
                .parse()
                .unwrap(),
        );
        headers.insert("x-ts", "1000".parse().unwrap());
        let verifier = super::super::of(&auth);
        let at = |now_s| {
            verifier.after_body(&Delivery {
                headers: &headers,
                query: None,
                body,
                form: false,
                now_s,
            })
        };
        assert_eq!(at(1030), Ok(()));
        assert!(matches!(at(1061), Err(AuthError::Stale { skew_s: 61, .. })));
        assert_eq!(
            verifier.before_body(&HeaderMap::new(), None),
            Err(AuthError::Missing("X-Sig header".into()))
        );
    }
}
