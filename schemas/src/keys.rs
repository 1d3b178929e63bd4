//! The Kafka key of a raw record (ingest, and `cmctl replay`). The processor decides repeat callers per caller,
//! so every record of one caller to one account must reach the same partition: the
//! key is the caller key (`account|+E164`) when the record's caller can be read
//! with the integration's caller rule. A record without a caller (a late field for a
//! call) is keyed by its call id; the processor finds its caller and forwards it to
//! the caller's partition. The processor checks every key, so a key computed
//! differently here only costs that forward, never a wrong decision.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::integration::CanonicalField;
use crate::rule::{part_text, ValueSource};
use crate::rule_reader::RuleReader;
use crate::{CallId, ClientId, Integration, RawEnvelope, E164};
use phonenumber::country::Id as Region;

/// The rules a key needs, compiled once per integration version.
#[derive(Clone)]
pub struct KeyRules {
    version: u32,
    account: String,
    region: Region,
    caller: Option<ValueSource>,
    call_id: Option<ValueSource>,
    /// The two rules compiled into one read of a record (caller first, if any).
    reader: RuleReader,
}

impl KeyRules {
    pub fn compile(integration: &Integration) -> Self {
        let compile = |field| {
            integration
                .mapping
                .fields
                .get(&field)
                .and_then(|rule| ValueSource::compile(rule).ok().flatten())
        };
        let caller = compile(CanonicalField::Caller);
        let call_id = compile(CanonicalField::ExternalId);
        let reader = RuleReader::of(caller.iter().chain(&call_id));
        Self {
            version: integration.version,
            account: integration.account.clone(),
            region: crate::phone::region(&integration.default_region).unwrap_or(Region::US),
            caller,
            call_id,
            reader,
        }
    }

    /// The keys of one delivery, in order. A record without a caller takes the
    /// caller key of an earlier record of the same call in the delivery, so a call
    /// and its correction sent together stay together, in order.
    pub fn keys(&self, envelopes: &[RawEnvelope]) -> Vec<String> {
        // By the partner's call id as extracted (trimmed): within one integration that
        // is the call, and the derived id (a SHA-1) is only needed for a record
        // without a caller.
        let mut callers_of_calls: HashMap<String, String> = HashMap::new();
        envelopes
            .iter()
            .map(|envelope| match self.parts(envelope) {
                (Some(caller_key), external) => {
                    if let (Some(external), true) = (external, envelopes.len() > 1) {
                        callers_of_calls.insert(external, caller_key.clone());
                    }
                    caller_key
                }
                (None, Some(external)) => callers_of_calls
                    .get(&external)
                    .cloned()
                    .unwrap_or_else(|| call_id_key(envelope, &external)),
                (None, None) => envelope.raw_id.to_string(),
            })
            .collect()
    }

    /// The key of `envelope`: caller key, else call id, else raw id.
    pub fn key(&self, envelope: &RawEnvelope) -> String {
        match self.parts(envelope) {
            (Some(caller_key), _) => caller_key,
            (None, Some(external)) => call_id_key(envelope, &external),
            (None, None) => envelope.raw_id.to_string(),
        }
    }

    /// (caller key, the partner's call id) as far as the record has them.
    fn parts(&self, envelope: &RawEnvelope) -> (Option<String>, Option<String>) {
        if self.caller.is_none() && self.call_id.is_none() {
            return (None, None);
        }
        let Ok(Some(record)) = self.reader.read(envelope.payload.get()) else {
            return (None, None);
        };
        // The reader's rules: the caller's (if any), then the call id's.
        let caller_key = self
            .caller
            .as_ref()
            .and_then(|rule| self.reader.extract(&record, 0, rule))
            .and_then(|value| part_text(&value))
            .and_then(|text| E164::normalize_for_key(&text, self.region))
            .map(|caller| crate::ids::caller_key(&self.account, &caller));
        let call_id_rule = usize::from(self.caller.is_some());
        let external = self
            .call_id
            .as_ref()
            .and_then(|rule| self.reader.extract(&record, call_id_rule, rule))
            .and_then(|value| part_text(&value));
        (caller_key, external)
    }
}

