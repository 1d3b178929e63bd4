//! Money: `$1,234.50`, `USD 12.75`, `12.75 USD`, `€1.234,50`, `45,00 €`, `(3.00)`
//! (accounting negative), `-3`, JSON numbers. Exact decimals; blank is missing, not
//! zero. A currency code or symbol in the value wins over the integration's default
//! and is returned with it.
//!
//! Text is read in the integration's number convention (`decimal_separator`):
//! with `.`, `,` groups thousands (`1,234.50`); with `,`, `.` or a space groups
//! thousands (`1.234,50`, `1 234,50`). A value that only makes sense in the other
//! convention (`12,50` or `1.234,5` under `.`; `12.50` or `1,234.50` under `,`) is an
//! error naming the convention, never a silently different number. Under `.`,
//! `1.234` (one dot, exactly three digits after it) reads as one point two three
//! four, and is flagged as ambiguous so the mapping can warn where a decimal-comma
//! partner is likely. JSON numbers are not text: they always use a decimal point.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use schemas::integration::DecimalSeparator;
use schemas::Money;

use super::{scalar_text, CoerceError};

/// A coerced amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount {
    pub money: Money,
    /// A currency the value named (`USD 12`, `12 €`).
    pub currency: Option<String>,
    /// `1.234` under the `.` convention: read as 1.234, though a decimal-comma
    /// partner would mean 1234.
    pub ambiguous: bool,
}

/// Currency symbols as CLDR's locales write them, each with the currencies it
/// stands for (`tools/corpus/currency_symbols.py` writes the table from Babel's CLDR
/// data): `€` is the euro, `R$` the real, `$` any of 27 dollars and pesos.
///
/// Kept by the character each symbol starts with and the one it ends with, so a
/// value is compared only with the few symbols that can be at its ends (none when
/// it starts or ends with a digit): comparing every value with all 205 symbols at
/// both ends had made a typical record's mapping about 40 % slower (benches/README.md).
struct Symbols {
    /// Symbol and currencies, longest symbol first: `US$` before `$`, `R$` before `R`.
    table: Vec<(String, Vec<&'static str>)>,
    /// Positions in `table` by a symbol's first character, and by its last.
    by_first: HashMap<char, Vec<usize>>,
    by_last: HashMap<char, Vec<usize>>,
}

static SYMBOLS: LazyLock<Symbols> = LazyLock::new(|| {
    let mut table: Vec<(String, Vec<&str>)> = include_str!("currency_symbols.tsv")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        // Symbols as the text is compared: without directional marks.
        .map(|(symbol, codes)| (plain(symbol).trim().to_owned(), codes.split(' ').collect()))
        .filter(|(symbol, _)| !symbol.is_empty())
        .collect();
    table.sort_by_key(|(symbol, _)| std::cmp::Reverse(symbol.chars().count()));
    let mut by_first: HashMap<char, Vec<usize>> = HashMap::new();
    let mut by_last: HashMap<char, Vec<usize>> = HashMap::new();
    for (at, (symbol, _)) in table.iter().enumerate() {
        if let (Some(first), Some(last)) = (symbol.chars().next(), symbol.chars().next_back()) {
            by_first.entry(first).or_default().push(at);
            by_last.entry(last).or_default().push(at);
        }
    }
    Symbols {
        table,
        by_first,
        by_last,
    }
});

/// Marks some locales write around numbers that carry no value: directional marks
/// (Arabic, Hebrew, Persian locales) and the Unicode minus sign.
fn plain(text: &str) -> Cow<'_, str> {
    // Most values are ASCII without an apostrophe: nothing to change.
    if text.bytes().all(|b| b.is_ascii() && b != b'\'') {
        return Cow::Borrowed(text);
    }
    text.chars()
        .filter(|c| {
            !matches!(
                c,
                '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}'
            )
        })
        .map(|c| match c {
            '\u{2212}' => '-',
            // Arabic decimal and thousands marks, and the apostrophes Swiss locales
            // group with: made the marks every convention reads (`٫` is always a
            // decimal mark; `'` always groups).
            '\u{066b}' => '\u{0}',
            '\u{066c}' | '\u{060c}' | '\u{2019}' | '\'' => '\u{1}',
            c => c,
        })
        // Digits of other scripts (Arabic-Indic, Devanagari, fullwidth, ...).
        .map(schemas::digits::ascii)
        .collect::<String>()
        .into()
}

