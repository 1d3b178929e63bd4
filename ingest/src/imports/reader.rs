//! Streams CSV rows out of a byte stream without holding the file: chunks arrive on
//! a bounded channel, a blocking task parses them with the `csv` crate (RFC 4180
//! quoting, quoted newlines, CRLF), and rows leave on another bounded channel. A
//! slow consumer (Kafka) therefore slows the reader down instead of filling memory.
//!
//! The file's dialect (`schemas::csv_dialect`) says its separator (or leaves it to
//! be detected from the header row), quoting, header row and encoding. Text in
//! another encoding is decoded by `encoding_rs` as it streams; bytes that are not
//! valid in it stop the file at a row naming the encoding and the byte offset,
//! never decoded into something else.

use std::io::{BufRead, BufReader, Read};

use schemas::csv_dialect::CsvDialect;

use bytes::{Buf, Bytes};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

/// Rows in flight between the parser and the sender.
const ROW_BUFFER: usize = 2048;
/// Chunks in flight between the network and the parser.
pub const CHUNK_BUFFER: usize = 16;

/// One data row: its spreadsheet row number (the header is row 1; a row of empty
/// cells, which is how exports write a blank row, counts; an empty line does not)
/// and its cells by header name.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    Record {
        row: u64,
        fields: Map<String, Value>,
    },
    Bad {
        row: u64,
        reason: String,
    },
}

/// How one file is read: its integration's dialect, the request's `charset`
/// (which wins over the dialect's encoding), and its `Content-Encoding`.
#[derive(Clone, Default)]
pub struct Dialect {
    pub csv: CsvDialect,
    pub charset: Option<String>,
    /// Codings to undo, in the order they were applied.
    pub codings: Vec<&'static dyn crate::webhook::decoders::ContentDecoder>,
    /// Most bytes the file may decode to (a compressed upload is limited by what
    /// it inflates to, not by what it weighs).
    pub max_decoded_bytes: Option<u64>,
}

/// A stream that fails once it has given `left` bytes.
struct Capped<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(std::io::Error::other(format!(
                "the file decodes to more than {} bytes (outbound.max_import_bytes); split it",
                self.limit
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// `reader` with the dialect's content codings undone, capped.
fn inflated<'a>(reader: impl Read + 'a, dialect: &Dialect) -> std::io::Result<Box<dyn Read + 'a>> {
    let mut stream: Box<dyn Read + 'a> = Box::new(reader);
    for coding in dialect.codings.iter().rev() {
        stream = coding.reader(stream)?;
    }
    if let (Some(limit), false) = (dialect.max_decoded_bytes, dialect.codings.is_empty()) {
        stream = Box::new(Capped {
            inner: stream,
            left: limit,
            limit,
        });
    }
    Ok(stream)
}

/// Parses what arrives on `chunks` into rows. The receiver ends after the last row;
/// a read error or a file without a header ends it with one `Bad` row saying why.
pub fn rows(
    chunks: mpsc::Receiver<Result<Bytes, String>>,
    dialect: Dialect,
) -> mpsc::Receiver<Row> {
    let (tx, rx) = mpsc::channel(ROW_BUFFER);
    tokio::task::spawn_blocking(move || {
        parse(
            ChannelReader {
                chunks,
                current: Bytes::new(),
            },
            &dialect,
            |row| tx.blocking_send(row).is_ok(),
        )
    });
    rx
}

/// Every row of a whole CSV file in memory (previews, fuzzing).
pub fn rows_of(bytes: &[u8], dialect: &Dialect) -> Vec<Row> {
    let mut rows = Vec::new();
    parse(bytes, dialect, |row| {
        rows.push(row);
        true
    });
    rows
}

/// Bytes looked at before parsing: the byte-order mark, and the header row for the
/// separator.
const PEEK_BYTES: usize = 64 * 1024;

/// The file's text as UTF-8: as is when it is UTF-8 (the `csv` crate checks each
/// row), decoded otherwise. A byte-order mark decides; else `charset`; else the
/// dialect's encoding.
fn decoded<'a>(reader: impl Read + 'a, dialect: &Dialect) -> Box<dyn Read + 'a> {
    let mut buffered = BufReader::with_capacity(PEEK_BYTES, reader);
    // A byte-order mark is at most 3 bytes (the buffer holds what was read anyway).
    let start: Vec<u8> = buffered
        .fill_buf()
        .map(|b| b[..b.len().min(3)].to_vec())
        .unwrap_or_default();
    let declared = dialect
        .charset
        .as_deref()
        .and_then(schemas::csv_dialect::encoding)
        .or_else(|| schemas::csv_dialect::encoding(&dialect.csv.encoding))
        .unwrap_or(encoding_rs::UTF_8);
    let encoding = encoding_rs::Encoding::for_bom(&start).map_or(declared, |(e, _)| e);
    if encoding == encoding_rs::UTF_8 {
        return Box::new(buffered);
    }
    Box::new(Decoding {
        inner: buffered,
        decoder: encoding.new_decoder_with_bom_removal(),
        name: encoding.name(),
        input: vec![0; 8192],
        pending: Vec::new(),
        consumed: 0,
        done: false,
        malformed: None,
    })
}

