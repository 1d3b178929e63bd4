//! Random JSON values for the property tests of the record readers
//! (`path_tree`, `path_slots`).

use proptest::prelude::*;
use serde_json::{Number, Value};

/// Values nested up to four deep whose object keys match `keys` (a regex): few keys
/// make paths find what they name more often.
pub fn json_value(keys: &'static str) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-c ]{0,3}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 3, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
