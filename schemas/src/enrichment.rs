//! Per-integration rules for the decisions the processor makes about a call: when it
//! is a repeat, when it qualifies, how closely a partner record must match a call
//! CallMatrix routed itself. Every field has the default pay-per-call trackers use,
//! so an integration without an `enrichment` section behaves sensibly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Longest repeat window accepted: a year.
pub const MAX_WINDOW_DAYS: u32 = 365;
/// Widest match tolerance accepted: a day.
pub const MAX_TOLERANCE_S: u32 = 86_400;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichmentRules {
    pub repeat: RepeatRule,
    pub qualification: QualificationRule,
    pub duplicates: DuplicateRule,
}

/// A call is a repeat when the same caller called the same scope within
/// `window_days` before it (by start time), and that earlier call counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RepeatRule {
    pub window_days: u32,
    pub scope: RepeatScope,
    pub counts: RepeatCounts,
}

impl Default for RepeatRule {
    fn default() -> Self {
        Self {
            window_days: 30,
            scope: RepeatScope::Account,
            counts: RepeatCounts::Connected,
        }
    }
}

/// Which earlier calls a call is compared with: all of the account's, or only those
/// of the same campaign or the same buyer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepeatScope {
    #[default]
    Account,
    Campaign,
    Buyer,
}

/// Which earlier calls make a later one a repeat: any call that connected, or only
/// one that qualified (and was not itself a repeat).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepeatCounts {
    #[default]
    Connected,
    Qualified,
}

/// Whether a call qualifies before repeat and duplicate decisions: the partner's own
/// status word when `status_words` names it; else, with `min_duration_s`, whether the
/// call lasted that long (connected duration when the partner sends it); else whether
/// the payout is positive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QualificationRule {
    pub min_duration_s: Option<u32>,
    /// Partner status word (compared case-insensitively) → qualified or not.
    pub status_words: BTreeMap<String, Qualification>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Qualification {
    Qualified,
    Unqualified,
}

/// How close a partner record on a CallMatrix number must be to a CallMatrix call to
/// be linked to it when the partner does not echo the CallMatrix call id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DuplicateRule {
    pub start_tolerance_s: u32,
    /// The partner's leg is often shorter by the ring time.
    pub duration_tolerance_s: u32,
}

impl Default for DuplicateRule {
    fn default() -> Self {
        Self {
            start_tolerance_s: 300,
            duration_tolerance_s: 60,
        }
    }
}

impl EnrichmentRules {
    /// The first problem, as (field path under `enrichment`, problem).
    pub fn problem(&self) -> Option<(String, String)> {
        if !(1..=MAX_WINDOW_DAYS).contains(&self.repeat.window_days) {
            return Some((
                "enrichment.repeat.window_days".into(),
                format!("must be between 1 and {MAX_WINDOW_DAYS}"),
            ));
        }
        for (name, value) in [
            ("start_tolerance_s", self.duplicates.start_tolerance_s),
            ("duration_tolerance_s", self.duplicates.duration_tolerance_s),
        ] {
            if value > MAX_TOLERANCE_S {
                return Some((
                    format!("enrichment.duplicates.{name}"),
                    format!("must be at most {MAX_TOLERANCE_S}"),
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for word in self.qualification.status_words.keys() {
            let folded = word.trim().to_lowercase();
            if folded.is_empty() {
                return Some((
                    "enrichment.qualification.status_words".into(),
                    "has an empty word".into(),
                ));
            }
            if !seen.insert(folded) {
                return Some((
                    "enrichment.qualification.status_words".into(),
                    format!("{word:?} is listed twice (words compare case-insensitively)"),
                ));
            }
        }
        None
    }

    /// The qualification a partner's status word decides, if the rules name it.
    pub fn word(&self, status: &str) -> Option<Qualification> {
        let status = status.trim();
        self.qualification
            .status_words
            .iter()
            .find(|(word, _)| word.trim().eq_ignore_ascii_case(status))
            .map(|(_, q)| *q)
    }
}

/// A call's status, by precedence: a call CallMatrix routed itself is a duplicate
/// whatever else is true of it; else a repeat caller's call is a repeat even when it
/// would qualify; else it is qualified or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Duplicate,
    Repeat,
    Qualified,
    Unqualified,
}

impl Status {
    pub fn decide(is_duplicate: bool, is_repeat: bool, qualified: bool) -> Self {
        match (is_duplicate, is_repeat, qualified) {
            (true, _, _) => Self::Duplicate,
            (false, true, _) => Self::Repeat,
            (false, false, true) => Self::Qualified,
            (false, false, false) => Self::Unqualified,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::Repeat => "repeat",
            Self::Qualified => "qualified",
            Self::Unqualified => "unqualified",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_trackers_defaults() {
        let rules: EnrichmentRules = serde_json::from_str("{}").unwrap();
        assert_eq!(rules.repeat.window_days, 30);
        assert_eq!(rules.repeat.scope, RepeatScope::Account);
        assert_eq!(rules.repeat.counts, RepeatCounts::Connected);
        assert_eq!(rules.duplicates.start_tolerance_s, 300);
        assert_eq!(rules.duplicates.duration_tolerance_s, 60);
        assert_eq!(rules.problem(), None);
    }

    #[test]
    fn problems_name_the_field() {
        let rules: EnrichmentRules =
            serde_json::from_str(r#"{"repeat": {"window_days": 0}}"#).unwrap();
        assert_eq!(rules.problem().unwrap().0, "enrichment.repeat.window_days");
        let rules: EnrichmentRules = serde_json::from_str(
            r#"{"qualification": {"status_words": {"Sale": "qualified", "sale": "unqualified"}}}"#,
        )
        .unwrap();
        assert!(rules.problem().unwrap().1.contains("twice"));
        let unknown = serde_json::from_str::<EnrichmentRules>(r#"{"repeat": {"window": 3}}"#);
        assert!(unknown.unwrap_err().to_string().contains("window"));
    }

    #[test]
    fn status_words_compare_case_insensitively() {
        let rules: EnrichmentRules =
            serde_json::from_str(r#"{"qualification": {"status_words": {"Sale": "qualified"}}}"#)
                .unwrap();
        assert_eq!(rules.word(" SALE "), Some(Qualification::Qualified));
        assert_eq!(rules.word("no sale"), None);
    }

    #[test]
    fn precedence_is_duplicate_then_repeat_then_qualification() {
        assert_eq!(Status::decide(true, true, true), Status::Duplicate);
        assert_eq!(Status::decide(false, true, true), Status::Repeat);
        assert_eq!(Status::decide(false, false, true), Status::Qualified);
        assert_eq!(Status::decide(false, false, false), Status::Unqualified);
    }
}
