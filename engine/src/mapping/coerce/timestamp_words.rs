//! Timestamps as people's software prints them in words: `Friday, November 20,
//! 2026 at 2:03:22 PM`, `20. November 2026 um 14:03`, `20 de noviembre de 2026,
//! 14:03:22`, `2026年11月20日 14:03`, `Fri Nov 20 14:03:22 EST 2026`, `Friday,
//! 20-Nov-26 14:03:22 EST`, `7/24/26, 9:05 AM`. Read after the fixed forms fail,
//! token by token; any word it does not know refuses the whole value.
//!
//! The rules (docs/mapping.md, "What is read"):
//! - a month by name (English, German, French, Spanish, Portuguese, Dutch, Swedish,
//!   full or abbreviated) makes the order plain; weekday names are ignored;
//! - numeric dates are year-month-day or, with `/`, month/day/year (the US order
//!   partners here use); dotted dates (`20.11.2026`) and slash dates that cannot be
//!   month-first are day-first and are refused without a declared `format`;
//! - a two-digit year is 2000–2068 (as chrono's `%y`: 69–99 are the 1900s, and the
//!   range check then refuses them);
//! - a zone is an offset (`-0500`, `GMT-05:00`, `+00:00`), `Z`/`UTC`/`GMT`/`UT`, or a
//!   US zone abbreviation (EST EDT CST CDT MST MDT PST PDT AKST AKDT HST), each a
//!   fixed offset; any other abbreviation (IST, BST, CET …) is not a known word, so
//!   the value is refused; an offset and an abbreviation that disagree are refused.

use chrono::{FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};

/// What the words said.
#[derive(Debug, PartialEq, Eq)]
pub enum Reading {
    /// No zone: the integration's applies.
    Local(NaiveDateTime),
    /// With an offset.
    Fixed(NaiveDateTime, FixedOffset),
}

const MONTHS: &[(&str, u32)] = &[
    ("january", 1),
    ("jan", 1),
    ("januar", 1),
    ("janvier", 1),
    ("janv", 1),
    ("enero", 1),
    ("ene", 1),
    ("janeiro", 1),
    ("januari", 1),
    ("february", 2),
    ("feb", 2),
    ("februar", 2),
    ("février", 2),
    ("févr", 2),
    ("fevr", 2),
    ("febrero", 2),
    ("fevereiro", 2),
    ("fev", 2),
    ("februari", 2),
    ("march", 3),
    ("mar", 3),
    ("märz", 3),
    ("mär", 3),
    ("mars", 3),
    ("marzo", 3),
    ("março", 3),
    ("maart", 3),
    ("mrt", 3),
    ("april", 4),
    ("apr", 4),
    ("avril", 4),
    ("avr", 4),
    ("abril", 4),
    ("abr", 4),
    ("may", 5),
    ("mai", 5),
    ("mayo", 5),
    ("maio", 5),
    ("mei", 5),
    ("maj", 5),
    ("june", 6),
    ("jun", 6),
    ("juni", 6),
    ("juin", 6),
    ("junio", 6),
    ("junho", 6),
    ("july", 7),
    ("jul", 7),
    ("juli", 7),
    ("juillet", 7),
    ("juil", 7),
    ("julio", 7),
    ("julho", 7),
    ("august", 8),
    ("aug", 8),
    ("août", 8),
    ("agosto", 8),
    ("ago", 8),
    ("augustus", 8),
    ("augusti", 8),
    ("september", 9),
    ("sep", 9),
    ("sept", 9),
    ("septembre", 9),
    ("septiembre", 9),
    ("setiembre", 9),
    ("setembro", 9),
    ("set", 9),
    ("october", 10),
    ("oct", 10),
    ("oktober", 10),
    ("okt", 10),
    ("octobre", 10),
    ("octubre", 10),
    ("outubro", 10),
    ("out", 10),
    ("november", 11),
    ("nov", 11),
    ("novembre", 11),
    ("noviembre", 11),
    ("novembro", 11),
    ("december", 12),
    ("dec", 12),
    ("dezember", 12),
    ("dez", 12),
    ("décembre", 12),
    ("déc", 12),
    ("diciembre", 12),
    ("dic", 12),
    ("dezembro", 12),
];

