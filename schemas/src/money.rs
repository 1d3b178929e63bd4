//! Exact money amounts. Stored in ClickHouse as `Decimal(18,4)`, whose RowBinary form
//! is an `i64` counting ten-thousandths, so that is exactly what we keep: no float
//! ever touches a payout. The currency is one per call and lives on the record.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Digits after the decimal point, matching `Decimal(18,4)`.
pub const SCALE: u32 = 4;
const UNITS_PER_WHOLE: i64 = 10_i64.pow(SCALE);
/// `Decimal(18,4)` holds at most 18 digits in all.
const MAX_ABS_UNITS: i64 = 999_999_999_999_999_999;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("{value:?} is not a decimal number")]
    NotANumber { value: String },
    #[error("{value:?} has more than {SCALE} digits after the decimal point")]
    TooPrecise { value: String },
    #[error("{value:?} is too large for Decimal(18,4)")]
    TooLarge { value: String },
}

/// An amount in ten-thousandths of the currency unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i64);

impl Money {
    pub const ZERO: Money = Money(0);

    pub fn from_units(units: i64) -> Option<Self> {
        (units.abs() <= MAX_ABS_UNITS).then_some(Self(units))
    }

    /// Ten-thousandths of the currency unit: the `Decimal(18,4)` wire value.
    pub fn units(self) -> i64 {
        self.0
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }
}

/// Cannot overflow: the range is symmetric (at most 18 digits either way).
impl std::ops::Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money(-self.0)
    }
}

impl FromStr for Money {
    type Err = MoneyError;

    /// Plain decimal text: optional sign, digits, optional point and up to four
    /// digits. Currency symbols, thousands separators and accounting brackets are the
    /// mapping engine's job; this type only accepts what is unambiguous.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let not_a_number = || MoneyError::NotANumber {
            value: s.to_owned(),
        };
        let (negative, rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let (whole, fraction) = match rest.split_once('.') {
            Some((w, f)) => (w, f),
            None => (rest, ""),
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err(not_a_number());
        }
        if !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(not_a_number());
        }
        if fraction.len() > SCALE as usize {
            return Err(MoneyError::TooPrecise {
                value: s.to_owned(),
            });
        }
        let too_large = || MoneyError::TooLarge {
            value: s.to_owned(),
        };
        let whole_units = if whole.is_empty() {
            0
        } else {
            whole
                .parse::<i64>()
                .map_err(|_| too_large())?
                .checked_mul(UNITS_PER_WHOLE)
                .ok_or_else(too_large)?
        };
        let mut fraction_units = 0_i64;
        for (i, digit) in fraction.bytes().enumerate() {
            fraction_units += i64::from(digit - b'0') * 10_i64.pow(SCALE - 1 - i as u32);
        }
        let units = whole_units
            .checked_add(fraction_units)
            .filter(|u| *u <= MAX_ABS_UNITS)
            .ok_or_else(too_large)?;
        Ok(Self(if negative { -units } else { units }))
    }
}

impl fmt::Display for Money {
    /// At least two decimals (how people read money), more only when they carry value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = abs / UNITS_PER_WHOLE as u64;
        let mut fraction = format!("{:04}", abs % UNITS_PER_WHOLE as u64);
        while fraction.len() > 2 && fraction.ends_with('0') {
            fraction.pop();
        }
        write!(f, "{sign}{whole}.{fraction}")
    }
}

/// Serialised as a decimal string: JSON numbers are floats to most consumers.
impl Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_exactly() {
        assert_eq!("45.00".parse::<Money>().unwrap().units(), 450_000);
        assert_eq!("1020".parse::<Money>().unwrap().units(), 10_200_000);
        assert_eq!("-3.5".parse::<Money>().unwrap().units(), -35_000);
        assert_eq!(".25".parse::<Money>().unwrap().units(), 2_500);
        assert_eq!("0.1".parse::<Money>().unwrap().to_string(), "0.10");
        assert_eq!("12.3456".parse::<Money>().unwrap().to_string(), "12.3456");
    }

    #[test]
    fn rejects_what_is_not_plain_decimal() {
        for bad in [
            "", "-", ".", "$45", "1,020.00", "1e3", "12.34567", "abc", "1.2.3",
        ] {
            assert!(bad.parse::<Money>().is_err(), "{bad:?} should be rejected");
        }
        assert!(matches!(
            "99999999999999999999".parse::<Money>(),
            Err(MoneyError::TooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn display_round_trips(units in -MAX_ABS_UNITS..=MAX_ABS_UNITS) {
            let money = Money::from_units(units).unwrap();
            prop_assert_eq!(money.to_string().parse::<Money>().unwrap(), money);
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,40}") {
            let _ = text.parse::<Money>();
        }
    }
}
