//! How a poll answer's bytes become records, one file per format, listed in
//! [`decoder`]. Content codings (gzip, deflate, zstd) are undone before this by the
//! HTTP client, and the page cap counts decoded bytes. A line or row that cannot be
//! read is returned as a rejected record (it becomes a dead letter naming the line
//! or row); the others are kept.

mod csv;
mod json;
mod ndjson;

use schemas::csv_dialect::CsvDialect;
use schemas::path::FieldPath;
use schemas::poll::ResponseFormat;
use serde_json::Value;

/// An answer, decoded.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The whole answer for paging and stop paths (`Null` for line or row formats).
    pub document: Value,
    pub records: Vec<Value>,
    /// (the text as received, why it was refused)
    pub rejected: Vec<(String, String)>,
}

/// What a decoder needs besides the bytes.
pub struct DecodeContext<'a> {
    pub records_path: Option<&'a FieldPath>,
    pub csv: &'a CsvDialect,
    /// The answer's `Content-Type` charset, when it names one.
    pub charset: Option<String>,
}

pub trait ResponseDecoder: Send + Sync {
    /// The records of one answer; `Err` when the answer as a whole is unreadable.
    fn decode(&self, bytes: &[u8], ctx: &DecodeContext<'_>) -> Result<Decoded, String>;
}

pub fn decoder(format: ResponseFormat) -> &'static dyn ResponseDecoder {
    match format {
        ResponseFormat::Json => &json::Json,
        ResponseFormat::Ndjson => &ndjson::Ndjson,
        ResponseFormat::Csv => &csv::Csv,
    }
}

/// The `charset` of a `Content-Type` value.
pub fn charset(content_type: Option<&str>) -> Option<String> {
    content_type?
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
}
