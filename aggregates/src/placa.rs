//! A licence plate, parsed once at the edge: uppercase, without spaces or hyphens.

use serde::{Deserialize, Serialize};

pub const PLACA_LEN_MAX: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Placa(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacaError {
    #[error("La placa es obligatoria")]
    Empty,
    #[error("La placa no puede superar {PLACA_LEN_MAX} caracteres")]
    TooLong,
    #[error("La placa solo puede contener letras y números")]
    Malformed,
}

impl Placa {
    /// `"p 503067"` and `"P-503067"` are both `P503067`.
    pub fn parse(raw: &str) -> Result<Self, PlacaError> {
        let normalized: String = raw
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .flat_map(char::to_uppercase)
            .collect();
        if normalized.is_empty() {
            return Err(PlacaError::Empty);
        }
        if normalized.chars().count() > PLACA_LEN_MAX {
            return Err(PlacaError::TooLong);
        }
        if !normalized.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(PlacaError::Malformed);
        }
        Ok(Self(normalized))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Placa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plates_are_normalised_as_operators_type_them() {
        assert_eq!(Placa::parse("p 503067").unwrap().as_str(), "P503067");
        assert_eq!(Placa::parse(" abc-123 ").unwrap().as_str(), "ABC123");
        assert_eq!(Placa::parse(" - "), Err(PlacaError::Empty));
        assert_eq!(Placa::parse("AB#12"), Err(PlacaError::Malformed));
        assert_eq!(Placa::parse(&"A".repeat(21)), Err(PlacaError::TooLong));
    }
}
