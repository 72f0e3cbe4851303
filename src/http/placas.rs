//! Plates (`areas_placas`): register, change status, list and read.

use std::collections::HashMap;

use aggregates::fleet::{FleetCommand, FleetError, FleetEvent, PlateStatus, FLEET_STREAM_ID};
use aggregates::placa::Placa;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

use super::error::ApiError;
use super::extract::{CommandContext, JsonBody, Path, Query};
use super::fields::{at_index, created, read_items, Fields};
use super::parse_id;
use super::{run_command, run_command_viewing};
use crate::queries::fleet::{self, Plate};
use crate::AppState;

use super::openapi::OneOrMany;
use utoipa::ToSchema;

/// A plate, or an array of at most 5,000 of them (all registered, or none).
#[derive(ToSchema)]
#[schema(example = json!({"placa": "ABC123", "estado": "ACTIVADA"}))]
pub struct PlacaRequest {
    /// Required. Three letters and three digits, in any case and spacing (`abc 123`); kept as
    /// `ABC123`. At most 100 characters.
    #[schema(max_length = 100)]
    pub placa: String,
    /// Optional. `ACTIVADA` (the default) or `DESACTIVADA`.
    #[schema(required = false, max_length = 20)]
    pub estado: Option<String>,
}

/// A plate's change: only its state changes.
#[derive(ToSchema)]
#[schema(example = json!({"estado": "DESACTIVADA"}))]
pub struct PlacaChange {
    /// Required. `ACTIVADA` or `DESACTIVADA`.
    #[schema(max_length = 20)]
    pub estado: String,
}

pub const BATCH_MAX: usize = 5000;

/// `estado`, if given: `ACTIVADA` or `DESACTIVADA`.
fn estado(fields: &Fields, name: &str) -> Result<Option<PlateStatus>, ApiError> {
    let Some(raw) = fields.text(name, 20)? else {
        return Ok(None);
    };
    PlateStatus::parse(&raw).map(Some).ok_or_else(|| {
        ApiError::BadRequest("El campo estado debe ser ACTIVADA o DESACTIVADA".into())
    })
}

fn parse_placa(fields: &Fields) -> Result<Placa, ApiError> {
    let raw = fields.required("placa", |f, n| f.text(n, 100))?;
    Placa::parse(&raw).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// Register a plate, or several
#[utoipa::path(post, path = "/api/placas", request_body = OneOrMany<PlacaRequest>,
    responses((status = 201, body = OneOrMany<Plate>, description = "The plate, or the plates in the order sent")))]
pub async fn create(
    State(state): State<AppState>,
    context: CommandContext,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (plates, many) = read_items(&body, BATCH_MAX, &["placa", "estado"], |fields| {
        let placa = parse_placa(fields)?;
        let estado = estado(fields, "estado")?.unwrap_or(PlateStatus::Activada);
        Ok((placa, estado))
    })?;
    let executed = run_command(
        &state,
        &state.fleet,
        FLEET_STREAM_ID,
        FleetCommand::RegisterPlates { plates },
        &context,
        |refusal| match refusal {
            FleetError::PlateAlreadyRegistered { index, .. } => {
                at_index(many, index, refusal.into())
            }
            other => other.into(),
        },
    )
    .await?;
    let records: Vec<Plate> = executed
        .events
        .into_iter()
        .filter_map(|event| match event {
            FleetEvent::PlateRegistered {
                plate_id,
                placa,
                estado,
            } => Some(Plate {
                id: plate_id,
                placa: placa.to_string(),
                estado: estado.as_str().to_string(),
            }),
            _ => None,
        })
        .collect();
    created(many, records)
}

/// Change a plate's state
#[utoipa::path(patch, path = "/api/placas/{id}", params(("id" = i64, Path)), request_body = PlacaChange,
    responses((status = 200, body = Plate)))]
pub async fn update(
    State(state): State<AppState>,
    context: CommandContext,
    Path(raw_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Plate>, ApiError> {
    let plate_id = parse_id(&raw_id, "la placa")?;
    let fields = Fields::of(&body, &["estado"])?;
    let estado = fields.required("estado", estado)?;
    let (_, plate) = run_command_viewing(
        &state,
        &state.fleet,
        FLEET_STREAM_ID,
        FleetCommand::ChangePlateStatus { plate_id, estado },
        &context,
        ApiError::from,
        |fleet| {
            fleet.plate(plate_id).map(|plate| Plate {
                id: plate_id,
                placa: plate.placa.to_string(),
                estado: plate.estado.as_str().to_string(),
            })
        },
    )
    .await?;
    Ok(Json(
        plate.ok_or_else(|| ApiError::internal("plate vanished"))?,
    ))
}

/// Plates, in id order
#[utoipa::path(get, path = "/api/placas", params(
    ("estado" = Option<String>, Query, description = "`ACTIVADA` or `DESACTIVADA`, any case")),
    responses((status = 200, body = Vec<Plate>)))]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Plate>>, ApiError> {
    let filter = match params
        .get("estado")
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
    {
        None => None,
        Some(raw) => Some(PlateStatus::parse(&raw.to_uppercase()).ok_or_else(|| {
            ApiError::BadRequest("El parámetro estado debe ser ACTIVADA o DESACTIVADA".into())
        })?),
    };
    Ok(Json(fleet::plates(&state.read_models, filter).await?))
}

/// One plate
#[utoipa::path(get, path = "/api/placas/{id}", params(("id" = i64, Path)),
    responses((status = 200, body = Plate)))]
pub async fn get(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<Plate>, ApiError> {
    let id = parse_id(&raw_id, "la placa")?;
    let plate = fleet::plate(&state.read_models, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("No se encontró la placa con ID {id}")))?;
    Ok(Json(plate))
}