/// Decodes a stream to UTF-8, refusing malformed input with its byte offset.
struct Decoding<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    name: &'static str,
    input: Vec<u8>,
    /// Decoded bytes not yet handed out.
    pending: Vec<u8>,
    /// Bytes of the file decoded so far (for the offset of a malformed one).
    consumed: u64,
    done: bool,
    /// Where the text stopped being valid: said once the text before it is read,
    /// and again at every read after.
    malformed: Option<String>,
}

impl<R: Read> Read for Decoding<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.is_empty() && !self.done && self.malformed.is_none() {
            let n = self.inner.read(&mut self.input)?;
            let last = n == 0;
            let mut src = &self.input[..n];
            loop {
                let room = self
                    .decoder
                    .max_utf8_buffer_length_without_replacement(src.len())
                    .unwrap_or(src.len() * 3 + 16);
                let mut out = vec![0_u8; room.max(16)];
                let (result, read, written) = self
                    .decoder
                    .decode_to_utf8_without_replacement(src, &mut out, last);
                self.pending.extend_from_slice(&out[..written]);
                match result {
                    encoding_rs::DecoderResult::InputEmpty => {
                        self.consumed += read as u64;
                        break;
                    }
                    encoding_rs::DecoderResult::OutputFull => {
                        self.consumed += read as u64;
                        src = &src[read..];
                    }
                    encoding_rs::DecoderResult::Malformed(bad, _) => {
                        let at = self.consumed + read as u64 - u64::from(bad);
                        self.malformed = Some(format!(
                            "bytes at offset {at} of the file are not {} text (declare the file's encoding: csv.encoding in the integration, or charset= in Content-Type)",
                            self.name
                        ));
                        break;
                    }
                }
            }
            self.done = last;
        }
        if self.pending.is_empty() {
            if let Some(malformed) = &self.malformed {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    malformed.clone(),
                ));
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

/// The separator of a file whose dialect does not say: the candidate the header
/// row (line `header_row` of `start`) holds most often outside quotes; `,` if none.
fn detect_delimiter(start: &[u8], header_row: u32, quote: u8) -> u8 {
    let text = String::from_utf8_lossy(start);
    let line = text
        .split('\n')
        .nth(header_row.saturating_sub(1) as usize)
        .or_else(|| text.split('\n').next())
        .unwrap_or("");
    let mut counts = [0_usize; 4];
    let mut quoted = false;
    for b in line.bytes() {
        if b == quote {
            quoted = !quoted;
        } else if !quoted {
            if let Some(i) = schemas::csv_dialect::DELIMITERS
                .iter()
                .position(|d| *d as u32 == u32::from(b))
            {
                counts[i] += 1;
            }
        }
    }
    let (best, count) = counts
        .iter()
        .enumerate()
        .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))
        .unwrap_or((0, &0));
    if *count == 0 {
        b','
    } else {
        schemas::csv_dialect::DELIMITERS[best] as u8
    }
}

