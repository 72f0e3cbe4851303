//! Reading request bodies field by field, so that every refusal names the field it is about.

use std::collections::HashMap;

use aggregates::amount::{parse_amount, DecimalError, SCALE_MAX};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use aggregates::registry::RegistryError;
use axum::http::StatusCode;
use axum::Json;

use super::error::ApiError;
use super::extract::echo;
use crate::settings::{Pick, ServiceTimeZone};

/// Whose words a refusal is written in. The registry endpoints answer in their own Spanish;
/// seed 004's records answer as the seed's service (Node over PostgreSQL) does, with
/// PostgreSQL's input-syntax messages, and also take numbers written as text, as PostgreSQL's
/// casts do. Everything else (what is missing, what is blank, the bounds) is read alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Registry,
    Postgres,
}

/// Why a field was refused, before it is put in words by the [`Dialect`].
enum Refusal<'v> {
    NotText,
    TooLong(usize),
    NotInteger(&'v str),
    NotNumber(&'v str, DecimalError),
    Negative,
    NotPositiveId,
    NotBoolean,
    NotDate(&'v str),
}

impl Dialect {
    fn say(self, name: &str, refusal: Refusal<'_>) -> ApiError {
        use Refusal::*;
        bad(match (self, refusal) {
            (Self::Registry, NotText) => format!("El campo {name} debe ser texto"),
            (Self::Postgres, NotText) => format!("Invalid value for {name}: must be text"),
            (Self::Registry, TooLong(max)) => {
                format!("El campo {name} no puede superar {max} caracteres")
            }
            (Self::Postgres, TooLong(max)) => {
                format!("Invalid value for {name}: at most {max} characters")
            }
            (Self::Registry, NotInteger(_)) => format!("El campo {name} debe ser un número entero"),
            (Self::Postgres, NotInteger(raw)) => {
                format!("invalid input syntax for type integer: \"{raw}\"")
            }
            (Self::Registry, NotNumber(_, DecimalError::NotANumber)) => {
                format!("El campo {name} debe ser un número")
            }
            (Self::Registry, NotNumber(_, DecimalError::OutOfRange)) => {
                format!("El campo {name} está fuera de rango")
            }
            (Self::Registry, NotNumber(_, DecimalError::TooPrecise)) => {
                format!("El campo {name} admite como máximo {SCALE_MAX} decimales")
            }
            (Self::Postgres, NotNumber(raw, DecimalError::NotANumber)) => {
                format!("invalid input syntax for type numeric: \"{raw}\"")
            }
            (Self::Postgres, NotNumber(_, refusal)) => {
                format!("Invalid value for {name}: {refusal}")
            }
            (Self::Registry, Negative) => format!("El campo {name} no puede ser negativo"),
            (Self::Postgres, Negative) => {
                format!("Invalid value for {name}: must be zero or positive")
            }
            (_, NotPositiveId) => format!("El campo {name} debe ser un ID positivo"),
            (_, NotBoolean) => format!("El campo {name} debe ser true o false"),
            (Self::Registry, NotDate(_)) => {
                format!("El campo {name} debe ser una fecha YYYY-MM-DD")
            }
            (Self::Postgres, NotDate(raw)) => {
                format!("Invalid date for {name}: {raw} (expected YYYY-MM-DD)")
            }
        })
    }
}

/// A JSON object whose fields are read with named, typed refusals: the one reader of request
/// bodies. It knows the fields its endpoint accepts, and refuses any other (see
/// [`reject_unknown`]).
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    accepted: &'a [&'a str],
    dialect: Dialect,
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
    /// The object `value`, whose fields must all be among `accepted`; refusals in the
    /// registry's words.
    pub fn of(value: &'a Value, accepted: &'a [&'a str]) -> Result<Self, ApiError> {
        let map = value
            .as_object()
            .ok_or_else(|| bad("El cuerpo debe ser un objeto JSON".to_string()))?;
        reject_unknown(value, accepted)?;
        Ok(Self {
            map,
            accepted,
            dialect: Dialect::Registry,
        })
    }

    /// The fields `accepted` of `map`, in `dialect`'s words; other fields are ignored (the
    /// caller has refused unknown ones where the client wrote the object).
    pub fn among(map: &'a Map<String, Value>, accepted: &'a [&'a str], dialect: Dialect) -> Self {
        Self {
            map,
            accepted,
            dialect,
        }
    }

    fn present(&self, name: &str) -> Option<&'a Value> {
        debug_assert!(
            self.accepted.contains(&name),
            "field {name} is read but not among the endpoint's accepted fields"
        );
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn refuse(&self, name: &str, refusal: Refusal<'_>) -> ApiError {
        self.dialect.say(name, refusal)
    }

    pub fn has(&self, name: &str) -> bool {
        self.present(name).is_some()
    }

    pub fn required<T>(
        &self,
        name: &str,
        read: impl FnOnce(&Self, &str) -> Result<Option<T>, ApiError>,
    ) -> Result<T, ApiError> {
        read(self, name)?.ok_or_else(|| missing(name))
    }

    /// Refuses a body without `name`, or with only blanks in it.
    pub fn require(&self, name: &str) -> Result<(), ApiError> {
        match self.present(name) {
            Some(Value::String(s)) if s.trim().is_empty() => Err(missing(name)),
            Some(_) => Ok(()),
            None => Err(missing(name)),
        }
    }

    /// Refuses a body with `name`, which `what` (a kind of record) does not take.
    pub fn forbid(&self, name: &str, what: &str) -> Result<(), ApiError> {
        match self.present(name) {
            Some(_) => Err(bad(format!("Field not allowed for {what}: {name}"))),
            None => Ok(()),
        }
    }

    pub fn text(&self, name: &str, len_max: usize) -> Result<Option<String>, ApiError> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::String(text)) if text.chars().count() > len_max => {
                Err(self.refuse(name, Refusal::TooLong(len_max)))
            }
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(self.refuse(name, Refusal::NotText)),
        }
    }

    /// One of the values `parse` knows, `default` when absent; refused naming what was sent.
    pub fn choice<T>(
        &self,
        name: &str,
        default: T,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, ApiError> {
        match self.text(name, usize::MAX)? {
            None => Ok(default),
            Some(raw) => {
                parse(raw.trim()).ok_or_else(|| bad(format!("Invalid value for {name}: {raw}")))
            }
        }
    }

    /// The text of a number: a JSON number, or (in PostgreSQL's dialect, as its casts do) a
    /// string holding one. `None` when absent; `Err` with what was sent otherwise.
    fn number_text(&self, name: &str) -> Option<Result<String, String>> {
        Some(match self.present(name)? {
            Value::Number(n) => Ok(n.to_string()),
            Value::String(s) if self.dialect == Dialect::Postgres => Ok(s.trim().to_string()),
            other => Err(match other {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        })
    }

    /// An integer: the one id parser of the request bodies.
    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.number_text(name) {
            None => Ok(None),
            Some(Ok(text)) => text
                .parse::<i64>()
                .map(Some)
                .map_err(|_| self.refuse(name, Refusal::NotInteger(&text))),
            Some(Err(sent)) => Err(self.refuse(name, Refusal::NotInteger(&sent))),
        }
    }

    /// A non-negative integer.
    pub fn count(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.int(name)? {
            Some(n) if n < 0 => Err(self.refuse(name, Refusal::Negative)),
            other => Ok(other),
        }
    }

    /// A positive integer id.
    pub fn id(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.int(name)? {
            Some(n) if n < 1 => Err(self.refuse(name, Refusal::NotPositiveId)),
            other => Ok(other),
        }
    }

    /// An exact decimal of either sign, never through f64, within the bounds of
    /// [`aggregates::amount`].
    pub fn decimal(&self, name: &str) -> Result<Option<Decimal>, ApiError> {
        match self.number_text(name) {
            None => Ok(None),
            Some(Ok(text)) => parse_amount(&text)
                .map(Some)
                .map_err(|refusal| self.refuse(name, Refusal::NotNumber(&text, refusal))),
            Some(Err(sent)) => {
                Err(self.refuse(name, Refusal::NotNumber(&sent, DecimalError::NotANumber)))
            }
        }
    }

    /// An exact decimal that is zero or positive: an amount or a quantity.
    pub fn quantity(&self, name: &str) -> Result<Option<Decimal>, ApiError> {
        let value = self.decimal(name)?;
        if value.is_some_and(|v| v.is_sign_negative() && !v.is_zero()) {
            return Err(self.refuse(name, Refusal::Negative));
        }
        Ok(value)
    }

    /// A calendar date, strictly `YYYY-MM-DD` (surrounding blanks ignored in PostgreSQL's
    /// dialect, as its cast does).
    pub fn date(&self, name: &str) -> Result<Option<NaiveDate>, ApiError> {
        let text = match self.present(name) {
            None => return Ok(None),
            Some(Value::String(text)) => text.as_str(),
            Some(other) if self.dialect == Dialect::Registry => {
                return Err(self.refuse(name, Refusal::NotDate(&other.to_string())))
            }
            Some(_) => return Err(self.refuse(name, Refusal::NotText)),
        };
        let trimmed = match self.dialect {
            Dialect::Registry => text,
            Dialect::Postgres => text.trim(),
        };
        parse_date(trimmed)
            .map(Some)
            .ok_or_else(|| self.refuse(name, Refusal::NotDate(text)))
    }

    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.refuse(name, Refusal::NotBoolean)),
        }
    }
}

