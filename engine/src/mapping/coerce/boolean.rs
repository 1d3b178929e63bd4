//! Booleans as partners write them: JSON booleans, `1`/`0`, and the words
//! true/false, yes/no, y/n, t/f in any case. Anything else is an error, never a
//! guess.

use super::{scalar_text, CoerceError};

pub fn boolean(value: &serde_json::Value) -> Result<Option<bool>, CoerceError> {
    if let serde_json::Value::Bool(b) = value {
        return Ok(Some(*b));
    }
    let Some(text) = scalar_text(value)? else {
        return Ok(None);
    };
    match text.to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Ok(Some(true)),
        "false" | "f" | "no" | "n" | "0" => Ok(Some(false)),
        _ => Err(CoerceError::new(format!(
            "{text:?} is not a yes/no value (true/false, yes/no, 1/0)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn table_of_supported_forms() {
        for (value, expected) in [
            (json!(true), true),
            (json!(false), false),
            (json!(1), true),
            (json!(0), false),
            (json!("Yes"), true),
            (json!(" n "), false),
            (json!("TRUE"), true),
            (json!("f"), false),
        ] {
            assert_eq!(boolean(&value).unwrap(), Some(expected), "{value}");
        }
        assert_eq!(boolean(&json!("")).unwrap(), None);
        for bad in [json!("maybe"), json!(2), json!("1.5"), json!([true])] {
            assert!(boolean(&bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn round_trips_and_never_panics(b in any::<bool>(), text in ".{0,12}") {
            prop_assert_eq!(boolean(&json!(b)).unwrap(), Some(b));
            prop_assert_eq!(boolean(&json!(b.to_string())).unwrap(), Some(b));
            let _ = boolean(&json!(text));
        }
    }
}
