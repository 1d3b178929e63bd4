//! Timestamps. Values with an offset are exact; values without one are read in the
//! integration's zone. Around daylight-saving changes a zone-less local time can be
//! missing or doubled, once a year for every call in that hour; the rule, as most
//! databases apply it, with a warning on the row each time (partners avoid both by
//! sending offsets):
//! - a time that happens twice (clocks fall back) is its **first** occurrence;
//! - a time that does not exist (clocks spring forward) **moves forward by the
//!   gap** (02:30 on a one-hour spring-forward night is 03:30).

use chrono::{
    DateTime, Datelike, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc,
};
use chrono_tz::Tz;

use super::{scalar_text, CoerceError};

/// An instant and the zone it was written in, kept as the call's local zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    pub instant: DateTime<Utc>,
    /// An IANA name when the value was zone-less, else the offset it carried (`-08:00`).
    pub zone: String,
    /// Said when the value was read by the daylight-saving rule (see above).
    pub warning: Option<String>,
}

/// Zone-less forms, tried in order. US month-first (partners here are US trackers);
/// a day-first partner needs an explicit `format` on its rule.
const LOCAL_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%b %d, %Y %I:%M:%S %p",
    "%b %d, %Y %I:%M %p",
    "%B %d, %Y %I:%M:%S %p",
    "%B %d, %Y %I:%M %p",
    "%d %b %Y %H:%M:%S",
    // JavaScript's `toLocaleString("en-US")`.
    "%m/%d/%Y, %I:%M:%S %p",
    // Oracle's default NLS forms (two-digit years are 1969–2068).
    "%d-%b-%y %I.%M.%S%.f %p",
];

/// With an explicit offset (a trailing `Z` is read as `+00:00` first). `%#z` takes
/// `±hh`, `±hhmm` and `±hh:mm`, so PostgreSQL's `+00`, ISO 8601's basic offsets and
/// an offset after a space are all read.
const OFFSET_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f %#z",
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%.f %#z",
    "%Y-%m-%dT%H:%M%#z",
    // ISO 8601 basic form.
    "%Y%m%dT%H%M%S%.f%#z",
    // JavaScript's `Date.toString()`, its zone name in parentheses cut off first.
    "%a %b %d %Y %H:%M:%S GMT%#z",
    // Oracle's TIMESTAMP WITH TIME ZONE default form.
    "%d-%b-%y %I.%M.%S%.f %p %#z",
];

/// Below this a bare number is seconds since the epoch, above it milliseconds
/// (1e11 s is the year 5138; 1e11 ms is 1973).
const EPOCH_MILLIS_THRESHOLD: i64 = 100_000_000_000;

/// Calls happen between these instants (UTC seconds): 2000-01-01 and 2100-01-01.
/// Anything outside is a data error, and ClickHouse `DateTime` could not hold much
/// of it anyway (a failed insert would stall the whole batch).
const EARLIEST_CALL: i64 = 946_684_800;
const LATEST_CALL: i64 = 4_102_444_800;

pub fn timestamp(
    value: &serde_json::Value,
    zone: Tz,
    explicit_format: Option<&str>,
) -> Result<Option<Stamped>, CoerceError> {
    let stamped = parse(value, zone, explicit_format)?;
    if let Some(stamped) = &stamped {
        let seconds = stamped.instant.timestamp();
        if !(EARLIEST_CALL..LATEST_CALL).contains(&seconds) {
            return Err(CoerceError::new(format!(
                "{} is outside the years 2000 to 2099 that a call can have",
                stamped.instant.to_rfc3339()
            )));
        }
    }
    Ok(stamped)
}

