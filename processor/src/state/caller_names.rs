//! How the keyed state names a caller: by a keyed hash of its caller key (account
//! and number), never by the number. The changelog is compacted, and a compacted
//! topic keeps the newest record of every key, a tombstone's key included (tansu
//! for ever, Apache Kafka for `delete.retention.ms`): a key holding the number would
//! outlive the caller's erasure. The hash is keyed with the deployment's
//! `retention.hash_key` (the suppression list's key), so the names cannot be
//! reversed by hashing every possible number without it.
//!
//! The key names every caller of the state: changed, every caller would look new.
//! Each partition records a fingerprint of it (`mcallernames`), and a partition
//! whose fingerprint differs is not decided ([`super::StateError::CallerNamesChanged`]).

use schemas::digest::sha256_parts as digest;

/// The prefix of a caller's entry.
pub(super) const CALLER: u8 = b'h';
/// The prefix of a caller's entry as states before the hashed names kept it (`k`
/// and the caller key in clear): renamed at a partition's first restore.
pub(super) const CLEAR_CALLER: u8 = b'k';

#[derive(Clone)]
pub struct CallerNames {
    hash_key: String,
}

impl CallerNames {
    pub fn new(hash_key: &str) -> Self {
        Self {
            hash_key: hash_key.to_owned(),
        }
    }

    /// The state key of a caller key (`schemas::ids::caller_key`).
    pub fn key(&self, caller_key: &str) -> Vec<u8> {
        let mut key = Vec::with_capacity(33);
        key.push(CALLER);
        key.extend_from_slice(&digest(&["state caller", &self.hash_key, caller_key]));
        key
    }

    /// What a partition records of the key it names callers by: a one-way
    /// digest, of a different domain than any name.
    pub fn fingerprint(&self) -> Vec<u8> {
        digest(&["state caller names", &self.hash_key])[..16].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_hides_the_number_and_depends_on_the_key_and_the_account() {
        let names = CallerNames::new("deployment-key-0001");
        let name = names.key("acme|+14155552671");
        assert_eq!(name.len(), 33);
        assert_eq!(name[0], CALLER);
        let digits: String = name
            .iter()
            .map(|b| char::from(*b))
            .filter(char::is_ascii_digit)
            .collect();
        assert!(!digits.contains("4155552671"));
        assert_eq!(name, names.key("acme|+14155552671"), "a caller, one name");
        for other in [
            CallerNames::new("deployment-key-0002").key("acme|+14155552671"),
            names.key("mallory|+14155552671"),
            names.key("acme|+14155552672"),
        ] {
            assert_ne!(name, other);
        }
    }

    #[test]
    fn the_fingerprint_tells_keys_apart_and_is_no_name() {
        let names = CallerNames::new("deployment-key-0001");
        assert_eq!(
            names.fingerprint(),
            CallerNames::new("deployment-key-0001").fingerprint()
        );
        assert_ne!(
            names.fingerprint(),
            CallerNames::new("deployment-key-0002").fingerprint()
        );
        assert_ne!(names.fingerprint(), CallerNames::new("").fingerprint());
        assert_ne!(names.fingerprint()[..], names.key("")[1..17]);
    }
}
