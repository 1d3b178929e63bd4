//! `basic`: `Authorization: Basic base64(username:password)`, one of the
//! integration's users; username and password compared in constant time.

use base64::Engine;
use http::HeaderMap;
use schemas::webhook_auth::BasicUser;
use subtle::ConstantTimeEq;

use super::{header, AuthError, Verifier};

pub struct Basic<'a> {
    pub users: &'a [BasicUser],
}

impl Verifier for Basic<'_> {
    fn before_body(&self, headers: &HeaderMap, _: Option<&str>) -> Result<(), AuthError> {
        let value = header(headers, "authorization")?;
        let encoded = value
            .strip_prefix("Basic ")
            .ok_or(AuthError::BadCredentials)?
            .trim();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| AuthError::BadCredentials)?;
        let split = decoded.iter().position(|b| *b == b':');
        let Some(split) = split else {
            return Err(AuthError::BadCredentials);
        };
        let (username, password) = (&decoded[..split], &decoded[split + 1..]);
        let matched = self.users.iter().fold(0_u8, |found, user| {
            found
                | (username.ct_eq(user.username.as_bytes())
                    & password.ct_eq(user.password.expose().as_bytes()))
                .unwrap_u8()
        });
        if matched == 1 {
            Ok(())
        } else {
            Err(AuthError::BadCredentials)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::webhook_auth::WebhookAuth;

    /// RFC 7617's example: user "Aladdin", password "open sesame", sent as
    /// `Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==`.
    #[test]
    fn rfc_7617s_example_verifies() {
        let auth: WebhookAuth = serde_json::from_str(
            r#"{"scheme": "basic", "users": [{"username": "Aladdin", "password": "open sesame"}]}"#,
        )
        .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==".parse().unwrap(),
        );
        assert_eq!(super::super::of(&auth).before_body(&headers, None), Ok(()));
        // (Publishing it would be refused: the password is under 16 characters.)
        assert_eq!(auth.problem().unwrap().0, "auth.users[0].password");
    }

    #[test]
    fn the_right_user_and_password_only() {
        let auth: WebhookAuth = serde_json::from_str(
            r#"{"scheme": "basic", "users": [{"username": "ringba", "password": "open-sesame-0123"}]}"#,
        )
        .unwrap();
        let verifier = super::super::of(&auth);
        let with = |user_pass: &str| {
            let mut headers = HeaderMap::new();
            let encoded = base64::engine::general_purpose::STANDARD.encode(user_pass);
            headers.insert("authorization", format!("Basic {encoded}").parse().unwrap());
            verifier.before_body(&headers, None)
        };
        assert_eq!(with("ringba:open-sesame-0123"), Ok(()));
        assert_eq!(
            with("ringba:open-sesame-0124"),
            Err(AuthError::BadCredentials)
        );
        assert_eq!(
            with("ringbA:open-sesame-0123"),
            Err(AuthError::BadCredentials)
        );
        assert_eq!(
            with("ringbaopen-sesame-0123"),
            Err(AuthError::BadCredentials)
        );
        assert_eq!(
            verifier.before_body(&HeaderMap::new(), None),
            Err(AuthError::Missing("authorization header".into()))
        );
    }
}
