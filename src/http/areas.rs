//! Operation areas (`areas_operacion`): `POST`, list and get by id.

use aggregates::operation_area::OPERATION_AREAS_STREAM_ID;
use aggregates::{OperationAreaCommand, OperationAreaEvent};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use super::error::ApiError;
use super::extract::{CommandContext, JsonBody};
use super::fields::{created, read_items, registry_refusal};
use super::parse_id;
use super::run_command;
use crate::AppState;

/// Entries accepted in one array registration.
pub const BATCH_MAX: usize = 1000;

#[derive(Debug, Serialize)]
pub struct OperationArea {
    pub id: i64,
    pub nombre: String,
}

/// One object registers one area; an array registers all of them or none.
pub async fn create(
    State(state): State<AppState>,
    context: CommandContext,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (nombres, many) = read_items(&body, BATCH_MAX, |fields| {
        fields.required("nombre", |f, n| f.text(n, 10_000))
    })?;
    let executed = run_command(
        &state,
        &state.operation_areas,
        OPERATION_AREAS_STREAM_ID,
        OperationAreaCommand::Register { nombres },
        &context,
        registry_refusal(many),
    )
    .await?;
    let records: Vec<OperationArea> = executed
        .events
        .into_iter()
        .map(
            |OperationAreaEvent::OperationAreaRegistered { id, nombre }| OperationArea {
                id,
                nombre,
            },
        )
        .collect();
    created(many, records)
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<OperationArea>>, ApiError> {
    let rows = sqlx::query("SELECT id, nombre FROM rm_areas_operacion ORDER BY id")
        .fetch_all(state.read_models.pool())
        .await?;
    rows.into_iter()
        .map(|row| {
            Ok(OperationArea {
                id: row.try_get(0)?,
                nombre: row.try_get(1)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map(Json)
        .map_err(ApiError::from)
}

pub async fn get(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<OperationArea>, ApiError> {
    let id = parse_id(&raw_id, "área de operación")?;
    let row = sqlx::query("SELECT id, nombre FROM rm_areas_operacion WHERE id = $1")
        .bind(id)
        .fetch_optional(state.read_models.pool())
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("No se encontró el área de operación con ID {id}"))
        })?;
    Ok(Json(OperationArea {
        id: row.try_get(0)?,
        nombre: row.try_get(1)?,
    }))
}
