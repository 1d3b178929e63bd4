//! The timestamp corpus (`engine/testdata/timestamp_corpus.tsv`): how real systems
//! write an instant by default, each with the instant it means. Prints the coverage
//! (forms read correctly / forms in the corpus) and the forms refused that should
//! be read; fails if any form is read as a wrong instant, if a form the rules say
//! must be refused is read, or if coverage falls below what docs/mapping.md records.

use chrono::{DateTime, Utc};

use super::timestamp::timestamp;

/// Forms read correctly when this was last recorded in docs/mapping.md: a change
/// that reads fewer fails here.
const RECORDED_COVERAGE: usize = 49;

struct Form<'a> {
    system: &'a str,
    form: &'a str,
    text: &'a str,
    expected: Option<DateTime<Utc>>,
}

fn corpus(text: &str) -> Vec<Form<'_>> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let columns: Vec<&str> = line.split('\t').collect();
            let [system, form, text, expected, ..] = columns[..] else {
                panic!("a corpus line needs 4 columns: {line:?}")
            };
            Form {
                system,
                form,
                text,
                expected: (expected != "refuse")
                    .then(|| expected.parse().unwrap_or_else(|e| panic!("{line:?}: {e}"))),
            }
        })
        .collect()
}

#[test]
fn the_corpus_of_real_timestamp_forms() {
    let text = include_str!("../../../testdata/timestamp_corpus.tsv");
    let forms = corpus(text);
    let zone = chrono_tz::America::New_York;
    let (mut right, mut wrong, mut missed, mut refused_right) = (0, vec![], vec![], 0);
    for form in &forms {
        let value = if form.form.contains("JSON number") {
            serde_json::from_str(form.text).unwrap()
        } else {
            serde_json::Value::String(form.text.to_owned())
        };
        let read = timestamp(&value, zone, None)
            .ok()
            .flatten()
            .map(|s| s.instant);
        match (read, form.expected) {
            (Some(got), Some(want)) if got == want => right += 1,
            (Some(got), want) => wrong.push(format!(
                "{} / {}: {:?} read as {got}, means {want:?}",
                form.system, form.form, form.text
            )),
            (None, Some(_)) => {
                missed.push(format!("{} / {}: {:?}", form.system, form.form, form.text))
            }
            (None, None) => refused_right += 1,
        }
    }
    let should_read = forms.iter().filter(|f| f.expected.is_some()).count();
    println!(
        "timestamp corpus: {right} of {should_read} forms read correctly, {refused_right} of {} refused as the rules say, {} read wrong",
        forms.len() - should_read,
        wrong.len()
    );
    for form in &missed {
        println!("  refused, should be read: {form}");
    }
    assert!(wrong.is_empty(), "read as a wrong instant: {wrong:#?}");
    assert_eq!(
        refused_right,
        forms.len() - should_read,
        "every form to refuse is refused"
    );
    assert!(
        right >= RECORDED_COVERAGE,
        "coverage fell from {RECORDED_COVERAGE} to {right}"
    );
}

mod round_trip {
    use chrono::{LocalResult, TimeZone, Utc};
    use proptest::prelude::*;

    use super::super::timestamp::timestamp;

    /// The corpus forms as chrono formats: (form, format, written in the zone's local
    /// time without an offset, keeps seconds).
    const FORMS: &[(&str, &str, bool, bool)] = &[
        // PostgreSQL writes whole-hour offsets as `±hh` (`:00` cut below).
        (
            "PostgreSQL timestamptz",
            "%Y-%m-%d %H:%M:%S%.6f%:z",
            false,
            true,
        ),
        ("PostgreSQL timestamp", "%Y-%m-%d %H:%M:%S", true, true),
        (
            "SQL Server datetimeoffset",
            "%Y-%m-%d %H:%M:%S%.6f %:z",
            false,
            true,
        ),
        ("SQL Server datetime", "%Y-%m-%d %H:%M:%S%.3f", true, true),
        ("Oracle TIMESTAMP", "%d-%b-%y %I.%M.%S%.6f %p", true, true),
        (
            "Oracle TIMESTAMP WITH TIME ZONE",
            "%d-%b-%y %I.%M.%S%.6f %p %:z",
            false,
            true,
        ),
        ("RFC 2822", "%a, %d %b %Y %H:%M:%S %z", false, true),
        ("ISO 8601 extended", "%Y-%m-%dT%H:%M:%S%.3f%:z", false, true),
        ("ISO 8601 ±hhmm", "%Y-%m-%dT%H:%M:%S%z", false, true),
        ("ISO 8601 basic", "%Y%m%dT%H%M%S%z", false, true),
        ("ISO 8601 zone-less", "%Y-%m-%dT%H:%M:%S", true, true),
        (
            "JavaScript Date.toString()",
            "%a %b %d %Y %H:%M:%S GMT%z (Some Zone Name)",
            false,
            true,
        ),
        (
            "JavaScript toLocaleString",
            "%m/%d/%Y, %-I:%M:%S %p",
            true,
            true,
        ),
        ("Excel 12-hour", "%m/%d/%Y %-I:%M:%S %p", true, true),
        ("Google Sheets", "%m/%d/%Y %H:%M:%S", true, true),
        ("Excel no seconds", "%m/%d/%Y %H:%M", true, false),
        ("tracker export", "%b %d, %Y %-I:%M:%S %p", true, true),
    ];

    proptest! {
        /// Any instant of the years calls have, written in any corpus form in one of
        /// several zones, reads back as the same instant (to the form's precision).
        /// Zone-less forms skip the hour that happens twice when clocks fall back:
        /// there the documented rule (the first occurrence) reads the second one as
        /// the first, on purpose.
        #[test]
        fn every_corpus_form_reads_back_as_the_instant_written(
            seconds in 946_684_800_i64..4_102_444_799,
            millis in 0_u32..1000,
            zone in prop::sample::select(vec![
                chrono_tz::America::New_York, chrono_tz::America::Los_Angeles,
                chrono_tz::Asia::Kolkata, chrono_tz::UTC, chrono_tz::Australia::Adelaide,
            ]),
        ) {
            let instant = Utc.timestamp_opt(seconds, millis * 1_000_000).unwrap();
            let local = instant.with_timezone(&zone);
            for (name, format, zone_less, keeps_seconds) in FORMS {
                // Two-digit years are 1969–2068.
                if format.contains("%y") && chrono::Datelike::year(&local) > 2068 {
                    continue;
                }
                if *zone_less && !matches!(zone.from_local_datetime(&local.naive_local()), LocalResult::Single(_)) {
                    continue;
                }
                let mut text = local.format(format).to_string();
                if name.starts_with("PostgreSQL timestamptz") {
                    if let Some(hours) = text.strip_suffix(":00") {
                        text = hours.to_owned();
                    }
                }
                let read = timestamp(&serde_json::Value::String(text.clone()), zone, None)
                    .unwrap_or_else(|e| panic!("{name}: {text:?} refused: {e:?}"))
                    .unwrap()
                    .instant;
                let precision = if *keeps_seconds { 1 } else { 60 };
                let expected = instant.timestamp() - instant.timestamp().rem_euclid(precision);
                prop_assert_eq!(read.timestamp(), expected, "{}: {:?}", name, text);
            }
        }
    }
}
