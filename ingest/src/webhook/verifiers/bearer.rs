//! `bearer`: `Authorization: Bearer <token>`, one of the integration's tokens.

use http::HeaderMap;
use schemas::webhook_auth::Secret;

use super::{any_equal, header, AuthError, Verifier};

pub struct Bearer<'a> {
    pub tokens: &'a [Secret],
}

impl Verifier for Bearer<'_> {
    fn before_body(&self, headers: &HeaderMap, _: Option<&str>) -> Result<(), AuthError> {
        let presented = header(headers, "authorization")?
            .strip_prefix("Bearer ")
            .ok_or(AuthError::BadToken)?
            .trim();
        if any_equal(
            presented.as_bytes(),
            self.tokens.iter().map(|t| t.expose().as_bytes()),
        ) {
            Ok(())
        } else {
            Err(AuthError::BadToken)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::webhook_auth::{Secret, WebhookAuth};

    fn check_bearer(auth: &WebhookAuth, headers: &HeaderMap) -> Result<(), AuthError> {
        super::super::of(auth).before_body(headers, None)
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
            Err(AuthError::Missing("authorization header".into()))
        );
    }
}
