//! The canonical call record (JSON on the enriched topic and from the API) and its
//! ClickHouse row (`CallRow`, matching `migrations/0001_calls.sql`).

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_repr::{Deserialize_repr, Serialize_repr};
use uuid::Uuid;

use crate::callmatrix::MatchMethod;
use crate::{CallId, ClientId, Money, E164};

/// How a record reached us. The numbers are the ClickHouse `Enum8` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize_repr, Deserialize_repr, Default)]
#[repr(i8)]
pub enum Source {
    #[default]
    Webhook = 1,
    Poll = 2,
    Csv = 3,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Webhook => "webhook",
            Source::Poll => "poll",
            Source::Csv => "csv",
        }
    }
}

/// Text form for JSON and config; the `repr` form above is for ClickHouse.
pub mod source_text {
    use super::Source;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(source: &Source, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(source.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Source, D::Error> {
        match String::deserialize(d)?.as_str() {
            "webhook" => Ok(Source::Webhook),
            "poll" => Ok(Source::Poll),
            "csv" => Ok(Source::Csv),
            other => Err(serde::de::Error::custom(format!(
                "unknown source {other:?}; expected webhook, poll or csv"
            ))),
        }
    }
}

/// Where in Kafka a canonical call came from, so any row can be traced to its input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawPosition {
    pub raw_id: Uuid,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// One call, normalised. Text fields the partner did not send are `None` here and
/// empty strings in ClickHouse; numbers the partner did not send stay unknown
/// (`None`/NULL), never zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub id: CallId,
    /// ReplacingMergeTree version, see [`row_version`].
    pub version: u64,
    pub account: String,
    pub client_id: ClientId,
    #[serde(with = "source_text")]
    pub source: Source,
    pub external_id: Option<String>,
    /// `None` when the partner says the caller withheld the number ("anonymous",
    /// "restricted", "unavailable", ...): still a call, never a repeat of another.
    pub caller: Option<E164>,
    pub called: Option<E164>,
    pub started_at: DateTime<Utc>,
    pub local_tz: String,
    pub duration_s: Option<u32>,
    /// Seconds after the call connected, when the partner measures it.
    pub connected_duration_s: Option<u32>,
    /// Whether the call connected, when the partner says.
    pub connected: Option<bool>,
    pub payout: Option<Money>,
    pub revenue: Option<Money>,
    pub currency: String,
    pub zip: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub campaign: Option<String>,
    pub publisher: Option<String>,
    pub buyer: Option<String>,
    pub tags: Vec<String>,
    pub status: String,
    pub is_duplicate: bool,
    pub cm_call_id: Option<String>,
    /// Optional fields that could not be coerced: kept visible, never dropped silently.
    pub warnings: Vec<String>,
    pub received_at: DateTime<Utc>,
    pub processed_at: DateTime<Utc>,
    pub raw: RawPosition,
    pub mapping_version: u32,
    /// The partner's own status word, as sent.
    pub partner_status: Option<String>,
    /// Qualified by the integration's rules, before repeat and duplicate decisions.
    pub qualified: bool,
    /// The earlier call that makes this one a repeat, and when it started.
    pub repeat_of: Option<CallId>,
    pub repeat_of_started_at: Option<DateTime<Utc>>,
    /// How this record was linked to a CallMatrix call (`cm_call_id`), if it is on a
    /// CallMatrix number.
    pub match_method: Option<MatchMethod>,
    /// Partner start minus CmCall start, and partner duration minus CmCall duration.
    pub match_start_delta_s: Option<i32>,
    pub match_duration_delta_s: Option<i32>,
    /// Where `local_tz` came from: `zip`, `area_code` or `integration`.
    pub tz_source: String,
    /// The mapping's custom attributes, by name (see [`crate::attribute`]).
    #[serde(default)]
    pub attributes: crate::attribute::Attributes,
    /// Set when retention replaced the caller's number (`caller` is then `None`):
    /// `h:` and a keyed SHA-256, the same for every call of that caller, or `h:`
    /// alone when the number was emptied (`crate::retention`); or an erasure did:
    /// `e:` and the erasure's id (`crate::erasure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_hash: Option<String>,
    /// Whether this version announces a new call or changes a known one. Travels on
    /// the enriched topic only (as `"event": "call.updated"`, absent when created);
    /// not a column.
    #[serde(default, skip_serializing_if = "Change::is_created")]
    pub event: Change,
}

/// What a version of a call tells a dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    #[default]
    #[serde(rename = "call.created")]
    Created,
    #[serde(rename = "call.updated")]
    Updated,
}

