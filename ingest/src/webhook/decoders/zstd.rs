//! `zstd` (RFC 8878). The decoder's window is capped at 8 MiB: a frame asking for a
//! larger one (a sender can ask for 2 GiB) is refused, not allocated.

use std::io::Read;

/// log2 of the largest window accepted (8 MiB; zstd's default levels use at most this).
const WINDOW_LOG_MAX: u32 = 23;

pub struct Zstd;

impl super::ContentDecoder for Zstd {
    fn name(&self) -> &'static str {
        "zstd"
    }

    fn reader<'a>(&self, input: Box<dyn Read + 'a>) -> std::io::Result<Box<dyn Read + 'a>> {
        let mut decoder = zstd::stream::read::Decoder::new(input)?;
        decoder.window_log_max(WINDOW_LOG_MAX)?;
        Ok(Box::new(decoder))
    }
}
