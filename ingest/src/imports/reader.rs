//! Streams CSV rows out of a byte stream without holding the file: chunks arrive on
//! a bounded channel, a blocking task parses them with the `csv` crate (RFC 4180
//! quoting, quoted newlines, CRLF), and rows leave on another bounded channel. A
//! slow consumer (Kafka) therefore slows the reader down instead of filling memory.

use std::io::Read;

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

/// Parses what arrives on `chunks` into rows. The receiver ends after the last row;
/// a read error or a file without a header ends it with one `Bad` row saying why.
pub fn rows(chunks: mpsc::Receiver<Result<Bytes, String>>) -> mpsc::Receiver<Row> {
    let (tx, rx) = mpsc::channel(ROW_BUFFER);
    tokio::task::spawn_blocking(move || {
        parse(
            ChannelReader {
                chunks,
                current: Bytes::new(),
            },
            |row| tx.blocking_send(row).is_ok(),
        )
    });
    rx
}

/// Every row of a whole CSV file in memory (previews, fuzzing).
pub fn rows_of(bytes: &[u8]) -> Vec<Row> {
    let mut rows = Vec::new();
    parse(bytes, |row| {
        rows.push(row);
        true
    });
    rows
}

/// Reads rows from `reader` and hands each to `emit`, until the end or until
/// `emit` says stop (`false`).
fn parse(reader: impl Read, mut emit: impl FnMut(Row) -> bool) {
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let headers: Vec<String> = match csv.headers() {
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
                row: 1,
                reason: format!("header row: {error}"),
            });
            return;
        }
    };
    if headers.iter().all(String::is_empty) {
        emit(Row::Bad {
            row: 1,
            reason: "the header row is empty".into(),
        });
        return;
    }
    let mut record = csv::StringRecord::new();
    let mut row = 1_u64;
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
                let reason = match error.kind() {
                    csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".to_owned(),
                    _ => error.to_string(),
                };
                // An I/O error ends the stream; a bad row does not.
                if !emit(Row::Bad { row, reason }) || matches!(error.kind(), csv::ErrorKind::Io(_))
                {
                    return;
                }
            }
        }
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
        let mut rows = rows(rx);
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
        let mut rows = rows(rx);
        let mut out = Vec::new();
        while let Some(row) = rows.recv().await {
            out.push(row);
        }
        assert!(
            matches!(out.last(), Some(Row::Bad { reason, .. }) if reason.contains("connection reset")),
            "{out:?}"
        );
    }
}
