//! Money: `$1,234.50`, `USD 12.75`, `12.75 USD`, `(3.00)` (accounting negative),
//! `-3`, JSON numbers. Exact decimals; blank is missing, not zero. A currency code
//! in the value wins over the integration's default and is returned with it.

use schemas::Money;

use super::{scalar_text, CoerceError};

pub fn money(value: &serde_json::Value) -> Result<Option<(Money, Option<String>)>, CoerceError> {
    let Some(text) = scalar_text(value)? else {
        return Ok(None);
    };
    let bad = |why: &str| CoerceError::new(format!("{text:?} is not an amount of money: {why}"));
    let mut rest = text.as_str();
    let mut negative = false;
    if let Some(inner) = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        negative = true;
        rest = inner.trim();
    }
    let mut currency = None;
    let code_at = |s: &str| {
        s.len() >= 3 && s.is_char_boundary(3) && s[..3].bytes().all(|b| b.is_ascii_uppercase())
    };
    if code_at(rest) && rest[3..].starts_with(' ') {
        currency = Some(rest[..3].to_owned());
        rest = rest[3..].trim();
    } else if rest.len() > 4
        && rest.is_char_boundary(rest.len() - 3)
        && code_at(&rest[rest.len() - 3..])
        && rest[..rest.len() - 3].ends_with(' ')
    {
        currency = Some(rest[rest.len() - 3..].to_owned());
        rest = rest[..rest.len() - 3].trim();
    }
    if let Some(inner) = rest.strip_prefix('-') {
        negative = !negative;
        rest = inner.trim_start();
    }
    if let Some(inner) = rest.strip_prefix('$') {
        currency.get_or_insert_with(|| "USD".to_owned());
        rest = inner.trim_start();
    }
    if let Some(inner) = rest.strip_prefix('-') {
        negative = !negative;
        rest = inner;
    }
    let digits = strip_thousands(rest).ok_or_else(|| bad("misplaced thousands separator"))?;
    let amount: Money = digits
        .parse()
        .map_err(|e: schemas::MoneyError| bad(&e.to_string()))?;
    Ok(Some((if negative { -amount } else { amount }, currency)))
}

/// Removes `,` thousands separators, but only where they group three digits.
fn strip_thousands(text: &str) -> Option<String> {
    if !text.contains(',') {
        return Some(text.to_owned());
    }
    let whole = text.split('.').next().unwrap_or(text);
    let groups: Vec<&str> = whole.split(',').collect();
    let well_formed =
        !groups[0].is_empty() && groups[0].len() <= 3 && groups[1..].iter().all(|g| g.len() == 3);
    well_formed.then(|| text.replace(',', ""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn amount(value: serde_json::Value) -> (String, Option<String>) {
        let (money, currency) = money(&value).unwrap().unwrap();
        (money.to_string(), currency)
    }

    #[test]
    fn table_of_supported_forms() {
        let usd = Some("USD".to_owned());
        assert_eq!(amount(json!("$1,234.50")), ("1234.50".into(), usd.clone()));
        assert_eq!(amount(json!("USD 12.75")), ("12.75".into(), usd.clone()));
        assert_eq!(
            amount(json!("12.75 EUR")),
            ("12.75".into(), Some("EUR".into()))
        );
        assert_eq!(amount(json!("(3.00)")), ("-3.00".into(), None));
        assert_eq!(amount(json!("-$3")), ("-3.00".into(), usd.clone()));
        assert_eq!(amount(json!("$45")), ("45.00".into(), usd));
        assert_eq!(amount(json!("1,020.00")), ("1020.00".into(), None));
        assert_eq!(amount(json!(45.5)), ("45.50".into(), None));
        assert_eq!(amount(json!(0)), ("0.00".into(), None));
    }

    #[test]
    fn blank_is_missing_and_junk_is_an_error() {
        assert_eq!(money(&json!("")).unwrap(), None);
        assert_eq!(money(&json!(null)).unwrap(), None);
        for bad in [
            json!("12,34"),
            json!("$"),
            json!("1.2.3"),
            json!("ten"),
            json!("1,0000"),
            json!([1]),
        ] {
            assert!(money(&bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn formatted_dollars_round_trip(cents in 0_i64..100_000_000_000) {
            let plain = format!("{}.{:02}", cents / 100, cents % 100);
            let whole = (cents / 100).to_string();
            let mut grouped = String::new();
            for (i, ch) in whole.chars().enumerate() {
                if i > 0 && (whole.len() - i) % 3 == 0 { grouped.push(','); }
                grouped.push(ch);
            }
            let written = format!("${grouped}.{:02}", cents % 100);
            let (parsed, _) = money(&json!(written)).unwrap().unwrap();
            prop_assert_eq!(parsed, plain.parse::<Money>().unwrap());
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,24}") {
            let _ = money(&json!(text));
        }
    }
}