impl Change {
    pub fn is_created(&self) -> bool {
        *self == Self::Created
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "call.created",
            Self::Updated => "call.updated",
        }
    }
}

/// The `calls` table row. Field order and names must match the DDL; a test in
/// `tests/` compares them against the live table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clickhouse", derive(clickhouse::Row))]
pub struct CallRow {
    #[cfg_attr(feature = "clickhouse", serde(with = "clickhouse::serde::uuid"))]
    pub id: Uuid,
    pub version: u64,
    pub account: String,
    pub client_id: String,
    pub source: Source,
    pub external_id: String,
    pub caller: String,
    pub called: String,
    #[cfg_attr(
        feature = "clickhouse",
        serde(with = "clickhouse::serde::chrono::datetime")
    )]
    pub started_at: DateTime<Utc>,
    pub local_tz: String,
    pub duration_s: Option<u32>,
    pub payout: Option<i64>,
    pub revenue: Option<i64>,
    pub currency: String,
    pub zip: String,
    pub city: String,
    pub state: String,
    pub campaign: String,
    pub publisher: String,
    pub buyer: String,
    pub tags: Vec<String>,
    pub status: String,
    pub is_duplicate: u8,
    pub cm_call_id: String,
    pub warnings: Vec<String>,
    #[cfg_attr(
        feature = "clickhouse",
        serde(with = "clickhouse::serde::chrono::datetime")
    )]
    pub received_at: DateTime<Utc>,
    #[cfg_attr(
        feature = "clickhouse",
        serde(with = "clickhouse::serde::chrono::datetime")
    )]
    pub processed_at: DateTime<Utc>,
    #[cfg_attr(feature = "clickhouse", serde(with = "clickhouse::serde::uuid"))]
    pub raw_id: Uuid,
    pub raw_topic: String,
    pub raw_partition: i32,
    pub raw_offset: i64,
    pub mapping_version: u32,
    pub connected_duration_s: Option<u32>,
    pub connected: Option<u8>,
    pub partner_status: String,
    pub qualified: u8,
    pub repeat_of: String,
    #[cfg_attr(
        feature = "clickhouse",
        serde(with = "clickhouse::serde::chrono::datetime::option")
    )]
    pub repeat_of_started_at: Option<DateTime<Utc>>,
    pub match_method: String,
    pub match_start_delta_s: Option<i32>,
    pub match_duration_delta_s: Option<i32>,
    pub tz_source: String,
    /// 1 when the caller withheld the number (`caller` is then empty).
    pub caller_withheld: u8,
    /// The custom attributes as parallel arrays, sorted by name.
    pub attr_keys: Vec<String>,
    pub attr_types: Vec<crate::attribute::AttributeTypeCode>,
    pub attr_values: Vec<String>,
}

/// Column names of `calls`, in DDL order, for explicit `SELECT` lists.
pub const CALL_COLUMNS: &str = "id, version, account, client_id, source, external_id, caller, called, \
started_at, local_tz, duration_s, payout, revenue, currency, zip, city, state, campaign, publisher, \
buyer, tags, status, is_duplicate, cm_call_id, warnings, received_at, processed_at, raw_id, raw_topic, \
raw_partition, raw_offset, mapping_version, connected_duration_s, connected, partner_status, qualified, \
repeat_of, repeat_of_started_at, match_method, match_start_delta_s, match_duration_delta_s, tz_source, \
caller_withheld, attr_keys, attr_types, attr_values";

/// A caller that retention hashed (`h:`) or an erasure replaced (`e:`): no number.
fn pseudonymous(caller: &str) -> bool {
    caller.starts_with(crate::retention::HASH_PREFIX)
        || caller.starts_with(crate::erasure::ERASED_PREFIX)
}

fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

