//! A set of rules compiled into one read of a record: the processor's mapping
//! (every rule of an integration) and ingest's key (the caller and call id rules)
//! read records the same way.
//!
//! When no rule's path has `[*]`, the record's text is read straight into one value
//! per path ([`PathSlots`]); otherwise it is parsed whole. Either way a rule gets the
//! same value ([`ValueSource::extract`] on the whole record).

use std::borrow::Cow;

use serde_json::Value;

use crate::path::FieldPath;
use crate::path_slots::PathSlots;
use crate::rule::ValueSource;

/// Rules compiled for reading, in the order given.
#[derive(Debug, Clone)]
pub struct RuleReader {
    slots: Option<PathSlots>,
    /// Each rule's first path among the slots.
    first_slot: Vec<usize>,
}

/// A record as read for a [`RuleReader`].
pub enum ReadRecord {
    /// Every path's value, by slot.
    Slots(Vec<Option<Value>>),
    /// The whole record (a rule has a `[*]` path).
    Whole(Value),
}

impl RuleReader {
    pub fn of<'r>(rules: impl IntoIterator<Item = &'r ValueSource>) -> Self {
        let mut first_slot = Vec::new();
        let mut paths: Vec<&FieldPath> = Vec::new();
        for rule in rules {
            first_slot.push(paths.len());
            paths.extend(rule.paths());
        }
        Self {
            slots: PathSlots::of(&paths),
            first_slot,
        }
    }

    /// `text` read for the rules; `None` when it is JSON but not an object. The same
    /// errors as `serde_json::from_str` for text that is not JSON.
    pub fn read(&self, text: &str) -> serde_json::Result<Option<ReadRecord>> {
        Ok(match &self.slots {
            Some(slots) => slots.read(text)?.map(ReadRecord::Slots),
            None => {
                let whole: Value = serde_json::from_str(text)?;
                whole.is_object().then_some(ReadRecord::Whole(whole))
            }
        })
    }

    /// The raw value of rule `n` (`source`, the `n`th rule given to [`Self::of`]).
    pub fn extract<'v>(
        &self,
        record: &'v ReadRecord,
        n: usize,
        source: &'v ValueSource,
    ) -> Option<Cow<'v, Value>> {
        match record {
            ReadRecord::Whole(whole) => source.extract(whole),
            ReadRecord::Slots(values) => {
                let first = *self.first_slot.get(n)?;
                source.extract_with(|path, _| values.get(first + path)?.as_ref().map(Cow::Borrowed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integration::FieldRule;

    fn source(rule: serde_json::Value) -> ValueSource {
        let rule: FieldRule = serde_json::from_value(rule).unwrap();
        ValueSource::compile(&rule).unwrap().unwrap()
    }

    #[test]
    fn every_rule_reads_what_it_reads_in_the_whole_record() {
        let record = r#"{"call":{"caller":{"number":"415"},"id":" 7 "},"legs":[{"to":"a"},{"to":"b"}],
            "name":{"first":"Ada","last":"L"},"alt":"","x":1}"#;
        let whole: Value = serde_json::from_str(record).unwrap();
        let rules = [
            source(serde_json::json!({"path": "call.caller.number"})),
            source(serde_json::json!({"first_of": ["alt", "call.id"]})),
            source(serde_json::json!({"join": ["name.first", "name.last"], "separator": " "})),
            source(serde_json::json!({"static": "USD"})),
            source(serde_json::json!({"path": "legs[1].to"})),
            source(serde_json::json!({"path": "nope"})),
        ];
        let with_wildcard = source(serde_json::json!({"join": ["legs[*].to"], "separator": ","}));
        for set in [
            rules.iter().collect::<Vec<_>>(),
            rules.iter().chain([&with_wildcard]).collect(),
        ] {
            let reader = RuleReader::of(set.iter().copied());
            let read = reader.read(record).unwrap().unwrap();
            assert_eq!(
                matches!(read, ReadRecord::Slots(_)),
                set.len() == rules.len(),
                "slots unless a path has [*]"
            );
            for (n, rule) in set.iter().enumerate() {
                assert_eq!(
                    reader.extract(&read, n, rule),
                    rule.extract(&whole),
                    "rule {n}"
                );
            }
        }
    }

    #[test]
    fn crafted_records_read_as_the_whole_record_does() {
        let rules = [
            source(serde_json::json!({"path": "call.caller"})),
            source(serde_json::json!({"path": "a.b"})),
        ];
        let reader = RuleReader::of(&rules);
        // Escaped keys, a key sent twice, a value where an object was expected.
        for record in [
            r#"{"c\u0061ll":{"caller":"415"},"a":{"b":1},"a":2}"#,
            r#"{"call":"x","call":{"caller":null},"a":{"b":[1]}}"#,
        ] {
            let whole: Value = serde_json::from_str(record).unwrap();
            let read = reader.read(record).unwrap().unwrap();
            for (n, rule) in rules.iter().enumerate() {
                assert_eq!(
                    reader.extract(&read, n, rule),
                    rule.extract(&whole),
                    "{record}"
                );
            }
        }
        // Nesting far past serde_json's limit (128): a value a rule reads is refused
        // with serde_json's own error; an unread one is skipped like any other unread
        // value (serde_json skips without recursing). Neither overflows the stack.
        // (Webhook bodies nested that deep are refused at the edge already.)
        let deep = |key: &str| {
            format!(
                r#"{{"a":{{"{key}":{}1{}}}}}"#,
                "[".repeat(100_000),
                "]".repeat(100_000)
            )
        };
        let read_deep = reader.read(&deep("b")).err().map(|e| e.to_string());
        let whole = serde_json::from_str::<Value>(&deep("b"))
            .err()
            .map(|e| e.to_string());
        assert!(read_deep.is_some());
        assert_eq!(read_deep, whole);
        let unread = reader.read(&deep("c")).unwrap().unwrap();
        assert_eq!(reader.extract(&unread, 1, &rules[1]), None);
    }

    #[test]
    fn a_record_that_is_not_an_object_is_none_and_broken_json_an_error() {
        let reader = RuleReader::of([&source(serde_json::json!({"path": "a"}))]);
        assert!(reader.read("[1]").unwrap().is_none());
        assert!(reader.read(r#"{"a":"#).is_err());
    }
}
