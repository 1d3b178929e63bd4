//! `csv`: a record per row, cells by header name, read with the integration's CSV
//! dialect (separator, quoting, header row, encoding) exactly as a CSV import is.

use serde_json::Value;

use super::{DecodeContext, Decoded, ResponseDecoder};
use crate::imports::reader::{rows_of, Dialect, Row};

pub struct Csv;

impl ResponseDecoder for Csv {
    fn decode(&self, bytes: &[u8], ctx: &DecodeContext<'_>) -> Result<Decoded, String> {
        let dialect = Dialect {
            csv: ctx.csv.clone(),
            charset: ctx.charset.clone(),
            ..Dialect::default()
        };
        let mut decoded = Decoded::default();
        for row in rows_of(bytes, &dialect) {
            match row {
                Row::Record { fields, .. } => decoded.records.push(Value::Object(fields)),
                Row::Bad { row, reason } => decoded
                    .rejected
                    .push((String::new(), format!("row {row}: {reason}"))),
            }
        }
        Ok(decoded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_by_header_with_the_dialect() {
        let dialect = schemas::csv_dialect::CsvDialect {
            delimiter: Some(';'),
            ..Default::default()
        };
        let ctx = DecodeContext {
            records_path: None,
            csv: &dialect,
            charset: None,
        };
        let decoded = Csv
            .decode(b"id;caller\n1;\"+1 555, x\"\n2;+15550002\n", &ctx)
            .unwrap();
        assert_eq!(decoded.records.len(), 2);
        assert_eq!(decoded.records[0]["caller"], "+1 555, x");
        assert!(decoded.rejected.is_empty());
    }
}
