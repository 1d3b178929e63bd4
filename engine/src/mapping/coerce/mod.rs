//! Coercion of partner values into canonical types. Each function takes the JSON
//! value found at the rule's path and returns the typed value, `Ok(None)` when the
//! partner sent nothing (null or blank), or an error saying what is wrong with it.
//! A value that cannot be coerced is never turned into a zero or "now".

mod attribute;
mod boolean;
mod duration;
mod money;
mod text;
mod timestamp;
mod timestamp_words;

pub use attribute::attribute;
pub use boolean::boolean;
pub use duration::duration_seconds;
pub use money::{money, Amount};
pub use text::{caller, is_withheld_word, phone, tags, text, zip, Caller, PostalCode};
pub use timestamp::{timestamp, Stamped};

/// What is wrong with one value; the mapping adds field, rule and path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CoerceError(pub String);

impl CoerceError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Scalar text of a value, `None` for null/blank; objects and arrays are errors.
/// Numbers keep the text serde_json prints for them (shortest round-trip form).
pub(crate) fn scalar_text(value: &serde_json::Value) -> Result<Option<String>, CoerceError> {
    match value {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => {
            let trimmed = s.trim();
            Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
        }
        serde_json::Value::Number(n) => Ok(Some(n.to_string())),
        serde_json::Value::Bool(b) => Ok(Some(b.to_string())),
        serde_json::Value::Array(_) => {
            Err(CoerceError::new("expected a single value, got an array"))
        }
        serde_json::Value::Object(_) => {
            Err(CoerceError::new("expected a single value, got an object"))
        }
    }
}

/// Spreadsheets turn integers into floats: `60601.0`, `4155552671.0`.
pub(crate) fn strip_spreadsheet_decimal(text: &str) -> &str {
    match text.split_once('.') {
        Some((whole, fraction))
            if !whole.is_empty()
                && whole.bytes().all(|b| b.is_ascii_digit())
                && !fraction.is_empty()
                && fraction.bytes().all(|b| b == b'0') =>
        {
            whole
        }
        _ => text,
    }
}

/// What a value would read as in the comma convention (for warnings about `1.234`).
pub fn grouped_reading(value: &serde_json::Value) -> Option<String> {
    let text = scalar_text(value).ok()??;
    money(value, schemas::integration::DecimalSeparator::Comma, "EUR")
        .ok()
        .flatten()
        .map(|a| a.money.to_string())
        .or(Some(text))
}

#[cfg(test)]
mod runtime_corpus_test;
#[cfg(test)]
#[path = "timestamp_corpus_test.rs"]
mod timestamp_corpus_test;
