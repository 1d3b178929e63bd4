//! The audit trail: who changed an integration or started a replay, when, from
//! where, and what changed. Written by the api (and cmctl) to the audit topic, copied
//! into ClickHouse's `audit_log` by the processor's audit recorder, read through
//! `GET /api/audit`. Append-only for the api's users: no route changes or removes an
//! entry, and the api's ClickHouse user is read-only.
//!
//! Who is a token's identity, never the token: its role, its account, and either the
//! name the tokens file gives it or the first 8 hex digits of its SHA-256.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditAction {
    #[serde(rename = "integration.created")]
    IntegrationCreated,
    #[serde(rename = "integration.updated")]
    IntegrationUpdated,
    #[serde(rename = "integration.enabled")]
    IntegrationEnabled,
    #[serde(rename = "integration.disabled")]
    IntegrationDisabled,
    #[serde(rename = "integration.deleted")]
    IntegrationDeleted,
    #[serde(rename = "replay.started")]
    ReplayStarted,
    /// An account's retention policy (`crate::retention`); `client_id` is empty.
    #[serde(rename = "retention.changed")]
    RetentionChanged,
    /// A caller of the account erased (`crate::erasure`); `detail` names the
    /// erasure, never the number.
    #[serde(rename = "caller.erased")]
    CallerErased,
    /// A caller's suppression lifted (`crate::suppression::SuppressionLift`);
    /// `detail` names the lift, never the number.
    #[serde(rename = "suppression.lifted")]
    SuppressionLifted,
    /// A token appeared in, changed in or left the api's tokens file
    /// ([`TokenGrant`], [`token_changes`]); `client_id` is empty, `detail` names
    /// the token by its identity, never the token.
    #[serde(rename = "token.added")]
    TokenAdded,
    #[serde(rename = "token.changed")]
    TokenChanged,
    #[serde(rename = "token.removed")]
    TokenRemoved,
}

impl AuditAction {
    /// Every action, for a filter's list of what it accepts.
    pub const ALL: [AuditAction; 12] = [
        Self::IntegrationCreated,
        Self::IntegrationUpdated,
        Self::IntegrationEnabled,
        Self::IntegrationDisabled,
        Self::IntegrationDeleted,
        Self::ReplayStarted,
        Self::RetentionChanged,
        Self::CallerErased,
        Self::SuppressionLifted,
        Self::TokenAdded,
        Self::TokenChanged,
        Self::TokenRemoved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::IntegrationCreated => "integration.created",
            Self::IntegrationUpdated => "integration.updated",
            Self::IntegrationEnabled => "integration.enabled",
            Self::IntegrationDisabled => "integration.disabled",
            Self::IntegrationDeleted => "integration.deleted",
            Self::ReplayStarted => "replay.started",
            Self::RetentionChanged => "retention.changed",
            Self::CallerErased => "caller.erased",
            Self::SuppressionLifted => "suppression.lifted",
            Self::TokenAdded => "token.added",
            Self::TokenChanged => "token.changed",
            Self::TokenRemoved => "token.removed",
        }
    }
}

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `admin token 3f2a9c1b`, `account token "alice" (acme-leads)`, `cmctl as root@host`.
    pub name: String,
    /// `admin`, `account`, `viewer`, `open` (no tokens configured) or `cli`.
    pub role: String,
    /// The client's address (and `X-Forwarded-For` when a proxy sets it), or the
    /// host cmctl ran on.
    pub from: String,
}

/// One changed place of a definition: a leaf's path and its values before and
/// after (absent when there was none). Secrets are masked before the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// One entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Chosen by the writer: a redelivery of the entry is the same row.
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub account: String,
    pub client_id: String,
    pub action: AuditAction,
    pub actor: Actor,
    /// The integration's version after the change.
    pub version: u32,
    /// What changed (definitions masked; empty for enable, disable, delete and a
    /// replay, whose `detail` says what).
    #[serde(default)]
    pub changes: Vec<Change>,
    /// A replay's range and count, and the like.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

