//! Custom attributes: named values a mapping keeps beside the canonical fields
//! (Ringba's `recordingUrl`, `publisherSubId`, `tag:User:sub5`, a `gclid`, a consent
//! token). Each has a type the mapping declares; the value is kept as canonical
//! text (a number as an exact decimal, a time as RFC 3339 UTC) so it round-trips
//! through JSON, the processor's state and ClickHouse unchanged.
//!
//! In ClickHouse they are three parallel arrays on `calls` and `calls_by_time`
//! (`attr_keys`, `attr_types`, `attr_values`, sorted by name): see
//! `migrations/0016_call_attributes.sql` for why not `Map`, `Nested` or JSON text.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_repr::{Deserialize_repr, Serialize_repr};

/// Most attributes one integration's mapping defines.
pub const MAX_ATTRIBUTES: usize = 50;
/// Longest attribute name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest value kept, in bytes; a longer one is left out with a warning on the call.
pub const MAX_VALUE_BYTES: usize = 2048;
/// Most bytes (names and values) of one call's attributes; past it, the remaining
/// attributes (by name) are left out with a warning.
pub const MAX_CALL_BYTES: usize = 16 * 1024;

/// What an attribute holds. The numbers are the ClickHouse `Enum8` values of
/// `attr_types`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum AttributeType {
    #[default]
    String,
    /// An exact decimal (never a float): `12.5`, `-3`, `0.000125`.
    Number,
    /// `true` or `false`.
    Boolean,
    /// An instant, kept as RFC 3339 in UTC (`2026-12-06T10:00:00Z`).
    Time,
}

impl AttributeType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Time => "time",
        }
    }
}

/// The ClickHouse form of [`AttributeType`] inside `Array(Enum8(...))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize_repr, Deserialize_repr)]
#[repr(i8)]
pub enum AttributeTypeCode {
    String = 1,
    Number = 2,
    Boolean = 3,
    Time = 4,
}

impl From<AttributeType> for AttributeTypeCode {
    fn from(kind: AttributeType) -> Self {
        match kind {
            AttributeType::String => Self::String,
            AttributeType::Number => Self::Number,
            AttributeType::Boolean => Self::Boolean,
            AttributeType::Time => Self::Time,
        }
    }
}

impl From<AttributeTypeCode> for AttributeType {
    fn from(code: AttributeTypeCode) -> Self {
        match code {
            AttributeTypeCode::String => Self::String,
            AttributeTypeCode::Number => Self::Number,
            AttributeTypeCode::Boolean => Self::Boolean,
            AttributeTypeCode::Time => Self::Time,
        }
    }
}

/// One attribute's value: its type and its canonical text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeValue {
    #[serde(rename = "type")]
    pub kind: AttributeType,
    pub value: String,
}

/// A call's attributes by name (sorted, so the arrays in ClickHouse are too).
pub type Attributes = BTreeMap<String, AttributeValue>;

/// Why a name cannot be an attribute's, if it cannot: 1 to 64 characters of
/// letters, digits and `_ - . :` (Ringba's `tag:User:sub5` is one), starting with a
/// letter or digit. The API names an attribute dimension `attr.NAME`, and a query
/// filter `attr=NAME=VALUE`, so `,` `=` and spaces are out.
pub fn name_problem(name: &str) -> Option<String> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Some(format!("must be 1 to {MAX_NAME_CHARS} characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Some("must start with a letter or a digit".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
    {
        return Some(format!(
            "{bad:?} is not allowed: letters, digits, `_`, `-`, `.` and `:` only"
        ));
    }
    None
}

/// The three parallel arrays of a call's attributes, as ClickHouse keeps them.
pub fn to_arrays(attributes: &Attributes) -> (Vec<String>, Vec<AttributeTypeCode>, Vec<String>) {
    let mut keys = Vec::with_capacity(attributes.len());
    let mut types = Vec::with_capacity(attributes.len());
    let mut values = Vec::with_capacity(attributes.len());
    for (name, value) in attributes {
        keys.push(name.clone());
        types.push(value.kind.into());
        values.push(value.value.clone());
    }
    (keys, types, values)
}

/// The attributes of three parallel arrays; `None` when their lengths differ.
pub fn from_arrays(
    keys: Vec<String>,
    types: Vec<AttributeTypeCode>,
    values: Vec<String>,
) -> Option<Attributes> {
    if keys.len() != types.len() || keys.len() != values.len() {
        return None;
    }
    Some(
        keys.into_iter()
            .zip(types.into_iter().zip(values))
            .map(|(name, (kind, value))| {
                (
                    name,
                    AttributeValue {
                        kind: kind.into(),
                        value,
                    },
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ringba_names_are_names_and_separators_are_not() {
        for good in [
            "recordingUrl",
            "publisherSubId",
            "tag:User:sub5",
            "gclid",
            "a.b-c_d",
        ] {
            assert_eq!(name_problem(good), None, "{good}");
        }
        for bad in ["", "a,b", "a=b", "a b", ":lead", &"x".repeat(65), "naïve"] {
            assert!(name_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn the_json_form_names_type_and_text() {
        let mut attributes = Attributes::new();
        attributes.insert(
            "share".into(),
            AttributeValue {
                kind: AttributeType::Number,
                value: "12.5".into(),
            },
        );
        assert_eq!(
            serde_json::to_string(&attributes).unwrap(),
            r#"{"share":{"type":"number","value":"12.5"}}"#
        );
    }

    proptest! {
        #[test]
        fn arrays_round_trip(entries in proptest::collection::btree_map(
            "[a-z]{1,8}", (0u8..4, "\\PC{0,12}"), 0..8,
        )) {
            let attributes: Attributes = entries
                .into_iter()
                .map(|(name, (kind, value))| {
                    let kind = [AttributeType::String, AttributeType::Number, AttributeType::Boolean, AttributeType::Time][kind as usize];
                    (name, AttributeValue { kind, value })
                })
                .collect();
            let (keys, types, values) = to_arrays(&attributes);
            prop_assert_eq!(from_arrays(keys, types, values), Some(attributes));
        }
    }

    #[test]
    fn arrays_of_different_lengths_are_refused() {
        assert_eq!(
            from_arrays(vec!["a".into()], vec![], vec!["1".into()]),
            None
        );
    }
}
