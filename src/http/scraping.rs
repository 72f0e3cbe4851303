//! Vehicle check results (seed 001): `POST /api/scraping/resultados` records what a resource
//! found about vehicles, and `/api/batch/scraping` answers the latest result of every resource
//! for up to 500 vehicles.
//!
//! The family answers every refusal, authentication's included, in the seed's error format
//! `{"errorType","errorDetail","message"}`. Its refusals are [`ScrapingError`]; what other layers
//! refuse in the service's `{"error"}` format is rewritten by [`error_format`].

use std::collections::HashMap;

use aggregates::vehicle_check::{
    CheckTime, CheckedVehicle, VehicleCheck, VehicleCheckCommand, VehiclePlate, Vin,
    VEHICLE_PLATE_LEN_MAX, VIN_LEN_MAX,
};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use projections::vehicle_checks::StoredEntry;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::extract::{CommandContext, ReadModelsLag};
use super::run_command_answering_from_events;
use crate::auth::Actor;
use crate::queries::vehicle_checks::{self as checks, StoredEntries};
use crate::state::READ_YOUR_WRITES_TIMEOUT;
use crate::AppState;
use utoipa::ToSchema;

/// A vehicle, written as seed 001 requires: uppercase letters and digits only, no hyphens,
/// spaces or other characters.
#[derive(ToSchema)]
#[schema(example = json!({"vin": "JT123456789012345", "plate": "ABC123"}))]
pub struct VehicleKey {
    #[schema(pattern = "^[A-Z0-9]+$")]
    pub vin: String,
    #[schema(pattern = "^[A-Z0-9]+$")]
    pub plate: String,
}

/// Which vehicles to look up: 1 to 500 (a repeated one is answered once).
#[derive(ToSchema)]
#[schema(example = json!({"vehicles": [{"vin": "JT123456789012345", "plate": "ABC123"}]}))]
pub struct LookupRequest {
    #[schema(min_items = 1, max_items = 500)]
    pub vehicles: Vec<VehicleKey>,
}

/// One resource's result for a vehicle, as it was recorded.
#[derive(ToSchema)]
#[schema(example = json!({"vin": "JT123456789012345", "plate": "ABC123", "resourceId": 7, "status": "OK",
    "result": [{"multa": "F-1", "valor": 1200}], "creationDateTime": "2024-03-15T10:00:00Z",
    "finishedDateTime": "2024-03-15T10:05:00Z"}))]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    #[schema(pattern = "^[A-Z0-9]+$")]
    pub vin: String,
    #[schema(pattern = "^[A-Z0-9]+$")]
    pub plate: String,
    /// The resource that processed it (a positive integer).
    #[schema(minimum = 1)]
    pub resource_id: i64,
    /// Any JSON the resource reports; absent or null when it was processed with errors.
    #[schema(required = false)]
    pub status: Option<Value>,
    /// Its findings (fines, owner taxes, …), kept as sent.
    pub result: Vec<Value>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub creation_date_time: String,
    #[schema(required = false, format = DateTime)]
    pub finished_date_time: Option<String>,
}

/// A stored entry of a result: what recording answers and a lookup lists under `info`.
#[derive(ToSchema)]
#[schema(example = json!({"_id": "7-JT123456789012345-ABC123", "plate": "ABC123", "vin": "JT123456789012345",
    "resourceId": 7, "status": "OK", "result": [], "creationDateTime": "2024-03-15T10:00:00Z",
    "finishedDateTime": null}))]
pub struct StoredCheck {
    /// `resourceId-vin-plate`.
    #[serde(rename = "_id")]
    pub id: String,
    pub plate: String,
    pub vin: String,
    #[serde(rename = "resourceId")]
    pub resource_id: i64,
    /// Null when the resource sent none: processed with errors.
    pub status: Option<Value>,
    pub result: Vec<Value>,
    #[serde(rename = "creationDateTime")]
    #[schema(format = DateTime)]
    pub creation_date_time: String,
    #[serde(rename = "finishedDateTime")]
    #[schema(format = DateTime)]
    pub finished_date_time: Option<String>,
}

/// A vehicle that some resource processed, with the latest entry of each resource.
#[derive(ToSchema)]
pub struct VehicleChecks {
    pub vin: String,
    pub plate: String,
    pub info: Vec<StoredCheck>,
}

/// Seed 001's answer: only the vehicles some resource processed, in the order asked.
#[derive(ToSchema)]
#[schema(example = json!({"vehicleData": [{"vin": "JT123456789012345", "plate": "ABC123", "info": [{
    "_id": "7-JT123456789012345-ABC123", "plate": "ABC123", "vin": "JT123456789012345", "resourceId": 7,
    "status": "OK", "result": [], "creationDateTime": "2024-03-15T10:00:00Z", "finishedDateTime": null}]}]}))]
