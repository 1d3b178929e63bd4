//! What a viewer token sees: every answer of the api passes through [`masked`] on
//! its way out when the token is a viewer's, whatever route made it, so callers'
//! numbers are masked to their last four digits in one place (JSON answers, the
//! event stream, the CSV export). Routes that show partners' records as sent (dead
//! letters' payloads, previews, a story's raw records) are refused or left out for
//! viewers before this (`Scope::check_payloads`): those hold numbers in spellings no
//! pattern can be sure of.
//!
//! In JSON: a phone field (`caller`, `called`, and any key naming a phone or a
//! number of one) is masked whatever its spelling; free text that may quote a
//! partner's value (`warnings`, `errors`, `reason`, `text`, ...) has every run of
//! seven or more digits masked; every other string has its E.164 numbers (`+` and
//! 8 to 15 digits, as every number we write is) masked. Text bodies (CSV, a line of
//! the event stream that is not JSON) get the E.164 masking.

use std::borrow::Cow;
use std::sync::LazyLock;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::Response;
use http_body_util::BodyExt;
use regex::Regex;
use runtime::http::Body;
use serde_json::Value;

/// Digits a masked number keeps, from its end.
const KEPT_DIGITS: usize = 4;

/// Keys whose string value is a phone number in any spelling.
fn is_phone_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    matches!(key.as_str(), "caller" | "called" | "ani" | "dnis")
        || key.contains("phone")
        || key.ends_with("_number")
        || key.ends_with("number_e164")
}

/// Keys whose strings are free text that may quote a partner's value.
fn is_free_text_key(key: &str) -> bool {
    matches!(
        key,
        "warnings"
            | "errors"
            | "error"
            | "reason"
            | "text"
            | "message"
            | "problem"
            | "detail"
            | "rule"
    )
}

/// `+13125550199` → `+*******0199`: every digit but the last four masked, the rest
/// of the spelling kept (so `(312) 555-0199` → `(***) ***-0199`).
pub fn mask_number(text: &str) -> String {
    let digits = text.bytes().filter(u8::is_ascii_digit).count();
    let mut to_mask = digits.saturating_sub(KEPT_DIGITS);
    text.chars()
        .map(|c| {
            if c.is_ascii_digit() && to_mask > 0 {
                to_mask -= 1;
                '*'
            } else {
                c
            }
        })
        .collect()
}

/// E.164 numbers in text.
static E164: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\+\d{8,15}").unwrap_or_else(|_| unreachable!()));

/// Anything that may be a number written by a partner: seven or more digits, with
/// spaces, dots, dashes or parentheses between them.
static DIGIT_RUN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\+?\(?\d(?:[\s().-]{0,2}\d){6,}").unwrap_or_else(|_| unreachable!())
});

/// `text` with its E.164 numbers masked.
pub fn mask_e164(text: &str) -> Cow<'_, str> {
    E164.replace_all(text, |c: &regex::Captures| mask_number(&c[0]))
}

/// `text` with every run of seven or more digits masked (free text).
pub fn mask_digit_runs(text: &str) -> Cow<'_, str> {
    DIGIT_RUN.replace_all(text, |c: &regex::Captures| mask_number(&c[0]))
}

/// Masks a JSON value in place, by the rules at the top of this file.
pub fn mask_json(value: &mut Value) {
    mask_under(value, Kind::Other);
}

#[derive(Clone, Copy)]
enum Kind {
    Phone,
    FreeText,
    Other,
}

fn mask_under(value: &mut Value, kind: Kind) {
    match value {
        Value::String(text) => {
            let masked = match kind {
                Kind::Phone => Cow::Owned(mask_number(text)),
                Kind::FreeText => mask_digit_runs(text),
                Kind::Other => mask_e164(text),
            };
            if let Cow::Owned(masked) = masked {
                *text = masked;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| mask_under(item, kind)),
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                let kind = if is_phone_key(key) {
                    Kind::Phone
                } else if is_free_text_key(key) {
                    Kind::FreeText
                } else {
                    // Inside a phone or free-text field, everything keeps its rule
                    // (an attribute named `callerPhone` holds `{type, value}`).
                    kind
                };
                mask_under(field, kind);
            }
        }
        Value::Number(_) | Value::Bool(_) | Value::Null => {}
    }
}