fn missing(name: &str) -> ApiError {
    bad(format!("Missing required field: {name}"))
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

/// Records per page of a list, unless `limit` says otherwise.
pub const PAGE_LIMIT_DEFAULT: i64 = 20;
/// The most records a page holds: a list is read a page at a time, never whole.
pub const PAGE_LIMIT_MAX: i64 = 500;

/// `page` (from 1, default 1) and `limit` (1 to [`PAGE_LIMIT_MAX`], default
/// [`PAGE_LIMIT_DEFAULT`]) of a paged list.
pub fn page_and_limit(params: &HashMap<String, String>) -> Result<(i64, i64), ApiError> {
    let page = positive_param(params, "page", 1)?;
    let limit = positive_param(params, "limit", PAGE_LIMIT_DEFAULT)?;
    if limit > PAGE_LIMIT_MAX {
        return Err(bad(format!(
            "Invalid value for limit: at most {PAGE_LIMIT_MAX}"
        )));
    }
    Ok((page, limit))
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
    zone: &ServiceTimeZone,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    instant_param(params, "as_of", zone, DayEdge::End)
}

/// Which instant of its day a plain date given for an instant means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayEdge {
    /// Its first instant: where a range that starts on that date starts.
    Start,
    /// Its last instant: where a range that ends on that date ends, and where `as_of` stands.
    End,
}

