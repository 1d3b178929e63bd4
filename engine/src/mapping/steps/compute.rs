//! `compute`: arithmetic on exact decimals, four places as money is (never
//! floats): `add`, `sub`, `mul`, `div`, left to right. Products and quotients are
//! rounded to four places half to even (banker's rounding, as ClickHouse's Decimal
//! casts and most ledgers do). An absent operand makes the field absent; one that is
//! not a number, or a division by zero, is the field's error.

use std::borrow::Cow;

use schemas::condition::decimal;
use schemas::integration::ComputeOp;
use serde_json::Value;

use super::{Step, StepContext};

/// Four decimal places.
const SCALE: i128 = 10_000;

#[derive(Debug)]
pub struct Compute {
    pub op: ComputeOp,
}

impl Step for Compute {
    fn apply<'v>(
        &self,
        value: Cow<'v, Value>,
        _ctx: &StepContext,
    ) -> Result<Option<Cow<'v, Value>>, String> {
        let Value::Array(operands) = &*value else {
            return Err("compute: no operands".into());
        };
        let mut result: Option<i128> = None;
        for (i, operand) in operands.iter().enumerate() {
            if !schemas::rule::is_present(operand) {
                return Ok(None);
            }
            let n = decimal(operand)
                .ok_or_else(|| format!("compute: operand {} ({operand}) is not a number", i + 1))?;
            result = Some(match result {
                None => n,
                Some(acc) => combine(self.op, acc, n)
                    .ok_or("compute: the result is out of range or divides by zero")?,
            });
        }
        let units = result.ok_or("compute: no operands")?;
        Ok(Some(Cow::Owned(Value::String(show(units)))))
    }
}

fn combine(op: ComputeOp, a: i128, b: i128) -> Option<i128> {
    let value = match op {
        ComputeOp::Add => a.checked_add(b)?,
        ComputeOp::Sub => a.checked_sub(b)?,
        ComputeOp::Mul => round_div(a.checked_mul(b)?, SCALE)?,
        ComputeOp::Div => round_div(a.checked_mul(SCALE)?, b)?,
    };
    (value.abs() < 10_i128.pow(30)).then_some(value)
}

/// `n / d` rounded half to even.
fn round_div(n: i128, d: i128) -> Option<i128> {
    if d == 0 {
        return None;
    }
    let (q, r) = (n / d, n % d);
    let twice = (r.abs() * 2).cmp(&d.abs());
    let away = if (n < 0) != (d < 0) { -1 } else { 1 };
    Some(match twice {
        std::cmp::Ordering::Greater => q + away,
        std::cmp::Ordering::Equal if q % 2 != 0 => q + away,
        _ => q,
    })
}

/// Units of 1/10 000 as decimal text (`12.5000` → `12.5`).
fn show(units: i128) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let (whole, fraction) = (units.abs() / SCALE, units.abs() % SCALE);
    let fraction = format!("{fraction:04}");
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compute(op: ComputeOp, args: Value) -> Result<Option<Value>, String> {
        let ctx = StepContext {
            zone: chrono_tz::UTC,
        };
        Compute { op }
            .apply(Cow::Owned(args), &ctx)
            .map(|v| v.map(Cow::into_owned))
    }

    #[test]
    fn exact_decimal_arithmetic() {
        assert_eq!(
            compute(ComputeOp::Mul, json!(["20.00", "0.3"])),
            Ok(Some(json!("6")))
        );
        assert_eq!(
            compute(ComputeOp::Add, json!([0.1, 0.2])),
            Ok(Some(json!("0.3"))),
            "never floats"
        );
        assert_eq!(
            compute(ComputeOp::Sub, json!(["10", "12.5"])),
            Ok(Some(json!("-2.5")))
        );
        assert_eq!(
            compute(ComputeOp::Div, json!(["10", "3"])),
            Ok(Some(json!("3.3333")))
        );
        assert_eq!(
            compute(ComputeOp::Mul, json!(["0.0001", "0.5"])),
            Ok(Some(json!("0"))),
            "half to even"
        );
        assert_eq!(
            compute(ComputeOp::Mul, json!(["0.0003", "0.5"])),
            Ok(Some(json!("0.0002")))
        );
        assert_eq!(compute(ComputeOp::Add, json!(["1", null])), Ok(None));
        assert!(compute(ComputeOp::Div, json!(["1", "0"])).is_err());
        assert!(compute(ComputeOp::Add, json!(["1", "abc"]))
            .unwrap_err()
            .contains("operand 2"));
    }
}
