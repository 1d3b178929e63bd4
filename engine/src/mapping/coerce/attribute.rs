//! Custom attributes: a partner value as its declared type, in canonical text (see
//! `schemas::attribute`). A number stays an exact decimal: never through a float
//! when the partner wrote text, and JSON numbers keep the digits serde_json read.

use chrono::SecondsFormat;
use chrono_tz::Tz;
use schemas::attribute::{AttributeType, MAX_VALUE_BYTES};
use schemas::integration::DecimalSeparator;

use super::{boolean, scalar_text, timestamp, CoerceError};

/// Most digits a number attribute keeps (whole and fraction together).
const MAX_DIGITS: usize = 38;

/// The value as `kind`'s canonical text; `Ok(None)` when the partner sent nothing.
pub fn attribute(
    value: &serde_json::Value,
    kind: AttributeType,
    zone: Tz,
    format: Option<&str>,
    separator: DecimalSeparator,
) -> Result<Option<String>, CoerceError> {
    let text = match kind {
        AttributeType::String => scalar_text(value)?,
        AttributeType::Number => number(value, separator)?,
        AttributeType::Boolean => boolean(value)?.map(|b| b.to_string()),
        AttributeType::Time => timestamp(value, zone, format)?
            .map(|s| s.instant.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
    };
    match text {
        Some(text) if text.len() > MAX_VALUE_BYTES => Err(CoerceError::new(format!(
            "value is {} bytes long; at most {MAX_VALUE_BYTES} are kept",
            text.len()
        ))),
        text => Ok(text),
    }
}

/// An exact decimal in canonical form: `-` when negative, no leading zeros, no
/// trailing fraction zeros, `.` as the decimal point (`"1.234,50"` with decimal
/// commas is `1234.5`). Thousands separators are taken only in whole groups of three.
pub fn number(
    value: &serde_json::Value,
    separator: DecimalSeparator,
) -> Result<Option<String>, CoerceError> {
    let not_a_number = |text: &str| CoerceError::new(format!("{text:?} is not a number"));
    let (text, separator) = match value {
        serde_json::Value::Bool(_) => {
            return Err(CoerceError::new("expected a number, got true or false"))
        }
        // JSON numbers always use `.`; an exponent (`1e-7`) is spelt out.
        serde_json::Value::Number(n) => {
            let text = n.to_string();
            if text.contains(['e', 'E']) {
                let float = n.as_f64().ok_or_else(|| not_a_number(&text))?;
                (format!("{float}"), DecimalSeparator::Dot)
            } else {
                (text, DecimalSeparator::Dot)
            }
        }
        other => match scalar_text(other)? {
            Some(text) => (text, separator),
            None => return Ok(None),
        },
    };
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(&text)),
    };
    let (point, group) = match separator {
        DecimalSeparator::Dot => ('.', &[','][..]),
        DecimalSeparator::Comma => (',', &['.', ' ', '\u{a0}', '\u{202f}'][..]),
    };
    let (whole, fraction) = unsigned.split_once(point).unwrap_or((unsigned, ""));
    let whole = ungrouped(whole, group).ok_or_else(|| not_a_number(&text))?;
    if (whole.is_empty() && fraction.is_empty())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || (unsigned.contains(point) && fraction.is_empty())
    {
        return Err(not_a_number(&text));
    }
    let whole = whole.trim_start_matches('0');
    let fraction = fraction.trim_end_matches('0');
    if whole.len() + fraction.len() > MAX_DIGITS {
        return Err(CoerceError::new(format!(
            "{text:?} has more than {MAX_DIGITS} digits"
        )));
    }
    let mut canonical = String::with_capacity(whole.len() + fraction.len() + 3);
    if negative && !(whole.is_empty() && fraction.is_empty()) {
        canonical.push('-');
    }
    canonical.push_str(if whole.is_empty() { "0" } else { whole });
    if !fraction.is_empty() {
        canonical.push('.');
        canonical.push_str(fraction);
    }
    Ok(Some(canonical))
}

