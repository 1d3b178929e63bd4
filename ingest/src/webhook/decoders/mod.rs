//! `Content-Encoding` decoders, one file each, listed in [`DECODERS`]. Every size
//! limit applies to the decoded bytes: a body is inflated a piece at a time and
//! refused (413, naming the limit) as soon as it passes it, so a compression bomb
//! costs at most the limit in memory, never its inflated size.

mod deflate;
mod gzip;
mod zstd;

use std::io::Read;

use http::StatusCode;
use runtime::http::Problem;

/// One content coding.
pub trait ContentDecoder: Sync {
    /// Its token in `Content-Encoding`.
    fn name(&self) -> &'static str;
    /// A reader of the decoded bytes of `input` (a body in memory, or an upload
    /// as it streams).
    fn reader<'a>(&self, input: Box<dyn Read + 'a>) -> std::io::Result<Box<dyn Read + 'a>>;
}

/// Every coding the edge takes.
pub const DECODERS: &[&dyn ContentDecoder] = &[&gzip::Gzip, &deflate::Deflate, &zstd::Zstd];

/// Most codings stacked in one `Content-Encoding` (senders use one).
const MAX_CODINGS: usize = 2;

/// Bodies smaller than this are decoded on the request's own task; larger ones on
/// a blocking thread (inflating megabytes would hold up other requests).
const INLINE_BYTES: usize = 64 * 1024;

/// The codings of a `Content-Encoding` value, in the order they were applied
/// (`identity` dropped); a coding the edge does not take is a 415 naming it.
pub fn codings(value: Option<&str>) -> Result<Vec<&'static dyn ContentDecoder>, Problem> {
    let Some(value) = value else {
        return Ok(vec![]);
    };
    let mut found = Vec::new();
    for token in value.split(',').map(|t| t.trim().to_ascii_lowercase()) {
        if token.is_empty() || token == "identity" {
            continue;
        }
        let name = if token == "x-gzip" {
            "gzip"
        } else {
            token.as_str()
        };
        let decoder = DECODERS
            .iter()
            .copied()
            .find(|d| d.name() == name)
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_encoding",
                    format!(
                        "Content-Encoding {token:?} is not accepted; send {}",
                        DECODERS
                            .iter()
                            .map(|d| d.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
        found.push(decoder);
    }
    if found.len() > MAX_CODINGS {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!(
                "Content-Encoding stacks {} codings; at most {MAX_CODINGS}",
                found.len()
            ),
        ));
    }
    Ok(found)
}

/// `body` with `codings` undone (the last applied first), at most `limit` bytes.
pub async fn decode(
    body: bytes::Bytes,
    codings: Vec<&'static dyn ContentDecoder>,
    limit: usize,
) -> Result<bytes::Bytes, Problem> {
    if codings.is_empty() {
        return Ok(body);
    }
    if body.len() < INLINE_BYTES {
        return decode_blocking(&body, &codings, limit);
    }
    tokio::task::spawn_blocking(move || decode_blocking(&body, &codings, limit))
        .await
        .map_err(|e| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "decode_failed",
                format!("decoding the body stopped: {e}"),
            )
        })?
}

fn decode_blocking(
    body: &[u8],
    codings: &[&'static dyn ContentDecoder],
    limit: usize,
) -> Result<bytes::Bytes, Problem> {
    let mut data = body.to_vec();
    for decoder in codings.iter().rev() {
        data = inflate(*decoder, &data, limit)?;
    }
    Ok(bytes::Bytes::from(data))
}

/// `input` decoded by `decoder`, refused once it passes `limit` bytes.
fn inflate(decoder: &dyn ContentDecoder, input: &[u8], limit: usize) -> Result<Vec<u8>, Problem> {
    let unreadable = |e: std::io::Error| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad_encoding",
            format!("the body is not valid {} data: {e}", decoder.name()),
        )
    };
    let reader = decoder.reader(Box::new(input)).map_err(unreadable)?;
    let mut out = Vec::with_capacity(input.len().saturating_mul(4).min(limit));
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(unreadable)?;
    if out.len() > limit {
        metrics::counter!(crate::metric_names::INGEST_DECOMPRESSION_REFUSED_TOTAL).increment(1);
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the body decoded from {} is larger than the limit of {limit} bytes (the limit applies to decoded bytes)",
                decoder.name()
            ),
        )
        .with_detail("limit_bytes", limit));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[tokio::test]
    async fn each_coding_round_trips() {
        let data = b"{\"a\":1}\n".repeat(1000);
        let deflated = {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        let zstded = ::zstd::stream::encode_all(&data[..], 3).unwrap();
        for (coding, body) in [
            ("gzip", gzip(&data)),
            ("deflate", deflated),
            ("zstd", zstded),
        ] {
            let codings = codings(Some(coding)).unwrap();
            let decoded = decode(body.into(), codings, 1 << 20).await.unwrap();
            assert_eq!(decoded.as_ref(), &data[..], "{coding}");
        }
    }

    #[tokio::test]
    async fn a_bomb_is_refused_at_the_limit_naming_it() {
        // 64 MiB of zeros is a 64 KiB gzip body.
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0_u8; 1 << 20];
        for _ in 0..64 {
            encoder.write_all(&zeros).unwrap();
        }
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 200_000, "{}", bomb.len());
        let problem = decode(bomb.into(), codings(Some("gzip")).unwrap(), 1 << 20)
            .await
            .unwrap_err();
        assert_eq!(problem.status, http::StatusCode::PAYLOAD_TOO_LARGE);
        assert!(problem.message.contains("1048576"), "{problem:?}");
    }

    #[tokio::test]
    async fn unknown_codings_and_broken_data_are_named() {
        let said = codings(Some("br")).err().unwrap().message;
        assert!(said.contains("\"br\"") && said.contains("gzip"), "{said}");
        assert!(codings(Some("identity")).unwrap().is_empty());
        assert_eq!(codings(Some("gzip, zstd")).unwrap().len(), 2);
        assert!(codings(Some("gzip, gzip, gzip")).is_err());
        let broken = decode(
            b"not gzip at all".to_vec().into(),
            codings(Some("gzip")).unwrap(),
            1000,
        )
        .await
        .unwrap_err();
        assert!(broken.message.contains("not valid gzip"), "{broken:?}");
    }

    #[tokio::test]
    async fn stacked_codings_are_undone_last_first() {
        let data = b"hello ".repeat(100);
        let body = ::zstd::stream::encode_all(&gzip(&data)[..], 1).unwrap();
        let decoded = decode(body.into(), codings(Some("gzip, zstd")).unwrap(), 10_000)
            .await
            .unwrap();
        assert_eq!(decoded.as_ref(), &data[..]);
    }
}
