//! Who is asking. Every `/api/*` request carries a token (`Authorization: Bearer`, or
//! `access_token=` in the query, since a browser's `EventSource` cannot set headers);
//! an account token sees only its account's calls, dead letters, events and
//! integrations, an admin token sees everything. Tokens come from a JSON file
//! (`auth.tokens_file`), so secrets stay out of the config and the environment:
//!
//! ```json
//! {"admin": ["tok_..."], "accounts": {"acme-leads": ["tok_..."]}}
//! ```
//!
//! Without a tokens file the api is open (local use only) and says so at start-up.

use std::collections::BTreeMap;
use std::path::Path;

use http::header::AUTHORIZATION;
use http::{HeaderMap, StatusCode};
use runtime::http::Problem;
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// What a request may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every account (an admin token, or no tokens configured).
    All,
    Account(String),
}

impl Scope {
    /// The account a query must be limited to, if any.
    pub fn account(&self) -> Option<&str> {
        match self {
            Self::All => None,
            Self::Account(account) => Some(account),
        }
    }

    /// Refuses an explicit `account` parameter naming another account.
    pub fn check_account(&self, asked: Option<&str>) -> Result<(), Problem> {
        match (self.account(), asked) {
            (Some(mine), Some(asked)) if mine != asked => Err(forbidden(asked)),
            _ => Ok(()),
        }
    }
}

pub fn forbidden(account: &str) -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("this token does not give access to account {account:?}"),
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    admin: Vec<String>,
    #[serde(default)]
    accounts: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("reading the tokens file {path}: {message}")]
    Read { path: String, message: String },
}

/// The configured tokens; `open()` when none are.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<(String, Scope)>,
}

/// Never prints a token.
impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.entries.len())
    }
}

/// Shortest token accepted.
const MIN_TOKEN_LEN: usize = 24;

impl Tokens {
    pub fn open() -> Self {
        Self::default()
    }

    pub fn load(path: &Path) -> Result<Self, TokensError> {
        let error = |message: String| TokensError::Read {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let file: TokensFile = serde_json::from_str(&text).map_err(|e| error(e.to_string()))?;
        let mut entries: Vec<(String, Scope)> =
            file.admin.into_iter().map(|t| (t, Scope::All)).collect();
        for (account, tokens) in file.accounts {
            entries.extend(
                tokens
                    .into_iter()
                    .map(|t| (t, Scope::Account(account.clone()))),
            );
        }
        if let Some((index, _)) = entries
            .iter()
            .enumerate()
            .find(|(_, (t, _))| t.len() < MIN_TOKEN_LEN)
        {
            return Err(error(format!(
                "token #{index} is shorter than {MIN_TOKEN_LEN} characters"
            )));
        }
        if entries.is_empty() {
            return Err(error("no tokens in it".into()));
        }
        Ok(Self { entries })
    }

    pub fn is_open(&self) -> bool {
        self.entries.is_empty()
    }

    /// The scope of a request, from its `Authorization` header or `access_token`.
    pub fn scope(&self, headers: &HeaderMap, query: Option<&str>) -> Result<Scope, Problem> {
        if self.is_open() {
            return Ok(Scope::All);
        }
        let from_header = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let from_query = query.and_then(|q| {
            q.split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| *k == "access_token")
                .map(|(_, v)| v)
        });
        let Some(presented) = from_header.or(from_query) else {
            return Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "missing_token",
                "send a token: Authorization: Bearer <token> (or access_token=<token> for /api/events)",
            ));
        };
        // Every token is compared, each in constant time.
        let mut found = None;
        for (token, scope) in &self.entries {
            if bool::from(presented.as_bytes().ct_eq(token.as_bytes())) && found.is_none() {
                found = Some(scope.clone());
            }
        }
        found.ok_or_else(|| {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "bad_token",
                "the token is not valid",
            )
        })
    }
}

/// Removes `access_token` from a query, so handlers that refuse unknown
/// parameters do not see it (and it is never echoed back).
pub fn without_token(query: Option<&str>) -> Option<String> {
    let kept: Vec<&str> = query?
        .split('&')
        .filter(|pair| !pair.starts_with("access_token=") && !pair.is_empty())
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        std::fs::write(
            &path,
            r#"{"admin": ["adm_0123456789abcdefghijklmn"], "accounts": {"acme": ["acm_0123456789abcdefghijklmn"]}}"#,
        )
        .unwrap();
        Tokens::load(&path).unwrap()
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        headers
    }

    #[test]
    fn tokens_map_to_their_scope() {
        let tokens = tokens();
        assert_eq!(
            tokens
                .scope(&bearer("adm_0123456789abcdefghijklmn"), None)
                .unwrap(),
            Scope::All
        );
        assert_eq!(
            tokens
                .scope(
                    &HeaderMap::new(),
                    Some("client_id=x&access_token=acm_0123456789abcdefghijklmn")
                )
                .unwrap(),
            Scope::Account("acme".into())
        );
        assert_eq!(
            tokens.scope(&bearer("nope"), None).unwrap_err().code,
            "bad_token"
        );
        assert_eq!(
            tokens.scope(&HeaderMap::new(), None).unwrap_err().code,
            "missing_token"
        );
        assert_eq!(
            Tokens::open().scope(&HeaderMap::new(), None).unwrap(),
            Scope::All
        );
    }

    #[test]
    fn an_account_scope_refuses_other_accounts() {
        let scope = Scope::Account("acme".into());
        assert!(scope.check_account(Some("acme")).is_ok());
        assert_eq!(
            scope.check_account(Some("other")).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert!(Scope::All.check_account(Some("other")).is_ok());
    }

    #[test]
    fn the_token_is_taken_out_of_the_query() {
        assert_eq!(
            without_token(Some("access_token=x&client_id=a")).as_deref(),
            Some("client_id=a")
        );
        assert_eq!(without_token(Some("access_token=x")), None);
        assert_eq!(without_token(None), None);
    }

    #[test]
    fn short_tokens_are_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        std::fs::write(&path, r#"{"admin": ["short"]}"#).unwrap();
        assert!(Tokens::load(&path)
            .unwrap_err()
            .to_string()
            .contains("shorter"));
    }
}
