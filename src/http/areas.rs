//! Operation areas (`areas_operacion`): `POST`, list and get by id.

use aggregates::operation_area::OPERATION_AREAS_STREAM_ID;
use aggregates::{OperationAreaCommand, OperationAreaError, OperationAreaEvent};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use super::error::{command_error, ApiError};
use super::extract::{CommandContext, JsonBody};
use super::parse_id;
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
    let (nombres, many) = match &body {
        Value::Array(items) => {
            if items.len() > BATCH_MAX {
                return Err(ApiError::BadRequest(format!(
                    "Se aceptan como máximo {BATCH_MAX} registros por solicitud"
                )));
            }
            let nombres = items
                .iter()
                .enumerate()
                .map(|(index, item)| nombre_of(item).map_err(|e| at_index(index, e)))
                .collect::<Result<Vec<_>, _>>()?;
            (nombres, true)
        }
        item => (vec![nombre_of(item)?], false),
    };
    let executed = state
        .operation_areas
        .execute(
            OPERATION_AREAS_STREAM_ID,
            OperationAreaCommand::Register { nombres },
            &context.metadata,
        )
        .await
        .map_err(|e| command_error(e, |refusal| refusal_to_api(refusal, many)))?;
    state.settle(executed.position()).await;
    let created: Vec<OperationArea> = executed
        .events
        .into_iter()
        .map(|event| match event {
            OperationAreaEvent::OperationAreaRegistered { id, nombre } => {
                OperationArea { id, nombre }
            }
        })
        .collect();
    let body = if many {
        serde_json::to_value(created)
    } else {
        serde_json::to_value(created.into_iter().next())
    }
    .map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(body)))
}

fn nombre_of(item: &Value) -> Result<String, ApiError> {
    match item.get("nombre") {
        Some(Value::String(nombre)) => Ok(nombre.clone()),
        None | Some(Value::Null) => Err(ApiError::BadRequest(
            "Missing required field: nombre".into(),
        )),
        Some(_) => Err(ApiError::BadRequest(
            "El campo nombre debe ser texto".into(),
        )),
    }
}

fn at_index(index: usize, error: ApiError) -> ApiError {
    match error {
        ApiError::BadRequest(message) => {
            ApiError::BadRequest(format!("Registro {index}: {message}"))
        }
        other => other,
    }
}

fn refusal_to_api(refusal: OperationAreaError, many: bool) -> ApiError {
    let message = refusal.to_string();
    match refusal {
        OperationAreaError::EmptyName { index } | OperationAreaError::NameTooLong { index }
            if many =>
        {
            ApiError::BadRequest(format!("Registro {index}: {message}"))
        }
        _ => ApiError::BadRequest(message),
    }
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
