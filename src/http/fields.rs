//! Reading request bodies field by field, so that every refusal names the field it is about.

use std::collections::HashMap;

use aggregates::amount::{parse_amount, DecimalError, SCALE_MAX};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use aggregates::registry::RegistryError;
use axum::http::StatusCode;
use axum::Json;

use super::error::ApiError;
use super::extract::echo;

/// A JSON object whose fields are read with named, typed refusals. It knows the fields its
/// endpoint accepts, and refuses any other (see [`reject_unknown`]).
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    accepted: &'a [&'a str],
}

fn bad(message: String) -> ApiError {
    ApiError::BadRequest(message)
}

/// Most values in one comma-separated list filter: each becomes a bind parameter.
pub const LIST_VALUES_MAX: usize = 100;

/// Refuses a field of the object `body` that is not in `accepted`, naming the first one: as on
/// Stripe's API, a typo (`kilometraje_actual` for `kilometrajeActual`) must not be a silent
/// no-op answered 200. A body that is not an object is left to the endpoint's own refusal.
pub fn reject_unknown(body: &Value, accepted: &[&str]) -> Result<(), ApiError> {
    let Some(map) = body.as_object() else {
        return Ok(());
    };
    match map.keys().find(|name| !accepted.contains(&name.as_str())) {
        Some(unknown) => Err(bad(format!("Unknown field: {}", echo(unknown)))),
        None => Ok(()),
    }
}

impl<'a> Fields<'a> {
    /// The object `value`, whose fields must all be among `accepted`.
    pub fn of(value: &'a Value, accepted: &'a [&'a str]) -> Result<Self, ApiError> {
        let map = value
            .as_object()
            .ok_or_else(|| bad("El cuerpo debe ser un objeto JSON".to_string()))?;
        reject_unknown(value, accepted)?;
        Ok(Self { map, accepted })
    }

    fn present(&self, name: &str) -> Option<&'a Value> {
        debug_assert!(
            self.accepted.contains(&name),
            "field {name} is read but not among the endpoint's accepted fields"
        );
        self.map.get(name).filter(|v| !v.is_null())
    }

    pub fn has(&self, name: &str) -> bool {
        self.present(name).is_some()
    }

    pub fn required<T>(
        &self,
        name: &str,
        read: impl FnOnce(&Self, &str) -> Result<Option<T>, ApiError>,
    ) -> Result<T, ApiError> {
        read(self, name)?.ok_or_else(|| bad(format!("Missing required field: {name}")))
    }

    pub fn text(&self, name: &str, len_max: usize) -> Result<Option<String>, ApiError> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::String(text)) if text.chars().count() > len_max => Err(bad(format!(
                "El campo {name} no puede superar {len_max} caracteres"
            ))),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(bad(format!("El campo {name} debe ser texto"))),
        }
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.to_string().parse().ok())
                .map(Some)
                .ok_or_else(|| bad(format!("El campo {name} debe ser un número entero"))),
            Some(_) => Err(bad(format!("El campo {name} debe ser un número entero"))),
        }
    }

    /// A non-negative integer.
    pub fn count(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.int(name)? {
            Some(n) if n < 0 => Err(bad(format!("El campo {name} no puede ser negativo"))),
            other => Ok(other),
        }
    }

    /// A positive integer id.
    pub fn id(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.int(name)? {
            Some(n) if n < 1 => Err(bad(format!("El campo {name} debe ser un ID positivo"))),
            other => Ok(other),
        }
    }

    /// An exact, non-negative decimal, from a JSON number (never through f64), within the
    /// bounds of [`aggregates::amount`].
    pub fn quantity(&self, name: &str) -> Result<Option<Decimal>, ApiError> {
        let value = match self.present(name) {
            None => return Ok(None),
            Some(Value::Number(n)) => {
                parse_amount(&n.to_string()).map_err(|refusal| match refusal {
                    DecimalError::NotANumber => bad(format!("El campo {name} debe ser un número")),
                    DecimalError::OutOfRange => bad(format!("El campo {name} está fuera de rango")),
                    DecimalError::TooPrecise => bad(format!(
                        "El campo {name} admite como máximo {SCALE_MAX} decimales"
                    )),
                })?
            }
            Some(_) => return Err(bad(format!("El campo {name} debe ser un número"))),
        };
        if value.is_sign_negative() && !value.is_zero() {
            return Err(bad(format!("El campo {name} no puede ser negativo")));
        }
        Ok(Some(value))
    }

    /// A calendar date, strictly `YYYY-MM-DD`.
    pub fn date(&self, name: &str) -> Result<Option<NaiveDate>, ApiError> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::String(text)) => parse_date(text)
                .map(Some)
                .ok_or_else(|| bad(format!("El campo {name} debe ser una fecha YYYY-MM-DD"))),
            Some(_) => Err(bad(format!(
                "El campo {name} debe ser una fecha YYYY-MM-DD"
            ))),
        }
    }

    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(bad(format!("El campo {name} debe ser true o false"))),
        }
    }
}

