//! Who is asking, and what they may touch: the one place every account-scoped read
//! and write of the api and of ingest's own endpoints is checked.
//!
//! Every `/api/*` request carries a token (`Authorization: Bearer`, or
//! `access_token=` in the query, since a browser's `EventSource` cannot set headers);
//! an account token sees only its account's calls, dead letters, events,
//! integrations, imports and polls, an admin token sees everything. Tokens come from
//! a JSON file (`auth.tokens_file`), so secrets stay out of the config and the
//! environment:
//!
//! ```json
//! {"admin": ["tok_..."], "accounts": {"acme-leads": ["tok_..."]},
//!  "viewers": {"acme-leads": ["tok_..."]}}
//! ```
//!
//! Roles: an admin token; an account token (an account manager: reads and changes
//! its account); a viewer token (reads its account only, with callers' numbers
//! masked to their last four digits on the way out, no raw payloads and no
//! previews: `api/src/masking.rs`). [`Scope::check_write`] is where a viewer's
//! change is refused, for every binary.
//!
//! Closed by default: without a tokens file a binary refuses to start, unless
//! `auth.insecure_open` is set *and* it listens on loopback only (local use).
//!
//! Client ids: [`Scope::integration`] answers 404 for another account's
//! integration (indistinguishable from a missing one), and [`Scope::may_define`]
//! refuses a client id that is, or ever was, another account's: a deleted
//! integration keeps its id reserved to its account (see `registry::delete`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::{HeaderMap, StatusCode};
use schemas::Integration;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::http::Problem;
use crate::registry::IntegrationRegistry;

/// `[auth]` in the api and ingest configs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// JSON file of admin and per-account tokens.
    #[serde(default)]
    pub tokens_file: String,
    /// Without a tokens file, answer anyone. Only on a loopback address (local use);
    /// a binary listening anywhere else refuses to start without tokens.
    #[serde(default)]
    pub insecure_open: bool,
}

impl AuthConfig {
    /// The tokens, or why this binary must not start: no tokens file and not
    /// explicitly open, or open on an address others can reach.
    pub fn tokens(&self, listen: SocketAddr) -> Result<Tokens, TokensError> {
        match (self.tokens_file.as_str(), self.insecure_open) {
            ("", true) if listen.ip().is_loopback() => {
                tracing::warn!(%listen, "auth.insecure_open: no tokens, this binary answers anyone on loopback (local use only)");
                Ok(Tokens::open())
            }
            ("", true) => Err(TokensError::OpenOnNetwork { listen }),
            ("", false) => Err(TokensError::Closed),
            (path, _) => Tokens::load(Path::new(path)),
        }
    }
}

/// What a request may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every account (an admin token, or no tokens configured).
    All,
    Account(String),
    /// An account's read-only token: numbers masked, no payloads, no changes.
    Viewer(String),
}

impl Scope {
    /// The account a query must be limited to, if any.
    pub fn account(&self) -> Option<&str> {
        match self {
            Self::All => None,
            Self::Account(account) | Self::Viewer(account) => Some(account),
        }
    }

    /// `admin`, `account` or `viewer`, as the audit trail names roles.
    pub fn role(&self) -> &'static str {
        match self {
            Self::All => "admin",
            Self::Account(_) => "account",
            Self::Viewer(_) => "viewer",
        }
    }

    /// Whether answers must be masked (a viewer token).
    pub fn is_viewer(&self) -> bool {
        matches!(self, Self::Viewer(_))
    }

    /// Refuses a request that could change something (any method but GET and
    /// HEAD) from a viewer token: 403, before any handler runs.
    pub fn check_write(&self, method: &http::Method) -> Result<(), Problem> {
        if self.is_viewer() && !matches!(*method, http::Method::GET | http::Method::HEAD) {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "read_only_token",
                "a viewer token reads only: changes, imports, replays and previews need an account token",
            ));
        }
        Ok(())
    }

    /// Refuses what shows partners' records as sent (dead-letter payloads,
    /// previews) to a viewer token: they hold numbers in any spelling, which the
    /// masking on the way out cannot know.
    pub fn check_payloads(&self) -> Result<(), Problem> {
        if self.is_viewer() {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "read_only_token",
                "a viewer token does not see partners' records as sent; ask an account token",
            ));
        }
        Ok(())
    }

    /// Whether this scope may see `account`'s data.
    pub fn permits(&self, account: &str) -> bool {
        self.account().is_none_or(|mine| mine == account)
    }

    /// The integration `client` names, if this scope may see it; 404 otherwise,
    /// whether it is missing or another account's.
    pub fn integration(
        &self,
        registry: &IntegrationRegistry,
        client: &str,
    ) -> Result<Arc<Integration>, Problem> {
        registry
            .find(client)
            .filter(|integration| self.permits(&integration.account))
            .ok_or_else(|| Problem::unknown_integration(client))
    }

    /// Whether this scope may define (create, update, or draft) integration
    /// `client_id` for `account`: the account must be this scope's, and the client id
    /// free or already that account's, live or deleted.
    pub fn may_define(
        &self,
        registry: &IntegrationRegistry,
        client_id: &str,
        account: &str,
    ) -> Result<(), Problem> {
        if !self.permits(account) {
            return Err(forbidden(account));
        }
        match registry.owner(client_id) {
            Some(owner) if owner != account => Err(Problem::new(
                StatusCode::FORBIDDEN,
                "client_id_taken",
                format!("client id {client_id:?} belongs to another account; choose another"),
            )),
            _ => Ok(()),
        }
    }

    /// Refuses a `client_id` filter naming a client id this scope does not own, as
    /// if it did not exist (404): a filter on another account's client id is an
    /// attempt, not a question with an empty answer. Deleted integrations' ids stay
    /// their account's.
    pub fn check_client(
        &self,
        registry: &IntegrationRegistry,
        client: &str,
    ) -> Result<(), Problem> {
        match self.account() {
            Some(mine) if registry.owner(client).as_deref() != Some(mine) => {
                Err(Problem::unknown_integration(client))
            }
            _ => Ok(()),
        }
    }

    /// The client ids whose rows this scope may read (deleted integrations' included,
    /// their rows stay their account's); `None` for every client id.
    pub fn client_ids(&self, registry: &IntegrationRegistry) -> Option<Vec<String>> {
        let mine = self.account()?;
        Some(registry.owned_by(mine))
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
    admin: Vec<TokenEntry>,
    #[serde(default)]
    accounts: BTreeMap<String, Vec<TokenEntry>>,
    /// Read-only tokens per account.
    #[serde(default)]
    viewers: BTreeMap<String, Vec<TokenEntry>>,
}

