//! Adding up the rows of a range answered in parts (a rollup for its whole hours,
//! `calls_by_time` for the partial hours at its ends): rows with the same bucket and
//! dimension values are one row, every measure summed.

use std::collections::BTreeMap;

use super::AggRow;

/// The rows of both parts, one per (bucket, dimension values), in the order a single
/// statement would give them (`ORDER BY bucket, <dimensions in group_by order>`).
pub fn merge(parts: Vec<Vec<AggRow>>, group_by: &[String]) -> Vec<AggRow> {
    let mut merged: BTreeMap<Vec<String>, AggRow> = BTreeMap::new();
    for row in parts.into_iter().flatten() {
        let key: Vec<String> = std::iter::once(row.bucket.clone())
            .chain(group_by.iter().map(|d| row.dimension(d).to_owned()))
            .collect();
        match merged.get_mut(&key) {
            Some(sum) => sum.add(&row),
            None => {
                merged.insert(key, row);
            }
        }
    }
    merged.into_values().collect()
}

impl AggRow {
    fn add(&mut self, other: &AggRow) {
        self.calls += other.calls;
        self.qualified += other.qualified;
        self.unqualified += other.unqualified;
        self.repeat += other.repeat;
        self.duplicate += other.duplicate;
        self.payout = units_text(units(&self.payout) + units(&other.payout));
        self.revenue = units_text(units(&self.revenue) + units(&other.revenue));
        self.total_duration_s += other.total_duration_s;
        self.duration_count += other.duration_count;
        self.linked += other.linked;
    }
}

/// Decimal text as ClickHouse writes a sum of `Decimal(_, 4)` (`-12.3400`, `0`) in
/// ten-thousandths.
fn units(text: &str) -> i128 {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let fraction: String = fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(4)
        .collect();
    let value = whole.parse::<i128>().unwrap_or(0) * 10_000 + fraction.parse::<i128>().unwrap_or(0);
    if negative {
        -value
    } else {
        value
    }
}

fn units_text(units: i128) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let units = units.abs();
    format!("{sign}{}.{:04}", units / 10_000, units % 10_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(bucket: &str, status: &str, calls: u64, payout: &str) -> AggRow {
        AggRow {
            bucket: bucket.to_owned(),
            status: status.to_owned(),
            calls,
            payout: payout.to_owned(),
            revenue: "0".to_owned(),
            total_duration_s: calls * 60,
            duration_count: calls,
            ..AggRow::default()
        }
    }

    #[test]
    fn rows_of_one_bucket_and_value_are_added_up_in_order() {
        let group_by = vec!["status".to_owned()];
        let rollup = vec![
            row("2026-11-20", "qualified", 10, "100.5000"),
            row("2026-11-21", "repeat", 1, "0"),
        ];
        let edges = vec![
            row("2026-11-20", "qualified", 2, "-0.2500"),
            row("2026-11-19", "qualified", 1, "3"),
        ];
        let merged = merge(vec![rollup, edges], &group_by);
        let seen: Vec<(&str, &str, u64, &str, u64)> = merged
            .iter()
            .map(|r| {
                (
                    r.bucket.as_str(),
                    r.status.as_str(),
                    r.calls,
                    r.payout.as_str(),
                    r.duration_count,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("2026-11-19", "qualified", 1, "3", 1),
                ("2026-11-20", "qualified", 12, "100.2500", 12),
                ("2026-11-21", "repeat", 1, "0", 1),
            ]
        );
    }

    #[test]
    fn decimal_text_adds_exactly() {
        assert_eq!(units("1234.5"), 12_345_000);
        assert_eq!(units("-0.0001"), -1);
        assert_eq!(units_text(units("0.1") + units("0.2")), "0.3000");
        assert_eq!(units_text(units("-5.25") + units("1")), "-4.2500");
        assert_eq!(units_text(0), "0.0000");
    }
}