/// Strict `YYYY-MM-DD`: chrono alone would also take `2024-3-5`.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    shaped
        .then(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .flatten()
}

/// A body that is one object or an array of them: `(items, was_array)`.
pub fn one_or_many(body: &Value, items_max: usize) -> Result<(Vec<&Value>, bool), ApiError> {
    match body {
        Value::Array(items) if items.is_empty() => {
            Err(bad("El arreglo no puede estar vacío".to_string()))
        }
        Value::Array(items) if items.len() > items_max => Err(bad(format!(
            "Se aceptan como máximo {items_max} registros por solicitud"
        ))),
        Value::Array(items) => Ok((items.iter().collect(), true)),
        Value::Object(_) => Ok((vec![body], false)),
        _ => Err(bad(
            "El cuerpo debe ser un objeto JSON o un arreglo de objetos".to_string(),
        )),
    }
}

/// Prefixes an item's refusal with its position when the request was an array.
pub fn at_index(many: bool, index: usize, error: ApiError) -> ApiError {
    match error {
        ApiError::BadRequest(message) if many => {
            ApiError::BadRequest(format!("Registro {index}: {message}"))
        }
        ApiError::Conflict(message) if many => {
            ApiError::Conflict(format!("Registro {index}: {message}"))
        }
        other => other,
    }
}

/// `query` parameter as a positive id, or a 400 naming it.
pub fn query_id(raw: Option<&String>, name: &str) -> Result<Option<i64>, ApiError> {
    match raw.map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .map(Some)
            .ok_or_else(|| bad(format!("El parámetro {name} debe ser un entero positivo"))),
    }
}

/// The answer to a registration: the created record, or all of them in request order when the
/// request was an array.
pub fn created<T: serde::Serialize>(
    many: bool,
    records: Vec<T>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = if many {
        serde_json::to_value(records)
    } else {
        serde_json::to_value(records.into_iter().next())
    };
    Ok((StatusCode::CREATED, Json(body.map_err(ApiError::internal)?)))
}

/// A registry's refusal, prefixed with the offending entry's position in an array request.
pub fn registry_refusal(many: bool) -> impl FnOnce(RegistryError) -> ApiError {
    move |refusal| match refusal.index() {
        Some(index) => at_index(many, index, refusal.into()),
        None => refusal.into(),
    }
}

