//! What must never be shown: credentials in URLs, headers and query parameters.
//! Used wherever an account's configuration or an outbound request's error reaches
//! an answer, a log line, an event or a dead letter.
//!
//! A name is secret when it is one of the usual credential names (or contains one of
//! their telling parts: `token`, `secret`, `password`, `key`, `auth`, `signature`,
//! `session`, `credential`), or when the integration marks it secret
//! (`poll.secret_names`). A URL loses its user-info and the values of its secret
//! query parameters.

use std::borrow::Cow;

/// Shown instead of a secret value.
pub const MASK: &str = "***";

/// Parts of a header or parameter name that mark it as a credential.
const SECRET_PARTS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "key",
    "auth",
    "signature",
    "sig",
    "session",
    "credential",
    "cookie",
];

/// Whether a header or query parameter named `name` holds a credential.
pub fn is_secret_name(name: &str, marked: &[String]) -> bool {
    let lower = name.to_ascii_lowercase();
    marked.iter().any(|m| m.eq_ignore_ascii_case(name))
        || SECRET_PARTS.iter().any(|part| {
            // `sig` and `key` alone are too short to match inside other words
            // (`design`, `monkey`): they count only as a whole word of the name.
            if part.len() <= 3 {
                lower
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .any(|word| word == *part || word == "apikey")
            } else {
                lower.contains(part)
            }
        })
}

/// `url` without user-info and with secret query values masked. Text that is not a
/// URL is returned as it is.
pub fn redact_url(url: &str, marked: &[String]) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    let mut changed = false;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        changed = true;
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let secret = is_secret_name(&k, marked);
                changed |= secret;
                let value = if secret { MASK.into() } else { v.into_owned() };
                (k.into_owned(), value)
            })
            .collect();
        if changed {
            parsed.query_pairs_mut().clear().extend_pairs(pairs);
        }
    }
    if changed {
        parsed.to_string().replace("%2A%2A%2A", MASK)
    } else {
        url.to_owned()
    }
}

/// `text` with every `http://` or `https://` URL in it redacted: for error messages
/// made elsewhere (an HTTP client's, a partner's) that may quote a URL.
pub fn scrub<'a>(text: &'a str, marked: &[String]) -> Cow<'a, str> {
    if !text.contains("http://") && !text.contains("https://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = find_url(rest) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')' | ','))
            .unwrap_or(tail.len());
        out.push_str(&redact_url(&tail[..end], marked));
        rest = &tail[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn find_url(text: &str) -> Option<usize> {
    match (text.find("http://"), text.find("https://")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// An integration definition as the api lists it and the audit trail compares it:
/// webhook and poll `auth` reduced to their scheme, secret headers, query parameters
/// and body values masked, the URL's secret parameters masked.
pub fn integration(integration: &crate::Integration) -> serde_json::Value {
    let mut value = serde_json::to_value(integration).unwrap_or_default();
    if let Some(auth) = value.get_mut("auth").filter(|a| a.is_object()) {
        let scheme = auth["scheme"].clone();
        *auth = serde_json::json!({ "scheme": scheme });
    }
    if let Some(auth) = value.pointer_mut("/poll/auth").filter(|a| a.is_object()) {
        let kind = auth["type"].clone();
        *auth = serde_json::json!({ "type": kind });
    }
    let marked = integration
        .poll
        .as_ref()
        .map(|p| p.secret_names.clone())
        .unwrap_or_default();
    for section in ["/poll/headers", "/poll/query"] {
        if let Some(serde_json::Value::Object(map)) = value.pointer_mut(section) {
            for (name, v) in map.iter_mut() {
                if is_secret_name(name, &marked) {
                    *v = MASK.into();
                }
            }
        }
    }
    if let Some(body) = value.pointer_mut("/poll/body") {
        mask_secret_keys(body, &marked);
    }
    if let Some(serde_json::Value::String(url)) = value.pointer_mut("/poll/url") {
        *url = redact_url(url, &marked);
    }
    value
}

/// A poll body's values under secret names (`password`, `api_key`, …) masked, at
/// any depth.
fn mask_secret_keys(value: &mut serde_json::Value, marked: &[String]) {
    match value {
        serde_json::Value::Object(map) => {
            for (name, v) in map.iter_mut() {
                if is_secret_name(name, marked) && !v.is_object() && !v.is_array() {
                    *v = MASK.into();
                } else {
                    mask_secret_keys(v, marked);
                }
            }
        }
        serde_json::Value::Array(items) => {
            items.iter_mut().for_each(|v| mask_secret_keys(v, marked))
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn usual_and_marked_names() {
        for name in [
            "Authorization",
            "X-API-Key",
            "api_key",
            "apikey",
            "access_token",
            "client_secret",
            "password",
            "sig",
            "X-Auth",
            "Cookie",
        ] {
            assert!(is_secret_name(name, &[]), "{name}");
        }
        for name in ["since", "page", "limit", "design", "monkey", "Accept"] {
            assert!(!is_secret_name(name, &[]), "{name}");
        }
        assert!(is_secret_name("X-Partner", &["x-partner".into()]));
    }

    #[test]
    fn urls_lose_userinfo_and_secret_values() {
        assert_eq!(
            redact_url(
                "https://user:pa55@p.example/calls?since=1&api_key=abc123&page=2",
                &[]
            ),
            "https://p.example/calls?since=1&api_key=***&page=2"
        );
        assert_eq!(
            redact_url("https://p.example/calls?acct=77", &["acct".into()]),
            "https://p.example/calls?acct=***"
        );
        assert_eq!(
            redact_url("https://p.example/calls?since=1", &[]),
            "https://p.example/calls?since=1"
        );
        assert_eq!(redact_url("not a url", &[]), "not a url");
    }

    #[test]
    fn urls_inside_messages_are_redacted() {
        let message = "error sending request for url (http://u:p@10.0.0.1/x?token=s3cr3t): connection refused";
        let shown = scrub(message, &[]);
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("u:p@"),
            "{shown}"
        );
        assert!(shown.contains("connection refused") && shown.contains("10.0.0.1"));
    }

    proptest! {
        /// Whatever the value, a secret parameter's value never survives redaction.
        #[test]
        fn secret_values_never_survive(value in "[A-Za-z0-9]{8,40}", name in "(api_key|token|access_token|X-Api-Key|password)") {
            let url = format!("https://p.example/v1/calls?since=2026&{name}={value}");
            let shown = redact_url(&url, &[]);
            prop_assert!(!shown.contains(&value), "{}", shown);
            let message = format!("GET {url} answered 500");
            let scrubbed = scrub(&message, &[]).into_owned();
            prop_assert!(!scrubbed.contains(&value), "{}", scrubbed);
        }
    }
}
