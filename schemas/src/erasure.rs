//! Erasing one caller of one account (docs/privacy.md): the caller's number is
//! replaced in every stored call by a token of the erasure (`e:` and the erasure's
//! id: the erased calls still match each other, nothing leads back to the number),
//! the ZIP, city and state are emptied, and every spelling of the number is cut out
//! of the texts that can hold it (warnings, custom attributes, dead letters' payloads
//! and errors). Counts, money, times and statuses stay, so aggregates keep their
//! numbers. The receipt says what was changed, when and by whom, never the number.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What an erased caller reads as: `e:` and the erasure's id.
pub const ERASED_PREFIX: &str = "e:";

/// What a spelling of the number is replaced by in texts.
pub const ERASED_TEXT: &str = "[erased]";

/// The caller's token after erasure `id`.
pub fn erased_caller(id: Uuid) -> String {
    format!("{ERASED_PREFIX}{}", id.simple())
}

/// An erasure asked for (`POST /api/privacy/erasures`, `cmctl privacy erase`):
/// first on the raw topic under the caller's key, where the caller's partition
/// erases its keyed state, then (when `clickhouse`) on the erasures topic, keyed by
/// `id`, until the processor's erasure worker has done it and written its receipt;
/// the worker then writes a tombstone for the key, so the number leaves that topic
/// at its next compaction (and at the latest with its one-day retention).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureOrder {
    pub id: Uuid,
    pub account: String,
    /// The caller, normalised (E.164).
    pub number: String,
    /// Who asked (an audit actor's name).
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    /// Whether ClickHouse is still to be erased (by the processor's erasure worker,
    /// once the caller's partition has erased its keyed state). Every order is sent
    /// with it set now; false only in orders of `cmctl privacy erase` from before
    /// that release, which erased ClickHouse itself.
    #[serde(default = "yes")]
    pub clickhouse: bool,
    /// Whether the caller's later records are to be stored without the number too
    /// (`crate::suppression`); an erasure alone is not a block list. Written only
    /// when set, so a processor of an earlier release still reads every other order.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suppress: bool,
}

fn yes() -> bool {
    true
}

impl ErasureOrder {
    /// Its key on the raw topic: the caller's, so it reaches the partition that
    /// keeps the caller (sent with the header `crate::topics::ERASE_HEADER`).
    pub fn raw_key(&self) -> String {
        crate::ids::caller_key(&self.account, &self.number)
    }
}

/// The headers an erasure order travels with on the raw topic.
pub const RAW_HEADERS: [(&str, &[u8]); 1] = [(crate::topics::ERASE_HEADER, b"1")];

/// [`spelling_pattern`] compiled for Rust (the processor's keyed state).
pub fn spellings(e164: &str) -> Option<regex::Regex> {
    regex::Regex::new(&spelling_pattern(e164)?).ok()
}

/// What an erasure leaves of a call, as ClickHouse's statements leave its row
/// (`processor::erasure`): the caller replaced by the erasure's token, the ZIP,
/// city and state emptied, every spelling of the number cut out of the warnings
/// and the custom attributes' values.
pub fn erase_call(call: &mut crate::call::CallRecord, id: Uuid, spellings: &regex::Regex) {
    let scrub = |text: &str| {
        spellings
            .replace_all(text, format!("${{1}}{ERASED_TEXT}${{2}}"))
            .into_owned()
    };
    call.caller = None;
    call.caller_hash = Some(erased_caller(id));
    call.zip = None;
    call.city = None;
    call.state = None;
    for warning in &mut call.warnings {
        *warning = scrub(warning);
    }
    for value in call.attributes.values_mut() {
        value.value = scrub(&value.value);
    }
}

