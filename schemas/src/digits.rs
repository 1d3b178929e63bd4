//! Digits of any script as ASCII: partners' systems print Arabic-Indic, Persian,
//! Devanagari, Bengali, fullwidth (East Asian input methods) and other decimal
//! digits, and fullwidth `＋`, `－`, `（`, `）`; numbers, amounts and phone numbers
//! are read the same whichever were used.

use std::borrow::Cow;

/// The zero of each script's decimal digits (each script's ten are consecutive).
const ZEROS: [u32; 16] = [
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66,
    0x0E50, 0x0ED0, 0x1040, 0xFF10,
];

/// `c` as its ASCII digit or sign when it is one in another script.
pub fn ascii(c: char) -> char {
    match c {
        '＋' => '+',
        '－' => '-',
        '（' => '(',
        '）' => ')',
        c if c.is_ascii() => c,
        c => {
            let code = c as u32;
            ZEROS
                .iter()
                .find(|zero| (**zero..**zero + 10).contains(&code))
                .and_then(|zero| char::from_digit(code - zero, 10))
                .unwrap_or(c)
        }
    }
}

/// `text` with every digit and sign in ASCII; borrowed when it already is.
pub fn ascii_digits(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.chars().map(ascii).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_to_ascii() {
        assert_eq!(ascii_digits("＋４４ ２０"), "+44 20");
        assert_eq!(ascii_digits("١٢٣٫٤٥"), "123٫45");
        assert_eq!(ascii_digits("۱۲۳"), "123");
        assert_eq!(ascii_digits("१२३"), "123");
        assert_eq!(ascii_digits("plain 123"), "plain 123");
    }
}
