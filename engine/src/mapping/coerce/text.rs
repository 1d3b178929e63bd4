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

/// Most tags kept on a call: a call (and the event that announces it) stays small
/// whatever the partner sends.
const MAX_TAGS: usize = 64;

/// An array of scalars, or one comma-separated string; at most [`MAX_TAGS`].
pub fn tags(value: &serde_json::Value) -> Result<Vec<String>, CoerceError> {
    let tags = tag_list(value)?;
    if tags.len() > MAX_TAGS {
        return Err(CoerceError::new(format!(
            "{} tags; at most {MAX_TAGS} are kept",
            tags.len()
        )));
    }
    Ok(tags)
}

fn tag_list(value: &serde_json::Value) -> Result<Vec<String>, CoerceError> {
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

/// A postal code as read: a US ZIP (five digits), or another country's code kept
/// as written, with a warning saying so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostalCode {
    pub code: String,
    pub warning: Option<String>,
}

/// Five-digit US ZIP: keeps the first five of ZIP+4 (`10001-0003`, `10001 0003`,
/// `100010003`), restores leading zeros that a spreadsheet dropped (`2134` →
/// `02134`), undoes `60601.0`, and drops quotes, labels and punctuation around it
/// (`'94103`, `ZIP: 94103`, `94103.`). Anything else that looks like a postal code
/// (letters and digits, `SW1A 1AA`, `K1A 0B6`, `123456`) is another country's:
/// kept as written, with a warning, and never given a US city or zone.
pub fn zip(value: &serde_json::Value) -> Result<Option<PostalCode>, CoerceError> {
    let Some(text) = scalar_text(value)? else {
        return Ok(None);
    };
    let cleaned = strip_spreadsheet_decimal(&text);
    let trimmed = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let unlabelled = ["zipcode", "zip code", "zip", "postal code"]
        .iter()
        .find_map(|label| {
            trimmed
                .get(..label.len())
                .filter(|head| head.eq_ignore_ascii_case(label))
                .map(|_| {
                    trimmed[label.len()..].trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
                })
        })
        .unwrap_or(trimmed);
    if let Some(five) = us_zip(unlabelled) {
        return Ok(Some(PostalCode {
            code: five,
            warning: None,
        }));
    }
    let digits = unlabelled.bytes().filter(u8::is_ascii_digit).count();
    let postal = (3..=10).contains(&unlabelled.len())
        && digits > 0
        && unlabelled
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-');
    if postal {
        return Ok(Some(PostalCode {
            code: unlabelled.to_owned(),
            warning: Some(format!(
                "zip {text:?} is not a US ZIP code: kept as written, no city, state or zone taken from it"
            )),
        }));
    }
    Err(CoerceError::new(format!("{text:?} is not a postal code")))
}

/// The five-digit ZIP in `text`, if it is a US ZIP in one of the forms above.
fn us_zip(text: &str) -> Option<String> {
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let five = match text.len() {
        // ZIP+4 with a dash or a space.
        10 => match (text.get(..5), text.get(5..6), text.get(6..)) {
            (Some(zip5), Some("-" | " "), Some(plus4)) if all_digits(zip5) && all_digits(plus4) => {
                zip5
            }
            _ => return None,
        },
        // ZIP+4 without one.
        9 if all_digits(text) => &text[..5],
        // No real ZIP loses more than two leading zeros (the lowest is 00501).
        3..=5 if all_digits(text) => text,
        _ => return None,
    };
    Some(format!("{five:0>5}"))
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
            // Issue "Timestamps and ZIPs as real systems write them".
            (json!("100010003"), "10001"),
            (json!(100010003), "10001"),
            (json!("10001 0003"), "10001"),
            (json!("'94103"), "94103"),
            (json!(" \"94103\" "), "94103"),
            (json!("94103."), "94103"),
            (json!("ZIP: 94103"), "94103"),
            (json!("zip code 02134-1234"), "02134"),
        ] {
            let read = zip(&value).unwrap().unwrap();
            assert_eq!(
                (read.code.as_str(), read.warning),
                (expected, None),
                "{value}"
            );
        }
        assert_eq!(zip(&json!("")).unwrap(), None);
        for bad in [
            json!("ABCDE"),
            json!("12"),
            json!("not applicable"),
            json!("++--"),
        ] {
            assert!(zip(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_foreign_postal_code_is_kept_as_written_with_a_warning() {
        for code in ["SW1A 1AA", "K1A 0B6", "1012 AB", "123456", "75008-X"] {
            let read = zip(&json!(code)).unwrap().unwrap();
            assert_eq!(read.code, code);
            let warning = read.warning.unwrap_or_default();
            assert!(warning.contains("not a US ZIP"), "{code}: {warning}");
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
        fn zip_never_panics(text in ".{0,14}") {
            let _ = zip(&json!(text));
        }

        #[test]
        fn five_digit_zips_are_fixed_points(n in 0_u32..100_000) {
            let text = format!("{n:05}");
            prop_assert_eq!(zip(&json!(text.clone())).unwrap().map(|z| z.code), Some(text));
        }
    }
}
