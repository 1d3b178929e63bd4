//! Durations in whole seconds: `252`, `252.4`, `"252"`, `"4:12"`, `"00:04:12"`,
//! `"4m 12s"`, `"252s"`, `"1h 2m"`, ISO 8601 `"PT4M12S"`. Negative is an error.
//! Decimal seconds written as text follow the integration's `decimal_separator`
//! (`"252,4"` with `","`).

use schemas::integration::DecimalSeparator;

use super::{scalar_text, CoerceError};

/// A day: longer "calls" are data errors (a timestamp in a duration column).
const MAX_SECONDS: u64 = 86_400;

pub fn duration_seconds(
    value: &serde_json::Value,
    separator: DecimalSeparator,
) -> Result<Option<u32>, CoerceError> {
    let Some(mut text) = scalar_text(value)? else {
        return Ok(None);
    };
    if separator == DecimalSeparator::Comma && value.is_string() {
        // `252,4` is decimal seconds; a `.` is no decimal mark in this convention.
        if text.contains('.')
            && !text.contains(':')
            && text.bytes().any(|b| b.is_ascii_digit())
            && !text.to_ascii_uppercase().starts_with("PT")
        {
            return Err(CoerceError::new(format!(
                "{text:?} reads as decimal seconds with a point, but this integration's decimal_separator is \",\""
            )));
        }
        text = text.replace(',', ".");
    }
    let seconds = parse(&text).ok_or_else(|| {
        CoerceError::new(format!(
            "{text:?} is not a duration (seconds, m:ss, h:mm:ss, 4m 12s or PT4M12S)"
        ))
    })?;
    if seconds > MAX_SECONDS {
        return Err(CoerceError::new(format!(
            "{text:?} is {seconds} seconds, longer than a day"
        )));
    }
    Ok(Some(seconds as u32))
}

fn parse(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.starts_with('-') {
        return None;
    }
    if let Ok(whole) = text.parse::<u64>() {
        return Some(whole);
    }
    if let Ok(float) = text.parse::<f64>() {
        return (float.is_finite() && float >= 0.0).then(|| float.round() as u64);
    }
    if text.contains(':') {
        return clock(text);
    }
    let upper = text.to_ascii_uppercase();
    if let Some(iso) = upper.strip_prefix("PT") {
        return units(iso, &[('H', 3600), ('M', 60), ('S', 1)]);
    }
    units(&upper.replace(' ', ""), &[('H', 3600), ('M', 60), ('S', 1)])
}

/// `m:ss` or `h:mm:ss`; the later parts must be under 60.
fn clock(text: &str) -> Option<u64> {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let numbers: Vec<u64> = parts
        .iter()
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if numbers[1..].iter().any(|n| *n >= 60) {
        return None;
    }
    // Checked: `18446744073709551615:0` must be an error, not an overflow panic.
    numbers
        .iter()
        .try_fold(0_u64, |acc, n| acc.checked_mul(60)?.checked_add(*n))
}

/// `4M12S`, `1H2M`, `252S`: each unit at most once, in order.
fn units(text: &str, order: &[(char, u64)]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    let mut total = 0_u64;
    let mut rest = text;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        let unit = rest[digits..].chars().next()?;
        let position = order[next_unit..].iter().position(|(u, _)| *u == unit)? + next_unit;
        total = total.checked_add(number.checked_mul(order[position].1)?)?;
        next_unit = position + 1;
        rest = &rest[digits + unit.len_utf8()..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOT: DecimalSeparator = DecimalSeparator::Dot;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn table_of_supported_forms() {
        for (value, expected) in [
            (json!(252), 252),
            (json!(252.4), 252),
            (json!("252"), 252),
            (json!("4:12"), 252),
            (json!("0:38"), 38),
            (json!("00:04:12"), 252),
            (json!("12:05"), 725),
            (json!("4m 12s"), 252),
            (json!("252s"), 252),
            (json!("1h 2m"), 3720),
            (json!("PT4M12S"), 252),
            (json!("pt1h"), 3600),
        ] {
            assert_eq!(
                duration_seconds(&value, DOT).unwrap(),
                Some(expected),
                "{value}"
            );
        }
    }

    /// Found by reading the code (issue "Prove it under faults"): the clock form
    /// multiplied without a check, so this value panicked the processor in debug
    /// builds and wrapped to a wrong duration in release.
    #[test]
    fn a_huge_clock_value_is_an_error_not_a_panic() {
        assert!(duration_seconds(&json!("18446744073709551615:0"), DOT).is_err());
        assert!(duration_seconds(&json!("99999999999999999:59:59"), DOT).is_err());
    }

    #[test]
    fn decimal_seconds_follow_the_number_convention() {
        let comma = DecimalSeparator::Comma;
        assert_eq!(duration_seconds(&json!("252,4"), comma).unwrap(), Some(252));
        assert_eq!(duration_seconds(&json!("4:12"), comma).unwrap(), Some(252));
        assert_eq!(
            duration_seconds(&json!(252.4), comma).unwrap(),
            Some(252),
            "JSON numbers"
        );
        assert!(duration_seconds(&json!("252.4"), comma).is_err());
        assert!(
            duration_seconds(&json!("252,4"), DOT).is_err(),
            "never 2524"
        );
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in [
            json!(-5),
            json!("-0:30"),
            json!("4:75"),
            json!("abc"),
            json!("12s 4m"),
            json!("1:2:3:4"),
            json!(100_000),
        ] {
            assert!(duration_seconds(&bad, DOT).is_err(), "{bad}");
        }
        assert_eq!(duration_seconds(&json!(""), DOT).unwrap(), None);
    }

    proptest! {
        #[test]
        fn clock_forms_round_trip(s in 0_u32..86_400) {
            let text = format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
            prop_assert_eq!(duration_seconds(&json!(text), DOT).unwrap(), Some(s));
            let minutes = format!("{}m {}s", s / 60, s % 60);
            prop_assert_eq!(duration_seconds(&json!(minutes), DOT).unwrap(), Some(s));
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,20}") {
            let _ = duration_seconds(&json!(text), DOT);
            let _ = duration_seconds(&json!(text), DecimalSeparator::Comma);
        }
    }
}
