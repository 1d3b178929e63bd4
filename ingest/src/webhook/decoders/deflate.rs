//! `deflate`: HTTP's deflate is zlib-wrapped (RFC 9110 8.4.1.2); some senders send
//! a raw deflate stream instead, recognised by the missing zlib header.

use std::io::Read;

pub struct Deflate;

impl super::ContentDecoder for Deflate {
    fn name(&self) -> &'static str {
        "deflate"
    }

    fn reader<'a>(&self, input: Box<dyn Read + 'a>) -> std::io::Result<Box<dyn Read + 'a>> {
        // Look at the first two bytes, then read them again with the rest.
        let mut input = std::io::BufReader::new(input);
        let start = std::io::BufRead::fill_buf(&mut input)?;
        // A zlib header: CM 8 in the low nibble, and the two bytes a multiple of 31.
        let zlib = start.len() >= 2
            && start[0] & 0x0f == 8
            && (u16::from(start[0]) << 8 | u16::from(start[1])) % 31 == 0;
        if zlib {
            Ok(Box::new(flate2::bufread::ZlibDecoder::new(input)))
        } else {
            Ok(Box::new(flate2::bufread::DeflateDecoder::new(input)))
        }
    }
}
