//! `deflate`: HTTP's deflate is zlib-wrapped (RFC 9110 8.4.1.2); some senders send
//! a raw deflate stream instead, recognised by the missing zlib header.

use std::io::Read;

pub struct Deflate;

impl super::ContentDecoder for Deflate {
    fn name(&self) -> &'static str {
        "deflate"
    }

    fn reader<'a>(&self, input: &'a [u8]) -> std::io::Result<Box<dyn Read + 'a>> {
        // A zlib header: CM 8 in the low nibble, and the two bytes a multiple of 31.
        let zlib = input.len() >= 2
            && input[0] & 0x0f == 8
            && (u16::from(input[0]) << 8 | u16::from(input[1])) % 31 == 0;
        if zlib {
            Ok(Box::new(flate2::read::ZlibDecoder::new(input)))
        } else {
            Ok(Box::new(flate2::read::DeflateDecoder::new(input)))
        }
    }
}