/// One chunk of a body, masked as its content type says.
fn mask_chunk(content_type: &str, chunk: &Bytes) -> Bytes {
    let Ok(text) = std::str::from_utf8(chunk) else {
        // Not text: nothing a viewer could read a number from, but be safe.
        return Bytes::from_static(b"");
    };
    if content_type.contains("json") {
        if let Ok(mut value) = serde_json::from_str::<Value>(text) {
            mask_json(&mut value);
            return Bytes::from(value.to_string());
        }
    }
    if content_type.starts_with("text/event-stream") {
        let lines: Vec<String> = text
            .split('\n')
            .map(|line| match line.strip_prefix("data: ") {
                Some(data) => match serde_json::from_str::<Value>(data) {
                    Ok(mut value) => {
                        mask_json(&mut value);
                        format!("data: {value}")
                    }
                    Err(_) => mask_e164(line).into_owned(),
                },
                None => mask_e164(line).into_owned(),
            })
            .collect();
        return Bytes::from(lines.join("\n"));
    }
    match mask_e164(text) {
        Cow::Borrowed(_) => chunk.clone(),
        Cow::Owned(masked) => Bytes::from(masked),
    }
}

/// `response` as a viewer token may see it: every data frame masked. JSON answers
/// are one frame (`runtime::http::json`); the event stream writes whole events and
/// the export whole rows per frame, so no number is split between two frames.
pub fn masked(response: Response<Body>) -> Response<Body> {
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if content_type.starts_with("text/html") {
        // The dashboard page itself: no data in it.
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // The length changes with the masking.
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let body = body
        .map_frame(move |frame| match frame.into_data() {
            Ok(data) => hyper::body::Frame::data(mask_chunk(&content_type, &data)),
            Err(frame) => frame,
        })
        .boxed();
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_number_keeps_its_last_four_digits_and_its_spelling() {
        assert_eq!(mask_number("+13125550199"), "+*******0199");
        assert_eq!(mask_number("(312) 555-0199"), "(***) ***-0199");
        assert_eq!(mask_number("0199"), "0199");
    }

    #[test]
    fn a_call_record_keeps_only_last_fours() {
        let mut call = json!({
            "id": "6f1c2a34-5d6e-4f70-8a9b-123456789012",
            "caller": "+13125550199", "called": "+18885550100",
            "started_at": "2026-12-06T10:00:00Z", "version": 11796599160934u64,
            "warnings": ["called (path to) value \"312.555.0188\": not a phone number"],
            "attributes": {"callerPhone": {"type": "string", "value": "3125550177"},
                           "note": {"type": "string", "value": "called back on +13125550166"}},
            "decisions": [{"about": "zone", "text": "from the area code of the caller +13125550199"}]
        });
        mask_json(&mut call);
        let text = call.to_string();
        for full in [
            "3125550199",
            "8885550100",
            "3125550188",
            "3125550177",
            "3125550166",
            "555.0188",
        ] {
            assert!(!text.contains(full), "{full} in {text}");
        }
        assert_eq!(call["caller"], "+*******0199");
        assert_eq!(
            call["id"], "6f1c2a34-5d6e-4f70-8a9b-123456789012",
            "ids are not numbers"
        );
        assert_eq!(
            call["started_at"], "2026-12-06T10:00:00Z",
            "times are not numbers"
        );
        assert_eq!(call["version"], 11796599160934u64);
    }

    #[test]
    fn event_stream_lines_and_csv_rows_are_masked() {
        let event =
            Bytes::from("id: 0-12\nevent: call.created\ndata: {\"caller\":\"+13125550199\"}\n\n");
        let masked = mask_chunk("text/event-stream", &event);
        assert_eq!(
            std::str::from_utf8(&masked).unwrap(),
            "id: 0-12\nevent: call.created\ndata: {\"caller\":\"+*******0199\"}\n\n"
        );
        let row =
            Bytes::from("6f1c,arroyo,+13125550199,+18885550100,2026-12-06T10:00:00+00:00\r\n");
        let masked = mask_chunk("text/csv; charset=utf-8", &row);
        assert_eq!(
            std::str::from_utf8(&masked).unwrap(),
            "6f1c,arroyo,+*******0199,+*******0100,2026-12-06T10:00:00+00:00\r\n"
        );
    }
}