/// The key of a record known only by its call: the call's id.
fn call_id_key(envelope: &RawEnvelope, external: &str) -> String {
    CallId::from_external(&envelope.client_id, external).to_string()
}

/// Compiled key rules per integration, recompiled when the version changes.
#[derive(Clone, Default)]
pub struct KeyRulesCache(Arc<Mutex<HashMap<ClientId, KeyRules>>>);

impl KeyRulesCache {
    pub fn get(&self, integration: &Integration) -> KeyRules {
        let mut cache = match self.0.lock() {
            Ok(cache) => cache,
            Err(poisoned) => poisoned.into_inner(),
        };
        match cache.get(&integration.client_id) {
            Some(rules) if rules.version == integration.version => rules.clone(),
            _ => {
                let rules = KeyRules::compile(integration);
                cache.insert(integration.client_id.clone(), rules.clone());
                rules
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Source;
    use chrono::Utc;
    use serde_json::value::RawValue;
    use uuid::Uuid;

    fn arroyo() -> Integration {
        let samples: Vec<Integration> =
            serde_json::from_str(include_str!("../../deploy/integrations/samples.json")).unwrap();
        samples
            .into_iter()
            .find(|i| i.client_id.as_str() == "arroyo")
            .unwrap()
    }

    fn envelope(payload: &str) -> RawEnvelope {
        RawEnvelope {
            raw_id: Uuid::from_u128(9),
            client_id: ClientId::parse("arroyo").unwrap(),
            source: Source::Webhook,
            received_at: Utc::now(),
            idempotency_key: "k".into(),
            integration_version: 1,
            payload: RawValue::from_string(payload.to_owned()).unwrap(),
        }
    }

    #[test]
    fn one_caller_in_any_format_has_one_key() {
        let rules = KeyRules::compile(&arroyo());
        let a = rules.key(&envelope(
            r#"{"call":{"id":"ar_1","caller":{"number":"(415) 555-2671"}}}"#,
        ));
        let b = rules.key(&envelope(
            r#"{"call":{"id":"ar_2","caller":{"number":"+1 415 555 2671"}}}"#,
        ));
        assert_eq!(a, "acme-leads|+14155552671");
        assert_eq!(
            a, b,
            "different calls of one caller share the caller's partition"
        );
    }

    #[test]
    fn a_correction_sent_with_its_call_shares_the_calls_key() {
        let rules = KeyRules::compile(&arroyo());
        let keys = rules.keys(&[
            envelope(r#"{"call":{"id":"ar_1","caller":{"number":"4155552671"}}}"#),
            envelope(r#"{"call":{"id":"ar_1","payout":"$2"}}"#),
            envelope(r#"{"call":{"id":"ar_2","payout":"$2"}}"#),
        ]);
        assert_eq!(keys[0], "acme-leads|+14155552671");
        assert_eq!(keys[1], keys[0]);
        assert_eq!(
            keys[2],
            CallId::from_external(&ClientId::parse("arroyo").unwrap(), "ar_2").to_string()
        );
    }

    #[test]
    fn without_a_caller_the_call_id_then_the_raw_id() {
        let rules = KeyRules::compile(&arroyo());
        let late = rules.key(&envelope(r#"{"call":{"id":" ar_1 ","payout":"$5"}}"#));
        assert_eq!(
            late,
            CallId::from_external(&ClientId::parse("arroyo").unwrap(), "ar_1").to_string()
        );
        assert_eq!(
            rules.key(&envelope(r#"{"call":{}}"#)),
            Uuid::from_u128(9).to_string()
        );
        assert_eq!(
            rules.key(&envelope("[1,2]")),
            Uuid::from_u128(9).to_string()
        );
    }
}