impl AuditEntry {
    /// An erasure asked for by `actor`: its id, never the number.
    pub fn caller_erased(account: &str, actor: &Actor, erasure: Uuid) -> Self {
        Self {
            id: Uuid::new_v4(),
            at: chrono::Utc::now(),
            account: account.to_owned(),
            client_id: String::new(),
            action: AuditAction::CallerErased,
            actor: actor.clone(),
            version: 0,
            changes: Vec::new(),
            detail: Some(serde_json::json!({ "erasure": erasure })),
        }
    }

    /// A suppression lifted by `actor`: the lift's id, never the number.
    pub fn suppression_lifted(account: &str, actor: &Actor, lift: Uuid) -> Self {
        Self {
            action: AuditAction::SuppressionLifted,
            detail: Some(serde_json::json!({ "lift": lift })),
            ..Self::caller_erased(account, actor, lift)
        }
    }
}

/// One token of the api's tokens file as the audit trail knows it: never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenGrant {
    /// Hex SHA-256 of the token: tells tokens apart across restarts without
    /// holding one (a token is at least 24 random characters).
    pub fingerprint: String,
    /// `admin token "ops-alice"`, `viewer token 3f2a9c1b (acme-leads)`.
    pub identity: String,
    /// `admin`, `account` or `viewer`.
    pub role: String,
    /// The account of an account or viewer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Which recording of the tokens wrote it: each recording writes every token
    /// with one more than the newest before it. The entries of one change are named
    /// by it (`token_changes`), so that api instances started together with the
    /// same new file, each recording the same change, write the same entries (the
    /// same ids), which the audit trail shows once. 0 in a tokens file's grants.
    #[serde(default)]
    pub generation: u64,
}

impl TokenGrant {
    /// What an entry compares: all but the fingerprint.
    fn shown(&self) -> Value {
        serde_json::json!({
            "identity": self.identity,
            "role": self.role,
            "account": self.account,
        })
    }
}

/// The generation the next recording of the tokens writes: one more than the
/// newest recorded.
pub fn next_token_generation(before: &std::collections::BTreeMap<String, TokenGrant>) -> u64 {
    before.values().map(|g| g.generation).max().unwrap_or(0) + 1
}

/// The entries for the difference between the tokens recorded last (`before`, by
/// fingerprint) and the tokens configured now, by `actor` (the tokens file):
/// a token added, one whose role, account or name changed, one removed. An
/// account token's entry belongs to its account (the new one when it moved; the
/// old one when it was removed); an admin token's to none (`""`: admins read it).
/// Each entry's id follows from the recording it belongs to
/// ([`next_token_generation`]), the token and the action: the same change recorded
/// by two instances from the same recorded set is the same entry.
pub fn token_changes(
    before: &std::collections::BTreeMap<String, TokenGrant>,
    now: &[TokenGrant],
    actor: &Actor,
) -> Vec<AuditEntry> {
    let generation = next_token_generation(before);
    let entry = |grant: &TokenGrant, action: AuditAction, changes: Vec<Change>| AuditEntry {
        id: Uuid::new_v5(
            &Uuid::NAMESPACE_OID,
            format!(
                "callmatrix token change {generation} {} {}",
                grant.fingerprint,
                action.as_str()
            )
            .as_bytes(),
        ),
        at: chrono::Utc::now(),
        account: grant.account.clone().unwrap_or_default(),
        client_id: String::new(),
        action,
        actor: actor.clone(),
        version: 0,
        changes,
        detail: Some(serde_json::json!({ "token": grant.identity })),
    };
    let mut entries = Vec::new();
    for grant in now {
        match before.get(&grant.fingerprint) {
            None => entries.push(entry(
                grant,
                AuditAction::TokenAdded,
                changes(None, &grant.shown()),
            )),
            Some(old) if old.shown() != grant.shown() => entries.push(entry(
                grant,
                AuditAction::TokenChanged,
                changes(Some(&old.shown()), &grant.shown()),
            )),
            Some(_) => {}
        }
    }
    for (fingerprint, old) in before {
        if !now.iter().any(|g| g.fingerprint == *fingerprint) {
            entries.push(entry(old, AuditAction::TokenRemoved, Vec::new()));
        }
    }
    entries
}