fn parse(
    value: &serde_json::Value,
    zone: Tz,
    explicit_format: Option<&str>,
) -> Result<Option<Stamped>, CoerceError> {
    let Some(text) = scalar_text(value)? else {
        return Ok(None);
    };
    if let Some(format) = explicit_format {
        return with_format(&text, format, zone).map(Some);
    }
    // A JSON string encoded twice keeps its quotes: `"2026-11-20T19:03:22Z"`.
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .map(str::trim)
        .unwrap_or(&text);
    if let Ok(epoch) = text.parse::<i64>() {
        return from_epoch(epoch).map(Some);
    }
    if let Some(stamped) = from_dotnet_date(text) {
        return stamped.map(Some);
    }
    if let Some(stamped) = from_epoch_fraction(text) {
        return stamped.map(Some);
    }
    if let Ok(fixed) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(exact(fixed)));
    }
    // RFC 2822 and HTTP dates (`Fri, 20 Nov 2026 19:03:22 GMT`).
    if let Ok(fixed) = DateTime::parse_from_rfc2822(text) {
        return Ok(Some(exact(fixed)));
    }
    let with_offset = match text.strip_suffix(['Z', 'z']) {
        Some(utc) => format!("{utc}+00:00"),
        None => text
            .split_once(" (")
            .filter(|(_, zone_name)| zone_name.ends_with(')'))
            .map_or(text, |(without, _)| without)
            .to_owned(),
    };
    if let Some(fixed) = OFFSET_FORMATS
        .iter()
        .find_map(|f| DateTime::parse_from_str(&with_offset, f).ok())
    {
        return Ok(Some(exact(fixed)));
    }
    let upper = text.to_ascii_uppercase();
    if let Some(naive) = LOCAL_FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(&upper, f).ok())
        // `%Y` takes `26` as the year 26: a two-digit year is the words reader's.
        .filter(|naive| naive.year() >= 1000)
    {
        return in_zone(naive, zone, text).map(Some);
    }
    // Dates in words, other languages' orders, zone abbreviations (see the module).
    match super::timestamp_words::read(text) {
        Some(super::timestamp_words::Reading::Local(naive)) => {
            return in_zone(naive, zone, text).map(Some)
        }
        Some(super::timestamp_words::Reading::Fixed(naive, offset)) => {
            if let LocalResult::Single(fixed) = offset.from_local_datetime(&naive) {
                return Ok(Some(exact(fixed)));
            }
        }
        None => {}
    }
    if NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
        || NaiveDate::parse_from_str(text, "%m/%d/%Y").is_ok()
    {
        return Err(CoerceError::new(format!(
            "{text:?} is a date without a time of day"
        )));
    }
    Err(CoerceError::new(format!(
        "{text:?} is not a timestamp in any supported form (RFC 3339, YYYY-MM-DD HH:MM:SS, MM/DD/YYYY h:mm[:ss] AM/PM, a date with its month in words, epoch seconds or milliseconds; day-first numeric dates and zone abbreviations other than the US zones' are refused as ambiguous); set `format` on the rule for other forms"
    )))
}

fn exact(fixed: DateTime<FixedOffset>) -> Stamped {
    Stamped {
        instant: fixed.with_timezone(&Utc),
        zone: fixed.offset().to_string(),
        warning: None,
    }
}

/// .NET's JSON dates (`DataContractJsonSerializer`, `JavaScriptSerializer`, and
/// Json.NET's `MicrosoftDateFormat`): `/Date(1795201402000)/`, with `\/` escapes
/// kept or not, and an optional `+hhmm` that says only the zone it was written in
/// (the milliseconds are UTC already).
fn from_dotnet_date(text: &str) -> Option<Result<Stamped, CoerceError>> {
    let inner = text
        .strip_prefix("\\/Date(")
        .and_then(|t| t.strip_suffix(")\\/"))
        .or_else(|| {
            text.strip_prefix("/Date(")
                .and_then(|t| t.strip_suffix(")/"))
        })?;
    let digits_end = inner
        .char_indices()
        .skip(1)
        .find(|(_, c)| matches!(c, '+' | '-'))
        .map_or(inner.len(), |(i, _)| i);
    let (millis, zone) = inner.split_at(digits_end);
    let zone_ok =
        zone.is_empty() || (zone.len() == 5 && zone[1..].bytes().all(|b| b.is_ascii_digit()));
    if !zone_ok {
        return None;
    }
    let millis: i64 = millis.parse().ok()?;
    Some(
        Utc.timestamp_millis_opt(millis)
            .single()
            .map(|instant| Stamped {
                instant,
                zone: "UTC".to_owned(),
                warning: None,
            })
            .ok_or_else(|| CoerceError::new(format!("{text} is out of range as a .NET date"))),
    )
}

