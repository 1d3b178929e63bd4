//! Text-like fields: free text, tags, phone numbers and US ZIP codes.

use phonenumber::country::Id as Region;
use schemas::E164;

use super::{scalar_text, strip_spreadsheet_decimal, CoerceError};

/// Longest text kept for free-text fields; longer values are an error rather than
/// silently cut.
const MAX_TEXT: usize = 1024;

pub fn text(value: &serde_json::Value) -> Result<Option<String>, CoerceError> {
    let text = scalar_text(value)?;
    if let Some(t) = &text {
        if t.len() > MAX_TEXT {
            return Err(CoerceError::new(format!(
                "text is {} bytes long; at most {MAX_TEXT} are kept",
                t.len()
            )));
        }
    }
    Ok(text)
}

/// An array of scalars, or one comma-separated string.
pub fn tags(value: &serde_json::Value) -> Result<Vec<String>, CoerceError> {
    match value {
        serde_json::Value::Array(items) => {
            let mut tags = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match text(item) {
                    Ok(Some(tag)) => tags.push(tag),
                    Ok(None) => {}
                    Err(e) => return Err(CoerceError::new(format!("tag [{i}]: {e}"))),
                }
            }
            Ok(tags)
        }
        other => Ok(text(other)?
            .map(|t| {
                t.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()),
    }
}

pub fn phone(value: &serde_json::Value, region: Region) -> Result<Option<E164>, CoerceError> {
    let Some(text) = scalar_text(value)? else {
        return Ok(None);
    };
    E164::parse(strip_spreadsheet_decimal(&text), region)
        .map(Some)
        .map_err(|e| CoerceError::new(e.to_string()))
}

/// A caller: a number, or the partner's word for a withheld one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Number(E164),
    /// The caller withheld the number ("anonymous", "restricted", ...).
    Withheld,
}

impl Caller {
    pub fn number(&self) -> Option<&E164> {
        match self {
            Caller::Number(number) => Some(number),
            Caller::Withheld => None,
        }
    }
}

impl From<Option<E164>> for Caller {
    fn from(number: Option<E164>) -> Self {
        number.map_or(Caller::Withheld, Caller::Number)
    }
}

/// What carriers and trackers write for a caller who withheld the number, compared
/// in lower case with everything but letters removed ("Anonymous", "PRIVATE
/// NUMBER", "No Caller-ID", "Restricted").
const WITHHELD_WORDS: &[&str] = &[
    "anonymous",
    "restricted",
    "unavailable",
    "private",
    "privatenumber",
    "privatecaller",
    "withheld",
    "numberwithheld",
    "unknown",
    "unknowncaller",
    "blocked",
    "callerblocked",
    "nocallerid",
    "calleridblocked",
    "notavailable",
    "outofarea",
];

/// Whether `text` is a word for a withheld caller (not a malformed number).
pub fn is_withheld_word(text: &str) -> bool {
    let letters: String = text
        .chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    // Only letters (and spaces or punctuation): "anonymous", not "anonymous 415".
    let digits = text.chars().any(|c| c.is_ascii_digit());
    !digits && WITHHELD_WORDS.contains(&letters.as_str())
}

/// The caller field: a phone number, or a withheld caller's word.
pub fn caller(value: &serde_json::Value, region: Region) -> Result<Option<Caller>, CoerceError> {
    let Some(text) = scalar_text(value)? else {
        return Ok(None);
    };
    if is_withheld_word(&text) {
        return Ok(Some(Caller::Withheld));
    }
    E164::parse(strip_spreadsheet_decimal(&text), region)
        .map(|number| Some(Caller::Number(number)))
        .map_err(|e| CoerceError::new(e.to_string()))
}

/// Five-digit US ZIP: keeps the first five of ZIP+4, restores leading zeros that a
/// spreadsheet dropped (`2134` → `02134`), undoes `60601.0`.
pub fn zip(value: &serde_json::Value) -> Result<Option<String>, CoerceError> {
    let Some(text) = scalar_text(value)? else {
        return Ok(None);
    };
    let cleaned = strip_spreadsheet_decimal(&text);
    let five = match cleaned.split_once('-') {
        Some((zip5, plus4)) if plus4.len() == 4 && plus4.bytes().all(|b| b.is_ascii_digit()) => {
            zip5
        }
        _ => cleaned,
    };
    if five.is_empty() || five.len() > 5 || !five.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CoerceError::new(format!("{text:?} is not a US ZIP code")));
    }
    if five.len() < 3 {
        // No real ZIP loses more than two leading zeros (the lowest is 00501).
        return Err(CoerceError::new(format!(
            "{text:?} is too short to be a ZIP code"
        )));
    }
    Ok(Some(format!("{five:0>5}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn zips_from_damaged_spreadsheets() {
        for (value, expected) in [
            (json!("94103"), "94103"),
            (json!("2134"), "02134"),
            (json!(2134), "02134"),
            (json!("60601.0"), "60601"),
            (json!("10001-0003"), "10001"),
        ] {
            assert_eq!(zip(&value).unwrap().as_deref(), Some(expected), "{value}");
        }
        assert_eq!(zip(&json!("")).unwrap(), None);
        for bad in [json!("ABCDE"), json!("123456"), json!("12")] {
            assert!(zip(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones_from_spreadsheets_and_numbers() {
        for value in [
            json!("4155552671.0"),
            json!(4155552671_u64),
            json!("888.555.0100 x 12"),
        ] {
            assert!(phone(&value, Region::US).unwrap().is_some(), "{value}");
        }
        assert!(phone(&json!("not provided"), Region::US).is_err());
    }

    #[test]
    fn tags_from_arrays_and_lists() {
        assert_eq!(
            tags(&json!(["auto", " insurance ", null])).unwrap(),
            ["auto", "insurance"]
        );
        assert_eq!(tags(&json!("a, b,,c")).unwrap(), ["a", "b", "c"]);
        assert!(tags(&json!([{"x": 1}])).is_err());
    }

    proptest! {
        #[test]
        fn zip_never_panics(text in ".{0,12}") {
            let _ = zip(&json!(text));
        }

        #[test]
        fn five_digit_zips_are_fixed_points(n in 0_u32..100_000) {
            let text = format!("{n:05}");
            prop_assert_eq!(zip(&json!(text.clone())).unwrap(), Some(text));
        }
    }
}