fn optional(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

impl From<&CallRecord> for CallRow {
    fn from(call: &CallRecord) -> Self {
        let (attr_keys, attr_types, attr_values) = crate::attribute::to_arrays(&call.attributes);
        Self {
            id: call.id.0,
            version: call.version,
            account: call.account.clone(),
            client_id: call.client_id.to_string(),
            source: call.source,
            external_id: text(&call.external_id),
            caller: call
                .caller
                .as_ref()
                .map(ToString::to_string)
                .or_else(|| call.caller_hash.clone())
                .unwrap_or_default(),
            called: call
                .called
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            started_at: call.started_at,
            local_tz: call.local_tz.clone(),
            duration_s: call.duration_s,
            payout: call.payout.map(Money::units),
            revenue: call.revenue.map(Money::units),
            currency: call.currency.clone(),
            zip: text(&call.zip),
            city: text(&call.city),
            state: text(&call.state),
            campaign: text(&call.campaign),
            publisher: text(&call.publisher),
            buyer: text(&call.buyer),
            tags: call.tags.clone(),
            status: call.status.clone(),
            is_duplicate: u8::from(call.is_duplicate),
            cm_call_id: text(&call.cm_call_id),
            warnings: call.warnings.clone(),
            received_at: call.received_at,
            processed_at: call.processed_at,
            raw_id: call.raw.raw_id,
            raw_topic: call.raw.topic.clone(),
            raw_partition: call.raw.partition,
            raw_offset: call.raw.offset,
            mapping_version: call.mapping_version,
            connected_duration_s: call.connected_duration_s,
            connected: call.connected.map(u8::from),
            partner_status: text(&call.partner_status),
            qualified: u8::from(call.qualified),
            repeat_of: call.repeat_of.map(|id| id.to_string()).unwrap_or_default(),
            repeat_of_started_at: call.repeat_of_started_at,
            match_method: call
                .match_method
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default(),
            match_start_delta_s: call.match_start_delta_s,
            match_duration_delta_s: call.match_duration_delta_s,
            tz_source: call.tz_source.clone(),
            caller_withheld: u8::from(call.caller.is_none() && call.caller_hash.is_none()),
            attr_keys,
            attr_types,
            attr_values,
        }
    }
}

/// A `calls_by_time` row that retires a call's old position there, written when a
/// new version moves the call (another start time or account): `calls_by_time` is
/// sorted by those, so the old version would otherwise stay beside the new one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clickhouse", derive(clickhouse::Row))]
pub struct MovedCallRow {
    pub account: String,
    #[cfg_attr(
        feature = "clickhouse",
        serde(with = "clickhouse::serde::chrono::datetime")
    )]
    pub started_at: DateTime<Utc>,
    pub client_id: String,
    #[cfg_attr(feature = "clickhouse", serde(with = "clickhouse::serde::uuid"))]
    pub id: Uuid,
    pub version: u64,
    pub deleted: u8,
    pub source: Source,
    pub duration_s: Option<u32>,
    pub payout: Option<i64>,
    pub revenue: Option<i64>,
    pub campaign: String,
    pub publisher: String,
    pub state: String,
    pub status: String,
}

