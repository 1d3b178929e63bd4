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