/// Most changes one entry lists; past them, one `…` change says how many more.
pub const MAX_CHANGES: usize = 200;
/// Longest value text kept in a change.
const MAX_VALUE_CHARS: usize = 500;

/// The leaves that differ between two definitions (as JSON), in path order.
/// Arrays are compared whole (a filter list, a CSV header list): their path holds
/// both whole values.
pub fn changes(before: Option<&Value>, after: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    diff("", before, Some(after), &mut out);
    if out.len() > MAX_CHANGES {
        let more = out.len() - MAX_CHANGES;
        out.truncate(MAX_CHANGES);
        out.push(Change {
            path: "…".into(),
            before: None,
            after: Some(format!("{more} more changes").into()),
        });
    }
    out
}

fn diff(path: &str, before: Option<&Value>, after: Option<&Value>, out: &mut Vec<Change>) {
    match (before, after) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                diff(&child, a.get(key), b.get(key), out);
            }
        }
        (None, Some(Value::Object(b))) => {
            for (key, value) in b {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                diff(&child, None, Some(value), out);
            }
        }
        (Some(Value::Object(a)), None) => {
            for (key, value) in a {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                diff(&child, Some(value), None, out);
            }
        }
        (a, b) if a != b => out.push(Change {
            path: path.to_owned(),
            before: a.map(clipped),
            after: b.map(clipped),
        }),
        _ => {}
    }
}

/// What changed between two definitions, secrets never shown: both are compared in
/// the form the api lists them (`crate::redact::integration`), and a webhook or poll
/// credential that changed without a visible trace there (a token rotated) is one
/// change saying so.
pub fn definition_changes(
    before: Option<&crate::Integration>,
    after: &crate::Integration,
) -> Vec<Change> {
    let shown = before.map(crate::redact::integration);
    let mut out = changes(shown.as_ref(), &crate::redact::integration(after));
    if let Some(before) = before {
        let credentials = [
            (
                "auth",
                serde_json::to_value(&before.auth).ok(),
                serde_json::to_value(&after.auth).ok(),
            ),
            (
                "poll.auth",
                serde_json::to_value(before.poll.as_ref().map(|p| &p.auth)).ok(),
                serde_json::to_value(after.poll.as_ref().map(|p| &p.auth)).ok(),
            ),
        ];
        for (path, was, is) in credentials {
            let traced = out
                .iter()
                .any(|c| c.path == path || c.path.starts_with(&format!("{path}.")));
            if was != is && !traced {
                out.push(Change {
                    path: path.to_owned(),
                    before: None,
                    after: Some("credentials changed (not shown)".into()),
                });
            }
        }
    }
    out
}

/// A value as kept in a change: long text cut (with its length said).
fn clipped(value: &Value) -> Value {
    let text = value.to_string();
    if text.chars().count() <= MAX_VALUE_CHARS {
        return value.clone();
    }
    let cut: String = text.chars().take(MAX_VALUE_CHARS).collect();
    Value::String(format!("{cut}… ({} characters)", text.chars().count()))
}

/// The `audit_log` row (`migrations/0018_audit_log.sql`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clickhouse", derive(clickhouse::Row))]
pub struct AuditRow {
    pub account: String,
    #[cfg_attr(
        feature = "clickhouse",
        serde(with = "clickhouse::serde::chrono::datetime")
    )]
    pub at: DateTime<Utc>,
    #[cfg_attr(feature = "clickhouse", serde(with = "clickhouse::serde::uuid"))]
    pub id: Uuid,
    /// `at` in Unix milliseconds.
    pub at_ms: u64,
    /// The entry's offset in the audit topic (one partition): the order entries were
    /// written in, set by the recorder.
    pub seq: u64,
    pub client_id: String,
    pub action: String,
    pub actor: String,
    pub role: String,
    pub source: String,
    pub version: u32,
    /// `changes` as JSON.
    pub changes: String,
    /// `detail` as JSON (`""` when none).
    pub detail: String,
}

