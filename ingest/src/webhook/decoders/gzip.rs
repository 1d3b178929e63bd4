//! `gzip` (and `x-gzip`): RFC 1952, every member of a multi-member body.

use std::io::Read;

pub struct Gzip;

impl super::ContentDecoder for Gzip {
    fn name(&self) -> &'static str {
        "gzip"
    }

    fn reader<'a>(&self, input: Box<dyn Read + 'a>) -> std::io::Result<Box<dyn Read + 'a>> {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(input)))
    }
}
