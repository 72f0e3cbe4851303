//! Reading spreadsheet cells the way operators type them, exactly or not at all: an ambiguous
//! cell is an error for its row, never a guess.

use chrono::{Duration, NaiveDate};

use crate::amount::{parse_amount, DecimalError};
use rust_decimal::Decimal;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CellError {
    #[error("celda vacía")]
    Empty,
    #[error("no es un número: {0}")]
    NotANumber(String),
    #[error("número ambiguo: {0}")]
    Ambiguous(String),
    #[error("fecha no válida: {0} (use DD/MM/AAAA, AAAA-MM-DD o el número de serie de Excel)")]
    NotADate(String),
    #[error("{0}: {1}")]
    Unstorable(String, DecimalError),
}

/// The exact decimal `digits` writes, within the bounds every stored amount keeps.
fn exact(digits: &str, cell: &str) -> Result<Decimal, CellError> {
    parse_amount(digits).map_err(|refusal| match refusal {
        DecimalError::NotANumber => CellError::NotANumber(cell.to_string()),
        other => CellError::Unstorable(cell.to_string(), other),
    })
}

/// What a lone separator followed by exactly three digits means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ThreeDigits {
    /// Money: `150.000` is one hundred fifty thousand.
    Thousands,
    /// Quantities: `12.500` could be 12.5 or 12500 gallons.
    Ambiguous,
}

/// COP amounts: `150000`, `150.000`, `150,000`, `$150.000`, `$ 150,000.00` are all 150000.
pub fn money(cell: &Value) -> Result<Decimal, CellError> {
    number(cell, ThreeDigits::Thousands)
}

/// Quantities such as gallons: `12,5` and `12.5` are both 12.5.
pub fn quantity(cell: &Value) -> Result<Decimal, CellError> {
    number(cell, ThreeDigits::Ambiguous)
}

fn number(cell: &Value, three_digits: ThreeDigits) -> Result<Decimal, CellError> {
    let text = match cell {
        Value::Number(n) => return exact(&n.to_string(), &n.to_string()),
        Value::String(s) => s.as_str(),
        Value::Null => return Err(CellError::Empty),
        other => return Err(CellError::NotANumber(other.to_string())),
    };
    let compact: String = text
        .trim()
        .trim_start_matches('$')
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let compact = compact.trim_start_matches('$');
    if compact.is_empty() {
        return Err(if text.trim().is_empty() {
            CellError::Empty
        } else {
            CellError::NotANumber(text.to_string())
        });
    }
    let not_a_number = || CellError::NotANumber(text.to_string());
    let ambiguous = || CellError::Ambiguous(text.to_string());
    if !compact
        .chars()
        .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
    {
        return Err(not_a_number());
    }
    let Some(last) = compact.rfind(['.', ',']) else {
        return exact(compact, text);
    };
    let mark = compact.as_bytes()[last] as char;
    let tail = &compact[last + 1..];
    let head = &compact[..last];
    let (integer, fraction, thousands) = match tail.len() {
        1 | 2 => (head, tail, if mark == '.' { ',' } else { '.' }),
        3 => {
            let other = if mark == '.' { ',' } else { '.' };
            if head.contains(other) {
                return Err(ambiguous());
            }
            if three_digits == ThreeDigits::Ambiguous && !head.contains(mark) {
                return Err(ambiguous());
            }
            (compact, "", mark)
        }
        _ => {
            return Err(if tail.is_empty() {
                not_a_number()
            } else {
                ambiguous()
            })
        }
    };
    let decimal_mark = if tail.len() == 3 { None } else { Some(mark) };
    if decimal_mark.is_some_and(|m| integer.contains(m)) {
        return Err(ambiguous());
    }
    let groups: Vec<&str> = integer.split(thousands).collect();
    let grouped_well = groups.len() == 1
        || (!groups[0].is_empty()
            && groups[0].len() <= 3
            && groups[1..].iter().all(|g| g.len() == 3));
    if !grouped_well
        || groups
            .iter()
            .any(|g| !g.chars().all(|c| c.is_ascii_digit()))
        || groups.concat().is_empty()
    {
        return Err(ambiguous());
    }
    let digits = if fraction.is_empty() {
        groups.concat()
    } else {
        format!("{}.{fraction}", groups.concat())
    };
    exact(&digits, text)
}