pub struct LookupAnswer {
    #[serde(rename = "vehicleData")]
    pub vehicle_data: Vec<VehicleChecks>,
}

/// Seed 001: "The maximum number of vehicles that can be requested in one request is 500."
pub const LOOKUP_VEHICLES_MAX: usize = 500;
/// Results recorded by one request; the same bound as a lookup's.
pub const RECORD_RESULTS_MAX: usize = 500;

pub const NO_VEHICLE: &str = "You must specify at least one vehicle.";
pub const NO_RESULT: &str = "You must specify at least one result.";
pub const INVALID_VEHICLE: &str = "VIN and/or plate is not valid.";
pub const NOT_ALLOWED: &str = "The requester is not allowed to use this request.";

/// How this family refuses a request; each variant is one status and one seed-format body.
#[derive(Debug, thiserror::Error)]
pub enum ScrapingError {
    /// Seed 001's `BadRequest`: the request's shape is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// Seed 001's `BadParameters`: a VIN or plate is not valid.
    #[error("{0}")]
    BadParameters(String),
    #[error("{NOT_ALLOWED}")]
    Unauthorized,
    #[error("{NOT_ALLOWED}")]
    Forbidden,
    #[error("{0}")]
    TooLarge(String),
    /// What the service's shared layers refuse (outages, bugs, Idempotency-Key conflicts): they
    /// answer in `{"error"}` and [`error_format`] rewrites it.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// The seed's error type and detail for a status (seed 001 names 400 and 401; the rest follow
/// the same pattern).
fn categories(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::BAD_REQUEST => ("badRequest", "BadRequest"),
        StatusCode::UNAUTHORIZED => ("unauthorize", "Unauthorize"),
        StatusCode::FORBIDDEN => ("forbidden", "Forbidden"),
        StatusCode::NOT_FOUND => ("notFound", "NotFound"),
        StatusCode::METHOD_NOT_ALLOWED => ("methodNotAllowed", "MethodNotAllowed"),
        StatusCode::CONFLICT => ("conflict", "Conflict"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payloadTooLarge", "PayloadTooLarge"),
        StatusCode::UNPROCESSABLE_ENTITY => ("unprocessableEntity", "UnprocessableEntity"),
        StatusCode::SERVICE_UNAVAILABLE => ("serviceUnavailable", "ServiceUnavailable"),
        _ => ("internalServerError", "InternalServerError"),
    }
}

fn error_body(error_type: &str, error_detail: &str, message: &str) -> Value {
    json!({ "errorType": error_type, "errorDetail": error_detail, "message": message })
}

impl IntoResponse for ScrapingError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let (status, detail) = match self {
            Self::Api(error) => return error.into_response(),
            Self::BadParameters(_) => (StatusCode::BAD_REQUEST, Some("BadParameters")),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, None),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, None),
            Self::Forbidden => (StatusCode::FORBIDDEN, None),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, None),
        };
        let (error_type, default_detail) = categories(status);
        let body = error_body(error_type, detail.unwrap_or(default_detail), &message);
        (status, Json(body)).into_response()
    }
}

/// Rewrites a `{"error": …}` answer of the shared layers (the Idempotency-Key layer, outages,
/// panics, 405) into the family's format; an answer already in it passes as it is.
pub async fn error_format(request: Request, next: Next) -> Response {
    super::middleware::rewrite_refusals(request, next, |status, parsed, _| {
        if parsed.is_some_and(|v| v.get("errorType").is_some()) {
            return None;
        }
        let (error_type, error_detail) = categories(status);
        let message = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => NOT_ALLOWED.to_string(),
            status => parsed
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                .filter(|m| !m.trim().is_empty())
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("Error").to_string()),
        };
        Some(error_body(error_type, error_detail, &message))
    })
    .await
}

/// Requires a valid bearer token and remembers its actor. Roles are checked by each handler:
/// a lookup sent as POST is still a read, which the service's own layer would take for a write.
pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(token) = super::middleware::bearer_token(request.headers()) else {
        return ScrapingError::Unauthorized.into_response();
    };
    match state.keys().verify(token) {
        Ok(actor) => {
            request.extensions_mut().insert(actor);
            next.run(request).await
        }
        Err(reason) => {
            tracing::info!(%reason, "token refused");
            ScrapingError::Unauthorized.into_response()
        }
    }
}

