//! `ndjson`: a JSON record per line (JSON Lines); blank lines are skipped, a line
//! that is not a JSON object is rejected by its line number.

use serde_json::Value;

use super::{DecodeContext, Decoded, ResponseDecoder};

pub struct Ndjson;

impl ResponseDecoder for Ndjson {
    fn decode(&self, bytes: &[u8], _ctx: &DecodeContext<'_>) -> Result<Decoded, String> {
        let mut decoded = Decoded::default();
        for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Value>(line) {
                Ok(record @ Value::Object(_)) => decoded.records.push(record),
                Ok(_) => decoded.rejected.push((
                    String::from_utf8_lossy(line).into_owned(),
                    format!("line {}: not a JSON object", index + 1),
                )),
                Err(e) => decoded.rejected.push((
                    String::from_utf8_lossy(line).into_owned(),
                    format!("line {}: not JSON: {e}", index + 1),
                )),
            }
        }
        Ok(decoded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_good_lines_and_names_bad_ones() {
        let ctx = DecodeContext {
            records_path: None,
            csv: &Default::default(),
            charset: None,
        };
        let decoded = Ndjson
            .decode(b"{\"id\":1}\r\n\n{\"id\":2\n[3]\n{\"id\":4}", &ctx)
            .unwrap();
        assert_eq!(decoded.records.len(), 2);
        let reasons: Vec<&str> = decoded.rejected.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(reasons.len(), 2);
        assert!(reasons[0].starts_with("line 3: not JSON"), "{reasons:?}");
        assert_eq!(reasons[1], "line 4: not a JSON object");
    }
}