/// `DD/MM/YYYY`, `YYYY-MM-DD`, or an Excel serial day number (45361 is 2024-03-10).
pub fn fecha(cell: &Value) -> Result<NaiveDate, CellError> {
    let text = match cell {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        Value::Null => return Err(CellError::Empty),
        other => return Err(CellError::NotADate(other.to_string())),
    };
    if text.is_empty() {
        return Err(CellError::Empty);
    }
    let not_a_date = || CellError::NotADate(text.clone());
    if text.chars().all(|c| c.is_ascii_digit()) {
        let serial: i64 = text.parse().map_err(|_| not_a_date())?;
        // Excel counts 1900-01-01 as day 1 and keeps the non-existent 1900-02-29 (day 60), so
        // from day 61 on, day N is N days after 1899-12-30. Earlier serials are not dates
        // anyone records refuels on.
        if !(61..=2_958_465).contains(&serial) {
            return Err(not_a_date());
        }
        let epoch = NaiveDate::from_ymd_opt(1899, 12, 30).expect("a valid date");
        return epoch
            .checked_add_signed(Duration::days(serial))
            .ok_or_else(not_a_date);
    }
    let strict = |format: &str, len: usize| {
        (text.len() == len)
            .then(|| NaiveDate::parse_from_str(&text, format).ok())
            .flatten()
    };
    strict("%d/%m/%Y", 10)
        .or_else(|| strict("%Y-%m-%d", 10))
        .ok_or_else(not_a_date)
}

/// A name as people type it: case, accents and repeated spaces do not matter.
pub fn name_key(name: &str) -> String {
    let folded: String = name
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'á' | 'à' | 'ä' | 'â' => 'a',
            'é' | 'è' | 'ë' | 'ê' => 'e',
            'í' | 'ì' | 'ï' | 'î' => 'i',
            'ó' | 'ò' | 'ö' | 'ô' => 'o',
            'ú' | 'ù' | 'ü' | 'û' => 'u',
            'ñ' => 'n',
            other => other,
        })
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::str::FromStr;

    fn d(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    #[test]
    fn money_cells_parse_as_people_type_them() {
        let table: &[(Value, Result<Decimal, ()>)] = &[
            (json!("150000"), Ok(d("150000"))),
            (json!("150.000"), Ok(d("150000"))),
            (json!("150,000"), Ok(d("150000"))),
            (json!("$150.000"), Ok(d("150000"))),
            (json!("$ 150,000.00"), Ok(d("150000.00"))),
            (json!("1.234.567"), Ok(d("1234567"))),
            (json!("1,234,567.5"), Ok(d("1234567.5"))),
            (json!("1.234,56"), Ok(d("1234.56"))),
            (json!("150,5"), Ok(d("150.5"))),
            (json!(150000), Ok(d("150000"))),
            (json!(12.5), Ok(d("12.5"))),
            (json!("1.234,567"), Err(())),
            (json!("1,234.567"), Err(())),
            (json!("12.34.56"), Err(())),
            (json!("1,23,456"), Err(())),
            (json!("15.0000"), Err(())),
            (json!("abc"), Err(())),
            (json!("$"), Err(())),
            (json!(""), Err(())),
            (json!("150."), Err(())),
            (json!(true), Err(())),
        ];
        for (cell, expected) in table {
            assert_eq!(money(cell).map_err(|_| ()), *expected, "{cell}");
        }
    }

    #[test]
    fn quantity_cells_take_either_decimal_mark_and_refuse_ambiguity() {
        let table: &[(Value, Result<Decimal, ()>)] = &[
            (json!("12,5"), Ok(d("12.5"))),
            (json!("12.5"), Ok(d("12.5"))),
            (json!("12"), Ok(d("12"))),
            (json!("1.234,5"), Ok(d("1234.5"))),
            (json!(12.5), Ok(d("12.5"))),
            (json!("12.500"), Err(())),
            (json!("12,500"), Err(())),
            (json!("doce"), Err(())),
        ];
        for (cell, expected) in table {
            assert_eq!(quantity(cell).map_err(|_| ()), *expected, "{cell}");
        }
    }

    #[test]
    fn dates_come_in_three_shapes() {
        let day = |y, m, d| Ok(NaiveDate::from_ymd_opt(y, m, d).unwrap());
        assert_eq!(fecha(&json!("15/03/2024")), day(2024, 3, 15));
        assert_eq!(fecha(&json!("2024-03-15")), day(2024, 3, 15));
        assert_eq!(fecha(&json!(45361)), day(2024, 3, 10));
        assert_eq!(fecha(&json!("45361")), day(2024, 3, 10));
        assert!(fecha(&json!("31/02/2024")).is_err());
        assert!(fecha(&json!("2024-3-15")).is_err());
        assert!(fecha(&json!("15-03-2024")).is_err());
        assert!(fecha(&json!(12)).is_err());
        assert!(fecha(&json!("")).is_err());
    }

    #[test]
    fn names_match_ignoring_case_accents_and_spacing() {
        assert_eq!(name_key("  JUAN  Pérez "), name_key("juan perez"));
        assert_ne!(name_key("Juan Pérez"), name_key("Juana Pérez"));
    }
}