/// Words that carry nothing here: weekdays, and the "at" and "of" of each language.
const IGNORED: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "mon",
    "tue",
    "tues",
    "wed",
    "thu",
    "thur",
    "thurs",
    "fri",
    "sat",
    "sun",
    "montag",
    "dienstag",
    "mittwoch",
    "donnerstag",
    "freitag",
    "samstag",
    "sonntag",
    "lundi",
    "mardi",
    "mercredi",
    "jeudi",
    "vendredi",
    "samedi",
    "dimanche",
    "lunes",
    "martes",
    "miércoles",
    "jueves",
    "viernes",
    "sábado",
    "domingo",
    "segunda-feira",
    "terça-feira",
    "quarta-feira",
    "quinta-feira",
    "sexta-feira",
    "maandag",
    "dinsdag",
    "woensdag",
    "donderdag",
    "vrijdag",
    "zaterdag",
    "zondag",
    "måndag",
    "tisdag",
    "onsdag",
    "torsdag",
    "fredag",
    "lördag",
    "söndag",
    "at",
    "on",
    "the",
    "um",
    "à",
    "às",
    "a",
    "las",
    "om",
    "kl",
    "de",
    "del",
    "o",
    "le",
    "den",
];

/// US zone abbreviations and the universal ones: each is one fixed offset (hours).
const ZONES: &[(&str, i32)] = &[
    ("utc", 0),
    ("gmt", 0),
    ("ut", 0),
    ("z", 0),
    ("est", -5),
    ("edt", -4),
    ("cst", -6),
    ("cdt", -5),
    ("mst", -7),
    ("mdt", -6),
    ("pst", -8),
    ("pdt", -7),
    ("akst", -9),
    ("akdt", -8),
    ("hst", -10),
];

#[derive(Default)]
struct Parts {
    year: Option<i32>,
    month: Option<u32>,
    day: Option<u32>,
    /// Numbers not yet placed (a day or a year beside a month name).
    loose: Vec<(String, bool)>,
    time: Option<NaiveTime>,
    half: Option<bool>,
    offset: Option<i32>,
    named_zone: Option<i32>,
}

pub fn read(text: &str) -> Option<Reading> {
    let mut parts = Parts::default();
    for token in tokens(text)? {
        parts.take(&token)?;
    }
    parts.finish()
}

/// The value in lower case, split into words, with the marks of each language's
/// forms made plain (`p.m.` is `pm`, `年` a `-`).
fn tokens(text: &str) -> Option<Vec<String>> {
    let mut text = text.to_lowercase();
    // Java's `2026-11-20T14:03:22-05:00[America/New_York]`: the offset says it all.
    if let Some(open) = text.find('[').filter(|_| text.ends_with(']')) {
        text.truncate(open);
    }
    for (from, to) in [
        ("a. m.", " am "),
        ("p. m.", " pm "),
        ("a.m.", " am "),
        ("p.m.", " pm "),
        ("午前", " am "),
        ("午後", " pm "),
        ("月曜日", " "),
        ("火曜日", " "),
        ("水曜日", " "),
        ("木曜日", " "),
        ("金曜日", " "),
        ("土曜日", " "),
        ("日曜日", " "),
        ("年", "-"),
        ("月", "-"),
        ("日", " "),
    ] {
        text = text.replace(from, to);
    }
    let text: String = text
        .chars()
        .map(|c| {
            if c.is_whitespace() || c == ',' || c == '(' || c == ')' {
                ' '
            } else {
                c
            }
        })
        .collect();
    let mut out = Vec::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        // `GMT-0500`, `UTC+05:30`: a zone name then an offset.
        if let Some(rest) = ["gmt", "utc"]
            .iter()
            .find_map(|z| word.strip_prefix(z))
            .filter(|r| r.starts_with(['+', '-']))
        {
            out.push(rest.to_owned());
            continue;
        }
        // `2026-11-20t14:03:22-05:00`: an ISO date and time in one word.
        if let Some((date, time)) = word
            .split_once('t')
            .filter(|(d, t)| d.len() == 10 && d.as_bytes()[4] == b'-' && t.contains(':'))
        {
            out.push(date.to_owned());
            out.push(time.to_owned());
            continue;
        }
        // `20-nov-26`: a date of words and numbers joined by dashes.
        if word.contains('-') && word.chars().any(char::is_alphabetic) && !word.ends_with("-feira")
        {
            out.extend(word.split('-').filter(|p| !p.is_empty()).map(str::to_owned));
            continue;
        }
        out.push(word.to_owned());
    }
    Some(out)
}

