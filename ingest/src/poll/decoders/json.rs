//! `json`: one JSON document; the records are the array at `records_path` (or the
//! document itself).

use std::borrow::Cow;

use serde_json::Value;

use super::{DecodeContext, Decoded, ResponseDecoder};

pub struct Json;

impl ResponseDecoder for Json {
    fn decode(&self, bytes: &[u8], ctx: &DecodeContext<'_>) -> Result<Decoded, String> {
        let document: Value = serde_json::from_slice(bytes).map_err(|e| {
            format!("the answer is not JSON ({e}); set poll.format if it is ndjson or csv")
        })?;
        let records = match ctx.records_path {
            Some(path) => path.lookup(&document).map_or(Value::Null, Cow::into_owned),
            None => document.clone(),
        };
        let records = match records {
            Value::Array(records) => records,
            Value::Null => vec![],
            other => {
                return Err(format!(
                    "records_path {:?} is not an array but {}",
                    ctx.records_path
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    kind(&other)
                ))
            }
        };
        Ok(Decoded {
            document,
            records,
            rejected: vec![],
        })
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "an object",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Array(_) => "an array",
        Value::Null => "null",
    }
}