/// A token, or a token with the name the audit trail shows for it
/// (`{"token": "tok_...", "name": "alice"}`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TokenEntry {
    Plain(String),
    Named { token: String, name: String },
}

impl TokenEntry {
    /// (the token, who it is): its name, or the first 8 hex digits of its SHA-256,
    /// so the audit trail can tell tokens apart without holding one.
    fn split(self, role: &str, account: Option<&str>) -> (String, String) {
        let (token, who) = match self {
            Self::Plain(token) => {
                let mut short = schemas::digest::sha256_hex(token.as_bytes());
                short.truncate(8);
                (token, short)
            }
            Self::Named { token, name } => (token, format!("{name:?}")),
        };
        let identity = match account {
            Some(account) => format!("{role} token {who} ({account})"),
            None => format!("{role} token {who}"),
        };
        (token, identity)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("auth.tokens_file: reading the tokens file {path}: {message}")]
    Read { path: String, message: String },
    #[error("auth.tokens_file is not set: give a tokens file (or, for local use on a loopback address only, set auth.insecure_open = true)")]
    Closed,
    #[error("auth.insecure_open: refused on {listen}, which is not a loopback address; give auth.tokens_file")]
    OpenOnNetwork { listen: SocketAddr },
}

/// The configured tokens; `open()` when none are.
#[derive(Clone, Default)]
pub struct Tokens {
    /// (token, scope, identity: see [`Tokens::identity`]).
    entries: Vec<(String, Scope, String)>,
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
        let mut entries: Vec<(String, Scope, String)> = file
            .admin
            .into_iter()
            .map(|t| {
                let (token, identity) = t.split("admin", None);
                (token, Scope::All, identity)
            })
            .collect();
        for (role, by_account) in [("account", file.accounts), ("viewer", file.viewers)] {
            for (account, tokens) in by_account {
                entries.extend(tokens.into_iter().map(|t| {
                    let (token, identity) = t.split(role, Some(&account));
                    let scope = if role == "viewer" {
                        Scope::Viewer(account.clone())
                    } else {
                        Scope::Account(account.clone())
                    };
                    (token, scope, identity)
                }));
            }
        }
        if let Some((index, _)) = entries
            .iter()
            .enumerate()
            .find(|(_, (t, _, _))| t.len() < MIN_TOKEN_LEN)
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

    /// Every configured token as the audit trail knows it (no token in it).
    pub fn grants(&self) -> Vec<schemas::audit::TokenGrant> {
        self.entries
            .iter()
            .map(|(token, scope, identity)| {
                let (role, account) = match scope {
                    Scope::All => ("admin", None),
                    Scope::Account(account) => ("account", Some(account.clone())),
                    Scope::Viewer(account) => ("viewer", Some(account.clone())),
                };
                schemas::audit::TokenGrant {
                    fingerprint: schemas::digest::sha256_hex(token.as_bytes()),
                    identity: identity.clone(),
                    role: role.to_owned(),
                    account,
                    generation: 0,
                }
            })
            .collect()
    }

    /// The scope of a request, from its `Authorization` header or `access_token`.
    pub fn scope(&self, headers: &HeaderMap, query: Option<&str>) -> Result<Scope, Problem> {
        self.caller(headers, query).map(|(scope, _)| scope)
    }

    /// Who a request's token is, for the audit trail: `admin token 3f2a9c1b`,
    /// `account token "alice" (acme-leads)`; `open` without tokens. Never the token.
    pub fn identity(&self, headers: &HeaderMap, query: Option<&str>) -> Option<String> {
        self.caller(headers, query)
            .ok()
            .map(|(_, identity)| identity)
    }

