//! Identifiers. Call ids are UUID v5 so that the same partner call always gets the
//! same id, whichever instance or replay computes it: that is what makes writes
//! idempotent (ReplacingMergeTree collapses rows by id).

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Namespace for every id this platform derives. Never change it: ids already stored
/// in ClickHouse would stop matching re-deliveries.
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_4a3e_9b2d_4e57_8a10_c5d4_7e3f_2b91);

/// The separator between the parts of a derived id's name. A unit separator cannot
/// appear in a client id and is vanishingly rare in partner ids, so `("a", "b:c")`
/// and `("a:b", "c")` never collide.
const PART_SEPARATOR: char = '\u{1f}';

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientIdError {
    #[error("client id is empty")]
    Empty,
    #[error("client id is {len} characters long; at most 64 are allowed")]
    TooLong { len: usize },
    #[error("client id {value:?} has character {ch:?}; only ASCII letters, digits, '-' and '_' are allowed")]
    BadCharacter { value: String, ch: char },
}

/// An integration's id as it appears in the webhook URL. Only URL-safe ASCII, so it
/// can be used in paths, topic keys and log lines without escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(value: &str) -> Result<Self, ClientIdError> {
        if value.is_empty() {
            return Err(ClientIdError::Empty);
        }
        if value.len() > 64 {
            return Err(ClientIdError::TooLong { len: value.len() });
        }
        if let Some(ch) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(ClientIdError::BadCharacter {
                value: value.to_owned(),
                ch,
            });
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ClientId {
    type Error = ClientIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ClientId> for String {
    fn from(id: ClientId) -> Self {
        id.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The deterministic id of a canonical call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallId(pub Uuid);

impl CallId {
    /// From the partner's own call id: the strongest identity a record can have.
    pub fn from_external(client: &ClientId, external_id: &str) -> Self {
        Self(derive(&["ext", client.as_str(), external_id]))
    }

    /// From the normalised natural key, for partners that send no call id: caller,
    /// called number and start. Not the duration, which changes while a call is in
    /// progress ("nat2": the key that had the duration was "nat").
    pub fn from_natural_key(
        client: &ClientId,
        caller: &str,
        called: &str,
        started_at_unix: i64,
    ) -> Self {
        let started = started_at_unix.to_string();
        Self(derive(&["nat2", client.as_str(), caller, called, &started]))
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The Kafka key of every record of one caller to one account, once the caller is
/// known: the processor keeps each caller's history in the partition this key picks,
/// so one instance decides all of a caller's repeat questions.
pub fn caller_key(account: &str, caller: &str) -> String {
    format!("{account}|{caller}")
}

/// The id of one raw record as received: derived from the client and the exact bytes
/// (or the sender's idempotency key), so a re-sent record gets the same id back.
pub fn raw_record_id(client: &ClientId, idempotency_key: &str) -> Uuid {
    derive(&["raw", client.as_str(), idempotency_key])
}

fn derive(parts: &[&str]) -> Uuid {
    let mut name = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            name.push(PART_SEPARATOR);
        }
        name.push_str(part);
    }
    Uuid::new_v5(&ID_NAMESPACE, name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn client_id_rejects_path_characters() {
        assert!(matches!(
            ClientId::parse("a/b"),
            Err(ClientIdError::BadCharacter { ch: '/', .. })
        ));
        assert_eq!(ClientId::parse(""), Err(ClientIdError::Empty));
        assert!(ClientId::parse("arroyo-webhook_1").is_ok());
    }

    #[test]
    fn call_id_is_stable_across_runs() {
        // A stored id must never change: this pins the derivation.
        let client = ClientId::parse("arroyo").unwrap();
        let id = CallId::from_external(&client, "ar_9f8e7d6c");
        // Literal values: a changed namespace or name layout would give new ids to
        // calls already stored, and every re-delivery would become a second row.
        assert_eq!(id.to_string(), "fc5281ed-724e-5ea4-ad95-59326c9f1ba5");
        assert_eq!(
            raw_record_id(&client, "k").to_string(),
            "bf2a686a-cf06-527a-a1d8-df17f7e1fc79"
        );
        assert_eq!(id.0.get_version_num(), 5);
        assert_ne!(
            id,
            CallId::from_external(&ClientId::parse("other").unwrap(), "ar_9f8e7d6c")
        );
    }

    proptest! {
        #[test]
        fn part_boundaries_do_not_collide(a in "[a-z:]{0,8}", b in "[a-z:]{0,8}", c in "[a-z:]{0,8}") {
            let client = ClientId::parse("c").unwrap();
            let left = CallId::from_external(&client, &format!("{a}{b}"));
            let right = CallId::from_natural_key(&client, &a, &b, 0);
            prop_assert_ne!(left, right);
            let ab_c = derive(&[&a, &format!("{b}{c}")]);
            let a_bc = derive(&[&format!("{a}{b}"), &c]);
            if !b.is_empty() {
                prop_assert_ne!(ab_c, a_bc);
            }
        }
    }
}