/// The family's one body reader: the bytes sent, bounded like every body. Every content type
/// is read as JSON, as the rest of the service does.
///
/// Strict bodies (unknown fields, content types, sizes) are to be aligned here and in
/// [`parse_lookup`] / [`parse_results`], which name every field the family reads.
pub struct ScrapingBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ScrapingBytes {
    type Rejection = ScrapingError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(request, state)
            .await
            .map(Self)
            .map_err(|rejection| match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ScrapingError::TooLarge(rejection.body_text()),
                _ => ScrapingError::BadRequest(format!(
                    "Invalid request body: {}",
                    rejection.body_text()
                )),
            })
    }
}

impl ScrapingBytes {
    /// The JSON value sent, or `None` for an empty body (a GET sent without one).
    pub fn json(&self) -> Result<Option<Value>, ScrapingError> {
        if self.0.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&self.0)
            .map(Some)
            .map_err(|e| ScrapingError::BadRequest(format!("Invalid JSON: {e}")))
    }
}

/// The body as a JSON value: see [`ScrapingBytes::json`].
pub struct ScrapingBody(pub Option<Value>);

impl<S: Send + Sync> FromRequest<S> for ScrapingBody {
    type Rejection = ScrapingError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        ScrapingBytes::from_request(request, state)
            .await?
            .json()
            .map(Self)
    }
}

/// A VIN and plate as sent, or `BadParameters` naming where they were.
fn vehicle_at(
    entry: &Map<String, Value>,
    at: impl FnOnce() -> String,
) -> Result<CheckedVehicle, ScrapingError> {
    let text = |name: &str| entry.get(name).and_then(Value::as_str);
    let vin = text("vin").and_then(|raw| Vin::parse(raw).ok());
    let plate = text("plate").and_then(|raw| VehiclePlate::parse(raw).ok());
    match (vin, plate) {
        (Some(vin), Some(plate)) => Ok(CheckedVehicle { vin, plate }),
        _ => Err(ScrapingError::BadParameters(format!(
            "{INVALID_VEHICLE} {}.",
            at()
        ))),
    }
}

/// A lookup's body into its vehicles, each once, in the order first asked for.
///
/// The usual body (an object whose `vehicles` lists 1 to 500 objects, each with a valid `vin`
/// and `plate` written without escapes) is read straight into borrowed fields: a JSON tree of
/// 500 small objects per lookup cost more than the rest of reading it. Anything else goes
/// through [`parse_lookup`], which names what is wrong; both read a body the same way
/// (tests/vehicle_checks.rs checks it on random bodies).
pub fn parse_lookup_body(body: &ScrapingBytes) -> Result<Vec<CheckedVehicle>, ScrapingError> {
    #[derive(Deserialize)]
    struct Listed<'a> {
        #[serde(borrow)]
        vehicles: Vec<Asked<'a>>,
    }
    #[derive(Deserialize)]
    struct Asked<'a> {
        vin: &'a str,
        plate: &'a str,
    }
    let usual = serde_json::from_slice::<Listed<'_>>(&body.0)
        .ok()
        .filter(|listed| (1..=LOOKUP_VEHICLES_MAX).contains(&listed.vehicles.len()))
        .and_then(|listed| {
            listed
                .vehicles
                .iter()
                .map(|asked| {
                    Some(CheckedVehicle {
                        vin: Vin::parse(asked.vin).ok()?,
                        plate: VehiclePlate::parse(asked.plate).ok()?,
                    })
                })
                .collect::<Option<Vec<_>>>()
        });
    match usual {
        Some(vehicles) => Ok(first_of_each(vehicles)),
        None => parse_lookup(body.json()?.as_ref()),
    }
}

