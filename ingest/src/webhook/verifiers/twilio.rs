//! `twilio`: `X-Twilio-Signature`, base64 of HMAC-SHA1 keyed by the account's auth
//! token, over the URL Twilio called (the configured `public_url`, plus the
//! request's query) followed, for a POSTed form, by every parameter sorted by name,
//! each name then its value (Twilio's published algorithm; a repeated name's
//! values sorted too, as Twilio's own libraries do). A GET is signed over its URL
//! alone. Behind a load balancer the URL this process sees is not the one Twilio
//! signed, hence `public_url` (docs/ingest.md).

use base64::Engine;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use schemas::webhook_auth::Secret;
use sha1::Sha1;

use super::{any_equal, header, AuthError, Delivery, Verifier};

const HEADER: &str = "x-twilio-signature";
/// Length of an HMAC-SHA1.
const SIGNATURE_LEN: usize = 20;

pub struct Twilio<'a> {
    pub auth_tokens: &'a [Secret],
    pub public_url: &'a str,
}

impl Verifier for Twilio<'_> {
    fn before_body(&self, headers: &HeaderMap, _: Option<&str>) -> Result<(), AuthError> {
        header(headers, HEADER).map(|_| ())
    }

    fn after_body(&self, delivery: &Delivery<'_>) -> Result<(), AuthError> {
        let presented = header(delivery.headers, HEADER)?.trim();
        let presented = base64::engine::general_purpose::STANDARD
            .decode(presented)
            .ok()
            .filter(|s| s.len() == SIGNATURE_LEN)
            .ok_or_else(|| AuthError::UnusableSignature {
                header: HEADER.into(),
                reason: format!("not base64 of {SIGNATURE_LEN} bytes (HMAC-SHA1)"),
            })?;
        let signed = signed_text(self.public_url, delivery);
        let macs: Vec<Vec<u8>> = self
            .auth_tokens
            .iter()
            .filter_map(|token| {
                let mut mac = Hmac::<Sha1>::new_from_slice(token.expose().as_bytes()).ok()?;
                mac.update(signed.as_bytes());
                Some(mac.finalize().into_bytes().to_vec())
            })
            .collect();
        if any_equal(&presented, macs.iter().map(Vec::as_slice)) {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }
}

/// What Twilio signs: the URL (with the query as sent), then the form's parameters.
fn signed_text(public_url: &str, delivery: &Delivery<'_>) -> String {
    let mut text = public_url.to_owned();
    if let Some(query) = delivery.query.filter(|q| !q.is_empty()) {
        text.push(if public_url.contains('?') { '&' } else { '?' });
        text.push_str(query);
    }
    if delivery.form {
        let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(delivery.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        pairs.sort();
        for (name, value) in pairs {
            text.push_str(&name);
            text.push_str(&value);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::webhook_auth::WebhookAuth;

    fn twilio(url: &str) -> WebhookAuth {
        WebhookAuth::Twilio {
            auth_tokens: vec![Secret::new("not-this-one"), Secret::new("12345")],
            public_url: url.into(),
        }
    }

    fn verify(
        auth: &WebhookAuth,
        signature: &str,
        query: Option<&str>,
        body: &[u8],
    ) -> Result<(), AuthError> {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, signature.parse().unwrap());
        let verifier = super::super::of(auth);
        verifier.before_body(&headers, query)?;
        verifier.after_body(&Delivery {
            headers: &headers,
            query,
            body,
            form: true,
            now_s: 0,
        })
    }

    /// Twilio's documented example (docs "Webhooks security": auth token 12345,
    /// `https://mycompany.com/myapp.php?foo=1&bar=2`, five parameters), whose
    /// signature `0/KCTR6DLpKmkAf8muzZqo1nDgQ=` Twilio's own Python library
    /// (twilio 9, `RequestValidator.compute_signature`) gives as well.
    #[test]
    fn twilios_documented_example_verifies() {
        let body = b"CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030&To=%2B18005551212";
        let auth = twilio("https://mycompany.com/myapp.php");
        assert_eq!(
            verify(
                &auth,
                "0/KCTR6DLpKmkAf8muzZqo1nDgQ=",
                Some("foo=1&bar=2"),
                body
            ),
            Ok(())
        );
        // The same with the query in the configured URL.
        let auth = twilio("https://mycompany.com/myapp.php?foo=1&bar=2");
        assert_eq!(
            verify(&auth, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", None, body),
            Ok(())
        );
        // Another URL (what a proxy shows), a changed parameter, another signature.
        let behind = twilio("http://10.0.0.5:8080/myapp.php");
        assert_eq!(
            verify(
                &behind,
                "0/KCTR6DLpKmkAf8muzZqo1nDgQ=",
                Some("foo=1&bar=2"),
                body
            ),
            Err(AuthError::BadSignature)
        );
        let tampered = b"CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1235&From=%2B12349013030&To=%2B18005551212";
        assert_eq!(
            verify(&auth, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", None, tampered),
            Err(AuthError::BadSignature)
        );
        assert!(matches!(
            verify(&auth, "AAAA", None, body),
            Err(AuthError::UnusableSignature { .. })
        ));
    }

    /// A status callback as this repository's test posts it, signed by Twilio's
    /// Python library (`compute_signature`, twilio 9) with token 12345.
    #[test]
    fn a_status_callback_signed_by_twilios_library_verifies() {
        let auth = twilio("https://calls.example.com/api/integrations/webhook/twilio-status");
        let body = b"CallSid=CA42&From=%2B14155552671&To=%2B18005550199&CallStatus=completed&CallDuration=42&Timestamp=Sun%2C+06+Dec+2026+10%3A00%3A00+%2B0000&FromZip=94103&FromState=CA";
        assert_eq!(
            verify(&auth, "miCnOqroVs9X+c1LwdAczl8bhxo=", None, body),
            Ok(())
        );
    }
}
