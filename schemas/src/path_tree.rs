//! Parsing a partner record into only the parts a mapping's paths can reach.
//!
//! Building a whole `serde_json::Value` tree (a `BTreeMap` insert and a `String` per
//! key, every value allocated) was the largest cost of mapping a record after the
//! phone numbers. A [`PathTree`] holds the keys of every path of a mapping; parsing
//! through it skips every other key's value (still checked to be valid JSON, so a
//! broken record is refused as before) without allocating it. The tree it builds
//! answers every one of those paths exactly as the whole record would: a path only
//! ever steps into keys and items the tree kept.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::path::{FieldPath, Segment};

/// The keys and items a set of paths steps through. A path's last step keeps its
/// whole value (a rule may read an object or an array, and quotes what it read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathTree {
    whole: bool,
    keys: Vec<(String, PathTree)>,
    /// What every item of an array keeps: the union of the paths' `[n]` and `[*]`
    /// steps. Items are all kept, so an index still finds its item.
    items: Option<Box<PathTree>>,
}

impl PathTree {
    /// A tree that keeps the whole record.
    pub fn whole() -> Self {
        Self {
            whole: true,
            ..Self::default()
        }
    }

    /// The tree of `paths`.
    pub fn of<'p>(paths: impl IntoIterator<Item = &'p FieldPath>) -> Self {
        let mut tree = Self::default();
        for path in paths {
            tree.add(path.segments());
        }
        tree
    }

    fn add(&mut self, segments: &[Segment]) {
        if self.whole {
            return;
        }
        let Some((first, rest)) = segments.split_first() else {
            *self = Self::whole();
            return;
        };
        let child = match first {
            Segment::Key(key) => match self.keys.iter().position(|(k, _)| k == key) {
                Some(at) => &mut self.keys[at].1,
                None => {
                    self.keys.push((key.clone(), Self::default()));
                    &mut self.keys.last_mut().expect("just pushed").1
                }
            },
            Segment::Index(_) | Segment::Wildcard => self.items.get_or_insert_with(Box::default),
        };
        child.add(rest);
    }

    /// `text` parsed as JSON, keeping only what the tree's paths reach; the same
    /// errors as `serde_json::from_str` for text that is not JSON.
    pub fn parse(&self, text: &str) -> serde_json::Result<Value> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let value = self.deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(value)
    }

    fn child(&self, key: &str) -> Option<&PathTree> {
        self.keys.iter().find(|(k, _)| k == key).map(|(_, t)| t)
    }
}

impl<'de> DeserializeSeed<'de> for &PathTree {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        if self.whole {
            return serde::Deserialize::deserialize(deserializer);
        }
        deserializer.deserialize_any(self)
    }
}

/// Which child of the tree an object's key is, read without allocating the key.
struct KeySeed<'t>(&'t PathTree);

impl<'de, 't> DeserializeSeed<'de> for KeySeed<'t> {
    type Value = Option<(String, &'t PathTree)>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'t> Visitor<'_> for KeySeed<'t> {
    type Value = Option<(String, &'t PathTree)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.child(key).map(|tree| (key.to_owned(), tree)))
    }
}

// The same values `serde_json::Value`'s own visitor builds, for the parts kept.
impl<'de> Visitor<'de> for &PathTree {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        match &self.items {
            Some(tree) => {
                while let Some(item) = seq.next_element_seed(&**tree)? {
                    items.push(item);
                }
            }
            // No path steps into this array: nothing in it can be read.
            None => while seq.next_element::<IgnoredAny>()?.is_some() {},
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed(self))? {
            match key {
                Some((key, tree)) => {
                    let value = map.next_value_seed(tree)?;
                    object.insert(key, value);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tree(paths: &[&str]) -> PathTree {
        let parsed: Vec<FieldPath> = paths.iter().map(|p| FieldPath::parse(p).unwrap()).collect();
        PathTree::of(&parsed)
    }

    #[test]
    fn keeps_what_the_paths_reach_and_drops_the_rest() {
        let record = r#"{"call":{"caller":{"number":"4155550100","name":"x"},"id":7},
            "legs":[{"to":"1","from":"2"},{"to":"3"}],"tags":["a","b"],"noise":{"deep":[1,2,3]}}"#;
        let kept = tree(&["call.caller.number", "legs[1].to", "tags"])
            .parse(record)
            .unwrap();
        assert_eq!(
            kept,
            serde_json::json!({"call":{"caller":{"number":"4155550100"}},
                "legs":[{"to":"1"},{"to":"3"}],"tags":["a","b"]})
        );
    }

    #[test]
    fn refuses_what_is_not_json_where_it_is_skipped_too() {
        let only = tree(&["a"]);
        for broken in [
            r#"{"a":1,"b":[1,}"#,
            r#"{"a":1,"b":"\x"}"#,
            r#"{"a":1} x"#,
            r#"{"a":1,"b":01}"#,
        ] {
            let ours = only.parse(broken).unwrap_err().to_string();
            let theirs = serde_json::from_str::<Value>(broken)
                .unwrap_err()
                .to_string();
            assert_eq!(ours, theirs, "{broken}");
        }
    }

    fn path_text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                "[a-c]{1,2}".prop_map(|k| format!(".{k}")),
                (0usize..3).prop_map(|i| format!("[{i}]")),
                Just("[*]".to_owned()),
            ],
            1..4,
        )
        .prop_map(|steps| {
            let joined = steps.concat();
            joined
                .strip_prefix('.')
                .map(str::to_owned)
                .unwrap_or(joined)
        })
        .prop_filter("a path starts with a key", |p| !p.starts_with('['))
    }

    proptest! {
        /// Every path finds in the kept tree what it finds in the whole record.
        #[test]
        fn every_path_reads_the_same_as_in_the_whole_record(
            record in crate::test_json::json_value("[a-c]{1,2}"),
            paths in prop::collection::vec(path_text(), 1..5),
        ) {
            let text = record.to_string();
            let parsed: Vec<FieldPath> = paths.iter().map(|p| FieldPath::parse(p).unwrap()).collect();
            let kept = PathTree::of(&parsed).parse(&text).unwrap();
            let whole: Value = serde_json::from_str(&text).unwrap();
            for path in &parsed {
                prop_assert_eq!(path.lookup(&kept), path.lookup(&whole), "{}", path);
            }
        }
    }
}