/// The digits of a whole part, without its thousands separators: `1,234,567` →
/// `1234567`. `None` unless every group after the first has three digits (`1,23`
/// is not a number under the `.` convention).
fn ungrouped(whole: &str, separators: &[char]) -> Option<String> {
    let mut groups = whole.split(|c| separators.contains(&c));
    let first = groups.next().unwrap_or("");
    let mut digits = first.to_owned();
    for group in groups {
        if group.len() != 3 || first.is_empty() || first.len() > 3 {
            return None;
        }
        digits.push_str(group);
    }
    digits.bytes().all(|b| b.is_ascii_digit()).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn dot(value: serde_json::Value) -> Result<Option<String>, CoerceError> {
        number(&value, DecimalSeparator::Dot)
    }

    #[test]
    fn numbers_are_exact_canonical_decimals() {
        let cases = [
            (json!(12.5), "12.5"),
            (json!(-3), "-3"),
            (json!("0012.5000"), "12.5"),
            (json!("+7"), "7"),
            (json!("-0.0"), "0"),
            (json!(".5"), "0.5"),
            (json!("1,234,567.25"), "1234567.25"),
            (json!(1e-7), "0.0000001"),
            (
                json!("0.1000000000000000055511151231257827"),
                "0.1000000000000000055511151231257827",
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(
                dot(value.clone()).unwrap().as_deref(),
                Some(expected),
                "{value}"
            );
        }
        assert_eq!(dot(json!(null)).unwrap(), None);
        assert_eq!(dot(json!("  ")).unwrap(), None);
    }

    #[test]
    fn decimal_commas_read_as_the_integration_says() {
        let comma = |v: serde_json::Value| number(&v, DecimalSeparator::Comma).unwrap();
        assert_eq!(comma(json!("1.234,50")).as_deref(), Some("1234.5"));
        assert_eq!(comma(json!("1 234,5")).as_deref(), Some("1234.5"));
        assert_eq!(comma(json!("0,25")).as_deref(), Some("0.25"));
        // A JSON number is JSON's, whatever the partner writes in text.
        assert_eq!(comma(json!(2.5)).as_deref(), Some("2.5"));
    }

    #[test]
    fn what_is_not_a_number_says_so() {
        for bad in [
            json!("12a"),
            json!("1,23"),
            json!("1.2.3"),
            json!("5."),
            json!("-"),
            json!("1e5"),
            json!(true),
            json!([1]),
            json!("NaN"),
            json!("9".repeat(39)),
        ] {
            assert!(dot(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_type_has_its_canonical_text() {
        let zone: Tz = "America/New_York".parse().unwrap();
        let read = |v: serde_json::Value, kind| {
            attribute(&v, kind, zone, None, DecimalSeparator::Dot).unwrap()
        };
        assert_eq!(
            read(json!(" https://r.example/a.mp3 "), AttributeType::String).as_deref(),
            Some("https://r.example/a.mp3")
        );
        assert_eq!(
            read(json!(42), AttributeType::String).as_deref(),
            Some("42")
        );
        assert_eq!(
            read(json!("Yes"), AttributeType::Boolean).as_deref(),
            Some("true")
        );
        assert_eq!(
            read(json!("2026-12-06 10:00:00"), AttributeType::Time).as_deref(),
            Some("2026-12-06T15:00:00Z")
        );
        assert_eq!(
            read(json!(1765015200123i64), AttributeType::Time).as_deref(),
            Some("2025-12-06T10:00:00.123Z")
        );
        let long = json!("x".repeat(MAX_VALUE_BYTES + 1));
        let error = attribute(
            &long,
            AttributeType::String,
            zone,
            None,
            DecimalSeparator::Dot,
        )
        .unwrap_err();
        assert!(error.0.contains("2049 bytes"), "{error}");
    }

    proptest! {
        #[test]
        fn integers_and_decimals_read_as_themselves(whole in any::<i64>(), fraction in 0u32..10_000) {
            let text = format!("{whole}.{fraction:04}");
            let read = dot(json!(text)).unwrap().unwrap();
            let expected = {
                let f = format!("{fraction:04}");
                let f = f.trim_end_matches('0');
                if f.is_empty() { format!("{whole}") } else { format!("{whole}.{f}") }
            };
            prop_assert_eq!(read, expected);
        }

        #[test]
        fn the_canonical_form_reads_as_itself(text in "[+-]?[0-9]{1,12}(\\.[0-9]{1,12})?") {
            let once = dot(json!(text)).unwrap().unwrap();
            prop_assert_eq!(dot(json!(once.clone())).unwrap().unwrap(), once);
        }

        #[test]
        fn any_text_is_a_number_or_an_error_never_a_panic(text in "\\PC{0,24}") {
            let _ = number(&json!(text), DecimalSeparator::Dot);
            let _ = number(&json!(text), DecimalSeparator::Comma);
        }
    }
}