/// An instant query parameter: RFC 3339, or a date (`YYYY-MM-DD`) meaning its first or last
/// instant in the service's zone.
pub fn instant_param(
    params: &HashMap<String, String>,
    name: &str,
    zone: &ServiceTimeZone,
    edge: DayEdge,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(raw) = params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(instant) = DateTime::parse_from_rfc3339(raw) {
        return Ok(Some(instant.with_timezone(&Utc)));
    }
    let date = parse_date(raw).ok_or_else(|| {
        bad(format!(
            "Invalid value for {name}: {raw} (expected an RFC 3339 instant or YYYY-MM-DD)"
        ))
    })?;
    // The zone's offset on that date, not today's: a date before a change of daylight saving
    // ends when it ended then.
    let (time, pick) = match edge {
        DayEdge::Start => (NaiveTime::MIN, Pick::Earliest),
        DayEdge::End => (
            NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_999).expect("a valid time"),
            Pick::Latest,
        ),
    };
    let instant = zone
        .instant(date.and_time(time), pick)
        .ok_or_else(|| bad(format!("Invalid value for {name}: {raw}")))?;
    Ok(Some(instant))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NAMES: [&str; 4] = ["id", "valor", "fecha", "nombre"];

    /// What each dialect answers for `body`'s field `name` read by `read`.
    fn refusals(body: Value, read: impl Fn(&Fields<'_>) -> Result<(), ApiError>) -> [String; 2] {
        let map = body.as_object().unwrap().clone();
        [Dialect::Registry, Dialect::Postgres].map(|dialect| {
            match read(&Fields::among(&map, &NAMES, dialect)) {
                Ok(()) => "accepted".to_string(),
                Err(ApiError::BadRequest(message)) => message,
                Err(other) => panic!("{other:?}"),
            }
        })
    }

    #[test]
    fn one_reader_says_each_refusal_in_its_endpoints_words() {
        let int = |f: &Fields<'_>| f.int("id").map(drop);
        assert_eq!(
            refusals(json!({ "id": "12" }), int),
            [
                "El campo id debe ser un número entero".to_string(),
                "accepted".to_string()
            ],
            "PostgreSQL casts a numeric string; the registry wants a number"
        );
        assert_eq!(
            refusals(json!({ "id": 1.5 }), int),
            [
                "El campo id debe ser un número entero".to_string(),
                "invalid input syntax for type integer: \"1.5\"".to_string()
            ]
        );
        let quantity = |f: &Fields<'_>| f.quantity("valor").map(drop);
        assert_eq!(
            refusals(json!({ "valor": -1 }), quantity),
            [
                "El campo valor no puede ser negativo".to_string(),
                "Invalid value for valor: must be zero or positive".to_string()
            ]
        );
        assert_eq!(
            refusals(json!({ "valor": "1e16" }), quantity),
            [
                "El campo valor debe ser un número".to_string(),
                "Invalid value for valor: out of range".to_string()
            ]
        );
        let date = |f: &Fields<'_>| f.date("fecha").map(drop);
        assert_eq!(
            refusals(json!({ "fecha": "2024-3-5" }), date),
            [
                "El campo fecha debe ser una fecha YYYY-MM-DD".to_string(),
                "Invalid date for fecha: 2024-3-5 (expected YYYY-MM-DD)".to_string()
            ]
        );
        let text = |f: &Fields<'_>| f.text("nombre", 3).map(drop);
        assert_eq!(
            refusals(json!({ "nombre": "abcd" }), text),
            [
                "El campo nombre no puede superar 3 caracteres".to_string(),
                "Invalid value for nombre: at most 3 characters".to_string()
            ]
        );
    }
}