impl Parts {
    fn take(&mut self, token: &str) -> Option<()> {
        let word = token.trim_end_matches('.');
        if word.is_empty() {
            return Some(());
        }
        if IGNORED.contains(&word) {
            return Some(());
        }
        if let Some((_, month)) = MONTHS.iter().find(|(name, _)| *name == word) {
            return set(&mut self.month, *month);
        }
        if let Some((_, hours)) = ZONES.iter().find(|(name, _)| *name == word) {
            return set(&mut self.named_zone, hours * 3600);
        }
        match word {
            "am" => return set(&mut self.half, false),
            "pm" => return set(&mut self.half, true),
            _ => {}
        }
        if word.starts_with(['+', '-']) && self.time.is_some() {
            return set(&mut self.offset, offset(word)?);
        }
        if word.contains(':') {
            // `14:03:22-05:00`, `14:03:22.000z`: a time with its zone attached.
            if let Some(at) = word.find(['+', '-', 'z']).filter(|at| *at > 0) {
                let (time, zone) = word.split_at(at);
                self.take(time)?;
                return if zone == "z" {
                    set(&mut self.offset, 0)
                } else {
                    set(&mut self.offset, offset(zone)?)
                };
            }
            return set(&mut self.time, time(word)?);
        }
        if word.contains(['/', '-']) || word.matches('.').count() >= 2 {
            let (year, month, day) = numeric_date(word)?;
            self.year = Some(year);
            self.month = Some(month);
            return set(&mut self.day, day);
        }
        if word.bytes().all(|b| b.is_ascii_digit()) && (1..=4).contains(&word.len()) {
            self.loose.push((word.to_owned(), token.ends_with('.')));
            return Some(());
        }
        None
    }

    fn finish(mut self) -> Option<Reading> {
        // Beside a month name: a four-digit number is the year, the other the day;
        // two short numbers are day then year (`20 Nov 26`, RFC 822).
        match (self.month, self.day, self.loose.as_slice()) {
            (Some(_), None, [(a, _), (b, _)]) => {
                let (day, year) = if a.len() == 4 { (b, a) } else { (a, b) };
                self.day = Some(day.parse().ok()?);
                self.year = Some(year_of(year)?);
            }
            (Some(_), Some(_), []) | (None, Some(_), []) => {}
            _ => return None,
        }
        let date = NaiveDate::from_ymd_opt(self.year?, self.month?, self.day?)?;
        let mut time = self.time?;
        if let Some(pm) = self.half {
            use chrono::Timelike;
            let hour = time.hour();
            if !(1..=12).contains(&hour) {
                return None;
            }
            let hour24 = match (hour, pm) {
                (12, false) => 0,
                (12, true) => 12,
                (h, false) => h,
                (h, true) => h + 12,
            };
            time = time.with_hour(hour24)?;
        }
        let at = date.and_time(time);
        let seconds = match (self.offset, self.named_zone) {
            (Some(a), Some(b)) if a != b => return None,
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => return Some(Reading::Local(at)),
        };
        Some(Reading::Fixed(at, FixedOffset::east_opt(seconds)?))
    }
}

/// Sets `slot` unless it is already set (a value that says twice is refused).
fn set<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

/// `h:mm`, `h:mm:ss`, `h:mm:ss.fff`.
fn time(word: &str) -> Option<NaiveTime> {
    ["%H:%M:%S%.f", "%H:%M"]
        .iter()
        .find_map(|f| NaiveTime::parse_from_str(word, f).ok())
}

