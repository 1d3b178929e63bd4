//! Reading a mapping's paths straight out of a record's text, one value per path,
//! without building the record: no object is made for the keys a path only passes
//! through, and every key no path names is skipped unallocated (still checked to be
//! JSON). For paths without `[*]`; rules with one read the whole record
//! ([`crate::rule_reader`]).
//!
//! Each value equals what [`FieldPath::lookup`] finds in the whole record, including
//! for a key sent twice (the last one counts, as in `serde_json::Value`).

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::path::{FieldPath, Segment};

/// The paths of a mapping, compiled into one walk over a record.
#[derive(Debug, Clone, Default)]
pub struct PathSlots {
    root: Node,
    count: usize,
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// Paths that end here, and paths that go on below a value read here: the
    /// value is read once, whole, and the deeper ones are looked up in it.
    here: Vec<(usize, Vec<Segment>)>,
    keys: Vec<(String, Node)>,
    items: Vec<(usize, Node)>,
    /// Every slot at or below this node: cleared when its key is sent again.
    below: Vec<usize>,
}

impl PathSlots {
    /// The slots of `paths`, in their order; `None` when a path has `[*]`.
    pub fn of(paths: &[&FieldPath]) -> Option<Self> {
        if paths.iter().any(|p| p.has_wildcard()) {
            return None;
        }
        let mut root = Node::default();
        for (slot, path) in paths.iter().enumerate() {
            root.add(slot, path.segments());
        }
        root.settle();
        Some(Self {
            root,
            count: paths.len(),
        })
    }

    /// The value of each path in `text`, in the order the paths were given; `None`
    /// for the record itself when it is not a JSON object. The same errors as
    /// `serde_json::from_str` for text that is not JSON.
    pub fn read(&self, text: &str) -> serde_json::Result<Option<Vec<Option<Value>>>> {
        let mut values = vec![None; self.count];
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let object = Root {
            node: &self.root,
            values: &mut values,
        }
        .deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(object.then_some(values))
    }
}

impl Node {
    fn add(&mut self, slot: usize, segments: &[Segment]) {
        // A path at or below a value already read whole is looked up in that value.
        if let Some((_, rest)) = self.here.first() {
            if rest.is_empty() {
                self.here.push((slot, segments.to_vec()));
                return;
            }
        }
        match segments.split_first() {
            None => {
                // Paths that went deeper are now read from this value instead.
                let deeper = self.take_deeper(&mut Vec::new());
                self.here.push((slot, Vec::new()));
                self.here.extend(deeper);
            }
            Some((Segment::Key(key), rest)) => {
                let at = match self.keys.iter().position(|(k, _)| k == key) {
                    Some(at) => at,
                    None => {
                        self.keys.push((key.clone(), Node::default()));
                        self.keys.len() - 1
                    }
                };
                self.keys[at].1.add(slot, rest);
            }
            Some((Segment::Index(index), rest)) => {
                let at = match self.items.iter().position(|(i, _)| i == index) {
                    Some(at) => at,
                    None => {
                        self.items.push((*index, Node::default()));
                        self.items.len() - 1
                    }
                };
                self.items[at].1.add(slot, rest);
            }
            Some((Segment::Wildcard, _)) => unreachable!("refused by PathSlots::of"),
        }
    }

    /// Every path below this node with the segments from here, emptying the node.
    fn take_deeper(&mut self, prefix: &mut Vec<Segment>) -> Vec<(usize, Vec<Segment>)> {
        let mut found: Vec<(usize, Vec<Segment>)> = self
            .here
            .drain(..)
            .map(|(slot, rest)| (slot, prefix.iter().cloned().chain(rest).collect()))
            .collect();
        for (key, mut child) in std::mem::take(&mut self.keys) {
            prefix.push(Segment::Key(key));
            found.extend(child.take_deeper(prefix));
            prefix.pop();
        }
        for (index, mut child) in std::mem::take(&mut self.items) {
            prefix.push(Segment::Index(index));
            found.extend(child.take_deeper(prefix));
            prefix.pop();
        }
        found
    }

    fn settle(&mut self) -> &[usize] {
        let mut below: Vec<usize> = self.here.iter().map(|(slot, _)| *slot).collect();
        let children = self.keys.iter_mut().map(|(_, child)| child);
        for child in children.chain(self.items.iter_mut().map(|(_, child)| child)) {
            below.extend_from_slice(child.settle());
        }
        self.below = below;
        &self.below
    }
}

/// The record itself: `true` when it is an object.
struct Root<'n, 'v> {
    node: &'n Node,
    values: &'v mut Vec<Option<Value>>,
}

impl<'de> DeserializeSeed<'de> for Root<'_, '_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(Walk {
            node: self.node,
            values: self.values,
            root: true,
        })
    }
}

/// One value of the record at a node of the paths.
struct Walk<'n, 'v> {
    node: &'n Node,
    values: &'v mut Vec<Option<Value>>,
    root: bool,
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        if self.node.here.is_empty() {
            return deserializer.deserialize_any(self);
        }
        // A value some path ends at: read it whole, then every path at or below it.
        let value: Value = serde::Deserialize::deserialize(deserializer)?;
        let object = value.is_object();
        // The first path ends here (see `Node::add`); the others look inside.
        let mut here = self.node.here.iter();
        let first = here.next().map(|(slot, _)| *slot);
        for (slot, rest) in here {
            self.values[*slot] = rest
                .iter()
                .try_fold(&value, |current, segment| match segment {
                    Segment::Key(key) => current.get(key.as_str()),
                    Segment::Index(index) => current.get(*index),
                    Segment::Wildcard => None,
                })
                .cloned();
        }
        if let Some(slot) = first {
            self.values[slot] = Some(value);
        }
        Ok(object)
    }
}

