//! Numbers and dates as the operators write them: pesos as `$ 1.250.000` (thousands with `.`,
//! decimals with `,` only when there are any), dates as `dd/mm/aaaa`.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use crate::settings::ServiceTimeZone;

/// `amount` in Colombian pesos: `$ 1.250.000`, `-$ 25.000`, `$ 1.250,5`. Exact: the decimal's
/// own digits, never through a float; trailing zeros of the decimals are dropped.
pub fn cop(amount: Decimal) -> String {
    let normalized = amount.normalize();
    let text = normalized.abs().to_string();
    let (integer, decimals) = text.split_once('.').unwrap_or((&text, ""));
    let mut grouped = String::with_capacity(integer.len() + integer.len() / 3);
    for (i, digit) in integer.chars().enumerate() {
        if i > 0 && (integer.len() - i) % 3 == 0 {
            grouped.push('.');
        }
        grouped.push(digit);
    }
    let sign = if normalized.is_sign_negative() && !normalized.is_zero() {
        "-"
    } else {
        ""
    };
    if decimals.is_empty() {
        format!("{sign}$ {grouped}")
    } else {
        format!("{sign}$ {grouped},{decimals}")
    }
}

/// A quantity (gallons) with the same separators, without the currency sign.
pub fn quantity(amount: Decimal) -> String {
    cop(amount).replacen("$ ", "", 1)
}

/// `dd/mm/aaaa`.
pub fn fecha(date: NaiveDate) -> String {
    date.format("%d/%m/%Y").to_string()
}

/// `dd/mm/aaaa hh:mm:ss` in the service's zone.
pub fn instante(instant: DateTime<Utc>, zone: &ServiceTimeZone) -> String {
    zone.local(instant).format("%d/%m/%Y %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    #[test]
    fn pesos_are_grouped_by_thousands_with_dots() {
        assert_eq!(cop(d("1250000")), "$ 1.250.000");
        assert_eq!(cop(d("0")), "$ 0");
        assert_eq!(cop(d("999")), "$ 999");
        assert_eq!(cop(d("1000")), "$ 1.000");
        assert_eq!(cop(d("123456789012")), "$ 123.456.789.012");
    }

    #[test]
    fn negative_pesos_carry_their_sign_before_the_currency() {
        assert_eq!(cop(d("-25000")), "-$ 25.000");
        assert_eq!(cop(d("-1250000.75")), "-$ 1.250.000,75");
        assert_eq!(cop(d("-0.00")), "$ 0");
    }

    #[test]
    fn decimals_show_with_a_comma_only_when_not_zero() {
        assert_eq!(cop(d("1250000.00")), "$ 1.250.000");
        assert_eq!(cop(d("1250.50")), "$ 1.250,5");
        assert_eq!(cop(d("0.125")), "$ 0,125");
        assert_eq!(quantity(d("12.50")), "12,5");
        assert_eq!(quantity(d("-1500")), "-1.500");
    }

    #[test]
    fn dates_read_day_month_year() {
        let date = NaiveDate::from_ymd_opt(2024, 3, 5).unwrap();
        assert_eq!(fecha(date), "05/03/2024");
    }
}