/// Epoch seconds with a fraction (`1795201402.5`); `None` when `text` is not that.
/// Only seconds: a fraction of milliseconds is not a form systems write.
fn from_epoch_fraction(text: &str) -> Option<Result<Stamped, CoerceError>> {
    let (whole, fraction) = text.split_once('.')?;
    let digits = |s: &str, most: usize| {
        !s.is_empty() && s.len() <= most && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(whole, 11) || !digits(fraction, 9) {
        return None;
    }
    let seconds: i64 = whole.parse().ok().filter(|s| *s < EPOCH_MILLIS_THRESHOLD)?;
    let nanos: u32 = format!("{fraction:0<9}").parse().ok()?;
    Some(
        Utc.timestamp_opt(seconds, nanos)
            .single()
            .map(|instant| Stamped {
                instant,
                zone: "UTC".to_owned(),
                warning: None,
            })
            .ok_or_else(|| CoerceError::new(format!("{text} is out of range as an epoch time"))),
    )
}

fn from_epoch(epoch: i64) -> Result<Stamped, CoerceError> {
    let instant = if epoch.abs() >= EPOCH_MILLIS_THRESHOLD {
        Utc.timestamp_millis_opt(epoch).single()
    } else {
        Utc.timestamp_opt(epoch, 0).single()
    };
    let instant = instant
        .ok_or_else(|| CoerceError::new(format!("{epoch} is out of range as an epoch time")))?;
    Ok(Stamped {
        instant,
        zone: "UTC".to_owned(),
        warning: None,
    })
}

/// The rule `format` for spreadsheet serial dates.
pub const SPREADSHEET_SERIAL: &str = "spreadsheet_serial";

/// A spreadsheet serial date or date-time (`45987`, `45987.5`) in the 1900 date
/// system, read in `zone`: whole days since 1899-12-30, the fraction the time of day
/// (rounded to the second). The 1900 system counts 1900-02-29, a day that never was:
/// serial 60 is refused, and serials below it count from 1899-12-31.
fn from_serial(text: &str, zone: Tz) -> Result<Stamped, CoerceError> {
    let bad =
        |why: &str| CoerceError::new(format!("{text:?} is not a spreadsheet serial date: {why}"));
    let (days, fraction) = text.split_once('.').unwrap_or((text, ""));
    if days.is_empty() || !days.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("expected a number of days like 45987 or 45987.5"));
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) || fraction.len() > 15 {
        return Err(bad("the fraction must be up to 15 digits"));
    }
    let days: i64 = days.parse().map_err(|_| bad("too many days"))?;
    if days > 2_958_465 {
        return Err(bad("after 9999-12-31"));
    }
    let base = match days {
        60 => return Err(bad("serial 60 is 1900-02-29, which did not exist")),
        0..=59 => NaiveDate::from_ymd_opt(1899, 12, 31),
        _ => NaiveDate::from_ymd_opt(1899, 12, 30),
    }
    .and_then(|d| d.and_hms_opt(0, 0, 0))
    .ok_or_else(|| bad("no base date"))?;
    // Whole seconds of the day, rounded, from the exact decimal fraction.
    let scale = 10_u128.pow(fraction.len() as u32);
    let numerator: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| bad("fraction"))?
    };
    let seconds = (numerator * 86_400 * 2 + scale) / (scale * 2);
    let naive = base + chrono::Duration::days(days) + chrono::Duration::seconds(seconds as i64);
    in_zone(naive, zone, text)
}

fn with_format(text: &str, format: &str, zone: Tz) -> Result<Stamped, CoerceError> {
    if format == SPREADSHEET_SERIAL {
        return from_serial(text, zone);
    }
    if let Ok(fixed) = DateTime::parse_from_str(text, format) {
        return Ok(exact(fixed));
    }
    let naive = NaiveDateTime::parse_from_str(text, format)
        .or_else(|_| NaiveDateTime::parse_from_str(&text.to_ascii_uppercase(), format))
        .map_err(|e| CoerceError::new(format!("{text:?} does not match format {format:?}: {e}")))?;
    in_zone(naive, zone, text)
}