    /// The scope and the identity of a request's token, from one comparison with
    /// every configured token (`scope` and `identity` each make one).
    pub fn caller(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<(Scope, String), Problem> {
        if self.is_open() {
            return Ok((Scope::All, "open (no tokens configured)".to_owned()));
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
        for (token, scope, identity) in &self.entries {
            if bool::from(presented.as_bytes().ct_eq(token.as_bytes())) && found.is_none() {
                found = Some((scope.clone(), identity.clone()));
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
            r#"{"admin": ["adm_0123456789abcdefghijklmn"], "accounts": {"acme": ["acm_0123456789abcdefghijklmn"]},
                "viewers": {"acme": ["vwr_0123456789abcdefghijklmn"]}}"#,
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
        let viewer = tokens
            .scope(&bearer("vwr_0123456789abcdefghijklmn"), None)
            .unwrap();
        assert_eq!(viewer, Scope::Viewer("acme".into()));
        let identity = tokens
            .identity(&bearer("vwr_0123456789abcdefghijklmn"), None)
            .unwrap();
        assert!(
            identity.starts_with("viewer token ") && identity.ends_with(" (acme)"),
            "{identity}"
        );
        assert!(
            !identity.contains("vwr_0123"),
            "never the token: {identity}"
        );
        assert_eq!(viewer.account(), Some("acme"), "a viewer is walled in too");
        assert!(viewer.check_write(&http::Method::GET).is_ok());
        for method in [http::Method::POST, http::Method::PUT, http::Method::DELETE] {
            assert_eq!(
                viewer.check_write(&method).unwrap_err().code,
                "read_only_token"
            );
        }
        assert!(Scope::Account("acme".into())
            .check_write(&http::Method::POST)
            .is_ok());
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
    fn a_named_token_is_known_by_its_name_and_a_plain_one_by_a_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        std::fs::write(
            &path,
            r#"{"admin": [{"token": "adm_0123456789abcdefghijklmn", "name": "ops-alice"}],
                "accounts": {"acme": ["acm_0123456789abcdefghijklmn", "acm_1123456789abcdefghijklmn"]}}"#,
        )
        .unwrap();
        let tokens = Tokens::load(&path).unwrap();
        let who = |t: &str| tokens.identity(&bearer(t), None).unwrap();
        assert_eq!(
            who("adm_0123456789abcdefghijklmn"),
            "admin token \"ops-alice\""
        );
        let (a, b) = (
            who("acm_0123456789abcdefghijklmn"),
            who("acm_1123456789abcdefghijklmn"),
        );
        assert_ne!(a, b, "two tokens of one account are told apart");
        assert!(
            a.starts_with("account token ") && a.ends_with(" (acme)"),
            "{a}"
        );
        assert_eq!(a.len(), "account token 01234567 (acme)".len(), "{a}");
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
    fn closed_unless_tokens_or_open_on_loopback() {
        let loopback: SocketAddr = "127.0.0.1:8081".parse().unwrap();
        let network: SocketAddr = "0.0.0.0:8081".parse().unwrap();
        let closed = AuthConfig::default();
        assert!(matches!(closed.tokens(loopback), Err(TokensError::Closed)));
        let open = AuthConfig {
            insecure_open: true,
            ..AuthConfig::default()
        };
        assert!(open.tokens(loopback).unwrap().is_open());
        assert!(matches!(
            open.tokens(network),
            Err(TokensError::OpenOnNetwork { .. })
        ));
        assert!(open
            .tokens("[::1]:8081".parse().unwrap())
            .unwrap()
            .is_open());
    }

    fn integration(client_id: &str, account: &str) -> Integration {
        serde_json::from_value(serde_json::json!({
            "client_id": client_id, "account": account, "name": client_id, "source": "webhook",
            "version": 1, "mapping": {"fields": {"caller": {"path": "c"}, "started_at": {"path": "s"}}}
        }))
        .unwrap()
    }

    #[test]
    fn client_ids_stay_with_their_account_even_deleted() {
        let mut gone = integration("gone", "acme");
        gone.deleted = true;
        let registry = IntegrationRegistry::fixed([integration("live", "acme"), gone]);
        let acme = Scope::Account("acme".into());
        let other = Scope::Account("other".into());
        assert!(acme.integration(&registry, "live").is_ok());
        assert_eq!(
            other.integration(&registry, "live").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
        assert!(acme.may_define(&registry, "gone", "acme").is_ok());
        assert_eq!(
            other
                .may_define(&registry, "gone", "other")
                .unwrap_err()
                .code,
            "client_id_taken"
        );
        assert_eq!(
            Scope::All
                .may_define(&registry, "live", "other")
                .unwrap_err()
                .code,
            "client_id_taken",
            "not even an admin gives an account's id to another"
        );
        assert_eq!(
            other
                .may_define(&registry, "new", "acme")
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        let mut mine = acme.client_ids(&registry).unwrap();
        mine.sort();
        assert_eq!(mine, ["gone", "live"]);
        assert_eq!(other.client_ids(&registry).unwrap(), Vec::<String>::new());
        assert_eq!(Scope::All.client_ids(&registry), None);
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
