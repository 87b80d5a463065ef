//! Time ranges of a list: bounds on `CreatedAt`, the sort key of both indexes, as the
//! exact numbers a key condition compares.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

/// Bounds on `CreatedAt` (both exclusive), as the numbers the tables store: a list's
/// items of a time range. The default is everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TimeRange {
    after: Option<(i128, String)>,
    before: Option<(i128, String)>,
}

impl TimeRange {
    /// The items created strictly after `after` and strictly before `before`.
    pub fn new(after: Option<DateTime<Utc>>, before: Option<DateTime<Utc>>) -> Self {
        let bound = |at: DateTime<Utc>| {
            let nanos = i128::from(at.timestamp()) * 1_000_000_000
                + i128::from(at.timestamp_subsec_nanos());
            (nanos, exact_seconds(nanos))
        };
        Self {
            after: after.map(bound),
            before: before.map(bound),
        }
    }

    /// No bound at all.
    pub fn is_everything(&self) -> bool {
        self.after.is_none() && self.before.is_none()
    }

    /// The lower bound, as stored (epoch seconds, exact).
    pub fn after(&self) -> Option<&str> {
        self.after.as_ref().map(|(_, text)| text.as_str())
    }

    /// The upper bound, as stored (epoch seconds, exact).
    pub fn before(&self) -> Option<&str> {
        self.before.as_ref().map(|(_, text)| text.as_str())
    }

    /// Whether the stored time `value` (a plain decimal number) lies strictly between
    /// the bounds.
    pub(super) fn holds(&self, value: &str) -> bool {
        let above = self
            .after()
            .is_none_or(|after| decimal_order(value, after).is_gt());
        let below = self
            .before()
            .is_none_or(|before| decimal_order(value, before).is_lt());
        above && below
    }

    /// True when no time lies between the bounds.
    pub(super) fn is_empty(&self) -> bool {
        matches!((&self.after, &self.before), (Some((a, _)), Some((b, _))) if a >= b)
    }

    /// Both bounds as inclusive ones, for a key condition's `BETWEEN` (a key condition
    /// takes one comparison of the sort key, and a filter may not name a key): the
    /// smallest number DynamoDB can hold above `after`, and the largest below `before`.
    /// DynamoDB numbers carry at most 38 significant digits, so no stored time lies
    /// between a bound and its neighbour. For times from 1970 on (the bounds are checked).
    pub(super) fn inclusive(&self) -> Option<(String, String)> {
        let (Some((after, _)), Some((before, _))) = (&self.after, &self.before) else {
            return None;
        };
        Some((neighbour(*after, true), neighbour(before - 1, false)))
    }
}

/// The number right above (`up`) or right below nanoseconds `nanos` (not negative), at
/// the 38th significant digit: `nanos` written with 9 decimals, then zeros and a final 1
/// (above), or, for the time 1 ns later, nines (below).
fn neighbour(nanos: i128, up: bool) -> String {
    let (whole, fraction) = (nanos / 1_000_000_000, nanos % 1_000_000_000);
    let digits = whole.to_string().len();
    let decimals = 38usize.saturating_sub(digits).max(10);
    let (fill, last) = if up { ('0', '1') } else { ('9', '9') };
    let tail: String = std::iter::repeat_n(fill, decimals - 10)
        .chain([last])
        .collect();
    format!("{whole}.{fraction:09}{tail}")
}

/// The order of two plain decimal numbers (digits, an optional `-` and fraction), as
/// numbers: by sign, then by their whole parts' length and digits, then by their
/// fractions digit by digit.
fn decimal_order(a: &str, b: &str) -> Ordering {
    fn split(n: &str) -> (bool, &str, &str) {
        let (negative, digits) = match n.strip_prefix('-') {
            Some(digits) => (true, digits),
            None => (false, n),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let whole = whole.trim_start_matches('0');
        let fraction = fraction.trim_end_matches('0');
        let zero = whole.is_empty() && fraction.is_empty();
        (negative && !zero, whole, fraction)
    }
    let (a_negative, a_whole, a_fraction) = split(a);
    let (b_negative, b_whole, b_fraction) = split(b);
    let magnitude = a_whole
        .len()
        .cmp(&b_whole.len())
        .then_with(|| a_whole.cmp(b_whole))
        .then_with(|| a_fraction.cmp(b_fraction));
    match (a_negative, b_negative) {
        (false, false) => magnitude,
        (true, true) => magnitude.reverse(),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
    }
}

/// Nanoseconds since the epoch as exact decimal seconds (DynamoDB numbers are decimal):
/// `1772323200`, `1772323200.5`, `-0.25`.
fn exact_seconds(nanos: i128) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let (whole, fraction) = (nanos.abs() / 1_000_000_000, nanos.abs() % 1_000_000_000);
    if fraction == 0 {
        format!("{sign}{whole}")
    } else {
        let fraction = format!("{fraction:09}");
        format!("{sign}{whole}.{}", fraction.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_compare_as_numbers() {
        for (a, b, order) in [
            ("10", "9.99", Ordering::Greater),
            ("1.5", "1.50", Ordering::Equal),
            ("1.05", "1.5", Ordering::Less),
            ("-2", "1", Ordering::Less),
            ("-2", "-1.5", Ordering::Less),
            ("0", "-0", Ordering::Equal),
            ("007", "7.0", Ordering::Equal),
        ] {
            assert_eq!(decimal_order(a, b), order, "{a} {b}");
        }
        let at = |s| DateTime::from_timestamp(s, 0);
        let range = TimeRange::new(at(10), at(20));
        assert!(range.holds("10.000001") && range.holds("19.5"));
        assert!(!range.holds("10") && !range.holds("20") && !range.holds("-15"));
    }

    #[test]
    fn inclusive_bounds_are_the_next_numbers_inside() {
        let at = |s, ns| DateTime::from_timestamp(s, ns);
        let range = TimeRange::new(at(1_772_323_200, 500_000_000), at(1_772_323_260, 0));
        let (low, high) = range.inclusive().expect("both bounds");
        assert_eq!(low, format!("1772323200.5{}1", "0".repeat(26)));
        assert_eq!(high, format!("1772323259.{}", "9".repeat(28)));
        assert_eq!(low.replace('.', "").len(), 38);
        assert_eq!(high.replace('.', "").len(), 38);
        assert_eq!(TimeRange::new(at(5, 0), None).inclusive(), None);
    }

    #[test]
    fn bounds_are_exact_decimal_seconds() {
        assert_eq!(exact_seconds(1_772_323_200_000_000_000), "1772323200");
        assert_eq!(exact_seconds(1_772_323_200_500_000_000), "1772323200.5");
        assert_eq!(exact_seconds(1_000_000_001), "1.000000001");
        assert_eq!(exact_seconds(-250_000_000), "-0.25");
        let at = |s| DateTime::from_timestamp(s, 0);
        assert!(TimeRange::new(at(5), at(5)).is_empty());
        assert!(!TimeRange::new(at(5), at(6)).is_empty());
        assert!(!TimeRange::new(None, at(6)).is_empty());
    }
}