impl MovedCallRow {
    /// The tombstone of `old` when `new` replaces it under another key; `None` when
    /// the call did not move.
    pub fn tombstone(old: &CallRecord, new: &CallRecord) -> Option<Self> {
        let moved = old.started_at != new.started_at || old.account != new.account;
        moved.then(|| Self {
            account: old.account.clone(),
            started_at: old.started_at,
            client_id: old.client_id.to_string(),
            id: old.id.0,
            version: new.version,
            deleted: 1,
            source: old.source,
            duration_s: old.duration_s,
            payout: old.payout.map(Money::units),
            revenue: old.revenue.map(Money::units),
            campaign: text(&old.campaign),
            publisher: text(&old.publisher),
            state: text(&old.state),
            status: old.status.clone(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("row {id} in ClickHouse has an invalid {field}: {reason}")]
pub struct RowDecodeError {
    pub id: Uuid,
    pub field: &'static str,
    pub reason: String,
}

impl TryFrom<CallRow> for CallRecord {
    type Error = RowDecodeError;

    fn try_from(row: CallRow) -> Result<Self, Self::Error> {
        let id = row.id;
        let bad = |field: &'static str, reason: String| RowDecodeError { id, field, reason };
        let called = match row.called.as_str() {
            "" => None,
            text => {
                Some(E164::try_from(text.to_owned()).map_err(|e| bad("called", e.to_string()))?)
            }
        };
        let money = |field: &'static str, units: Option<i64>| {
            units
                .map(|u| {
                    Money::from_units(u).ok_or_else(|| bad(field, format!("{u} out of range")))
                })
                .transpose()
        };
        Ok(Self {
            id: CallId(row.id),
            version: row.version,
            account: row.account,
            client_id: ClientId::parse(&row.client_id)
                .map_err(|e| bad("client_id", e.to_string()))?,
            source: row.source,
            external_id: optional(row.external_id),
            caller_hash: pseudonymous(&row.caller).then(|| row.caller.clone()),
            caller: if row.caller_withheld != 0 || pseudonymous(&row.caller) {
                None
            } else {
                Some(E164::try_from(row.caller).map_err(|e| bad("caller", e.to_string()))?)
            },
            called,
            started_at: row.started_at,
            local_tz: row.local_tz,
            duration_s: row.duration_s,
            connected_duration_s: row.connected_duration_s,
            connected: row.connected.map(|c| c != 0),
            payout: money("payout", row.payout)?,
            revenue: money("revenue", row.revenue)?,
            currency: row.currency,
            zip: optional(row.zip),
            city: optional(row.city),
            state: optional(row.state),
            campaign: optional(row.campaign),
            publisher: optional(row.publisher),
            buyer: optional(row.buyer),
            tags: row.tags,
            status: row.status,
            is_duplicate: row.is_duplicate != 0,
            cm_call_id: optional(row.cm_call_id),
            warnings: row.warnings,
            received_at: row.received_at,
            processed_at: row.processed_at,
            raw: RawPosition {
                raw_id: row.raw_id,
                topic: row.raw_topic,
                partition: row.raw_partition,
                offset: row.raw_offset,
            },
            mapping_version: row.mapping_version,
            partner_status: optional(row.partner_status),
            qualified: row.qualified != 0,
            repeat_of: match row.repeat_of.as_str() {
                "" => None,
                text => Some(CallId(
                    Uuid::parse_str(text).map_err(|e| bad("repeat_of", e.to_string()))?,
                )),
            },
            repeat_of_started_at: row.repeat_of_started_at,
            match_method: MatchMethod::parse(&row.match_method),
            match_start_delta_s: row.match_start_delta_s,
            match_duration_delta_s: row.match_duration_delta_s,
            tz_source: row.tz_source,
            attributes: crate::attribute::from_arrays(
                row.attr_keys,
                row.attr_types,
                row.attr_values,
            )
            .ok_or_else(|| bad("attr_keys", "attribute arrays of different lengths".into()))?,
            // A stored call written again is an update; the writers say so when
            // they write it (`assemble`, `enrich::redecided`, the linker).
            event: Change::Created,
        })
    }
}

/// The highest mapping version an integration can have (the row version's budget).
pub const MAX_MAPPING_VERSION: u32 = 999_999;

/// Receive times take the low 13 decimal digits of a row version: milliseconds
/// since 1970 stay below 10^13 until the year 2286.
const RECEIVE_TIME_SPAN: u64 = 10_000_000_000_000;

/// The ReplacingMergeTree version of a call row: the mapping version, then the
/// receive time in milliseconds. A row made with a newer mapping beats every row
/// made with an older one, so a replay after a mapping change replaces the call
/// even where later records of it exist (they are replayed too, and merge onto the
/// replayed row). Under one mapping, a record received later (a late field, a
/// correction) wins. Reprocessing writes the same version and changes nothing.
pub fn row_version(received_at: DateTime<Utc>, mapping_version: u32) -> u64 {
    let millis = (received_at.timestamp_millis().max(0) as u64).min(RECEIVE_TIME_SPAN - 1);
    u64::from(mapping_version.min(MAX_MAPPING_VERSION)) * RECEIVE_TIME_SPAN + millis
}

/// ClickHouse `DateTime` holds whole seconds; everything we store is truncated to
/// them first so a record read back equals the record written.
pub fn to_whole_seconds(instant: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_opt(instant.timestamp(), 0)
        .single()
        .unwrap_or(instant)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::attribute::{AttributeType, AttributeValue};
    use phonenumber::country::Id;

    pub(crate) fn sample() -> CallRecord {
        let at = Utc.with_ymd_and_hms(2026, 11, 20, 22, 3, 22).unwrap();
        CallRecord {
            id: CallId::from_external(&ClientId::parse("arroyo").unwrap(), "ar_1"),
            version: 1,
            account: "acme".into(),
            client_id: ClientId::parse("arroyo").unwrap(),
            source: Source::Webhook,
            external_id: Some("ar_1".into()),
            caller: Some(E164::parse("4155552671", Id::US).unwrap()),
            called: None,
            started_at: at,
            local_tz: "America/Los_Angeles".into(),
            duration_s: Some(252),
            connected_duration_s: Some(230),
            connected: Some(true),
            payout: Some("45.00".parse().unwrap()),
            revenue: None,
            currency: "USD".into(),
            zip: Some("94103".into()),
            city: None,
            state: None,
            campaign: Some("Auto".into()),
            publisher: None,
            buyer: None,
            tags: vec!["auto".into()],
            status: "qualified".into(),
            is_duplicate: false,
            cm_call_id: None,
            warnings: vec![],
            received_at: at,
            processed_at: at,
            raw: RawPosition {
                raw_id: Uuid::nil(),
                topic: "calls.raw".into(),
                partition: 2,
                offset: 17,
            },
            mapping_version: 3,
            partner_status: Some("Sale".into()),
            qualified: true,
            repeat_of: Some(CallId::from_external(
                &ClientId::parse("arroyo").unwrap(),
                "ar_0",
            )),
            repeat_of_started_at: Some(at - chrono::Duration::days(3)),
            match_method: Some(MatchMethod::TimeWindow),
            match_start_delta_s: Some(-2),
            match_duration_delta_s: Some(20),
            tz_source: "zip".into(),
            caller_hash: None,
            attributes: [
                ("publisherSubId", AttributeType::String, "pub-7"),
                ("share", AttributeType::Number, "12.5"),
                ("consent", AttributeType::Boolean, "true"),
            ]
            .into_iter()
            .map(|(name, kind, value)| {
                (
                    name.to_owned(),
                    AttributeValue {
                        kind,
                        value: value.to_owned(),
                    },
                )
            })
            .collect(),
            event: Change::Created,
        }
    }

    #[test]
    fn newer_mapping_wins_then_later_receipt() {
        let at = Utc.with_ymd_and_hms(2026, 11, 20, 22, 3, 22).unwrap();
        let later = at + chrono::Duration::milliseconds(1);
        let years_later = at + chrono::Duration::days(3650);
        assert!(
            row_version(at, 2) > row_version(years_later, 1),
            "a replay under a newer mapping wins"
        );
        assert!(
            row_version(later, 1) > row_version(at, 1),
            "under one mapping, later receipt wins"
        );
        assert_eq!(
            row_version(at, 1),
            row_version(at, 1),
            "reprocessing changes nothing"
        );
        // The largest version still fits in a u64.
        let far = Utc.with_ymd_and_hms(2280, 1, 1, 0, 0, 0).unwrap();
        let top = u128::from(MAX_MAPPING_VERSION) * u128::from(RECEIVE_TIME_SPAN)
            + u128::from(RECEIVE_TIME_SPAN);
        assert!(top <= u128::from(u64::MAX));
        assert!(row_version(far, MAX_MAPPING_VERSION) > row_version(at, MAX_MAPPING_VERSION));
    }

    #[test]
    fn row_round_trip_keeps_every_field() {
        let call = sample();
        let back = CallRecord::try_from(CallRow::from(&call)).unwrap();
        assert_eq!(back, call);
    }

    #[test]
    fn a_caller_retention_hashed_reads_back_and_writes_back_as_it_was() {
        let mut row = CallRow::from(&sample());
        row.caller = "h:0123abcd".into();
        let call = CallRecord::try_from(row.clone()).unwrap();
        assert_eq!(call.caller, None);
        assert_eq!(call.caller_hash.as_deref(), Some("h:0123abcd"));
        let again = CallRow::from(&call);
        assert_eq!(
            (again.caller.as_str(), again.caller_withheld),
            ("h:0123abcd", 0)
        );
        // A withheld caller stays withheld.
        let mut withheld = sample();
        withheld.caller = None;
        let row = CallRow::from(&withheld);
        assert_eq!((row.caller.as_str(), row.caller_withheld), ("", 1));
    }

    #[test]
    fn an_erased_caller_reads_back_as_its_token_and_writes_back_as_it_was() {
        let token = crate::erasure::erased_caller(uuid::Uuid::from_u128(7));
        let mut row = CallRow::from(&sample());
        row.caller = token.clone();
        let call = CallRecord::try_from(row).unwrap();
        assert_eq!(call.caller, None);
        assert_eq!(call.caller_hash.as_deref(), Some(token.as_str()));
        let again = CallRow::from(&call);
        assert_eq!((again.caller, again.caller_withheld), (token, 0));
    }

    #[test]
    fn json_uses_text_source_and_string_money() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(json["source"], "webhook");
        assert!(
            json.get("event").is_none(),
            "a new call carries no event field"
        );
        let mut update = sample();
        update.event = Change::Updated;
        let updated = serde_json::to_value(&update).unwrap();
        assert_eq!(updated["event"], "call.updated");
        let back: CallRecord = serde_json::from_value(updated).unwrap();
        assert_eq!(back.event, Change::Updated);
        assert_eq!(json["payout"], "45.00");
        assert_eq!(json["revenue"], serde_json::Value::Null);
        assert_eq!(json["attributes"]["share"]["type"], "number");
        // Calls kept before attributes existed (the processor's state) still read.
        let mut old = json.clone();
        old.as_object_mut().unwrap().remove("attributes");
        let back: CallRecord = serde_json::from_value(old).unwrap();
        assert!(back.attributes.is_empty());
    }
}
