//! What CallMatrix knows about its own traffic: the numbers it manages and the calls
//! it routed (CmCall). A partner record on a managed number is a call CallMatrix
//! already counted, so it is a duplicate of one of these.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Money, E164};

/// A number CallMatrix manages. Keyed by `number` on the compacted numbers topic; a
/// record with `active: false` retires the number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagedNumber {
    pub number: E164,
    pub account: String,
    #[serde(default)]
    pub campaign: String,
    #[serde(default = "active_by_default")]
    pub active: bool,
}

fn active_by_default() -> bool {
    true
}

/// The linker's request to the owner of a caller's partition: match this stored
/// call against CallMatrix's calls again. Sent on the raw topic under the caller's
/// key with the `cm-relink` header, so that every change to a call (late fields,
/// repeat re-decisions, links) is made by one consumer, in order, and none
/// overwrites another made from the same stored version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelinkRequest {
    pub client_id: crate::ClientId,
    pub id: crate::CallId,
}

/// A call CallMatrix routed itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmCall {
    pub cm_call_id: String,
    pub caller: E164,
    pub called: E164,
    pub started_at: DateTime<Utc>,
    pub duration_s: u32,
    #[serde(default)]
    pub payout: Option<Money>,
    /// The account the call was routed for. Absent: the account that manages the
    /// called number (the linker fills it in). A partner record is only ever linked
    /// to a CmCall of its own account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clickhouse", derive(clickhouse::Row))]
pub struct ManagedNumberRow {
    pub number: String,
    pub account: String,
    pub campaign: String,
    pub active: u8,
    #[cfg_attr(
        feature = "clickhouse",
        serde(with = "clickhouse::serde::chrono::datetime")
    )]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clickhouse", derive(clickhouse::Row))]
pub struct CmCallRow {
    pub cm_call_id: String,
    pub caller: String,
    pub called: String,
    #[cfg_attr(
        feature = "clickhouse",
        serde(with = "clickhouse::serde::chrono::datetime")
    )]
    pub started_at: DateTime<Utc>,
    pub duration_s: u32,
    pub payout: Option<i64>,
    #[cfg_attr(
        feature = "clickhouse",
        serde(with = "clickhouse::serde::chrono::datetime")
    )]
    pub received_at: DateTime<Utc>,
    /// The account it was routed for (migration 14).
    pub account: String,
}

pub const CM_CALL_COLUMNS: &str =
    "cm_call_id, caller, called, started_at, duration_s, payout, received_at, account";

impl CmCallRow {
    /// `account`: the call's own, else that of the account managing its number.
    pub fn new(call: &CmCall, account: String, received_at: DateTime<Utc>) -> Self {
        Self {
            cm_call_id: call.cm_call_id.clone(),
            caller: call.caller.to_string(),
            called: call.called.to_string(),
            started_at: crate::call::to_whole_seconds(call.started_at),
            duration_s: call.duration_s,
            payout: call.payout.map(Money::units),
            received_at: crate::call::to_whole_seconds(received_at),
            account,
        }
    }
}

/// Why a partner record was (or was not) linked to a CmCall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchMethod {
    /// The partner sent our routed call id back.
    EchoedId,
    /// Same caller and number, start and duration within the tolerances.
    TimeWindow,
    /// Two or more CmCalls fit equally well: flagged, not guessed.
    Ambiguous,
    /// On a managed number, but no CmCall fits yet: linked when one arrives.
    Pending,
}

impl MatchMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EchoedId => "echoed_id",
            Self::TimeWindow => "time_window",
            Self::Ambiguous => "ambiguous",
            Self::Pending => "pending",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::EchoedId,
            Self::TimeWindow,
            Self::Ambiguous,
            Self::Pending,
        ]
        .into_iter()
        .find(|m| m.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_samples_parse() {
        let calls: Vec<CmCall> = serde_json::from_str(
            r#"[{"cm_call_id": "cm_0001", "caller": "+14155552671", "called": "+18885550100", "started_at": "2026-11-20T22:03:20Z", "duration_s": 250, "payout": "45.00"}]"#,
        )
        .unwrap();
        assert_eq!(calls[0].payout.unwrap().to_string(), "45.00");
        let row = CmCallRow::new(&calls[0], "acme-leads".into(), calls[0].started_at);
        assert_eq!(row.payout, Some(450_000));
    }

    #[test]
    fn match_methods_round_trip() {
        for m in [
            MatchMethod::EchoedId,
            MatchMethod::TimeWindow,
            MatchMethod::Ambiguous,
            MatchMethod::Pending,
        ] {
            assert_eq!(MatchMethod::parse(m.as_str()), Some(m));
        }
    }
}