impl From<&AuditEntry> for AuditRow {
    fn from(entry: &AuditEntry) -> Self {
        Self {
            account: entry.account.clone(),
            at: crate::call::to_whole_seconds(entry.at),
            id: entry.id,
            at_ms: u64::try_from(entry.at.timestamp_millis()).unwrap_or_default(),
            seq: 0,
            client_id: entry.client_id.clone(),
            action: entry.action.as_str().to_owned(),
            actor: entry.actor.name.clone(),
            role: entry.actor.role.clone(),
            source: entry.actor.from.clone(),
            version: entry.version,
            changes: serde_json::to_string(&entry.changes).unwrap_or_else(|_| "[]".into()),
            detail: entry
                .detail
                .as_ref()
                .map(Value::to_string)
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn grant(fingerprint: &str, identity: &str, role: &str, account: Option<&str>) -> TokenGrant {
        TokenGrant {
            fingerprint: fingerprint.into(),
            identity: identity.into(),
            role: role.into(),
            account: account.map(str::to_owned),
            generation: 0,
        }
    }

    #[test]
    fn every_action_is_listed_once_under_its_name() {
        let names: std::collections::BTreeSet<&str> =
            AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(names.len(), AuditAction::ALL.len());
        for action in AuditAction::ALL {
            // A new variant stops this compiling (no wildcard arm): list it in ALL too.
            let _listed = match action {
                AuditAction::IntegrationCreated
                | AuditAction::IntegrationUpdated
                | AuditAction::IntegrationEnabled
                | AuditAction::IntegrationDisabled
                | AuditAction::IntegrationDeleted
                | AuditAction::ReplayStarted
                | AuditAction::RetentionChanged
                | AuditAction::CallerErased
                | AuditAction::SuppressionLifted
                | AuditAction::TokenAdded
                | AuditAction::TokenChanged
                | AuditAction::TokenRemoved => true,
            };
            assert_eq!(
                serde_json::to_value(action).unwrap(),
                json!(action.as_str())
            );
        }
    }

    #[test]
    fn token_changes_name_added_changed_and_removed_tokens() {
        let actor = Actor {
            name: "tokens file".into(),
            role: "config".into(),
            from: "host".into(),
        };
        let before: std::collections::BTreeMap<String, TokenGrant> = [
            grant("aa", "admin token \"ops\"", "admin", None),
            grant(
                "bb",
                "account token \"bob\" (acme)",
                "account",
                Some("acme"),
            ),
            grant(
                "cc",
                "account token 1234abcd (acme)",
                "account",
                Some("acme"),
            ),
        ]
        .into_iter()
        .map(|g| (g.fingerprint.clone(), g))
        .collect();
        let now = [
            grant("aa", "admin token \"ops\"", "admin", None),
            grant("bb", "viewer token \"bob\" (acme)", "viewer", Some("acme")),
            grant(
                "dd",
                "account token 5678abcd (globex)",
                "account",
                Some("globex"),
            ),
        ];
        let entries = token_changes(&before, &now, &actor);
        let summary: Vec<(&str, &str, Vec<&str>)> = entries
            .iter()
            .map(|e| {
                (
                    e.action.as_str(),
                    e.account.as_str(),
                    e.changes.iter().map(|c| c.path.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("token.changed", "acme", vec!["identity", "role"]),
                ("token.added", "globex", vec!["account", "identity", "role"]),
                ("token.removed", "acme", vec![]),
            ]
        );
        assert_eq!(entries[0].changes[1].before, Some(json!("account")));
        assert_eq!(entries[0].changes[1].after, Some(json!("viewer")));
        assert!(token_changes(
            &before,
            &before.values().cloned().collect::<Vec<_>>(),
            &actor
        )
        .is_empty());
        // Two instances recording the same change from the same recorded set write
        // the same entries; the next recording's entries are others.
        let again = token_changes(&before, &now, &actor);
        let ids = |entries: &[AuditEntry]| entries.iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids(&again), ids(&entries));
        let recorded: std::collections::BTreeMap<String, TokenGrant> = now
            .iter()
            .map(|g| {
                let mut g = g.clone();
                g.generation = next_token_generation(&before);
                (g.fingerprint.clone(), g)
            })
            .collect();
        assert!(
            token_changes(&recorded, &now, &actor).is_empty(),
            "a recorded generation is not a change"
        );
        let back: Vec<TokenGrant> = before.values().cloned().collect();
        let undone = token_changes(&recorded, &back, &actor);
        assert_eq!(undone.len(), 3);
        assert!(undone.iter().all(|e| !ids(&entries).contains(&e.id)));
        let text = serde_json::to_string(&entries).unwrap();
        assert!(
            !text.contains("\"aa\"") && !text.contains("fingerprint"),
            "{text}"
        );
    }

    #[test]
    fn a_changed_path_names_the_leaf_and_both_values() {
        let before = json!({"version": 1, "mapping": {"fields": {"payout": {"path": "payout"}, "caller": {"path": "ani"}}}});
        let after = json!({"version": 2, "mapping": {"fields": {"payout": {"path": "payoutAmount"}, "caller": {"path": "ani"}},
                           "filters": [{"reason": "test", "when": {"path": "t", "exists": true}}]}});
        let changes = changes(Some(&before), &after);
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            ["mapping.fields.payout.path", "mapping.filters", "version"]
        );
        assert_eq!(changes[0].before, Some(json!("payout")));
        assert_eq!(changes[0].after, Some(json!("payoutAmount")));
        assert_eq!(changes[1].before, None, "a new array is one change");
    }

    #[test]
    fn a_creation_lists_every_leaf_and_long_values_are_cut() {
        let after =
            json!({"name": "x", "mapping": {"fields": {"caller": {"path": "a".repeat(900)}}}});
        let changes = changes(None, &after);
        assert_eq!(changes.len(), 2);
        let cut = changes[0].after.as_ref().unwrap().as_str().unwrap();
        assert!(cut.ends_with("… (902 characters)"), "{cut}");
    }

    #[test]
    fn a_rotated_token_is_said_and_never_shown() {
        let with_token = |token: &str| -> crate::Integration {
            serde_json::from_value(json!({
                "client_id": "x", "account": "a", "name": "x", "source": "webhook", "version": 1,
                "auth": {"scheme": "bearer", "tokens": [token]},
                "mapping": {"fields": {"caller": {"path": "c"}, "started_at": {"path": "s"}}}
            }))
            .unwrap()
        };
        let (old, new) = (
            with_token("tok_old_0123456789abcdefghij"),
            with_token("tok_new_0123456789abcdefghij"),
        );
        let changes = definition_changes(Some(&old), &new);
        let text = serde_json::to_string(&changes).unwrap();
        assert!(
            !text.contains("tok_old") && !text.contains("tok_new"),
            "{text}"
        );
        assert_eq!(changes.len(), 1, "{text}");
        assert_eq!(changes[0].path, "auth");
        assert!(definition_changes(Some(&old), &old).is_empty());
        let created = serde_json::to_string(&definition_changes(None, &new)).unwrap();
        assert!(
            !created.contains("tok_new") && created.contains("auth.scheme"),
            "{created}"
        );
    }

    #[test]
    fn too_many_changes_say_how_many_more() {
        let after: serde_json::Map<String, Value> =
            (0..250).map(|i| (format!("k{i:03}"), json!(i))).collect();
        let changes = changes(None, &Value::Object(after));
        assert_eq!(changes.len(), MAX_CHANGES + 1);
        assert_eq!(changes[MAX_CHANGES].after, Some(json!("50 more changes")));
    }
}