/// Reads rows from `reader` and hands each to `emit`, until the end or until
/// `emit` says stop (`false`).
fn parse(reader: impl Read, dialect: &Dialect, mut emit: impl FnMut(Row) -> bool) {
    let quote = dialect.csv.quote as u8;
    let reader = match inflated(reader, dialect) {
        Ok(reader) => reader,
        Err(error) => {
            emit(Row::Bad {
                row: 1,
                reason: format!("the file cannot be decoded: {error}"),
            });
            return;
        }
    };
    let mut text = BufReader::with_capacity(PEEK_BYTES, decoded(reader, dialect));
    let delimiter = match dialect.csv.delimiter {
        Some(d) => d as u8,
        None => {
            let start = text.fill_buf().map(<[u8]>::to_vec).unwrap_or_default();
            detect_delimiter(&start, dialect.csv.header_row, quote)
        }
    };
    let mut csv = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .delimiter(delimiter)
        .quote(quote)
        .escape(dialect.csv.escape.map(|e| e as u8))
        .from_reader(text);
    // Title rows above the header are read and dropped.
    let mut record = csv::StringRecord::new();
    let mut row = 0_u64;
    let header = loop {
        row += 1;
        match csv.read_record(&mut record) {
            Ok(true) if row < u64::from(dialect.csv.header_row) => continue,
            Ok(true) => break Ok(record.clone()),
            Ok(false) => break Err("the file ends before its header row".to_owned()),
            Err(error) => break Err(describe(&error)),
        }
    };
    let headers: Vec<String> = match header {
        Ok(headers) => headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let h = if i == 0 {
                    h.trim_start_matches('\u{feff}')
                } else {
                    h
                };
                h.trim().to_owned()
            })
            .collect(),
        Err(error) => {
            emit(Row::Bad {
                row,
                reason: format!("header row: {error}"),
            });
            return;
        }
    };
    if headers.iter().all(String::is_empty) {
        emit(Row::Bad {
            row,
            reason: "the header row is empty".into(),
        });
        return;
    }
    loop {
        row += 1;
        match csv.read_record(&mut record) {
            Ok(false) => return,
            Ok(true) => {
                if record.iter().all(|cell| cell.trim().is_empty()) {
                    continue;
                }
                let extra = record
                    .iter()
                    .skip(headers.len())
                    .any(|cell| !cell.trim().is_empty());
                let message = if extra {
                    Row::Bad {
                        row,
                        reason: format!(
                            "{} cells but {} columns in the header",
                            record.len(),
                            headers.len()
                        ),
                    }
                } else {
                    // Trailing blank columns (exports pad rows) have no header.
                    let fields = headers
                        .iter()
                        .zip(record.iter())
                        .filter(|(h, _)| !h.is_empty())
                        .map(|(h, cell)| (h.clone(), Value::String(cell.to_owned())))
                        .collect();
                    Row::Record { row, fields }
                };
                if !emit(message) {
                    return;
                }
            }
            Err(error) => {
                let reason = describe(&error);
                // An I/O error ends the stream; a bad row does not.
                if !emit(Row::Bad { row, reason }) || matches!(error.kind(), csv::ErrorKind::Io(_))
                {
                    return;
                }
            }
        }
    }
}

/// A row's error in words: for text that is not UTF-8, where, and what to do.
fn describe(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::Utf8 { pos, err } => format!(
            "not UTF-8 text: field {}, byte {} of it (the row starts at byte {} of the file); \
             declare the file's encoding (csv.encoding in the integration, or charset= in Content-Type)",
            err.field() + 1,
            err.valid_up_to(),
            pos.as_ref().map_or(0, csv::Position::byte)
        ),
        csv::ErrorKind::Io(io) => io.to_string(),
        _ => error.to_string(),
    }
}

