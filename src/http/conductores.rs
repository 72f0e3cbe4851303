//! Drivers (`conductores`): register (one or an array), list and read.

use aggregates::registry::{DriverCommand, DriverEvent, NewDriver, REGISTRY_STREAM_ID};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use super::error::ApiError;
use super::extract::{CommandContext, JsonBody};
use super::fields::{created, read_items, registry_refusal, require_each};
use super::lookup::Reference;
use super::parse_id;
use super::run_command;
use crate::AppState;

pub const BATCH_MAX: usize = 5000;

#[derive(Debug, Serialize)]
pub struct Driver {
    pub id: i64,
    pub conductor: String,
    pub area_principal: Option<i64>,
}

pub async fn create(
    State(state): State<AppState>,
    context: CommandContext,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (drivers, many) = read_items(&body, BATCH_MAX, |fields| {
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

fn driver_from(row: &sqlx::any::AnyRow) -> Result<Driver, sqlx::Error> {
    Ok(Driver {
        id: row.try_get(0)?,
        conductor: row.try_get(1)?,
        area_principal: row.try_get(2)?,
    })
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Driver>>, ApiError> {
    let rows = sqlx::query("SELECT id, conductor, area_principal FROM rm_conductores ORDER BY id")
        .fetch_all(state.read_models.pool())
        .await?;
    Ok(Json(
        rows.iter().map(driver_from).collect::<Result<_, _>>()?,
    ))
}

pub async fn get(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<Driver>, ApiError> {
    let id = parse_id(&raw_id, "el conductor")?;
    let row = sqlx::query("SELECT id, conductor, area_principal FROM rm_conductores WHERE id = $1")
        .bind(id)
        .fetch_optional(state.read_models.pool())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("No se encontró el conductor con ID {id}")))?;
    Ok(Json(driver_from(&row)?))
}