/// A lookup's body, as a JSON value, into its vehicles, each once, in the order first asked
/// for; a refusal names what is wrong.
pub fn parse_lookup(body: Option<&Value>) -> Result<Vec<CheckedVehicle>, ScrapingError> {
    let listed = body
        .and_then(|body| body.get("vehicles"))
        .and_then(Value::as_array)
        .filter(|list| !list.is_empty())
        .ok_or_else(|| ScrapingError::BadRequest(NO_VEHICLE.to_string()))?;
    if listed.len() > LOOKUP_VEHICLES_MAX {
        return Err(ScrapingError::BadRequest(format!(
            "The maximum number of vehicles that can be requested in one request is {LOOKUP_VEHICLES_MAX}."
        )));
    }
    let vehicles = listed
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let at = || format!("Vehicle at index {index} (vehicles[{index}])");
            match entry.as_object() {
                Some(entry) => vehicle_at(entry, at),
                None => Err(ScrapingError::BadParameters(format!(
                    "{INVALID_VEHICLE} {}.",
                    at()
                ))),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(first_of_each(vehicles))
}

/// Each vehicle once, at its first position: seed 001 answers a repeated vehicle once.
fn first_of_each(vehicles: Vec<CheckedVehicle>) -> Vec<CheckedVehicle> {
    let mut seen = std::collections::HashSet::with_capacity(vehicles.len());
    vehicles
        .into_iter()
        .filter(|vehicle| seen.insert(vehicle.clone()))
        .collect()
}

/// A recording's body (one result or an array of them) into results; `true` when it was an
/// array, which is how the answer is shaped.
pub fn parse_results(body: Option<&Value>) -> Result<(Vec<VehicleCheck>, bool), ScrapingError> {
    let (entries, many) = match body {
        Some(Value::Array(entries)) => (entries.as_slice(), true),
        Some(one @ Value::Object(_)) => (std::slice::from_ref(one), false),
        Some(_) => {
            return Err(ScrapingError::BadRequest(
                "The body must be a result or an array of results.".to_string(),
            ))
        }
        None => return Err(ScrapingError::BadRequest(NO_RESULT.to_string())),
    };
    if entries.is_empty() {
        return Err(ScrapingError::BadRequest(NO_RESULT.to_string()));
    }
    if entries.len() > RECORD_RESULTS_MAX {
        return Err(ScrapingError::BadRequest(format!(
            "The maximum number of results that can be recorded in one request is {RECORD_RESULTS_MAX}."
        )));
    }
    let checks = entries
        .iter()
        .enumerate()
        .map(|(index, entry)| parse_result(index, entry))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((checks, many))
}

/// The fields a recorded result may carry (seed 001).
const RESULT_FIELDS: [&str; 7] = [
    "vin",
    "plate",
    "resourceId",
    "status",
    "result",
    "creationDateTime",
    "finishedDateTime",
];

fn parse_result(index: usize, entry: &Value) -> Result<VehicleCheck, ScrapingError> {
    let at = format!("Result at index {index}");
    let bad = |what: &str| ScrapingError::BadRequest(format!("{what} {at}."));
    let entry = entry
        .as_object()
        .ok_or_else(|| bad("Each result must be an object."))?;
    // Strict bodies, as on every other endpoint: a misspelled field is refused, not dropped.
    if let Some(unknown) = entry.keys().find(|k| !RESULT_FIELDS.contains(&k.as_str())) {
        return Err(bad(&format!("Unknown field: {unknown}.")));
    }
    let vehicle = vehicle_at(entry, || at.clone())?;
    let present = |name: &str| entry.get(name).filter(|v| !v.is_null());
    // Any JSON a resource reports as its status is kept as sent (seed 001 shows none fixed).
    let status = present("status").cloned();
    let resource_id = present("resourceId")
        .and_then(Value::as_i64)
        .filter(|id| *id > 0)
        .ok_or_else(|| bad("resourceId must be a positive integer."))?;
    let result = present("result")
        .filter(|r| r.is_array())
        .cloned()
        .ok_or_else(|| bad("result must be an array."))?;
    let time = |name: &str| -> Result<Option<CheckTime>, ScrapingError> {
        present(name)
            .map(|raw| {
                raw.as_str()
                    .and_then(|raw| CheckTime::parse(raw).ok())
                    .ok_or_else(|| bad(&format!("{name} must be a date and time.")))
            })
            .transpose()
    };
    let creation_date_time = time("creationDateTime")?
        .ok_or_else(|| bad("creationDateTime must be a date and time."))?;
    let finished_date_time = time("finishedDateTime")?;
    Ok(VehicleCheck {
        resource_id,
        vehicle,
        status,
        result,
        creation_date_time,
        finished_date_time,
    })
}

/// The lookup's answer, `{"vehicleData":[{"vin":…,"plate":…,"info":[…]},…]}`: every vehicle of
/// `vehicles` (keyed `keys`) that has stored entries, in the order asked, with its entries
/// exactly as the read model holds them. Byte for byte what serialising a `Value` of the same
/// answer prints (pinned by tests/vehicle_checks.rs), without parsing or printing a thousand
/// entries again per lookup.
fn lookup_answer(vehicles: &[CheckedVehicle], keys: &[String], found: &StoredEntries) -> String {
    let entries = found.by_vehicle();
    const VEHICLE_FRAME_LEN: usize = r#"{"vin":"","plate":"","info":[]},"#.len();
    let capacity = r#"{"vehicleData":[]}"#.len()
        + found.len()
        + entries.len() * (VEHICLE_FRAME_LEN + VIN_LEN_MAX + VEHICLE_PLATE_LEN_MAX);
    let mut answer = String::with_capacity(capacity);
    answer.push_str(r#"{"vehicleData":["#);
    let mut first_vehicle = true;
    for (vehicle, key) in vehicles.iter().zip(keys) {
        let Some(info) = entries.get(key.as_str()) else {
            continue;
        };
        if !first_vehicle {
            answer.push(',');
        }
        first_vehicle = false;
        // VINs and plates are uppercase letters and digits (their parse): nothing to escape.
        answer.push_str(r#"{"vin":""#);
        answer.push_str(vehicle.vin.as_str());
        answer.push_str(r#"","plate":""#);
        answer.push_str(vehicle.plate.as_str());
        answer.push_str(r#"","info":["#);
        for (position, (_, entry)) in info.iter().enumerate() {
            if position > 0 {
                answer.push(',');
            }
            answer.push_str(entry);
        }
        answer.push_str("]}");
    }
    answer.push_str("]}");
    debug_assert!(
        serde_json::from_str::<serde::de::IgnoredAny>(&answer).is_ok(),
        "the answer is JSON: {answer}"
    );
    answer
}

/// Record vehicle check results: one, or an array of at most 500 (operador, admin)
///
/// Each result is kept as sent; a lookup answers the latest of each resource.
#[utoipa::path(post, path = "/api/scraping/resultados", request_body = super::openapi::OneOrMany<CheckResult>,
    responses((status = 201, body = super::openapi::OneOrMany<StoredCheck>, description = "The stored entry, or the entries in the order sent")))]
pub async fn record(
    State(state): State<AppState>,
    context: CommandContext,
    ScrapingBody(body): ScrapingBody,
) -> Result<(StatusCode, Response), ScrapingError> {
    if !context.actor.can_write() {
        return Err(ScrapingError::Forbidden);
    }
    let (checks, many) = parse_results(body.as_ref())?;
    // Rendered now: the commands below take the results.
    let answer = {
        let entries: Vec<StoredEntry<'_>> = checks.iter().map(StoredEntry::of).collect();
        match entries.as_slice() {
            [one] if !many => Json(one).into_response(),
            _ => Json(&entries).into_response(),
        }
    };
    // One command per vehicle, in the order vehicles first appear: a keyed retry makes the same
    // appends in the same order (its event ids depend on it). Every result is parsed before the
    // first append, so only an outage can leave a request half recorded, and a retry with its
    // Idempotency-Key completes it.
    let mut by_vehicle: Vec<(String, Vec<VehicleCheck>)> = Vec::new();
    let mut slot: HashMap<String, usize> = HashMap::new();
    for check in checks {
        let key = check.vehicle.key();
        let index = *slot.entry(key.clone()).or_insert_with(|| {
            by_vehicle.push((key, Vec::new()));
            by_vehicle.len() - 1
        });
        by_vehicle[index].1.push(check);
    }
    for (stream_id, checks) in by_vehicle {
        run_command_answering_from_events(
            &state,
            &state.vehicle_checks,
            &stream_id,
            VehicleCheckCommand::Record { checks },
            &context,
            // The results were grouped by vehicle just above: a refusal is a bug here.
            ApiError::internal,
        )
        .await?;
    }
    Ok((StatusCode::CREATED, answer))
}

/// Latest check results of up to 500 vehicles (seed 001)
///
/// `GET` with a body, as seed 001 sends it, or `POST`; with or without the trailing slash. A
/// vehicle no resource processed is left out of the answer.
#[utoipa::path(method(get, post), path = "/api/batch/scraping", request_body = LookupRequest,
    responses((status = 200, body = LookupAnswer)))]
pub async fn lookup(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    lag: Option<Extension<ReadModelsLag>>,
    body: ScrapingBytes,
) -> Result<Response, ScrapingError> {
    if !actor.can_read() {
        return Err(ScrapingError::Forbidden);
    }
    let vehicles = parse_lookup_body(&body)?;
    // Read-your-writes: a lookup sees every result recorded before it arrived.
    if !state.read_barrier(READ_YOUR_WRITES_TIMEOUT).await {
        if let Some(Extension(lag)) = lag {
            lag.mark();
        }
    }
    let keys: Vec<String> = vehicles.iter().map(CheckedVehicle::key).collect();
    let found = checks::latest(&state.read_models, &keys)
        .await
        .map_err(ApiError::from)?;
    let answer = lookup_answer(&vehicles, &keys, &found);
    Ok(([(header::CONTENT_TYPE, "application/json")], answer).into_response())
}