/// A currency named at the start (`from_end` false) or end of `text`: a code
/// (`USD`) or a symbol from the table, and the text without it.
fn take_mark(text: &str, from_end: bool) -> Option<(Mark, &str)> {
    let text = text.trim_matches(|c: char| c.is_whitespace());
    let code_here = |s: &str| s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase());
    let not_letter = |c: Option<char>| c.is_none_or(|c| !c.is_alphabetic());
    // Symbols first, longest first: `F CFA` is not the code `CFA`, `MOP$` not `MOP`.
    let (end, index) = if from_end {
        (text.chars().next_back(), &SYMBOLS.by_last)
    } else {
        (text.chars().next(), &SYMBOLS.by_first)
    };
    let candidates = end
        .and_then(|c| index.get(&c))
        .map_or(&[][..], Vec::as_slice);
    let symbol = candidates.iter().find_map(|&at| {
        let (symbol, codes) = &SYMBOLS.table[at];
        let (rest, beside) = if from_end {
            let rest = text.strip_suffix(symbol)?;
            (rest, rest.chars().next_back())
        } else {
            let rest = text.strip_prefix(symbol)?;
            (rest, rest.chars().next())
        };
        not_letter(beside).then_some((Mark::Symbol(symbol.as_str(), codes.as_slice()), rest))
    });
    if symbol.is_some() {
        return symbol;
    }
    if text.len() <= 3 {
        return None;
    }
    if from_end {
        let cut = text.len() - 3;
        let (rest, code) = (text.get(..cut)?, text.get(cut..)?);
        (code_here(code) && not_letter(rest.chars().next_back()))
            .then(|| (Mark::Code(code.to_owned()), rest))
    } else {
        let (code, rest) = (text.get(..3)?, text.get(3..)?);
        (code_here(code) && not_letter(rest.chars().next()))
            .then(|| (Mark::Code(code.to_owned()), rest))
    }
}

