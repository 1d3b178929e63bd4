//! `application/x-www-form-urlencoded` (Twilio's status callbacks, Invoca's form
//! posts) and the query of a GET delivery (Ringba's pixels): the whole form is one
//! record, a JSON object of its parameters, each value a string, a repeated
//! parameter an array of its values in order. Mapping paths address parameters by
//! name (`CallSid`, `From`). The record is the form re-encoded as JSON, not its
//! bytes: a signature (Twilio's) is checked over the parameters before this.
//!
//! Percent-decoding that does not give UTF-8 is refused, naming the parameter,
//! never replaced with U+FFFD.

use percent_encoding::percent_decode;
use schemas::limits::RecordLimits;
use serde_json::{Map, Value};

use crate::webhook::body::{too_large, BodyError, ParsedBody};

pub struct UrlEncoded;

impl super::BodyForm for UrlEncoded {
    fn name(&self) -> &'static str {
        "urlencoded"
    }

    fn media_types(&self) -> &'static [&'static str] {
        &["application/x-www-form-urlencoded"]
    }

    fn records(&self, text: &str, limits: RecordLimits) -> Result<ParsedBody, BodyError> {
        let object = form_to_json(text.trim().as_bytes())?;
        let json = Value::Object(object).to_string();
        if limits.check(&json).is_err() {
            return Ok(ParsedBody {
                records: vec![],
                rejected: vec![too_large(0, 1, &json, limits)],
            });
        }
        let record =
            serde_json::value::RawValue::from_string(json).map_err(|e| BodyError::Malformed {
                line: 1,
                column: 1,
                message: e.to_string(),
            })?;
        Ok(ParsedBody {
            records: vec![(0, record)],
            rejected: vec![],
        })
    }
}

/// The parameters of a form (or a query string) as a JSON object.
pub fn form_to_json(form: &[u8]) -> Result<Map<String, Value>, BodyError> {
    let mut object: Map<String, Value> = Map::new();
    let mut position = 0;
    for (index, pair) in form.split(|b| *b == b'&').enumerate() {
        let at = position;
        position += pair.len() + 1;
        if pair.is_empty() {
            continue;
        }
        let (name, value) = match pair.iter().position(|b| *b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &b""[..]),
        };
        let decode = |part: &[u8], what: &str| -> Result<String, BodyError> {
            let spaced: Vec<u8> = part
                .iter()
                .map(|b| if *b == b'+' { b' ' } else { *b })
                .collect();
            let bytes: Vec<u8> = percent_decode(&spaced).collect();
            String::from_utf8(bytes).map_err(|e| BodyError::Form {
                parameter: index,
                position: at,
                message: format!(
                    "the {what} is not UTF-8 once percent-decoded (invalid byte at {} of it)",
                    e.utf8_error().valid_up_to()
                ),
            })
        };
        let name = decode(name, "name")?;
        if name.is_empty() {
            return Err(BodyError::Form {
                parameter: index,
                position: at,
                message: "a parameter without a name".into(),
            });
        }
        let value = Value::String(decode(value, &format!("value of {name:?}"))?);
        match object.get_mut(&name) {
            Some(Value::Array(values)) => values.push(value),
            Some(first) => {
                let first = first.take();
                object.insert(name, Value::Array(vec![first, value]));
            }
            None => {
                object.insert(name, value);
            }
        }
    }
    if object.is_empty() {
        return Err(BodyError::NoRecords);
    }
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_twilio_callback_becomes_one_object_with_repeated_keys_as_arrays() {
        let form = b"CallSid=CA123&From=%2B14155552671&To=%2B18005550199&CallStatus=completed&CallDuration=42&Caller+Name=Ana+Mar%C3%ADa&tag=a&tag=b&tag=c&empty=";
        let object = form_to_json(form).unwrap();
        assert_eq!(object["From"], "+14155552671");
        assert_eq!(object["Caller Name"], "Ana María");
        assert_eq!(object["CallDuration"], "42");
        assert_eq!(object["tag"], serde_json::json!(["a", "b", "c"]));
        assert_eq!(object["empty"], "");
    }

    #[test]
    fn text_that_is_not_utf8_is_refused_naming_the_parameter() {
        let error = form_to_json(b"a=1&name=Jos%E9").unwrap_err();
        let said = error.to_string();
        assert!(said.contains("parameter 1"), "{said}");
        assert!(said.contains("\"name\""), "{said}");
        assert!(form_to_json(b"=x").is_err());
        assert_eq!(form_to_json(b"&&").unwrap_err(), BodyError::NoRecords);
    }

    proptest! {
        /// Any parameters, encoded as a browser would, come back as they were.
        #[test]
        fn encoded_parameters_decode_to_themselves(
            pairs in proptest::collection::vec(("[a-zA-Z_][a-zA-Z0-9 _.+%&=é€-]{0,8}", "\\PC{0,12}"), 1..6)
        ) {
            let encoded = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs.iter())
                .finish();
            let object = form_to_json(encoded.as_bytes()).unwrap();
            for (name, value) in &pairs {
                let got = &object[name.as_str()];
                let all: Vec<&str> = pairs.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect();
                if all.len() == 1 {
                    prop_assert_eq!(got.as_str(), Some(value.as_str()));
                } else {
                    prop_assert_eq!(got, &serde_json::json!(all));
                }
            }
        }

        /// Arbitrary bytes never panic.
        #[test]
        fn any_bytes_give_an_object_or_a_named_error(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = form_to_json(&bytes);
        }
    }
}
