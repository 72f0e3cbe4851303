//! Missions: schedule, start, complete, cancel, list and read.

use std::collections::HashMap;

use aggregates::fleet::{FleetCommand, FleetEvent, MissionStatus, FLEET_STREAM_ID};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

use super::error::ApiError;
use super::extract::{CommandContext, JsonBody, Path, Query};
use super::fields::{query_id, Fields};
use super::lookup::require;
use super::parse_id;
use super::run_command;
use crate::queries::fleet::{self, Mission};
use crate::queries::registry::Reference;
use crate::AppState;

use utoipa::ToSchema;

/// A mission to plan.
#[derive(ToSchema)]
#[schema(example = json!({"vehiculo_id": 1, "conductor_id": 1, "descripcion": "Ruta Bogotá-Tunja", "fecha_programada": "2026-03-01"}))]
pub struct MisionRequest {
    /// Required. A registered vehicle.
    #[schema(minimum = 1)]
    pub vehiculo_id: i64,
    /// Required. A registered driver.
    #[schema(minimum = 1)]
    pub conductor_id: i64,
    /// Required. At most 2,000 characters.
    #[schema(max_length = 2000)]
    pub descripcion: String,
    /// Required. `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub fecha_programada: String,
}

/// A mission's start.
#[derive(ToSchema)]
#[schema(example = json!({"kilometraje_inicial": 120500, "combustible_inicial_galones": 30.5}))]
pub struct MisionStart {
    /// Required. The odometer, a whole number ≥ 0.
    #[schema(minimum = 0)]
    pub kilometraje_inicial: i64,
    /// Required. Gallons in the tank, ≥ 0.
    #[schema(value_type = f64, minimum = 0)]
    pub combustible_inicial_galones: String,
}

/// A mission's completion.
#[derive(ToSchema)]
#[schema(example = json!({"kilometraje_final": 120800, "combustible_final_galones": 12.25}))]
pub struct MisionCompletion {
    /// Required. The odometer, a whole number ≥ 0.
    #[schema(minimum = 0)]
    pub kilometraje_final: i64,
    /// Required. Gallons in the tank, ≥ 0.
    #[schema(value_type = f64, minimum = 0)]
    pub combustible_final_galones: String,
}

/// A mission's cancellation.
#[derive(ToSchema)]
#[schema(example = json!({"motivo": "Vehículo en taller"}))]
pub struct MisionCancellation {
    /// Required. Why, at most 2,000 characters.
    #[schema(max_length = 2000)]
    pub motivo: String,
}

const DESCRIPCION_LEN_MAX: usize = 2000;

async fn run(
    state: &AppState,
    context: &CommandContext,
    command: FleetCommand,
) -> Result<Vec<FleetEvent>, ApiError> {
    let executed = run_command(
        state,
        &state.fleet,
        FLEET_STREAM_ID,
        command,
        context,
        ApiError::from,
    )
    .await?;
    Ok(executed.events)
}

/// Plan a mission for a vehicle and a driver
///
/// A deleted vehicle or an unknown driver is a 400 naming the field.
#[utoipa::path(post, path = "/api/misiones", request_body = MisionRequest, responses((status = 201, body = Mission)))]
pub async fn create(
    State(state): State<AppState>,
    context: CommandContext,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Mission>), ApiError> {
    let fields = Fields::of(
        &body,
        &[
            "vehiculo_id",
            "conductor_id",
            "descripcion",
            "fecha_programada",
        ],
    )?;
    let vehicle_id = fields.required("vehiculo_id", Fields::id)?;
    let conductor_id = fields.required("conductor_id", Fields::id)?;
    let descripcion = fields.required("descripcion", |f, n| f.text(n, DESCRIPCION_LEN_MAX))?;
    let fecha_programada = fields.required("fecha_programada", Fields::date)?;
    require(
        &state,
        "conductor_id",
        Reference::Driver,
        Some(conductor_id),
    )
    .await?;
    let command = FleetCommand::ScheduleMission {
        vehicle_id,
        conductor_id,
        descripcion,
        fecha_programada,
    };
    let events = run(&state, &context, command).await?;
    let mission_id = events
        .iter()
        .find_map(|e| match e {
            FleetEvent::MissionScheduled { mission_id, .. } => Some(*mission_id),
            _ => None,
        })
        .ok_or_else(|| ApiError::internal("scheduling appended no mission"))?;
    Ok((
        StatusCode::CREATED,
        Json(read_mission(&state, mission_id).await?),
    ))
}