enum Mark {
    Code(String),
    Symbol(&'static str, &'static [&'static str]),
}

/// Placeholders `plain` writes for marks whose meaning does not depend on the
/// convention: a decimal mark (`٫`) and a group mark (`'`, `’`, `٬`, `،`).
const ANY_POINT: char = '\u{0}';
const ANY_GROUP: char = '\u{1}';

impl Mark {
    /// The currency it names: a code, a symbol of one currency, or a symbol of
    /// several when the integration's currency is one of them.
    fn currency(&self, default_currency: &str) -> Result<String, String> {
        match self {
            Mark::Code(code) => Ok(code.clone()),
            Mark::Symbol(_, [one]) => Ok((*one).to_owned()),
            Mark::Symbol(_, codes) if codes.contains(&default_currency) => {
                Ok(default_currency.to_owned())
            }
            Mark::Symbol(symbol, codes) => Err(format!(
                "{symbol:?} stands for several currencies ({}) and this integration's currency is {default_currency}; \
                 the partner should write the code (USD 12.50), or set the integration's currency",
                codes.join(", ")
            )),
        }
    }
}

pub fn money(
    value: &serde_json::Value,
    separator: DecimalSeparator,
    default_currency: &str,
) -> Result<Option<Amount>, CoerceError> {
    if let serde_json::Value::Number(n) = value {
        let money: Money = n.to_string().parse().map_err(|e: schemas::MoneyError| {
            CoerceError::new(format!("{n} is not an amount of money: {e}"))
        })?;
        return Ok(Some(Amount {
            money,
            currency: None,
            ambiguous: false,
        }));
    }
    let Some(text) = scalar_text(value)? else {
        return Ok(None);
    };
    let bad = |why: &str| CoerceError::new(format!("{text:?} is not an amount of money: {why}"));
    let cleaned = plain(&text);
    let mut rest = cleaned.trim();
    let mut negative = false;
    let mut currency = None;
    // Accounting brackets, a sign before or after (`-$1`, `$-1`, `1,00 €-`), and a
    // currency mark at either end, in any order the locales write them.
    for _ in 0..3 {
        if let Some(inner) = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
            negative = !negative;
            rest = inner.trim();
        }
        if let Some(inner) = rest.strip_prefix('-') {
            negative = !negative;
            rest = inner.trim_start();
        } else if let Some(inner) = rest.strip_suffix('-') {
            negative = !negative;
            rest = inner.trim_end();
        }
        if currency.is_none() {
            if let Some((mark, inner)) = take_mark(rest, false).or_else(|| take_mark(rest, true)) {
                currency = Some(mark.currency(default_currency).map_err(|why| bad(&why))?);
                rest = inner.trim();
            }
        }
    }
    let (digits, ambiguous) = normalise(rest, separator).map_err(|why| bad(&why))?;
    let amount: Money = digits
        .parse()
        .map_err(|e: schemas::MoneyError| bad(&e.to_string()))?;
    Ok(Some(Amount {
        money: if negative { -amount } else { amount },
        currency,
        ambiguous,
    }))
}

/// Plain decimal text (`1234.50`) from a number written in `separator`'s convention,
/// and whether it was ambiguous; or why it cannot be read in that convention.
pub fn normalise(text: &str, separator: DecimalSeparator) -> Result<(String, bool), String> {
    let (point, group, other) = match separator {
        DecimalSeparator::Dot => ('.', ',', ','),
        DecimalSeparator::Comma => (',', '.', '.'),
    };
    // Spaces (plain, no-break, narrow no-break) and apostrophes group thousands in
    // either convention; `٫` is a decimal mark in either.
    let text: String = text
        .chars()
        .map(|c| match c {
            ' ' | '\u{a0}' | '\u{202f}' | ANY_GROUP => group,
            ANY_POINT => point,
            c => c,
        })
        .collect();
    let other_convention = || {
        format!(
            "reads as a number with a decimal {}, but this integration's decimal_separator is {point:?} \
             (set it to {other:?} if the partner writes numbers that way)",
            if point == '.' { "comma" } else { "point" },
        )
    };
    // A group mark after the decimal mark belongs to the other convention
    // (`1.234,5` under `.`).
    if let (Some(p), Some(g)) = (text.find(point), text.rfind(group)) {
        if g > p {
            return Err(other_convention());
        }
    }
    if text.matches(point).count() > 1 {
        return Err(format!("more than one {point:?}"));
    }
    let (whole, fraction) = match text.split_once(point) {
        Some((w, f)) => (w, Some(f)),
        None => (text.as_str(), None),
    };
    let groups: Vec<&str> = whole.split(group).collect();
    if groups.len() > 1 {
        let thousands = !groups[0].is_empty()
            && groups[0].len() <= 3
            && groups[1..].iter().all(|g| g.len() == 3);
        // Indian grouping (lakh, crore): 12,34,567.89; the last group of three,
        // the ones before it of two.
        let lakh = groups.len() > 2
            && !groups[0].is_empty()
            && groups[0].len() <= 2
            && groups[1..groups.len() - 1].iter().all(|g| g.len() == 2)
            && groups[groups.len() - 1].len() == 3;
        let well_formed = thousands || lakh;
        if !well_formed {
            // A lone group mark followed by 1–2 or 4+ digits at the end, and no
            // decimal mark: the other convention's decimal mark (`12,50` under `.`).
            let last = groups[groups.len() - 1];
            let digits = groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()));
            if fraction.is_none() && groups.len() == 2 && digits && last.len() != 3 {
                return Err(other_convention());
            }
            return Err("misplaced thousands separator".to_owned());
        }
    }
    // `1.234` under `.`: a lone point and exactly three digits after it.
    let ambiguous = point == '.'
        && groups.len() == 1
        && fraction.is_some_and(|f| f.len() == 3 && f.bytes().all(|b| b.is_ascii_digit()));
    let whole = groups.concat();
    let normalised = match fraction {
        Some(f) => format!("{whole}.{f}"),
        None => whole,
    };
    Ok((normalised, ambiguous))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const DOT: DecimalSeparator = DecimalSeparator::Dot;
    const COMMA: DecimalSeparator = DecimalSeparator::Comma;

    fn amount(value: serde_json::Value, separator: DecimalSeparator) -> (String, Option<String>) {
        let parsed = money(&value, separator, "USD").unwrap().unwrap();
        (parsed.money.to_string(), parsed.currency)
    }

    fn refused(value: &str, separator: DecimalSeparator) -> String {
        money(&json!(value), separator, "USD").unwrap_err().0
    }

    #[test]
    fn table_of_supported_forms() {
        let usd = Some("USD".to_owned());
        assert_eq!(
            amount(json!("$1,234.50"), DOT),
            ("1234.50".into(), usd.clone())
        );
        assert_eq!(
            amount(json!("USD 12.75"), DOT),
            ("12.75".into(), usd.clone())
        );
        assert_eq!(
            amount(json!("12.75 EUR"), DOT),
            ("12.75".into(), Some("EUR".into()))
        );
        assert_eq!(amount(json!("(3.00)"), DOT), ("-3.00".into(), None));
        assert_eq!(amount(json!("-$3"), DOT), ("-3.00".into(), usd.clone()));
        assert_eq!(amount(json!("$45"), DOT), ("45.00".into(), usd));
        assert_eq!(amount(json!("1,020.00"), DOT), ("1020.00".into(), None));
        assert_eq!(amount(json!(45.5), DOT), ("45.50".into(), None));
        assert_eq!(amount(json!(0), DOT), ("0.00".into(), None));
    }

    /// The examples of the issue, each pinned.
    #[test]
    fn decimal_commas_under_the_comma_convention() {
        let eur = Some("EUR".to_owned());
        assert_eq!(amount(json!("1.234,50"), COMMA), ("1234.50".into(), None));
        assert_eq!(
            amount(json!("€1.234,50"), COMMA),
            ("1234.50".into(), eur.clone())
        );
        assert_eq!(
            amount(json!("45,00 €"), COMMA),
            ("45.00".into(), eur.clone())
        );
        assert_eq!(amount(json!("12,5"), COMMA), ("12.50".into(), None));
        assert_eq!(amount(json!("1.234"), COMMA), ("1234.00".into(), None));
        assert_eq!(amount(json!("1 234,50"), COMMA), ("1234.50".into(), None));
        assert_eq!(amount(json!("EUR 7,25"), COMMA), ("7.25".into(), eur));
        assert_eq!(
            amount(json!(45.5), COMMA),
            ("45.50".into(), None),
            "JSON numbers use a point"
        );
    }

    #[test]
    fn a_value_of_the_other_convention_is_an_error_naming_it() {
        for value in ["1.234,5", "12,50", "12,5", "1,2345", "€1.234,50"] {
            let error = refused(value, DOT);
            assert!(error.contains("decimal_separator"), "{value}: {error}");
        }
        for value in ["1,234.50", "12.50", "12.5", "1.2345"] {
            let error = refused(value, COMMA);
            assert!(error.contains("decimal_separator"), "{value}: {error}");
        }
    }

    #[test]
    fn one_dot_and_three_digits_is_ambiguous_under_the_dot_convention() {
        let parsed = money(&json!("1.234"), DOT, "USD").unwrap().unwrap();
        assert_eq!(parsed.money.to_string(), "1.234");
        assert!(parsed.ambiguous);
        for plain in ["1.23", "1,234", "1,234.567", "1234"] {
            assert!(
                !money(&json!(plain), DOT, "USD").unwrap().unwrap().ambiguous,
                "{plain}"
            );
        }
    }

    #[test]
    fn blank_is_missing_and_junk_is_an_error() {
        assert_eq!(money(&json!(""), DOT, "USD").unwrap(), None);
        assert_eq!(money(&json!(null), DOT, "USD").unwrap(), None);
        for bad in [
            json!("12,34"),
            json!("$"),
            json!("1.2.3"),
            json!("ten"),
            json!("1,0000"),
            json!([1]),
        ] {
            assert!(money(&bad, DOT, "USD").is_err(), "{bad}");
        }
    }

    /// How a partner writes `cents` in a convention: grouped or not, a currency
    /// symbol before or after.
    fn written(cents: i64, separator: DecimalSeparator, grouped: bool, symbol: u8) -> String {
        let (point, group) = match separator {
            DecimalSeparator::Dot => ('.', ','),
            DecimalSeparator::Comma => (',', '.'),
        };
        let whole = (cents / 100).to_string();
        let mut body = String::new();
        for (i, ch) in whole.chars().enumerate() {
            if grouped && i > 0 && (whole.len() - i).is_multiple_of(3) {
                body.push(group);
            }
            body.push(ch);
        }
        body.push(point);
        body.push_str(&format!("{:02}", cents % 100));
        match symbol % 3 {
            0 => body,
            1 => format!("€{body}"),
            _ => format!("{body} €"),
        }
    }

    proptest! {
        /// Every amount, in both conventions and every way of writing it, reads back
        /// as itself.
        #[test]
        fn amounts_round_trip_in_their_convention(
            cents in 0_i64..100_000_000_000, grouped: bool, symbol: u8, comma: bool
        ) {
            let separator = if comma { COMMA } else { DOT };
            let text = written(cents, separator, grouped, symbol);
            let parsed = money(&json!(text), separator, "USD").unwrap().unwrap();
            let expected: Money = format!("{}.{:02}", cents / 100, cents % 100).parse().unwrap();
            prop_assert_eq!(parsed.money, expected, "{}", text);
        }

        /// Written in one convention and read in the other: an error or the same
        /// amount, never a different amount.
        #[test]
        fn the_other_convention_never_reads_a_different_amount(
            cents in 0_i64..100_000_000_000, grouped: bool, symbol: u8, comma: bool
        ) {
            let (written_in, read_in) = if comma { (COMMA, DOT) } else { (DOT, COMMA) };
            let text = written(cents, written_in, grouped, symbol);
            let expected: Money = format!("{}.{:02}", cents / 100, cents % 100).parse().unwrap();
            if let Ok(Some(parsed)) = money(&json!(text), read_in, "USD") {
                prop_assert_eq!(parsed.money, expected, "{} read as {}", text, parsed.money);
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,24}", comma: bool) {
            let _ = money(&json!(text), if comma { COMMA } else { DOT }, "USD");
        }
    }
}
