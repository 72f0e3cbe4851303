//! How domain events are laid out in the log: the variant name as `event_type` and the variant's
//! fields as the payload, so an auditor reads `{"id":1,"nombre":"Logística"}` under
//! `OperationAreaRegistered` rather than a serde envelope.
//!
//! Events use serde's default (externally tagged) enum form on purpose: it deserializes without
//! buffering, which keeps arbitrary-precision decimals exact.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("event does not serialize as a single tagged variant")]
    NotAVariant,
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

/// Splits an event into `(event_type, payload)`.
pub fn encode<E: Serialize>(event: &E) -> Result<(String, Value), CodecError> {
    match serde_json::to_value(event)? {
        Value::String(unit_variant) => Ok((unit_variant, Value::Null)),
        Value::Object(map) if map.len() == 1 => {
            let (event_type, payload) = map.into_iter().next().ok_or(CodecError::NotAVariant)?;
            Ok((event_type, payload))
        }
        _ => Err(CodecError::NotAVariant),
    }
}

/// The serde form of `event_type` + `payload`, as `cqrs_es` and [`decode`] expect it.
pub fn tagged(event_type: &str, payload: &Value) -> Value {
    if payload.is_null() {
        return Value::String(event_type.to_string());
    }
    let mut map = Map::with_capacity(1);
    map.insert(event_type.to_string(), payload.clone());
    Value::Object(map)
}

pub fn decode<E: DeserializeOwned>(event_type: &str, payload: &Value) -> Result<E, CodecError> {
    Ok(serde_json::from_value(tagged(event_type, payload))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use serde::Deserialize;
    use std::str::FromStr;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Sample {
        Paid { valor: Decimal },
    }

    #[test]
    fn decimals_round_trip_through_the_log_layout_without_drift() {
        let event = Sample::Paid {
            valor: Decimal::from_str("12.10").unwrap(),
        };
        let (event_type, payload) = encode(&event).unwrap();
        assert_eq!(event_type, "Paid");
        assert_eq!(payload.to_string(), r#"{"valor":12.10}"#);
        let stored = payload.to_string();
        let reread: Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(decode::<Sample>(&event_type, &reread).unwrap(), event);
    }
}
