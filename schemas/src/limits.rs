//! How large one record may be. Every message the pipeline makes from a record (its
//! raw envelope, the same envelope parked or forwarded with a few headers, and its
//! dead letter, where the payload is a JSON *string* and every quote and control
//! character is escaped) must fit the broker's message limit: a message that does not
//! fit is refused for good by the producer, and the batch holding it could never be
//! committed. So the edge (webhooks, imports, polls) refuses a record whose messages
//! could not all fit, and the processor fits what it makes by construction
//! ([`crate::DeadLetter::fit_within`]).

/// Room for what an envelope or a dead letter carries besides the payload: ids,
/// client, times, idempotency key (at most 256 bytes), reason and errors, the Kafka
/// key and headers (park count, due time) and librdkafka's own record overhead.
pub const MESSAGE_OVERHEAD_BYTES: usize = 8 * 1024;

/// What a dead letter keeps of a record refused for its size: its start (with its
/// size and digest, `DeadLetter::fit_within`) is what an operator needs to find it,
/// and such a record cannot be replayed anyway. Megabyte letters would only load the
/// broker and `dead_letters` for every account.
pub const TOO_LARGE_LETTER_BYTES: usize = 64 * 1024;

/// What librdkafka refuses above unless `message.max.bytes` says otherwise.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_000_000;

/// A record too large for the pipeline, with the sizes that say why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the record is {bytes} bytes ({escaped} as the text of its dead letter); a record may be at most \
     {limit} bytes either way (the broker's message limit less {MESSAGE_OVERHEAD_BYTES} bytes of envelope)"
)]
pub struct RecordTooLarge {
    pub bytes: usize,
    pub escaped: usize,
    pub limit: usize,
}

/// The record size limit that follows from the broker's message limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLimits {
    max_message_bytes: usize,
}

impl RecordLimits {
    pub fn new(max_message_bytes: usize) -> Self {
        Self { max_message_bytes }
    }

    /// The broker's message limit.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// The largest record, in bytes and in escaped bytes.
    pub fn max_record_bytes(&self) -> usize {
        self.max_message_bytes
            .saturating_sub(MESSAGE_OVERHEAD_BYTES)
    }

    /// Whether every message made from `payload` fits: the envelope (the payload as
    /// is) and the dead letter (the payload escaped as a JSON string).
    pub fn check(&self, payload: &str) -> Result<(), RecordTooLarge> {
        let limit = self.max_record_bytes();
        // Escaping never shrinks text, so a record within the limit unescaped needs
        // the exact count only when it is near it.
        if payload.len() <= limit / 6 {
            return Ok(());
        }
        let escaped = escaped_len(payload);
        if payload.len() > limit || escaped > limit {
            return Err(RecordTooLarge {
                bytes: payload.len(),
                escaped,
                limit,
            });
        }
        Ok(())
    }
}

impl Default for RecordLimits {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MESSAGE_BYTES)
    }
}

/// The bytes `c` takes inside a JSON string as serde_json writes it.
pub fn escaped_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// The bytes `text` takes inside a JSON string (without the quotes).
pub fn escaped_len(text: &str) -> usize {
    text.chars().map(escaped_char_len).sum()
}

/// The longest prefix of `text` (on a character boundary) whose escaped form takes
/// at most `budget` bytes.
pub fn prefix_within(text: &str, budget: usize) -> &str {
    let mut used = 0;
    for (index, c) in text.char_indices() {
        used += escaped_char_len(c);
        if used > budget {
            return &text[..index];
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quotes_count_twice_and_the_limit_names_both_sizes() {
        let limits = RecordLimits::new(100_000);
        let quotes = "\"".repeat(60_000);
        let error = limits.check(&quotes).unwrap_err();
        assert_eq!(error.bytes, 60_000);
        assert_eq!(error.escaped, 120_000);
        assert_eq!(error.limit, 100_000 - MESSAGE_OVERHEAD_BYTES);
        assert!(error.to_string().contains("120000"), "{error}");
        assert!(limits.check(&"a".repeat(60_000)).is_ok());
        assert!(limits.check(&"a".repeat(95_000)).is_err());
    }

    proptest! {
        #[test]
        fn escaped_len_is_what_serde_json_writes(text in any::<String>()) {
            let written = serde_json::to_string(&text).unwrap();
            prop_assert_eq!(escaped_len(&text), written.len() - 2);
        }

        #[test]
        fn a_prefix_fits_its_budget_and_is_the_longest(text in any::<String>(), budget in 0_usize..200) {
            let prefix = prefix_within(&text, budget);
            prop_assert!(text.starts_with(prefix));
            prop_assert!(escaped_len(prefix) <= budget);
            if let Some(next) = text[prefix.len()..].chars().next() {
                prop_assert!(escaped_len(prefix) + escaped_char_len(next) > budget);
            }
        }
    }
}