/// A receipt (`erasures`, migration 21): one run of one erasure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clickhouse", derive(clickhouse::Row))]
pub struct ErasureReceipt {
    #[cfg_attr(feature = "clickhouse", serde(with = "clickhouse::serde::uuid"))]
    pub id: Uuid,
    pub account: String,
    /// Who asked (an audit actor's name: a token's name or digest, or cmctl's user).
    pub requested_by: String,
    #[cfg_attr(
        feature = "clickhouse",
        serde(with = "clickhouse::serde::chrono::datetime")
    )]
    pub started_at: DateTime<Utc>,
    #[cfg_attr(
        feature = "clickhouse",
        serde(with = "clickhouse::serde::chrono::datetime")
    )]
    pub finished_at: DateTime<Utc>,
    /// Rows changed, per place: `calls`, `calls_by_caller`, `cm_calls`,
    /// `calls_by_time` (attributes), `dead_letters`.
    pub places: Vec<String>,
    pub rows: Vec<u64>,
    /// `done`, or what stopped it (a run again finishes it).
    pub outcome: String,
    /// By when the topics hold none of the caller's records written before the
    /// erasure ([`topics_clear_by`]); the epoch when not known (migration 22).
    #[cfg_attr(
        feature = "clickhouse",
        serde(with = "clickhouse::serde::chrono::datetime")
    )]
    pub topics_clear_by: DateTime<Utc>,
}

/// How long past a record's retention a broker may still hold it: Apache Kafka
/// deletes whole segments (`cmctl topics` rolls them hourly) and checks every 5
/// minutes; tansu cleans every 10 minutes.
pub const TOPICS_CLEANUP_SLACK: std::time::Duration = std::time::Duration::from_secs(70 * 60);

