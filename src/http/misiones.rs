//! Missions: schedule, start, complete, cancel, list and read.

use std::collections::HashMap;

use aggregates::fleet::{FleetCommand, FleetEvent, MissionStatus, FLEET_STREAM_ID};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use sqlx::Row;

use super::error::ApiError;
use super::extract::{CommandContext, JsonBody};
use super::fields::{query_id, Fields};
use super::lookup::require;
use super::parse_id;
use super::run_command;
use crate::queries::registry::Reference;
use crate::read_store::decimal_json;
use crate::AppState;

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

pub async fn create(
    State(state): State<AppState>,
    context: CommandContext,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let fields = Fields::of(&body)?;
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

pub async fn start(
    State(state): State<AppState>,
    context: CommandContext,
    Path(raw_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let mission_id = mission_id(&raw_id)?;
    let fields = Fields::of(&body)?;
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

pub async fn complete(
    State(state): State<AppState>,
    context: CommandContext,
    Path(raw_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let mission_id = mission_id(&raw_id)?;
    let fields = Fields::of(&body)?;
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

pub async fn cancel(
    State(state): State<AppState>,
    context: CommandContext,
    Path(raw_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let mission_id = mission_id(&raw_id)?;
    let motivo = Fields::of(&body)?.required("motivo", |f, n| f.text(n, DESCRIPCION_LEN_MAX))?;
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

const SELECT_MISSIONS: &str = "SELECT id, vehiculo_id, conductor_id, descripcion, fecha_programada, estado, \
     kilometraje_inicial, combustible_inicial_galones, kilometraje_final, combustible_final_galones, \
     kilometraje_recorrido, combustible_consumido_galones, motivo_cancelacion FROM rm_misiones";

fn mission_json(row: &sqlx::any::AnyRow) -> Result<Value, sqlx::Error> {
    let decimal = |i: usize| -> Result<Value, sqlx::Error> { Ok(decimal_json(row.try_get(i)?)) };
    Ok(json!({
        "id": row.try_get::<i64, _>(0)?,
        "vehiculo_id": row.try_get::<i64, _>(1)?,
        "conductor_id": row.try_get::<i64, _>(2)?,
        "descripcion": row.try_get::<String, _>(3)?,
        "fecha_programada": row.try_get::<String, _>(4)?,
        "estado": row.try_get::<String, _>(5)?,
        "kilometraje_inicial": row.try_get::<Option<i64>, _>(6)?,
        "combustible_inicial_galones": decimal(7)?,
        "kilometraje_final": row.try_get::<Option<i64>, _>(8)?,
        "combustible_final_galones": decimal(9)?,
        "kilometraje_recorrido": row.try_get::<Option<i64>, _>(10)?,
        "combustible_consumido_galones": decimal(11)?,
        "motivo_cancelacion": row.try_get::<Option<String>, _>(12)?,
    }))
}

async fn read_mission(state: &AppState, mission_id: i64) -> Result<Value, ApiError> {
    let sql = format!("{SELECT_MISSIONS} WHERE id = $1");
    let row = sqlx::query(&sql)
        .bind(mission_id)
        .fetch_optional(state.read_models.pool())
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("No se encontró la misión con ID {mission_id}"))
        })?;
    Ok(mission_json(&row)?)
}

pub async fn get(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(read_mission(&state, mission_id(&raw_id)?).await?))
}

pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
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
    let mut conditions = Vec::new();
    if vehiculo.is_some() {
        conditions.push("vehiculo_id = $1".to_string());
    }
    if estado.is_some() {
        conditions.push(format!("estado = ${}", conditions.len() + 1));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let sql = format!("{SELECT_MISSIONS}{filter} ORDER BY id");
    let mut query = sqlx::query(&sql);
    if let Some(vehiculo) = vehiculo {
        query = query.bind(vehiculo);
    }
    if let Some(estado) = estado {
        query = query.bind(estado.as_str());
    }
    let rows = query.fetch_all(state.read_models.pool()).await?;
    Ok(Json(Value::Array(
        rows.iter().map(mission_json).collect::<Result<_, _>>()?,
    )))
}
