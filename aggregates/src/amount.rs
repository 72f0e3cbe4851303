//! Exact decimals at the edge: the one parser every money and quantity field goes through, and
//! the one place their bounds live.
//!
//! A value is accepted only if the ledger can carry it exactly everywhere downstream: in the
//! event's JSON, in the read models' text columns, and in every sum, balance and journal amount
//! derived from it. So the parser never rounds (text with more digits than it keeps is refused,
//! not rounded), and the bounds leave sums of a whole ledger far from `Decimal`'s 28 digits.

use rust_decimal::Decimal;

/// Largest magnitude of an amount or quantity: 10^15 (a thousand trillion pesos).
pub const AMOUNT_ABS_MAX: i64 = 1_000_000_000_000_000;
/// Most decimal places kept. With at most 16 integer digits that leaves 6 or more digits of
/// headroom, so tens of millions of maximal amounts still sum exactly.
pub const SCALE_MAX: u32 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("not a number")]
    NotANumber,
    #[error("out of range")]
    OutOfRange,
    #[error("at most {SCALE_MAX} decimal places")]
    TooPrecise,
}

/// Parses `text` (`12.10`, `-3`, `1.5e3`, `1E-2`) into exactly the decimal it writes, keeping its
/// scale (`12.10` stays `12.10`), within [`AMOUNT_ABS_MAX`] and [`SCALE_MAX`].
pub fn parse_amount(text: &str) -> Result<Decimal, DecimalError> {
    let exact = parse_exact(text.trim())?;
    bounded(exact)
}

/// Checks a decimal against the bounds every stored amount keeps.
pub fn bounded(value: Decimal) -> Result<Decimal, DecimalError> {
    if value.abs() > Decimal::from(AMOUNT_ABS_MAX) {
        return Err(DecimalError::OutOfRange);
    }
    if value.scale() > SCALE_MAX {
        // `1.500000000` is exact at a smaller scale: only digits that carry a value count.
        let trimmed = value.normalize();
        if trimmed.scale() > SCALE_MAX {
            return Err(DecimalError::TooPrecise);
        }
        return Ok(trimmed);
    }
    Ok(value)
}

/// The exact value of a JSON-style number, or why it has none as a `Decimal`.
fn parse_exact(text: &str) -> Result<Decimal, DecimalError> {
    let well_formed = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        && text.chars().any(|c| c.is_ascii_digit());
    if !well_formed {
        return Err(DecimalError::NotANumber);
    }
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (
            &text[..at],
            text[at + 1..]
                .parse::<i32>()
                .map_err(|_| DecimalError::NotANumber)?,
        ),
        None => (text, 0),
    };
    if mantissa.contains(['e', 'E', '+']) || mantissa.rfind('-').is_some_and(|at| at > 0) {
        return Err(DecimalError::NotANumber);
    }
    let mut value = Decimal::from_str_exact(mantissa).map_err(|error| match error {
        rust_decimal::Error::Underflow => DecimalError::TooPrecise,
        rust_decimal::Error::ErrorString(message) if message.contains("overflow") => {
            DecimalError::OutOfRange
        }
        _ => {
            // Plain digits too long for 96 bits are a number, just not one we hold.
            if mantissa
                .trim_start_matches('-')
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.')
            {
                DecimalError::OutOfRange
            } else {
                DecimalError::NotANumber
            }
        }
    })?;
    if exponent != 0 {
        value = scaled(value, exponent)?;
    }
    if value.is_zero() {
        // `-0` is zero: a sign on nothing would read back as `-0` and compare unequal as text.
        value.set_sign_positive(true);
    }
    Ok(value)
}

/// `value × 10^exponent`, exactly.
fn scaled(value: Decimal, exponent: i32) -> Result<Decimal, DecimalError> {
    let scale = i64::from(value.scale()) - i64::from(exponent);
    if scale < 0 {
        // The digits, as an integer, times the power of ten the exponent leaves over.
        let digits = Decimal::try_from_i128_with_scale(value.mantissa(), 0)
            .map_err(|_| DecimalError::OutOfRange)?;
        return digits
            .checked_mul(power_of_ten(-scale)?)
            .ok_or(DecimalError::OutOfRange);
    }
    let scale = u32::try_from(scale).map_err(|_| DecimalError::TooPrecise)?;
    if scale > 28 {
        // More places than a decimal holds: zero is still exactly zero, anything else is not.
        return if value.is_zero() {
            Ok(Decimal::ZERO)
        } else {
            Err(DecimalError::TooPrecise)
        };
    }
    Decimal::try_from_i128_with_scale(value.mantissa(), scale).map_err(|_| DecimalError::TooPrecise)
}

fn power_of_ten(exponent: i64) -> Result<Decimal, DecimalError> {
    if exponent > 28 {
        return Err(DecimalError::OutOfRange);
    }
    let mut power = Decimal::ONE;
    for _ in 0..exponent {
        power = power
            .checked_mul(Decimal::TEN)
            .ok_or(DecimalError::OutOfRange)?;
    }
    Ok(power)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    #[test]
    fn plain_and_scientific_numbers_parse_to_exactly_what_they_write() {
        assert_eq!(parse_amount("12.10").unwrap().to_string(), "12.10");
        assert_eq!(parse_amount("1.5e3").unwrap(), d("1500"));
        assert_eq!(parse_amount("1E-2").unwrap().to_string(), "0.01");
        assert_eq!(parse_amount("1e+3").unwrap(), d("1000"));
        assert_eq!(parse_amount("-0").unwrap().to_string(), "0");
        assert_eq!(parse_amount("-0.0").unwrap().to_string(), "0.0");
        assert_eq!(parse_amount("0e-40").unwrap(), Decimal::ZERO);
        assert_eq!(parse_amount("1.500000000").unwrap().to_string(), "1.5");
        assert_eq!(
            parse_amount("1000000000000000").unwrap(),
            d("1000000000000000")
        );
    }

    #[test]
    fn what_cannot_be_held_exactly_is_refused_not_rounded() {
        use DecimalError::*;
        for (text, refusal) in [
            ("0.000000000000001", TooPrecise),
            ("1.5e-28", TooPrecise),
            ("1e-29", TooPrecise),
            ("1.0000001", TooPrecise),
            ("1.00000000000000000000000000001", TooPrecise),
            ("1000000000000000.1", OutOfRange),
            ("1e16", OutOfRange),
            ("1e400", OutOfRange),
            ("79228162514264337593543950336", OutOfRange),
            ("99999999999999999999999999999999", OutOfRange),
            ("abc", NotANumber),
            ("1e", NotANumber),
            ("1-2", NotANumber),
            ("", NotANumber),
            ("--1", NotANumber),
        ] {
            assert_eq!(parse_amount(text), Err(refusal), "{text}");
        }
    }
}
