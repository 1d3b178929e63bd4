//! Durations in whole seconds: `252`, `252.4`, `"252"`, `"4:12"`, `"00:04:12"`,
//! `"0:04:12.500000"`, `"4m 12s"`, `"252s"`, `"1h 2m"`, `"2m5.5s"`, ISO 8601
//! `"PT4M12S"`, `"PT2M5.5S"`, `"P0D"`, words (`"2 minutes and 5.50 seconds"`,
//! `"1 hour, 1 minute"`). Fractions round to the nearest second, half away from
//! zero. Negative is an error.
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
    let millis = if text.contains(':') {
        clock(text)?
    } else {
        let upper = text.to_ascii_uppercase();
        match upper.strip_prefix('P') {
            // ISO 8601: days before the `T`, hours, minutes and seconds after
            // (`P0D`, `PT2M5.5S`, `P1DT2H`); years and months have no fixed length.
            Some(iso) => {
                let (days, time) = iso.split_once('T').unwrap_or((iso, ""));
                let days = if days.is_empty() {
                    0
                } else {
                    units(days, &[('D', 86_400)])?
                };
                let time = if time.is_empty() {
                    0
                } else {
                    units(time, HMS)?
                };
                days.checked_add(time)?
            }
            None => units(
                &words(&upper)?,
                &[('D', 86_400), ('H', 3600), ('M', 60), ('S', 1)],
            )?,
        }
    };
    // Whole seconds, half away from zero (as a JSON number's fraction is).
    Some(millis.checked_add(500)? / 1000)
}

const HMS: &[(char, u64)] = &[('H', 3600), ('M', 60), ('S', 1)];

/// `2 minutes and 5.50 seconds`, `1 hour, 1 minute`, `4m 12s`, `2m5.5s` as
/// `2M5.50S`: unit words to their letters, `and` and commas dropped.
fn words(upper: &str) -> Option<String> {
    let spaced: String = upper
        .replace(',', " ")
        .split_whitespace()
        .filter(|w| *w != "AND")
        .map(|w| {
            let unit = match w {
                "DAYS" | "DAY" => "D",
                "HOURS" | "HOUR" | "HRS" | "HR" => "H",
                "MINUTES" | "MINUTE" | "MINS" | "MIN" => "M",
                "SECONDS" | "SECOND" | "SECS" | "SEC" => "S",
                other => other,
            };
            unit.to_owned()
        })
        .collect();
    (!spaced.is_empty()).then_some(spaced)
}

/// `m:ss`, `h:mm:ss`, with a fraction of a second (`0:02:05.500000`), in
/// milliseconds; the later parts must be under 60.
fn clock(text: &str) -> Option<u64> {
    let (text, fraction) = match text.split_once('.') {
        Some((clock, fraction)) => (clock, fraction_millis(fraction)?),
        None => (text, 0),
    };
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
    let seconds = numbers
        .iter()
        .try_fold(0_u64, |acc, n| acc.checked_mul(60)?.checked_add(*n))?;
    seconds.checked_mul(1000)?.checked_add(fraction)
}

/// The first three digits of a fraction's digits as milliseconds (`5` is 500).
fn fraction_millis(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut padded: String = digits.chars().take(3).collect();
    while padded.len() < 3 {
        padded.push('0');
    }
    padded.parse().ok()
}

/// `4M12S`, `1H2M`, `252S`, `5.5S`: each unit at most once, in order; in
/// milliseconds.
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
        let whole: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let mut millis = whole.checked_mul(1000)?;
        if let Some(after) = rest.strip_prefix('.') {
            let fraction = after.bytes().take_while(|b| b.is_ascii_digit()).count();
            millis = millis.checked_add(fraction_millis(&after[..fraction])?)?;
            rest = &after[fraction..];
        }
        let unit = rest.chars().next()?;
        let position = order[next_unit..].iter().position(|(u, _)| *u == unit)? + next_unit;
        total = total.checked_add(millis.checked_mul(order[position].1)?)?;
        next_unit = position + 1;
        rest = &rest[unit.len_utf8()..];
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

    proptest! {
        /// Round trip: a duration printed as Go, ISO 8601 (Java, isodate), Python's
        /// `timedelta` and in words reads back as its seconds, rounded half up.
        #[test]
        fn printed_durations_read_back(millis in 0_u64..86_400_000, form in 0_usize..4) {
            let (h, m, s, ms) = (millis / 3_600_000, millis / 60_000 % 60, millis / 1000 % 60, millis % 1000);
            let text = match form {
                0 => format!("{h}h{m}m{s}.{ms:03}s"),
                1 => format!("PT{h}H{m}M{s}.{ms:03}S"),
                2 => format!("{h}:{m:02}:{s:02}.{ms:03}000"),
                _ => format!("{h} hours, {m} minutes and {s}.{ms:03} seconds"),
            };
            let want = u32::try_from((millis + 500) / 1000).unwrap();
            prop_assert_eq!(duration_seconds(&json!(text), DOT).unwrap(), Some(want), "{}", text);
        }
    }
}