/// When the topics that carry calls hold nothing written up to `finished_at`:
/// their longest retention (`None`: one keeps records for ever, or it is not known)
/// plus [`TOPICS_CLEANUP_SLACK`], to the second; the epoch for "not known".
pub fn topics_clear_by(
    finished_at: DateTime<Utc>,
    longest_retention: Option<std::time::Duration>,
) -> DateTime<Utc> {
    longest_retention
        .and_then(|retention| retention.checked_add(TOPICS_CLEANUP_SLACK))
        .and_then(|wait| chrono::Duration::from_std(wait).ok())
        .and_then(|wait| finished_at.checked_add_signed(wait))
        .map(crate::call::to_whole_seconds)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// The epoch that [`topics_clear_by`] gives for "not known", as `None`.
pub fn known_time(at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (at != DateTime::<Utc>::UNIX_EPOCH).then_some(at)
}

/// An RE2 pattern (ClickHouse's `match`, `replaceRegexpAll`) for the spellings of
/// `e164` in text: its national digits with up to three separators between any two
/// (`(415) 555-2671`, `415.555.2671`, `4155552671`), optionally after its country
/// code (`+1 415…`, `1-415…`), not inside a longer run of digits. Group 1 is what
/// stood before it and group 2 what stood after, so `\1[erased]\2` keeps them.
/// `None` when `e164` is not a phone number.
pub fn spelling_pattern(e164: &str) -> Option<String> {
    let parsed = phonenumber::parse(None, e164).ok()?;
    let mut national = parsed.national().value().to_string();
    if parsed.national().zeros() > 0 {
        national.insert_str(0, &"0".repeat(usize::from(parsed.national().zeros())));
    }
    let code = parsed.code().value();
    let gap = "[^0-9A-Za-z]{0,3}";
    let digits: Vec<String> = national.chars().map(String::from).collect();
    Some(format!(
        "(^|[^0-9])(?:(?:\\+|00)?{code}{gap})?\\(?{}([^0-9]|$)",
        digits.join(gap)
    ))
}

/// The replacement for [`spelling_pattern`]'s matches.
pub fn spelling_replacement() -> String {
    format!("\\1{ERASED_TEXT}\\2")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topics_are_clear_a_retention_and_the_slack_after_the_erasure() {
        let done = "2026-12-07T18:00:00.700Z".parse::<DateTime<Utc>>().unwrap();
        let week = std::time::Duration::from_secs(7 * 24 * 3600);
        assert_eq!(
            topics_clear_by(done, Some(week)).to_rfc3339(),
            "2026-12-14T19:10:00+00:00"
        );
        assert_eq!(known_time(topics_clear_by(done, None)), None);
        // A retention no date can hold is "not known", not a panic.
        assert_eq!(
            known_time(topics_clear_by(done, Some(std::time::Duration::MAX))),
            None
        );
    }
    use regex::Regex;

    #[test]
    fn an_order_without_suppress_reads_as_an_earlier_releases_order() {
        let mut order = ErasureOrder {
            id: Uuid::nil(),
            account: "acme".into(),
            number: "+14155552671".into(),
            requested_by: "test".into(),
            requested_at: Utc::now(),
            clickhouse: true,
            suppress: false,
        };
        let plain = serde_json::to_value(&order).unwrap();
        assert!(plain.get("suppress").is_none(), "{plain}");
        order.suppress = true;
        let text = serde_json::to_string(&order).unwrap();
        assert!(text.contains(r#""suppress":true"#), "{text}");
        assert_eq!(serde_json::from_str::<ErasureOrder>(&text).unwrap(), order);
    }

    fn erase(pattern: &str, text: &str) -> String {
        // The same replacement as ClickHouse's `\1…\2`, in the regex crate's syntax.
        Regex::new(pattern)
            .unwrap()
            .replace_all(text, format!("${{1}}{ERASED_TEXT}${{2}}"))
            .into_owned()
    }

    #[test]
    fn an_erased_call_keeps_nothing_of_the_number() {
        let mut call = crate::call::tests::sample();
        call.zip = Some("94107".into());
        call.city = Some("San Francisco".into());
        call.warnings = vec!["caller (415) 555-2671 looked up".into()];
        call.attributes.insert(
            "callback".into(),
            crate::attribute::AttributeValue {
                kind: crate::attribute::AttributeType::String,
                value: "call back on 415.555.2671 please".into(),
            },
        );
        let id = Uuid::from_u128(7);
        erase_call(&mut call, id, &spellings("+14155552671").unwrap());
        assert_eq!(call.caller, None);
        assert_eq!(
            call.caller_hash.as_deref(),
            Some(erased_caller(id).as_str())
        );
        assert_eq!((call.zip.as_deref(), call.city.as_deref()), (None, None));
        assert_eq!(
            call.warnings,
            vec![format!("caller {ERASED_TEXT} looked up")]
        );
        assert_eq!(
            call.attributes["callback"].value,
            format!("call back on {ERASED_TEXT} please")
        );
    }

    #[test]
    fn every_usual_spelling_is_found_and_nothing_else() {
        let pattern = spelling_pattern("+14155552671").unwrap();
        for spelled in [
            "+14155552671",
            "14155552671",
            "4155552671",
            "(415) 555-2671",
            "415.555.2671",
            "+1 (415) 555-2671",
            "1-415-555-2671",
            "tel:+1-415-555-2671",
        ] {
            let text = format!(r#"{{"caller": "{spelled}", "zip": "94103"}}"#);
            let prefix = if spelled.starts_with("tel:") {
                "tel:"
            } else {
                ""
            };
            let want = format!(r#"{{"caller": "{prefix}[erased]", "zip": "94103"}}"#);
            assert_eq!(erase(&pattern, &text), want, "{spelled}");
        }
        for other in [
            "+14155552672",
            "41555526710",
            "94155552671",
            "(415) 555-2617",
        ] {
            let text = format!("caller {other} called");
            assert_eq!(erase(&pattern, &text), text, "{other} is another number");
        }
    }

    #[test]
    fn a_number_with_a_leading_zero_keeps_it() {
        // An Italian landline: the national number starts with 0.
        let pattern = spelling_pattern("+390236618200").unwrap();
        assert_eq!(
            erase(&pattern, "chiamata 02 3661 8200 ok"),
            "chiamata [erased] ok"
        );
        assert_eq!(spelling_pattern("not a number"), None);
    }
}
