//! How an integration's CSV files are written: separator, quoting, where the header
//! is, and the text encoding. Spreadsheets export what their locale says (a German
//! Excel writes `;`, decimal commas and day-first dates; a Windows Excel "CSV" is
//! Windows-1252), and partners do not change that for us.

use serde::{Deserialize, Serialize};

/// Separators a CSV may use.
pub const DELIMITERS: [char; 4] = [',', ';', '\t', '|'];
/// The header row may be at most this far down (title rows above it).
pub const MAX_HEADER_ROW: u32 = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvDialect {
    /// `,` `;` tab or `|`; absent: detected from the header row (the one of them
    /// it holds most often outside quotes; `,` when it holds none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<char>,
    /// The quote character.
    #[serde(default = "default_quote")]
    pub quote: char,
    /// An escape character before a quote inside a quoted cell (`\` in some
    /// exports); absent: a quote is escaped by doubling it (RFC 4180).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escape: Option<char>,
    /// The row (from 1) holding the column names; rows above it (a report's title,
    /// its date range) are skipped.
    #[serde(default = "default_header_row")]
    pub header_row: u32,
    /// The text encoding, by its WHATWG label (`utf-8`, `utf-16le`, `utf-16be`,
    /// `windows-1252`, `iso-8859-1`, `windows-1250`, `shift_jis`, …). A byte-order
    /// mark in the file wins over it (UTF-8, UTF-16). A request's
    /// `Content-Type: text/csv; charset=…` wins over both.
    #[serde(default = "default_encoding")]
    pub encoding: String,
}

fn default_quote() -> char {
    '"'
}
fn default_header_row() -> u32 {
    1
}
fn default_encoding() -> String {
    "utf-8".into()
}

impl Default for CsvDialect {
    fn default() -> Self {
        Self {
            delimiter: None,
            quote: default_quote(),
            escape: None,
            header_row: default_header_row(),
            encoding: default_encoding(),
        }
    }
}

impl CsvDialect {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The first problem, as (field path, problem).
    pub fn problem(&self) -> Option<(String, String)> {
        if let Some(d) = self.delimiter {
            if !DELIMITERS.contains(&d) {
                return Some((
                    "csv.delimiter".into(),
                    format!("{d:?} is not one of , ; tab |"),
                ));
            }
        }
        if !self.quote.is_ascii() || self.quote.is_ascii_alphanumeric() {
            return Some((
                "csv.quote".into(),
                "must be an ASCII punctuation character".into(),
            ));
        }
        if let Some(e) = self.escape {
            if !e.is_ascii() || e.is_ascii_alphanumeric() || e == self.quote {
                return Some((
                    "csv.escape".into(),
                    "must be an ASCII punctuation character other than the quote".into(),
                ));
            }
        }
        if self.delimiter == Some(self.quote) {
            return Some(("csv.quote".into(), "must differ from the delimiter".into()));
        }
        if self.header_row == 0 || self.header_row > MAX_HEADER_ROW {
            return Some((
                "csv.header_row".into(),
                format!("must be between 1 and {MAX_HEADER_ROW}"),
            ));
        }
        encoding(&self.encoding).is_none().then(|| {
            (
                "csv.encoding".into(),
                format!(
                    "{:?} is not an encoding label (utf-8, utf-16le, windows-1252, …)",
                    self.encoding
                ),
            )
        })
    }
}

/// The encoding a WHATWG label names (as browsers read it: `latin1` and
/// `iso-8859-1` are Windows-1252, a superset).
pub fn encoding(label: &str) -> Option<&'static encoding_rs::Encoding> {
    encoding_rs::Encoding::for_label(label.trim().as_bytes())
        // The replacement encoding is a label for "refuse everything": not a choice.
        .filter(|e| *e != encoding_rs::REPLACEMENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_a_german_excel_export() {
        let default: CsvDialect = serde_json::from_str("{}").unwrap();
        assert!(default.is_default());
        assert_eq!(default.problem(), None);
        let german: CsvDialect = serde_json::from_str(
            r#"{"delimiter": ";", "encoding": "windows-1252", "header_row": 3}"#,
        )
        .unwrap();
        assert_eq!(german.problem(), None);
        assert_eq!(encoding("cp1252").unwrap().name(), "windows-1252");
        assert_eq!(encoding("latin1").unwrap().name(), "windows-1252");
        assert_eq!(encoding("UTF-16LE").unwrap().name(), "UTF-16LE");
    }

    #[test]
    fn each_bad_field_is_named() {
        let bad = |json: &str| {
            serde_json::from_str::<CsvDialect>(json)
                .unwrap()
                .problem()
                .unwrap()
                .0
        };
        assert_eq!(bad(r#"{"delimiter": ":"}"#), "csv.delimiter");
        assert_eq!(bad(r#"{"quote": "a"}"#), "csv.quote");
        assert_eq!(bad(r#"{"delimiter": ";", "quote": ";"}"#), "csv.quote");
        assert_eq!(bad(r#"{"escape": "\""}"#), "csv.escape");
        assert_eq!(bad(r#"{"header_row": 0}"#), "csv.header_row");
        assert_eq!(bad(r#"{"encoding": "klingon"}"#), "csv.encoding");
        assert_eq!(bad(r#"{"encoding": "replacement"}"#), "csv.encoding");
        assert!(serde_json::from_str::<CsvDialect>(r#"{"separator": ";"}"#).is_err());
    }
}
