//! `api_key`: one of the integration's keys, in a header or a query parameter.
//! A key in the query is removed before the query becomes a record
//! ([`without_query_key`]), so it is never stored, dead-lettered or logged.

use http::HeaderMap;
use schemas::webhook_auth::Secret;

use super::{any_equal, header, AuthError, Verifier};

pub struct ApiKey<'a> {
    pub keys: &'a [Secret],
    pub header: Option<&'a str>,
    pub query: Option<&'a str>,
}

impl Verifier for ApiKey<'_> {
    fn before_body(&self, headers: &HeaderMap, query: Option<&str>) -> Result<(), AuthError> {
        let presented = match (self.header, self.query) {
            (Some(name), _) => header(headers, name)?.trim().to_owned(),
            (None, Some(name)) => query
                .and_then(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.into_owned())
                })
                .filter(|v| !v.is_empty())
                .ok_or_else(|| AuthError::Missing(format!("{name} query parameter")))?,
            (None, None) => return Err(AuthError::BadCredentials),
        };
        if any_equal(
            presented.as_bytes(),
            self.keys.iter().map(|k| k.expose().as_bytes()),
        ) {
            Ok(())
        } else {
            Err(AuthError::BadCredentials)
        }
    }
}

/// `query` without the parameter `name` (the key), the rest as sent.
pub fn without_query_key(query: &str, name: &str) -> String {
    query
        .split('&')
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or("");
            let decoded: String = url::form_urlencoded::parse(key.as_bytes())
                .map(|(k, _)| k.into_owned())
                .collect();
            decoded != name
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::webhook_auth::WebhookAuth;

    const KEY: &str = "key_aaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn a_key_in_the_query_is_checked_then_removed() {
        let auth: WebhookAuth = serde_json::from_str(&format!(
            r#"{{"scheme": "api_key", "keys": ["{KEY}"], "query": "api_key"}}"#
        ))
        .unwrap();
        let verifier = super::super::of(&auth);
        let query = format!("caller=%2B14155552671&api_key={KEY}&id=rb_1");
        assert_eq!(
            verifier.before_body(&HeaderMap::new(), Some(&query)),
            Ok(())
        );
        assert_eq!(
            verifier.before_body(&HeaderMap::new(), Some("caller=1&api_key=wrong")),
            Err(AuthError::BadCredentials)
        );
        assert_eq!(
            verifier.before_body(&HeaderMap::new(), Some("caller=1")),
            Err(AuthError::Missing("api_key query parameter".into()))
        );
        let kept = without_query_key(&query, "api_key");
        assert_eq!(kept, "caller=%2B14155552671&id=rb_1");
        assert!(!kept.contains(KEY));
    }

    #[test]
    fn a_key_in_a_header() {
        let auth: WebhookAuth = serde_json::from_str(&format!(
            r#"{{"scheme": "api_key", "keys": ["{KEY}"], "header": "X-Api-Key"}}"#
        ))
        .unwrap();
        let verifier = super::super::of(&auth);
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", KEY.parse().unwrap());
        assert_eq!(verifier.before_body(&headers, None), Ok(()));
        headers.insert("x-api-key", "key_bbbbbbbbbbbbbbbbbbbbbbbb".parse().unwrap());
        assert_eq!(
            verifier.before_body(&headers, None),
            Err(AuthError::BadCredentials)
        );
    }
}
