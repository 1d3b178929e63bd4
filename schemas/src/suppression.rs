//! The suppression list: callers of an account whose later records are stored
//! without their number. An erasure (`crate::erasure`) removes what is stored;
//! asked with `suppress`, it also makes the caller's partition store every later
//! call of that caller erased, with the erasure's token as its caller
//! (`e:` and the erasure's id): the calls still count and share the token, they
//! are decided as calls of a withheld number (no window, so no repeats), and the
//! number is never written again.
//!
//! The list must recognise a number without holding it: an entry names the caller
//! by [`caller_hash`], a SHA-256 of the deployment's `retention.hash_key`, the
//! account and the number. Without that key a number could be found again by
//! hashing every possible number; the processor says so at start-up.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One suppressed caller, on the compacted suppressions topic under [`Suppression::key`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suppression {
    pub account: String,
    /// [`caller_hash`] of the caller.
    pub caller_hash: String,
    /// The erasure that asked for it: later calls carry its token.
    pub erasure: Uuid,
    /// Who asked (an audit actor's name).
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
}

impl Suppression {
    pub fn key(&self) -> String {
        key(&self.account, &self.caller_hash)
    }
}

/// A suppression lifted (`POST /api/privacy/suppression-lifts`, `cmctl privacy
/// lift`): the caller's records after it are stored with their number again. On
/// the raw topic under the caller's key (with [`RAW_HEADERS`]), so the caller's
/// partition meets it in order with the caller's records: those before it are
/// still stored without the number, those after it with. Its partition then
/// writes a tombstone for the entry on the suppressions topic. The number travels
/// in it as in an erasure order, on the raw topic only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuppressionLift {
    pub id: Uuid,
    pub account: String,
    /// The caller, normalised (E.164).
    pub number: String,
    /// Who asked (an audit actor's name).
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
}

impl SuppressionLift {
    /// Its key on the raw topic: the caller's.
    pub fn raw_key(&self) -> String {
        crate::ids::caller_key(&self.account, &self.number)
    }
}

/// The headers a lift travels with on the raw topic.
pub const RAW_HEADERS: [(&str, &[u8]); 1] = [(crate::topics::LIFT_HEADER, b"1")];

/// An entry's key: the account and the caller's hash.
pub fn key(account: &str, caller_hash: &str) -> String {
    format!("{account}|{caller_hash}")
}

/// How the list names a caller (`e164`, normalised) of `account`: hex SHA-256 of
/// the deployment's key, the account and the number, each length-prefixed so no
/// two different triples hash the same text.
pub fn caller_hash(hash_key: &str, account: &str, e164: &str) -> String {
    crate::digest::hex(&crate::digest::sha256_parts(&[hash_key, account, e164]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_hash_depends_on_key_account_and_number_and_hides_the_number() {
        let hash = caller_hash("deployment-key-0001", "acme", "+14155552671");
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains("4155552671"));
        assert_eq!(
            hash,
            caller_hash("deployment-key-0001", "acme", "+14155552671"),
            "the same caller, the same name"
        );
        for other in [
            caller_hash("another-key-00001", "acme", "+14155552671"),
            caller_hash("deployment-key-0001", "globex", "+14155552671"),
            caller_hash("deployment-key-0001", "acme", "+14155552672"),
            // Moving a character between parts changes the hash.
            caller_hash("deployment-key-000", "1acme", "+14155552671"),
        ] {
            assert_ne!(hash, other);
        }
    }
}