fn in_zone(naive: NaiveDateTime, zone: Tz, text: &str) -> Result<Stamped, CoerceError> {
    let stamped = |instant: DateTime<Utc>, warning: Option<String>| Stamped {
        instant,
        zone: zone.name().to_owned(),
        warning,
    };
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(local) => Ok(stamped(local.with_timezone(&Utc), None)),
        LocalResult::Ambiguous(first, second) => {
            let first = first.with_timezone(&Utc);
            Ok(stamped(
                first,
                Some(format!(
                    "{text:?} happens twice in {} (clocks fall back); read as the first, {} (the second would be {})",
                    zone.name(),
                    first.to_rfc3339(),
                    second.with_timezone(&Utc).to_rfc3339()
                )),
            ))
        }
        LocalResult::None => {
            // The offset in force before the gap, applied to the wall time: the
            // instant it would have been had the clocks not moved, which reads as the
            // wall time moved forward by the gap.
            let before = zone
                .from_local_datetime(&(naive - chrono::Duration::days(1)))
                .earliest()
                .map(|t| t.offset().fix());
            let Some(offset) = before else {
                return Err(CoerceError::new(format!(
                    "{text:?} does not exist in {} (clocks spring forward over it)",
                    zone.name()
                )));
            };
            let instant =
                (naive - chrono::Duration::seconds(i64::from(offset.local_minus_utc()))).and_utc();
            Ok(stamped(
                instant,
                Some(format!(
                    "{text:?} does not exist in {} (clocks spring forward over it); moved forward by the gap to {}",
                    zone.name(),
                    instant.with_timezone(&zone).naive_local()
                )),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn utc(value: serde_json::Value, zone: Tz) -> String {
        timestamp(&value, zone, None)
            .unwrap()
            .unwrap()
            .instant
            .to_rfc3339()
    }

    #[test]
    fn table_of_supported_forms() {
        let ny = chrono_tz::America::New_York;
        let cases = [
            (
                json!("2026-11-20T14:03:22-08:00"),
                "2026-11-20T22:03:22+00:00",
            ),
            (json!("2026-11-20T22:03:22Z"), "2026-11-20T22:03:22+00:00"),
            (json!("2026-11-20 17:03:22"), "2026-11-20T22:03:22+00:00"),
            (json!("11/20/2026 05:03:22 PM"), "2026-11-20T22:03:22+00:00"),
            (json!("11/20/2026 5:03 pm"), "2026-11-20T22:03:00+00:00"),
            (json!("11/20/2026 17:03"), "2026-11-20T22:03:00+00:00"),
            (json!("Nov 20, 2026 5:03 PM"), "2026-11-20T22:03:00+00:00"),
            (json!(1_795_212_202), "2026-11-20T22:03:22+00:00"),
            (json!("1795212202000"), "2026-11-20T22:03:22+00:00"),
            // .NET JSON dates, with and without the zone they were written in.
            (json!("/Date(1795212202000)/"), "2026-11-20T22:03:22+00:00"),
            (
                json!("/Date(1795212202000-0500)/"),
                "2026-11-20T22:03:22+00:00",
            ),
            (
                json!("\\/Date(1795212202000+0100)\\/"),
                "2026-11-20T22:03:22+00:00",
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(utc(value.clone(), ny), expected, "{value}");
        }
    }

    #[test]
    fn spreadsheet_serial_dates_in_the_integrations_zone() {
        let ny = chrono_tz::America::New_York;
        let serial = |value: serde_json::Value| {
            timestamp(&value, ny, Some(SPREADSHEET_SERIAL)).map(|s| s.unwrap().instant.to_rfc3339())
        };
        // 45987 is 2025-11-26 (days since 1899-12-30); New York is UTC-5 then.
        assert_eq!(serial(json!(45987)).unwrap(), "2025-11-26T05:00:00+00:00");
        assert_eq!(
            serial(json!("45987.5")).unwrap(),
            "2025-11-26T17:00:00+00:00"
        );
        assert_eq!(
            serial(json!(45987.75)).unwrap(),
            "2025-11-26T23:00:00+00:00"
        );
        // A minute is 1/1440 of a day: 0.000694444... rounds to 60 s.
        assert_eq!(
            serial(json!("46000.000694444")).unwrap(),
            "2025-12-09T05:01:00+00:00"
        );
        // 2000-01-01 is serial 36526.
        assert_eq!(
            timestamp(&json!(36526), chrono_tz::UTC, Some(SPREADSHEET_SERIAL))
                .unwrap()
                .unwrap()
                .instant
                .to_rfc3339(),
            "2000-01-01T00:00:00+00:00"
        );
        for bad in [
            json!("60"),
            json!("-1"),
            json!("45987,5"),
            json!("abc"),
            json!(1),
        ] {
            assert!(serial(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn zone_is_kept() {
        let ny = chrono_tz::America::New_York;
        let offset = timestamp(&json!("2026-11-20T14:03:22-06:00"), ny, None)
            .unwrap()
            .unwrap();
        assert_eq!(offset.zone, "-06:00");
        let local = timestamp(&json!("2026-11-20 14:03:22"), ny, None)
            .unwrap()
            .unwrap();
        assert_eq!(local.zone, "America/New_York");
    }

    /// Issue "Prove it under faults": every zone-less call in these hours was
    /// dead-lettered once a year. The documented rule, with a warning each time.
    #[test]
    fn dst_edges_follow_the_documented_rule_with_a_warning() {
        let ny = chrono_tz::America::New_York;
        let gap = timestamp(&json!("2026-03-08 02:30:00"), ny, None)
            .unwrap()
            .unwrap();
        // Moved forward by the gap: 03:30 EDT = 07:30 UTC.
        assert_eq!(gap.instant.to_rfc3339(), "2026-03-08T07:30:00+00:00");
        assert!(
            gap.warning.as_deref().unwrap().contains("moved forward"),
            "{gap:?}"
        );
        let overlap = timestamp(&json!("2026-11-01 01:30:00"), ny, None)
            .unwrap()
            .unwrap();
        // The first occurrence: 01:30 EDT = 05:30 UTC (the second is 06:30 UTC).
        assert_eq!(overlap.instant.to_rfc3339(), "2026-11-01T05:30:00+00:00");
        assert!(
            overlap.warning.as_deref().unwrap().contains("first"),
            "{overlap:?}"
        );
        let plain = timestamp(&json!("2026-11-01 03:30:00"), ny, None)
            .unwrap()
            .unwrap();
        assert_eq!(plain.warning, None);
        // Either side of the gap is fine.
        assert_eq!(
            utc(json!("2026-03-08 01:59:59"), ny),
            "2026-03-08T06:59:59+00:00"
        );
        assert_eq!(
            utc(json!("2026-03-08 03:00:00"), ny),
            "2026-03-08T07:00:00+00:00"
        );
    }

    #[test]
    fn explicit_format() {
        let chicago = chrono_tz::America::Chicago;
        let stamped = timestamp(
            &json!("11/20/2026 04:03:22 PM"),
            chicago,
            Some("%m/%d/%Y %I:%M:%S %p"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(stamped.instant.to_rfc3339(), "2026-11-20T22:03:22+00:00");
        assert!(timestamp(&json!("2026-11-20"), chicago, Some("%m/%d/%Y %I:%M:%S %p")).is_err());
    }

    #[test]
    fn missing_and_bad_values() {
        let utc_zone = chrono_tz::UTC;
        assert_eq!(timestamp(&json!(null), utc_zone, None).unwrap(), None);
        assert_eq!(timestamp(&json!("  "), utc_zone, None).unwrap(), None);
        assert!(timestamp(&json!("11/04/2026"), utc_zone, None)
            .unwrap_err()
            .0
            .contains("without a time"));
        assert!(timestamp(&json!("yesterday"), utc_zone, None).is_err());
        assert!(timestamp(&json!({"a": 1}), utc_zone, None).is_err());
        assert!(timestamp(&json!("1900-01-01T00:00:00Z"), utc_zone, None)
            .unwrap_err()
            .0
            .contains("outside"));
        assert!(
            timestamp(&json!(0), utc_zone, None).is_err(),
            "epoch zero is a missing value in disguise"
        );
    }

    proptest! {
        #[test]
        fn rfc3339_round_trips(secs in EARLIEST_CALL..LATEST_CALL, offset_min in -720_i32..=840) {
            let offset = FixedOffset::east_opt(offset_min * 60).unwrap();
            let written = offset.timestamp_opt(secs, 0).unwrap().to_rfc3339();
            let parsed = timestamp(&json!(written), chrono_tz::UTC, None).unwrap().unwrap();
            prop_assert_eq!(parsed.instant.timestamp(), secs);
        }

        #[test]
        fn arbitrary_text_is_a_value_or_an_error(text in ".{0,40}") {
            let _ = timestamp(&json!(text), chrono_tz::America::New_York, None);
        }
    }
}