fn mission_id(raw: &str) -> Result<i64, ApiError> {
    parse_id(raw, "la misión")
}

/// Start a planned mission (PROGRAMADA → EN_EJECUCION)
#[utoipa::path(post, path = "/api/misiones/{id}/iniciar", params(("id" = i64, Path)), request_body = MisionStart,
    responses((status = 200, body = Mission)))]
pub async fn start(
    State(state): State<AppState>,
    context: CommandContext,
    Path(raw_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Mission>, ApiError> {
    let mission_id = mission_id(&raw_id)?;
    let fields = Fields::of(
        &body,
        &["kilometraje_inicial", "combustible_inicial_galones"],
    )?;
    let kilometraje_inicial = fields.required("kilometraje_inicial", Fields::count)?;
    let combustible_inicial_galones =
        fields.required("combustible_inicial_galones", Fields::quantity)?;
    let command = FleetCommand::StartMission {
        mission_id,
        kilometraje_inicial,
        combustible_inicial_galones,
    };
    run(&state, &context, command).await?;
    Ok(Json(read_mission(&state, mission_id).await?))
}

/// Complete a mission in progress (EN_EJECUCION → COMPLETADA)
///
/// The distance and fuel used are derived from the start's readings.
#[utoipa::path(post, path = "/api/misiones/{id}/finalizar", params(("id" = i64, Path)), request_body = MisionCompletion,
    responses((status = 200, body = Mission)))]
pub async fn complete(
    State(state): State<AppState>,
    context: CommandContext,
    Path(raw_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Mission>, ApiError> {
    let mission_id = mission_id(&raw_id)?;
    let fields = Fields::of(&body, &["kilometraje_final", "combustible_final_galones"])?;
    let kilometraje_final = fields.required("kilometraje_final", Fields::count)?;
    let combustible_final_galones =
        fields.required("combustible_final_galones", Fields::quantity)?;
    let command = FleetCommand::CompleteMission {
        mission_id,
        kilometraje_final,
        combustible_final_galones,
    };
    run(&state, &context, command).await?;
    Ok(Json(read_mission(&state, mission_id).await?))
}

/// Cancel a mission that has not completed
#[utoipa::path(post, path = "/api/misiones/{id}/cancelar", params(("id" = i64, Path)), request_body = MisionCancellation,
    responses((status = 200, body = Mission)))]
pub async fn cancel(
    State(state): State<AppState>,
    context: CommandContext,
    Path(raw_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Mission>, ApiError> {
    let mission_id = mission_id(&raw_id)?;
    let motivo = Fields::of(&body, &["motivo"])?
        .required("motivo", |f, n| f.text(n, DESCRIPCION_LEN_MAX))?;
    if motivo.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "El campo motivo es obligatorio".into(),
        ));
    }
    run(
        &state,
        &context,
        FleetCommand::CancelMission { mission_id, motivo },
    )
    .await?;
    Ok(Json(read_mission(&state, mission_id).await?))
}

async fn read_mission(state: &AppState, mission_id: i64) -> Result<Mission, ApiError> {
    fleet::mission(&state.read_models, mission_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("No se encontró la misión con ID {mission_id}")))
}

/// One mission
#[utoipa::path(get, path = "/api/misiones/{id}", params(("id" = i64, Path)), responses((status = 200, body = Mission)))]
pub async fn get(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<Mission>, ApiError> {
    Ok(Json(read_mission(&state, mission_id(&raw_id)?).await?))
}

/// Missions, in id order
#[utoipa::path(get, path = "/api/misiones", params(
    ("vehiculo_id" = Option<i64>, Query, description = "Only this vehicle's"),
    ("estado" = Option<String>, Query, description = "PROGRAMADA, EN_EJECUCION, COMPLETADA or CANCELADA, any case"),
), responses((status = 200, body = Vec<Mission>)))]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Mission>>, ApiError> {
    let vehiculo = query_id(params.get("vehiculo_id"), "vehiculo_id")?;
    let estado = match params
        .get("estado")
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
    {
        None => None,
        Some(raw) => Some(MissionStatus::parse(&raw.to_uppercase()).ok_or_else(|| {
            ApiError::BadRequest(
                "El parámetro estado debe ser PROGRAMADA, EN_EJECUCION, COMPLETADA o CANCELADA"
                    .into(),
            )
        })?),
    };
    Ok(Json(
        fleet::missions(&state.read_models, vehiculo, estado).await?,
    ))
}
