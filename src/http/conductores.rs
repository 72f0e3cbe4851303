//! Drivers (`conductores`): register (one or an array), list and read.

use aggregates::registry::{DriverCommand, DriverEvent, NewDriver, REGISTRY_STREAM_ID};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

use super::error::ApiError;
use super::extract::{CommandContext, JsonBody, Path};
use super::fields::{created, read_items, registry_refusal, require_each};
use super::parse_id;
use super::run_command;
use crate::queries::registry::{self, Driver, Reference};
use crate::AppState;

use super::openapi::OneOrMany;
use utoipa::ToSchema;

/// A driver, or an array of at most 5,000 of them (all registered, or none).
#[derive(ToSchema)]
#[schema(example = json!({"conductor": "Juan Pérez", "area_principal": 1}))]
pub struct ConductorRequest {
    /// Required. The driver's name, at most 10,000 characters.
    #[schema(max_length = 10000)]
    pub conductor: String,
    /// Optional. A registered operation area.
    #[schema(required = false, minimum = 1)]
    pub area_principal: Option<i64>,
}

pub const BATCH_MAX: usize = 5000;
const DRIVER_FIELDS: [&str; 2] = ["conductor", "area_principal"];

/// Register a driver, or several
#[utoipa::path(post, path = "/api/conductores", request_body = OneOrMany<ConductorRequest>,
    responses((status = 201, body = OneOrMany<Driver>, description = "The driver, or the drivers in the order sent")))]
pub async fn create(
    State(state): State<AppState>,
    context: CommandContext,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (drivers, many) = read_items(&body, BATCH_MAX, &DRIVER_FIELDS, |fields| {
        Ok(NewDriver {
            conductor: fields.required("conductor", |f, n| f.text(n, 10_000))?,
            area_principal: fields.id("area_principal")?,
        })
    })?;
    require_each(
        &state,
        &drivers,
        many,
        "area_principal",
        Reference::OperationArea,
        |d| d.area_principal,
    )
    .await?;
    let executed = run_command(
        &state,
        &state.drivers,
        REGISTRY_STREAM_ID,
        DriverCommand::Register { drivers },
        &context,
        registry_refusal(many),
    )
    .await?;
    let records: Vec<Driver> = executed
        .events
        .into_iter()
        .map(
            |DriverEvent::DriverRegistered {
                 id,
                 conductor,
                 area_principal,
             }| Driver {
                id,
                conductor,
                area_principal,
            },
        )
        .collect();
    created(many, records)
}

/// Drivers, in id order
#[utoipa::path(get, path = "/api/conductores", responses((status = 200, body = Vec<Driver>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Driver>>, ApiError> {
    Ok(Json(registry::drivers(&state.read_models).await?))
}

/// One driver
#[utoipa::path(get, path = "/api/conductores/{id}", params(("id" = i64, Path)),
    responses((status = 200, body = Driver)))]
pub async fn get(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<Driver>, ApiError> {
    let id = parse_id(&raw_id, "el conductor")?;
    let driver = registry::driver(&state.read_models, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("No se encontró el conductor con ID {id}")))?;
    Ok(Json(driver))
}
