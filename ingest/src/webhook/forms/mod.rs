//! The forms a webhook body comes in, one file each, listed in [`FORMS`]: a form
//! names its media types and splits a body's text into records. Adding one is a
//! file and a line here.
//!
//! | form | media types | records |
//! | --- | --- | --- |
//! | [`json::Json`] | `application/json` | one object, or each item of an array |
//! | [`ndjson::Ndjson`] | `application/x-ndjson` and kin | each line |
//! | [`urlencoded::UrlEncoded`] | `application/x-www-form-urlencoded` | the whole form, one object |
//!
//! A GET delivery (a tracking pixel) is read as a URL-encoded form of its query.

mod json;
mod ndjson;
mod urlencoded;

use schemas::limits::RecordLimits;

use super::body::{BodyError, ParsedBody};

pub use urlencoded::form_to_json;

/// One way a body carries records.
pub trait BodyForm: Sync {
    /// Its name in answers and docs.
    fn name(&self) -> &'static str;
    /// The media types it reads (lower case, without parameters).
    fn media_types(&self) -> &'static [&'static str];
    /// The records in `text` (the body, decoded, without a BOM).
    fn records(&self, text: &str, limits: RecordLimits) -> Result<ParsedBody, BodyError>;
}

pub const JSON: &dyn BodyForm = &json::Json;
pub const NDJSON: &dyn BodyForm = &ndjson::Ndjson;
pub const URL_ENCODED: &dyn BodyForm = &urlencoded::UrlEncoded;

/// Every form the edge takes.
pub const FORMS: &[&dyn BodyForm] = &[JSON, NDJSON, URL_ENCODED];

/// The form of a `Content-Type` value; `None` for types the edge does not take.
pub fn for_content_type(value: &str) -> Option<&'static dyn BodyForm> {
    let media = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    FORMS
        .iter()
        .copied()
        .find(|form| form.media_types().contains(&media.as_str()))
}

/// The accepted media types, for an answer that refuses another.
pub fn accepted_media_types() -> String {
    FORMS
        .iter()
        .flat_map(|f| f.media_types().first())
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_find_their_form_with_parameters_and_any_case() {
        assert_eq!(
            for_content_type("application/json; charset=utf-8")
                .unwrap()
                .name(),
            "json"
        );
        assert_eq!(
            for_content_type("Application/X-NDJSON").unwrap().name(),
            "ndjson"
        );
        assert_eq!(
            for_content_type("application/x-www-form-urlencoded; charset=UTF-8")
                .unwrap()
                .name(),
            "urlencoded"
        );
        assert!(for_content_type("text/plain").is_none());
        assert!(for_content_type("").is_none());
    }
}