/// Which child an object's key is, read without allocating the key.
struct Key<'n>(&'n Node);

impl<'de, 'n> DeserializeSeed<'de> for Key<'n> {
    type Value = Option<&'n Node>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'n> Visitor<'_> for Key<'n> {
    type Value = Option<&'n Node>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.keys.iter().find(|(k, _)| k == key).map(|(_, n)| n))
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    // A scalar where a path wanted to go deeper: nothing there for it.
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut index = 0;
        loop {
            let child = self.node.items.iter().find(|(i, _)| *i == index);
            let more = match child {
                Some((_, node)) => seq
                    .next_element_seed(Walk {
                        node,
                        values: &mut *self.values,
                        root: false,
                    })?
                    .is_some(),
                None => seq.next_element::<IgnoredAny>()?.is_some(),
            };
            if !more {
                return Ok(false);
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while let Some(child) = map.next_key_seed(Key(self.node))? {
            match child {
                Some(node) => {
                    // A key sent again replaces what it held, as in a `Value`.
                    for slot in &node.below {
                        self.values[*slot] = None;
                    }
                    map.next_value_seed(Walk {
                        node,
                        values: &mut *self.values,
                        root: false,
                    })?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Number;

    fn slots(paths: &[&str]) -> (Vec<FieldPath>, PathSlots) {
        let parsed: Vec<FieldPath> = paths.iter().map(|p| FieldPath::parse(p).unwrap()).collect();
        let refs: Vec<&FieldPath> = parsed.iter().collect();
        let slots = PathSlots::of(&refs).unwrap();
        (parsed, slots)
    }

    fn whole_lookups(paths: &[FieldPath], text: &str) -> Vec<Option<Value>> {
        let whole: Value = serde_json::from_str(text).unwrap();
        paths
            .iter()
            .map(|p| p.lookup(&whole).map(std::borrow::Cow::into_owned))
            .collect()
    }

    #[test]
    fn reads_each_path_and_nothing_else() {
        let (_, slots) = slots(&["call.caller.number", "legs[1].to", "tags", "call", "nope.x"]);
        let text = r#"{"call":{"caller":{"number":"415"},"id":7},"legs":[{"to":"1"},{"to":"3"}],"tags":["a"],"noise":[1]}"#;
        let values = slots.read(text).unwrap().unwrap();
        assert_eq!(
            values,
            [
                Some(serde_json::json!("415")),
                Some(serde_json::json!("3")),
                Some(serde_json::json!(["a"])),
                Some(serde_json::json!({"caller":{"number":"415"},"id":7})),
                None,
            ]
        );
    }

    #[test]
    fn a_key_sent_twice_counts_once_the_last_time() {
        let (paths, slots) = slots(&["call.a", "call.b", "x"]);
        let text = r#"{"call":{"a":1},"x":1,"call":{"b":2},"x":null}"#;
        assert_eq!(
            slots.read(text).unwrap().unwrap(),
            whole_lookups(&paths, text)
        );
    }

    #[test]
    fn a_record_that_is_not_an_object_has_no_values() {
        let (_, slots) = slots(&["a"]);
        for text in ["[1]", "\"a\"", "3", "null"] {
            assert_eq!(slots.read(text).unwrap(), None, "{text}");
        }
        let broken = r#"{"a":1,"b":[1,}"#;
        assert_eq!(
            slots.read(broken).unwrap_err().to_string(),
            serde_json::from_str::<Value>(broken)
                .unwrap_err()
                .to_string()
        );
    }

    #[test]
    fn paths_with_a_wildcard_are_left_to_the_tree() {
        let path = FieldPath::parse("legs[*].to").unwrap();
        assert!(PathSlots::of(&[&path]).is_none());
    }

    /// Values nested up to four deep with two object keys only, so paths often find
    /// what they name and one path often ends where another goes on.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| Value::Number(n.into())),
            any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "[a-c ]{0,3}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map("[ab]", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn path_text() -> impl Strategy<Value = String> {
        (
            "[ab]",
            prop::collection::vec(
                prop_oneof![
                    "[ab]".prop_map(|k| format!(".{k}")),
                    (0usize..2).prop_map(|i| format!("[{i}]")),
                ],
                0..3,
            ),
        )
            .prop_map(|(first, rest)| format!("{first}{}", rest.concat()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Every path reads what it finds in the whole record, whatever the other
        /// paths (one may end where another goes on, in either order).
        #[test]
        fn every_path_reads_the_same_as_in_the_whole_record(
            record in json_value(),
            paths in prop::collection::vec(path_text(), 1..6),
        ) {
            let text = record.to_string();
            let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
            let (parsed, slots) = slots(&refs);
            let values = slots.read(&text).unwrap();
            if record.is_object() {
                prop_assert_eq!(values.unwrap(), whole_lookups(&parsed, &text));
            } else {
                prop_assert_eq!(values, None);
            }
        }
    }
}
