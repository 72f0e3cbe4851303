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

/// Reads an event back from its stored form.
///
/// Deserializing goes through the JSON text, never straight from the [`Value`]: with
/// `arbitrary_precision`, a `Value` hands integers beyond `u64` to `rust_decimal` as `u128`, which
/// it refuses, so a decimal such as `150000000000000000000` would be written but never read back.
/// From text, every number that is not a plain `u64`/`i64` reaches the decimal as its exact digits.
pub fn decode<E: DeserializeOwned>(event_type: &str, payload: &Value) -> Result<E, CodecError> {
    decode_text(&tagged_text(event_type, &payload.to_string()))
}

/// The JSON text of [`tagged`], written around the payload's text instead of copying the
/// payload into a new [`Value`] (a deep copy per event decoded, which showed in the profile).
fn tagged_text(event_type: &str, payload_text: &str) -> String {
    let event_type = Value::String(event_type.to_string()).to_string();
    if payload_text == "null" {
        return event_type;
    }
    let mut text = String::with_capacity(event_type.len() + payload_text.len() + 3);
    text.push('{');
    text.push_str(&event_type);
    text.push(':');
    text.push_str(payload_text);
    text.push('}');
    text
}

/// Reads an event from the serde form [`tagged`] gives, as JSON text.
pub fn decode_text<E: DeserializeOwned>(tagged_json: &str) -> Result<E, CodecError> {
    Ok(serde_json::from_str(tagged_json)?)
}

/// Proves that `event` reads back as itself from the text the log stores: encodes it, decodes
/// that text and compares the two encodings. Answers the stored form, or the JSON path of the
/// first value that does not survive (`record.costo_por_galon`) and why.
pub fn round_trip<E: Serialize + DeserializeOwned>(
    event: &E,
) -> Result<(String, Value), Unrepresentable> {
    let (event_type, payload) = encode(event).map_err(|e| Unrepresentable {
        path: String::new(),
        reason: e.to_string(),
    })?;
    // Straight from the stored text: what a reader of the log parses and then decodes.
    let stored = payload.to_string();
    let decoded: E =
        decode_text(&tagged_text(&event_type, &stored)).map_err(|e| Unrepresentable {
            path: first_unreadable_path(&payload).unwrap_or_default(),
            reason: e.to_string(),
        })?;
    let (_, again) = encode(&decoded).map_err(|e| Unrepresentable {
        path: String::new(),
        reason: e.to_string(),
    })?;
    match first_difference(&payload, &again, "") {
        None => Ok((event_type, payload)),
        Some(path) => Err(Unrepresentable {
            path,
            reason: "reads back as a different value".to_string(),
        }),
    }
}

/// A value of an event that the log could store but not give back as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct Unrepresentable {
    /// Dotted path inside the payload (`record.costo_por_galon`); empty when not known.
    pub path: String,
    pub reason: String,
}

impl Unrepresentable {
    /// The last segment of the path: the field a user sent or caused.
    pub fn field(&self) -> &str {
        self.path.rsplit('.').next().unwrap_or_default()
    }
}

fn first_difference(left: &Value, right: &Value, path: &str) -> Option<String> {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match (left, right) {
        (Value::Object(a), Value::Object(b)) => a
            .iter()
            .find_map(|(key, value)| match b.get(key) {
                Some(other) => first_difference(value, other, &join(key)),
                None => Some(join(key)),
            })
            .or_else(|| b.keys().find(|k| !a.contains_key(*k)).map(|k| join(k))),
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, &join(&i.to_string()))),
        (a, b) if a == b => None,
        _ => Some(path.to_string()),
    }
}

/// The first number in `value` whose digits a decimal cannot hold, as a best guess at which
/// field made decoding fail.
fn first_unreadable_path(value: &Value) -> Option<String> {
    fn walk(value: &Value, path: String) -> Option<String> {
        let join = |key: &str| {
            if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            }
        };
        match value {
            Value::Number(n) => {
                let digits = n.to_string();
                let fits = digits.parse::<i64>().is_ok()
                    || digits.parse::<u64>().is_ok()
                    || rust_decimal::Decimal::from_str_exact(&digits).is_ok()
                    || rust_decimal::Decimal::from_scientific(&digits).is_ok();
                (!fits).then_some(path)
            }
            Value::Object(map) => map.iter().find_map(|(k, v)| walk(v, join(k))),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| walk(v, join(&i.to_string()))),
            _ => None,
        }
    }
    walk(value, String::new())
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
    fn decimals_beyond_u64_read_back_exactly() {
        for text in [
            "150000000000000000000",
            "-150000000000000000000",
            "79228162514264337593543950335",
            "0.0000000000000000000000000001",
            "12.10",
            "1e-15",
        ] {
            let valor = Decimal::from_str(text).or_else(|_| Decimal::from_scientific(text));
            let event = Sample::Paid {
                valor: valor.unwrap(),
            };
            let (event_type, payload) = round_trip(&event).unwrap();
            let reread: Value = serde_json::from_str(&payload.to_string()).unwrap();
            assert_eq!(
                decode::<Sample>(&event_type, &reread).unwrap(),
                event,
                "{text}"
            );
        }
    }

    #[test]
    fn the_tagged_text_is_the_tagged_value_printed() {
        let escaped = "Odd\"Name";
        for (event_type, payload) in [
            (
                "Paid",
                serde_json::json!({ "valor": 12.10, "nota": "a\"b", "n": null }),
            ),
            ("Reset", Value::Null),
            (escaped, serde_json::json!([1, 2])),
        ] {
            let text = tagged_text(event_type, &payload.to_string());
            assert_eq!(text, tagged(event_type, &payload).to_string());
        }
    }

    #[test]
    fn a_value_that_reads_back_differently_is_named_by_its_path() {
        #[derive(Debug, Serialize, Deserialize)]
        enum Lossy {
            Noted { detail: Detail },
        }
        #[derive(Debug, Serialize, Deserialize)]
        struct Detail {
            #[serde(skip_deserializing)]
            lost: i64,
        }
        let refused = round_trip(&Lossy::Noted {
            detail: Detail { lost: 7 },
        })
        .unwrap_err();
        assert_eq!(refused.path, "detail.lost");
        assert_eq!(refused.field(), "lost");
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
