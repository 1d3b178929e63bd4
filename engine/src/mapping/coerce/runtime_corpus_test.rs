//! The runtime corpus (`engine/testdata/runtime_corpus/`, printed by real runtimes
//! and CLDR/libphonenumber data through `tools/corpus/generate.sh`): every row says
//! what its text means, or that the rules refuse it. Prints coverage per source and
//! category; fails on any value read wrong, on a row the rules refuse being read,
//! and on coverage below what docs/mapping.md records.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemas::integration::DecimalSeparator;
use serde_json::Value;

use super::{duration::duration_seconds, money::money, text::phone, timestamp::timestamp};

/// Rows read right when last recorded in docs/mapping.md, per category: a change
/// that reads fewer fails here.
const RECORDED: [(&str, usize); 4] = [
    ("timestamp", 452),
    ("duration", 105),
    ("amount", 2636),
    ("phone", 3616),
];

#[derive(Default)]
struct Tally {
    right: usize,
    refused_right: usize,
    /// Rows that mean a value and were refused.
    missed: Vec<String>,
    /// Rows read as another value, or read when the rules refuse them.
    wrong: Vec<String>,
}

impl Tally {
    fn check<T: PartialEq + std::fmt::Debug>(
        &mut self,
        row: &str,
        got: Result<Option<T>, String>,
        want: Result<T, &str>,
    ) {
        match (got, want) {
            (Ok(Some(got)), Ok(want)) if got == want => self.right += 1,
            (Ok(Some(got)), Ok(want)) => self
                .wrong
                .push(format!("{row}: read {got:?}, means {want:?}")),
            (Ok(Some(got)), Err(rule)) => self
                .wrong
                .push(format!("{row}: read {got:?}, the rules say {rule}")),
            (Ok(None), Ok(_)) => self.missed.push(format!("{row}: read as missing")),
            (Err(why), Ok(_)) => self.missed.push(format!("{row}: {why}")),
            (_, Err(_)) => self.refused_right += 1,
        }
    }
}

fn rows(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').collect())
}

fn expected(column: &str) -> Result<&str, &str> {
    match column.strip_prefix("refuse: ") {
        Some(rule) => Err(rule),
        None => Ok(column),
    }
}

#[test]
fn the_runtime_corpus() {
    let mut tallies: BTreeMap<(String, &str), Tally> = BTreeMap::new();
    let zone = chrono_tz::America::New_York;
    for row in rows(include_str!(
        "../../../testdata/runtime_corpus/timestamps.tsv"
    )) {
        let [runtime, form, text, means] = row[..] else {
            panic!("{row:?}")
        };
        let want = expected(means).map(|m| m.parse::<DateTime<Utc>>().expect(m));
        let value = Value::String(text.to_owned());
        let got = timestamp(&value, zone, None)
            .map(|s| s.map(|s| s.instant))
            .map_err(|e| e.0);
        tallies
            .entry((runtime.to_owned(), "timestamp"))
            .or_default()
            .check(&format!("{runtime} {form} {text:?}"), got, want);
    }
    for row in rows(include_str!(
        "../../../testdata/runtime_corpus/durations.tsv"
    )) {
        let [runtime, form, text, seconds] = row[..] else {
            panic!("{row:?}")
        };
        let seconds: f64 = seconds.parse().expect(seconds);
        // Whole seconds, half away from zero; a day at most.
        let want = if seconds > 86_400.0 {
            Err("longer than a day")
        } else {
            Ok(seconds.round() as u32)
        };
        let value = Value::String(text.to_owned());
        let got = duration_seconds(&value, DecimalSeparator::Dot).map_err(|e| e.0);
        tallies
            .entry((runtime.to_owned(), "duration"))
            .or_default()
            .check(&format!("{runtime} {form} {text:?}"), got, want);
    }
    for row in rows(include_str!("../../../testdata/runtime_corpus/amounts.tsv")) {
        let [form, text, symbol, amount, currency] = row[..] else {
            panic!("{row:?}")
        };
        let separator = match symbol {
            "," => DecimalSeparator::Comma,
            _ => DecimalSeparator::Dot,
        };
        let want: Result<String, &str> =
            Ok(amount.parse::<schemas::Money>().expect(amount).to_string());
        let value = Value::String(text.to_owned());
        let default_currency = if currency.is_empty() { "USD" } else { currency };
        let got = money(&value, separator, default_currency)
            .map(|a| {
                a.map(|a| {
                    // A currency the text names must be the one it was printed in.
                    match a.currency {
                        Some(named) if !currency.is_empty() && named != currency => {
                            format!("{} {named}", a.money)
                        }
                        _ => a.money.to_string(),
                    }
                })
            })
            .map_err(|e| e.0);
        tallies
            .entry(("cldr".to_owned(), "amount"))
            .or_default()
            .check(&format!("{form} {text:?} ({symbol})"), got, want);
    }
    for row in rows(include_str!("../../../testdata/runtime_corpus/phones.tsv")) {
        let [form, region, text, e164] = row[..] else {
            panic!("{row:?}")
        };
        let Ok(region_id) = schemas::phone::region(region) else {
            continue;
        };
        let value = Value::String(text.to_owned());
        let got = phone(&value, region_id)
            .map(|p| p.map(|p| p.to_string()))
            .map_err(|e| e.0);
        tallies
            .entry(("libphonenumber".to_owned(), "phone"))
            .or_default()
            .check(
                &format!("{region} {form} {text:?}"),
                got,
                Ok(e164.to_owned()),
            );
    }

    let mut by_category: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut wrong = Vec::new();
    for ((source, category), tally) in &tallies {
        let readable = tally.right + tally.missed.len();
        println!(
            "{source:>16} {category:<9} read {:>5} of {:>5} meaning a value ({:.1} %), refused {} by rule, wrong {}",
            tally.right,
            readable,
            100.0 * tally.right as f64 / readable.max(1) as f64,
            tally.refused_right,
            tally.wrong.len()
        );
        let shown = if std::env::var_os("CORPUS_ALL_MISSES").is_some() {
            usize::MAX
        } else {
            8
        };
        for miss in tally.missed.iter().take(shown) {
            println!("      missed: {miss}");
        }
        wrong.extend(tally.wrong.iter().cloned());
        let entry = by_category.entry(category).or_default();
        entry.0 += tally.right;
        entry.1 += readable;
    }
    for (category, (right, readable)) in &by_category {
        println!(
            "{category:<9} {right} of {readable} ({:.1} %)",
            100.0 * *right as f64 / (*readable).max(1) as f64
        );
    }
    assert!(
        wrong.is_empty(),
        "{} read wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    for (category, recorded) in RECORDED {
        let right = by_category.get(category).map_or(0, |c| c.0);
        assert!(
            right >= recorded,
            "{category}: {right} read right, recorded {recorded}"
        );
    }
}