/// `-0500`, `+05:30`, `-05`, as seconds east.
fn offset(word: &str) -> Option<i32> {
    let (sign, digits) = match word.split_at(1) {
        ("+", d) => (1, d),
        ("-", d) => (-1, d),
        _ => return None,
    };
    let digits: String = digits.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (hours, minutes) = match digits.len() {
        2 => (digits.parse::<i32>().ok()?, 0),
        4 => (
            digits[..2].parse::<i32>().ok()?,
            digits[2..].parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    (hours <= 14 && minutes < 60).then_some(sign * (hours * 3600 + minutes * 60))
}

/// `2026-11-20`, `2026/11/20` (year first) or `11/20/2026`, `7/24/26` (US order).
/// Dotted dates and slash dates whose first part cannot be a month are day-first:
/// refused (they need a declared `format`).
fn numeric_date(word: &str) -> Option<(i32, u32, u32)> {
    let separator = word.chars().find(|c| matches!(c, '/' | '-' | '.'))?;
    let parts: Vec<&str> = word.split(separator).collect();
    let [a, b, c] = parts[..] else { return None };
    if ![a, b, c]
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    if a.len() == 4 {
        return Some((a.parse().ok()?, b.parse().ok()?, c.parse().ok()?));
    }
    if separator != '/' {
        return None;
    }
    let month: u32 = a.parse().ok()?;
    (1..=12).contains(&month).then_some(())?;
    Some((year_of(c)?, month, b.parse().ok()?))
}

/// A four-digit year, or a two-digit one in 2000–2068.
fn year_of(text: &str) -> Option<i32> {
    let year: i32 = text.parse().ok()?;
    match text.len() {
        4 => Some(year),
        2 if year <= 68 => Some(2000 + year),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn local(text: &str) -> Option<String> {
        match read(text)? {
            Reading::Local(at) => Some(at.to_string()),
            Reading::Fixed(at, offset) => Some(format!("{at} {offset}")),
        }
    }

    #[test]
    fn words_of_several_languages() {
        for (text, means) in [
            (
                "Friday, November 20, 2026 at 2:03:22\u{202f}PM",
                "2026-11-20 14:03:22",
            ),
            ("Freitag, 20. November 2026 um 14:03", "2026-11-20 14:03:00"),
            (
                "viernes, 20 de noviembre de 2026, 14:03:22",
                "2026-11-20 14:03:22",
            ),
            ("20 de novembro de 2026 às 14:03:22", "2026-11-20 14:03:22"),
            ("2026年11月20日金曜日 14:03:22", "2026-11-20 14:03:22"),
            ("Nov. 20, 2026, 2:03 p.m.", "2026-11-20 14:03:00"),
            ("7/24/26, 9:05 AM", "2026-07-24 09:05:00"),
            ("Fri Nov 20 14:03:22 EST 2026", "2026-11-20 14:03:22 -05:00"),
            (
                "Friday, 20-Nov-26 14:03:22 EST",
                "2026-11-20 14:03:22 -05:00",
            ),
            (
                "2026-11-20 14:03:22 -0500 EST",
                "2026-11-20 14:03:22 -05:00",
            ),
            ("20 Nov 26 19:03 UTC", "2026-11-20 19:03:00 +00:00"),
            (
                "2026-11-20T14:03:22-05:00[America/New_York]",
                "2026-11-20 14:03:22 -05:00",
            ),
            (
                "20 de noviembre de 2026 a las 2:03 p.m.",
                "2026-11-20 14:03:00",
            ),
        ] {
            assert_eq!(local(text).as_deref(), Some(means), "{text}");
        }
    }

    #[test]
    fn ambiguity_and_unknown_words_are_refused() {
        for text in [
            "20.11.2026 14:03",              // day-first by dots
            "20/11/2026 14:03",              // cannot be month-first
            "Fri Nov 20 14:03:22 IST 2026",  // IST: India, Ireland or Israel
            "2026-11-20 14:03:22 -0500 PST", // offset and name disagree
            "yesterday at 14:03",
            "November 2026 14:03", // no day
            "2026-11-20",          // no time
            "13:03 PM Nov 20 2026",
        ] {
            assert_eq!(local(text), None, "{text}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,40}") {
            let _ = read(&text);
        }

        /// Round trip: an instant printed in the forms above (by chrono's
        /// formatter) reads back as itself, to the precision the form shows.
        #[test]
        fn printed_forms_read_back(
            days in 0_i64..(68 * 365),
            seconds in 0_u32..86_400,
            form in 0_usize..5,
        ) {
            let date = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap() + chrono::Duration::days(days);
            let at = date.and_time(NaiveTime::from_num_seconds_from_midnight_opt(seconds, 0).unwrap());
            let (format, minutes_only) = [
                ("%A, %B %-d, %Y at %-I:%M:%S %p", false),
                ("%-d. %B %Y um %H:%M", true),
                ("%a %b %e %H:%M:%S %Y", false),
                ("%-m/%-d/%y, %-I:%M %p", true),
                ("%Y年%-m月%-d日 %H:%M:%S", false),
            ][form];
            let text = at.format(format).to_string();
            let want = if minutes_only {
                at - chrono::Duration::seconds(i64::from(seconds % 60))
            } else {
                at
            };
            prop_assert_eq!(read(&text), Some(Reading::Local(want)), "{}", text);
        }
    }
}
