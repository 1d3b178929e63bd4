//! E.164 phone numbers. The only way to get an `E164` is to parse one, so a value of
//! this type is always a valid, normalised number.

use std::fmt;

use phonenumber::country::Id as Region;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PhoneError {
    #[error("{value:?} is not a phone number")]
    Unparseable { value: String },
    #[error("{value:?} is not a valid number in region {region}")]
    Invalid { value: String, region: String },
    #[error("{region:?} is not an ISO 3166 region code")]
    UnknownRegion { region: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164(String);

/// Turns a region code from configuration ("US") into the parser's region id.
pub fn region(code: &str) -> Result<Region, PhoneError> {
    code.parse().map_err(|_| PhoneError::UnknownRegion {
        region: code.to_owned(),
    })
}

impl E164 {
    /// Parses what partners send: national formats of `default_region`, `+` forms,
    /// `tel:` URIs, punctuation, and extensions (which are dropped: a call is to the
    /// line, not the extension).
    ///
    /// Remembered per thread (see [`remembered`]): validating against the numbering
    /// plan is over half of mapping a record (benches/README.md), and the tracking
    /// numbers partners send repeat on most calls.
    pub fn parse(input: &str, default_region: Region) -> Result<Self, PhoneError> {
        remembered(input, default_region, Self::parse_uncached)
    }

    /// [`E164::parse`] without the per-thread memory.
    pub fn parse_uncached(input: &str, default_region: Region) -> Result<Self, PhoneError> {
        let number = read(input, default_region).ok_or_else(|| PhoneError::Unparseable {
            value: input.to_owned(),
        })?;
        if !phonenumber::is_valid(&number) {
            return Err(PhoneError::Invalid {
                value: input.to_owned(),
                region: format!("{default_region:?}"),
            });
        }
        Ok(Self(
            number.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    /// The E.164 form of a number without checking that it is a valid number for its
    /// region: what the edge keys a record by. Validation was a large share of the
    /// edge's CPU (benches/README.md); a number this reads but [`E164::parse`] refuses
    /// only makes a record the processor dead-letters or re-keys, never a wrong call.
    pub fn normalize_for_key(input: &str, default_region: Region) -> Option<String> {
        let number = read(input, default_region)?;
        Some(number.format().mode(phonenumber::Mode::E164).to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Inputs longer than this are parsed every time, so the memory's size is bounded in
/// bytes, not only in entries (a hostile record cannot fill it with long text).
const REMEMBERED_INPUT_BYTES: usize = 40;
/// Entries per thread before the memory starts over: about 8192 × (40 + 20 + ~60)
/// bytes, under 1 MiB per thread.
const REMEMBERED_ENTRIES: usize = 8192;

/// A thread's remembered answers: by region, then by input as sent (looked up by
/// `&str`, so a hit allocates nothing but the answer's copy).
type Remembered = std::collections::HashMap<
    Region,
    std::collections::HashMap<Box<str>, Result<E164, PhoneError>>,
>;

thread_local! {
    static PARSED: std::cell::RefCell<Remembered> = std::cell::RefCell::new(Remembered::new());
}

/// How many answers this thread remembers (for the tests).
#[cfg(test)]
fn remembered_len() -> usize {
    PARSED.with(|memory| memory.borrow().values().map(|m| m.len()).sum())
}

/// `parse(input, region)`, answered from this thread's memory of earlier answers
/// when it has one. The answer is a pure function of its inputs (the numbering plan
/// is compiled into the binary), so remembering it changes nothing but the time.
/// When full, the memory starts over rather than tracking recency: simple, bounded,
/// and the numbers that repeat (tracking numbers) come back at once.
fn remembered(
    input: &str,
    region: Region,
    parse: impl FnOnce(&str, Region) -> Result<E164, PhoneError>,
) -> Result<E164, PhoneError> {
    if input.len() > REMEMBERED_INPUT_BYTES {
        return parse(input, region);
    }
    let known = PARSED.with(|memory| {
        memory
            .borrow()
            .get(&region)
            .and_then(|answers| answers.get(input).cloned())
    });
    if let Some(known) = known {
        return known;
    }
    let answer = parse(input, region);
    PARSED.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.values().map(|m| m.len()).sum::<usize>() >= REMEMBERED_ENTRIES {
            memory.clear();
        }
        memory
            .entry(region)
            .or_default()
            .insert(Box::from(input), answer.clone());
    });
    answer
}

/// The number in what a partner sent, without judging it: trimmed, `tel:` dropped.
fn read(input: &str, default_region: Region) -> Option<phonenumber::PhoneNumber> {
    let ascii = crate::digits::ascii_digits(input);
    let trimmed = ascii.trim();
    let text = trimmed
        .strip_prefix("tel:")
        .or_else(|| trimmed.strip_prefix("TEL:"))
        .unwrap_or(trimmed);
    phonenumber::parse(Some(default_region), text).ok()
}

impl TryFrom<String> for E164 {
    type Error = PhoneError;
    /// Accepts only text already in E.164 form (what we wrote ourselves).
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let parsed = Self::parse(&value, Region::US)?;
        if parsed.0 == value {
            Ok(parsed)
        } else {
            Err(PhoneError::Unparseable { value })
        }
    }
}

impl From<E164> for String {
    fn from(value: E164) -> Self {
        value.0
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalises_the_formats_in_the_samples() {
        for raw in [
            "(415) 555-2671",
            "415-555-2671",
            "4155552671",
            "+1 415 555 2671",
            "tel:+1-415-555-2671",
            "415.555.2671 ext. 12",
        ] {
            assert_eq!(
                E164::parse(raw, Region::US).unwrap().as_str(),
                "+14155552671",
                "{raw}"
            );
        }
        assert_eq!(
            E164::parse("18885550123", Region::US).unwrap().as_str(),
            "+18885550123"
        );
    }

    #[test]
    fn the_memory_stays_bounded_and_skips_long_input() {
        for n in 0..(REMEMBERED_ENTRIES as u64 + 10) {
            let _ = E164::parse(&format!("415555{n:04}"), Region::US);
        }
        let size = remembered_len();
        assert!(size <= REMEMBERED_ENTRIES, "{size} entries");
        let long = format!("{}4155552671", " ".repeat(REMEMBERED_INPUT_BYTES));
        let before = remembered_len();
        assert_eq!(
            E164::parse(&long, Region::US).unwrap().as_str(),
            "+14155552671"
        );
        assert_eq!(remembered_len(), before);
    }

    #[test]
    fn rejects_non_numbers() {
        assert!(E164::parse("not provided", Region::US).is_err());
        assert!(E164::parse("", Region::US).is_err());
        assert!(E164::parse("123", Region::US).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,30}") {
            let _ = E164::parse(&text, Region::US);
        }

        /// The edge's key and the processor's caller agree on every number the
        /// processor accepts, in any of the formats partners send, in several regions.
        #[test]
        fn the_key_form_agrees_with_the_validated_form(
            n in 2_000_000_000_u64..9_999_999_999,
            format in 0..5_usize,
            region in prop::sample::select(vec![Region::US, Region::GB, Region::DE, Region::CA]),
        ) {
            let digits = n.to_string();
            let text = match format {
                0 => digits.clone(),
                1 => format!("({}) {}-{}", &digits[..3], &digits[3..6], &digits[6..]),
                2 => format!("+1 {}.{}.{}", &digits[..3], &digits[3..6], &digits[6..]),
                3 => format!("tel:+1-{digits}"),
                _ => format!("0{digits}"),
            };
            if let Ok(number) = E164::parse(&text, region) {
                prop_assert_eq!(E164::normalize_for_key(&text, region), Some(number.as_str().to_owned()));
            }
        }

        /// The remembered answer is the answer: asked twice (the second from memory),
        /// valid or not, it equals parsing without memory.
        #[test]
        fn remembered_answers_equal_fresh_ones(
            n in 0_u64..99_999_999_999,
            format in 0..4_usize,
            region in prop::sample::select(vec![Region::US, Region::GB, Region::DE]),
        ) {
            let digits = n.to_string();
            let text = match format {
                0 => digits.clone(),
                1 => format!("+{digits}"),
                2 => format!("tel:{digits}"),
                _ => format!("({digits}) x"),
            };
            let fresh = E164::parse_uncached(&text, region);
            prop_assert_eq!(&E164::parse(&text, region), &fresh);
            prop_assert_eq!(&E164::parse(&text, region), &fresh);
        }

        #[test]
        fn normalised_numbers_are_fixed_points(n in 2_000_000_000_u64..9_999_999_999) {
            if let Ok(number) = E164::parse(&n.to_string(), Region::US) {
                let again = E164::parse(number.as_str(), Region::GB).unwrap();
                prop_assert_eq!(again, number);
            }
        }
    }
}