/// Reads a body that is one object or an array of them, each item with `read` and with only the
/// `accepted` fields. A refusal of an array's item names its position. Answers the items and
/// whether the body was an array.
pub fn read_items<T>(
    body: &Value,
    items_max: usize,
    accepted: &[&str],
    read: impl Fn(&Fields<'_>) -> Result<T, ApiError>,
) -> Result<(Vec<T>, bool), ApiError> {
    let (items, many) = one_or_many(body, items_max)?;
    let parsed = items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            Fields::of(item, accepted)
                .and_then(|fields| read(&fields))
                .map_err(|e| at_index(many, index, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((parsed, many))
}

/// Checks that each item's reference (`field` → `reference`) exists, naming the item's position
/// when the body was an array.
pub async fn require_each<T>(
    state: &crate::AppState,
    items: &[T],
    many: bool,
    field: &str,
    reference: crate::queries::registry::Reference,
    id_of: impl Fn(&T) -> Option<i64>,
) -> Result<(), ApiError> {
    for (index, item) in items.iter().enumerate() {
        super::lookup::require(state, field, reference, id_of(item))
            .await
            .map_err(|e| at_index(many, index, e))?;
    }
    Ok(())
}

/// A `YYYY-MM-DD` query parameter, or a 400 naming it.
pub fn date_param(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<NaiveDate>, ApiError> {
    match params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(raw) => parse_date(raw).map(Some).ok_or_else(|| {
            bad(format!(
                "Invalid date for {name}: {raw} (expected YYYY-MM-DD)"
            ))
        }),
    }
}

/// A comma-separated query parameter (`a,b,c`), its blank items dropped; `None` when the
/// parameter is absent or blank. A list of only commas is refused with `empty`: it would match
/// nothing, and is never what the caller meant.
fn list_param(
    params: &HashMap<String, String>,
    name: &str,
    empty: impl FnOnce() -> ApiError,
) -> Result<Option<Vec<String>>, ApiError> {
    let Some(raw) = params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let values: Vec<String> = raw
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return Err(empty());
    }
    if values.len() > LIST_VALUES_MAX {
        return Err(bad(format!(
            "Invalid value for {name}: at most {LIST_VALUES_MAX} values"
        )));
    }
    Ok(Some(values))
}

/// A comma-separated list of text values (see [`list_param`]).
pub fn text_list_param(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<Vec<String>>, ApiError> {
    list_param(params, name, || {
        bad(format!(
            "Invalid value for {name}: expected a comma-separated list of values"
        ))
    })
}

/// A comma-separated list of integers, or a 400 naming the parameter.
pub fn id_list_param(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<Vec<i64>>, ApiError> {
    let expected = || {
        bad(format!(
            "Invalid value for {name}: expected comma-separated integers"
        ))
    };
    list_param(params, name, expected)?
        .map(|values| {
            values
                .iter()
                .map(|v| v.parse::<i64>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| expected())
        })
        .transpose()
}

/// A comma-separated list of values of an enumeration (`parse` knows them, case-insensitively),
/// or a 400 listing the `accepted` ones: a filter on a value that cannot exist is a mistake,
/// not an empty page.
pub fn choice_list_param<T>(
    params: &HashMap<String, String>,
    name: &str,
    accepted: &[&str],
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<Vec<T>>, ApiError> {
    let Some(values) = text_list_param(params, name)? else {
        return Ok(None);
    };
    values
        .iter()
        .map(|value| {
            parse(&value.to_uppercase()).ok_or_else(|| {
                bad(format!(
                    "Invalid value for {name}: {}; accepted values: {}",
                    echo(value),
                    accepted.join(", ")
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A positive integer query parameter, `default` when absent or blank.
pub fn positive_param(
    params: &HashMap<String, String>,
    name: &str,
    default: i64,
) -> Result<i64, ApiError> {
    match params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| bad(format!("Invalid value for {name}: {raw}"))),
    }
}

/// `as_of`: an RFC 3339 instant, or a date meaning the end of that day in the service's zone.
pub fn as_of_param(
    params: &HashMap<String, String>,
    zone: FixedOffset,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(raw) = params
        .get("as_of")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    if let Ok(instant) = DateTime::parse_from_rfc3339(raw) {
        return Ok(Some(instant.with_timezone(&Utc)));
    }
    let date = parse_date(raw).ok_or_else(|| {
        bad(format!(
            "Invalid value for as_of: {raw} (expected an RFC 3339 instant or YYYY-MM-DD)"
        ))
    })?;
    let end_of_day = date
        .and_time(NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_999).expect("a valid time"))
        .and_local_timezone(zone)
        .single()
        .ok_or_else(|| bad(format!("Invalid value for as_of: {raw}")))?;
    Ok(Some(end_of_day.with_timezone(&Utc)))
}
