//! Runs the timestamp corpus through our parser (`engine`'s timestamp coercion),
//! `dateparser` and `jiff`'s parsers, and prints per parser: forms read correctly,
//! read as a wrong instant, refused, and whether the forms that must be refused are.

use chrono::{DateTime, Utc};

struct Form {
    label: String,
    text: String,
    number: bool,
    expected: Option<DateTime<Utc>>,
}

fn corpus() -> Vec<Form> {
    include_str!("../../../engine/testdata/timestamp_corpus.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let c: Vec<&str> = line.split('\t').collect();
            Form {
                label: format!("{} / {}", c[0], c[1]),
                text: c[2].to_owned(),
                number: c[1].contains("JSON number"),
                expected: (c[3] != "refuse").then(|| c[3].parse().unwrap()),
            }
        })
        .collect()
}

fn ours(form: &Form) -> Option<DateTime<Utc>> {
    let value = if form.number {
        serde_json::from_str(&form.text).ok()?
    } else {
        serde_json::Value::String(form.text.clone())
    };
    engine::mapping::coerce::timestamp(&value, chrono_tz::America::New_York, None)
        .ok()
        .flatten()
        .map(|s| s.instant)
}

fn dateparser(form: &Form) -> Option<DateTime<Utc>> {
    dateparser::parse_with_timezone(&form.text, &chrono_tz::America::New_York).ok()
}

fn jiff(form: &Form) -> Option<DateTime<Utc>> {
    let zone = jiff::tz::TimeZone::get("America/New_York").ok()?;
    let text = form.text.as_str();
    let timestamp = text
        .parse::<jiff::Timestamp>()
        .ok()
        .or_else(|| jiff::fmt::rfc2822::parse(text).ok().map(|z| z.timestamp()))
        .or_else(|| {
            text.parse::<jiff::civil::DateTime>()
                .ok()
                .and_then(|dt| zone.to_ambiguous_zoned(dt).compatible().ok())
                .map(|z| z.timestamp())
        })?;
    DateTime::from_timestamp(timestamp.as_second(), timestamp.subsec_nanosecond() as u32)
}

fn main() {
    let forms = corpus();
    let to_read = forms.iter().filter(|f| f.expected.is_some()).count();
    let to_refuse = forms.len() - to_read;
    println!("| parser | read correctly (of {to_read}) | read wrong | refused that should be read | refused as the rules say (of {to_refuse}) |");
    println!("| --- | --- | --- | --- | --- |");
    let parsers: [(&str, fn(&Form) -> Option<DateTime<Utc>>); 3] =
        [("ours (engine)", ours), ("dateparser 0.2", dateparser), ("jiff 0.2 (RFC 3339/9557, RFC 2822, civil)", jiff)];
    for (name, parse) in parsers {
        let (mut right, mut wrong, mut missed, mut refused) = (0, vec![], 0, 0);
        for form in &forms {
            match (parse(form), form.expected) {
                (Some(got), Some(want)) if got == want => right += 1,
                (Some(got), want) => wrong.push(format!("{}: {:?} → {got} (means {want:?})", form.label, form.text)),
                (None, Some(_)) => missed += 1,
                (None, None) => refused += 1,
            }
        }
        println!("| {name} | {right} | {} | {missed} | {refused} |", wrong.len());
        for w in &wrong {
            eprintln!("{name}: wrong: {w}");
        }
    }
}