struct ChannelReader {
    chunks: mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(error)) => return Err(std::io::Error::other(error)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn all_rows(chunks: &[&str]) -> Vec<Row> {
        let (tx, rx) = mpsc::channel(CHUNK_BUFFER);
        let chunks: Vec<Bytes> = chunks.iter().map(|c| Bytes::from(c.to_string())).collect();
        tokio::spawn(async move {
            for chunk in chunks {
                let _ = tx.send(Ok(chunk)).await;
            }
        });
        let mut rows = rows(rx, Dialect::default());
        let mut out = Vec::new();
        while let Some(row) = rows.recv().await {
            out.push(row);
        }
        out
    }

    fn record(row: u64, pairs: &[(&str, &str)]) -> Row {
        Row::Record {
            row,
            fields: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                .collect(),
        }
    }

    #[tokio::test]
    async fn quoting_newlines_bom_crlf_and_chunk_boundaries() {
        let rows = all_rows(&[
            "\u{feff}Caller Phone,No",
            "tes,,\r\n415-555-2671,\"called back, \"\"hot\"\"\nlead\",,\r\n,,,\r\n\r\n",
            "2125550187,plain,,\r\n",
        ])
        .await;
        assert_eq!(
            rows,
            [
                record(
                    2,
                    &[
                        ("Caller Phone", "415-555-2671"),
                        ("Notes", "called back, \"hot\"\nlead")
                    ]
                ),
                record(4, &[("Caller Phone", "2125550187"), ("Notes", "plain")]),
            ],
            "a row of empty cells (a blank spreadsheet row) is skipped but counted; an empty line is neither"
        );
    }

    #[tokio::test]
    async fn a_row_with_extra_cells_is_bad_and_the_rest_continue() {
        let rows = all_rows(&["a,b\n1,2\n1,2,3\n4,5\n"]).await;
        assert_eq!(rows.len(), 3);
        assert!(
            matches!(&rows[1], Row::Bad { row: 3, reason } if reason.contains("3 cells but 2 columns"))
        );
        assert_eq!(rows[2], record(4, &[("a", "4"), ("b", "5")]));
    }

    #[tokio::test]
    async fn a_stream_error_ends_with_a_bad_row() {
        let (tx, rx) = mpsc::channel(CHUNK_BUFFER);
        tokio::spawn(async move {
            let _ = tx.send(Ok(Bytes::from("a\n1\n"))).await;
            let _ = tx.send(Err("connection reset".into())).await;
        });
        let mut rows = rows(rx, Dialect::default());
        let mut out = Vec::new();
        while let Some(row) = rows.recv().await {
            out.push(row);
        }
        assert!(
            matches!(out.last(), Some(Row::Bad { reason, .. }) if reason.contains("connection reset")),
            "{out:?}"
        );
    }

    fn dialect(json: &str) -> Dialect {
        Dialect {
            csv: serde_json::from_str(json).unwrap(),
            ..Default::default()
        }
    }

    /// A German Excel export as Excel writes it: Windows-1252, `;`, decimal commas,
    /// day-first dates, a title and a blank row above the header.
    #[test]
    fn a_german_excel_export_in_windows_1252() {
        let text = "Anrufe Export;;\r\n;;\r\nAnrufer;Beginn;Auszahlung\r\n0301234567;06.12.2026 10:00;12,50 \u{20ac}\r\n\"M\u{fc}ller; Jörg\";07.12.2026 11:30;1.234,00 \u{20ac}\r\n";
        let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(text);
        assert!(!unmappable);
        let rows = rows_of(
            &bytes,
            &dialect(r#"{"encoding": "windows-1252", "header_row": 3}"#),
        );
        assert_eq!(
            rows,
            [
                record(4, &[("Anrufer", "0301234567"), ("Beginn", "06.12.2026 10:00"), ("Auszahlung", "12,50 \u{20ac}")]),
                record(5, &[("Anrufer", "M\u{fc}ller; Jörg"), ("Beginn", "07.12.2026 11:30"), ("Auszahlung", "1.234,00 \u{20ac}")]),
            ],
            "the separator detected from the header row, the text decoded, the row numbers the spreadsheet's"
        );
        // The same bytes read as UTF-8: refused, naming where and what to do.
        let undeclared = rows_of(&bytes, &dialect(r#"{"header_row": 3}"#));
        assert!(
            matches!(&undeclared[1], Row::Bad { row: 5, reason } if reason.contains("not UTF-8") && reason.contains("csv.encoding")),
            "{undeclared:?}"
        );
    }

    #[test]
    fn utf16_with_a_bom_whatever_was_declared_and_tabs_detected() {
        let text = "caller\tpayout\n4155552671\t\u{20ac}5\n";
        let mut bytes = vec![0xff, 0xfe];
        for unit in text.encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        let rows = rows_of(&bytes, &Dialect::default());
        assert_eq!(
            rows,
            [record(
                2,
                &[("caller", "4155552671"), ("payout", "\u{20ac}5")]
            )]
        );
        // A lone surrogate: the file stops at a row naming the encoding and offset.
        bytes.extend_from_slice(&[0x00, 0xd8, b'x', 0x00, b'\n', 0x00]);
        let rows = rows_of(&bytes, &Dialect::default());
        assert!(
            matches!(rows.last(), Some(Row::Bad { reason, .. }) if reason.contains("UTF-16LE") && reason.contains("offset 58")),
            "{rows:?}"
        );
    }

    #[test]
    fn declared_separators_quotes_escapes_and_charset_wins() {
        let rows = rows_of(
            b"a|b\n'x|y'|2\n",
            &dialect(r#"{"delimiter": "|", "quote": "'"}"#),
        );
        assert_eq!(rows, [record(2, &[("a", "x|y"), ("b", "2")])]);
        let rows = rows_of(
            br#"a,b
"say \"hi\"",2
"#,
            &dialect(r#"{"escape": "\\"}"#),
        );
        assert_eq!(rows, [record(2, &[("a", "say \"hi\""), ("b", "2")])]);
        let latin = b"name\nJos\xe9\n";
        let with_charset = Dialect {
            charset: Some("iso-8859-1".into()),
            ..Default::default()
        };
        assert_eq!(
            rows_of(latin, &with_charset),
            [record(2, &[("name", "Jos\u{e9}")])]
        );
        // A header row past the end of the file.
        assert!(matches!(
            &rows_of(b"a\n", &dialect(r#"{"header_row": 5}"#))[0],
            Row::Bad { reason, .. } if reason.contains("before its header row")
        ));
    }

    #[test]
    fn a_gzip_upload_is_read_as_it_streams_and_capped_by_what_it_inflates_to() {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(b"a;b\n1;2\n").unwrap();
        let gz = encoder.finish().unwrap();
        let gzipped = Dialect {
            codings: crate::webhook::decoders::codings(Some("gzip")).unwrap(),
            max_decoded_bytes: Some(1000),
            ..Default::default()
        };
        assert_eq!(
            rows_of(&gz, &gzipped),
            [record(2, &[("a", "1"), ("b", "2")])]
        );
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&b"1;2\n".repeat(100_000)).unwrap();
        let bomb = encoder.finish().unwrap();
        let rows = rows_of(&bomb, &gzipped);
        assert!(
            matches!(rows.last(), Some(Row::Bad { reason, .. }) if reason.contains("more than 1000 bytes")),
            "{:?}",
            rows.last()
        );
    }

    proptest::proptest! {
        /// Any text in any of these encodings reads back as written.
        #[test]
        fn text_round_trips_through_each_encoding(
            cells in proptest::collection::vec("[a-zA-Z0-9 \u{e0}-\u{ff}\u{20ac}]{0,10}", 1..5),
            which in 0_usize..3
        ) {
            let (label, encoding) = [
                ("utf-8", encoding_rs::UTF_8),
                ("windows-1252", encoding_rs::WINDOWS_1252),
                ("utf-16le", encoding_rs::UTF_16LE),
            ][which];
            let header: Vec<String> = (0..cells.len()).map(|i| format!("c{i}")).collect();
            let text = format!("{}\n{}\n", header.join(";"), cells.join(";"));
            let bytes: Vec<u8> = if encoding == encoding_rs::UTF_16LE {
                text.encode_utf16().flat_map(u16::to_le_bytes).collect()
            } else {
                encoding.encode(&text).0.into_owned()
            };
            let mut declared = dialect(&format!(r#"{{"encoding": "{label}", "delimiter": ";"}}"#));
            declared.charset = None;
            let rows = rows_of(&bytes, &declared);
            if cells.iter().all(|c| c.trim().is_empty()) {
                proptest::prop_assert!(rows.is_empty());
            } else {
                let want: Vec<(&str, &str)> = header.iter().map(String::as_str).zip(cells.iter().map(String::as_str)).collect();
                proptest::prop_assert_eq!(rows, vec![record(2, &want)]);
            }
        }
    }
}
