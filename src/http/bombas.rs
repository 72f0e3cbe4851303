//! Fuel stations (`bombas`): register (one or an array), change, list and read.

use aggregates::fuel::FuelCommand;
use aggregates::registry::{
    NewStation, RegistryError, StationChanges, StationCommand, StationEvent, REGISTRY_STREAM_ID,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

use super::error::ApiError;
use super::extract::{CommandContext, JsonBody, Path};
use super::fields::{created, read_items, registry_refusal, require_each, Fields};
use super::lookup::{require, station_not_found};
use super::parse_id;
use super::run_command;
use crate::queries::registry::{self, Reference, Station};
use crate::AppState;

use super::openapi::OneOrMany;
use utoipa::ToSchema;

/// subset of the fields.
#[derive(ToSchema)]
#[schema(example = json!({"bomba": "Bomba Central", "area_operacion_id": 1, "permitir_saldo_negativo": false}))]
pub struct BombaRequest {
    /// Required on `POST`. The station's name, at most 10,000 characters.
    #[schema(max_length = 10000)]
    pub bomba: String,
    /// Optional. A registered operation area.
    #[schema(required = false, minimum = 1)]
    pub area_operacion_id: Option<i64>,
    /// Optional (default `true`). Whether a TANQUEO may take the balance below zero.
    #[schema(required = false)]
    pub permitir_saldo_negativo: Option<bool>,
}

pub const BATCH_MAX: usize = 5000;
/// A registration's fields, and those a change may give.
const STATION_FIELDS: [&str; 3] = ["bomba", "area_operacion_id", "permitir_saldo_negativo"];

/// Register a fuel station, or several
#[utoipa::path(post, path = "/api/bombas", request_body = OneOrMany<BombaRequest>,
    responses((status = 201, body = OneOrMany<Station>, description = "The station, or the stations in the order sent")))]
pub async fn create(
    State(state): State<AppState>,
    context: CommandContext,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (stations, many) = read_items(&body, BATCH_MAX, &STATION_FIELDS, |fields| {
        Ok(NewStation {
            bomba: fields.required("bomba", |f, n| f.text(n, 10_000))?,
            area_operacion_id: fields.id("area_operacion_id")?,
            permitir_saldo_negativo: fields.boolean("permitir_saldo_negativo")?.unwrap_or(true),
        })
    })?;
    require_each(
        &state,
        &stations,
        many,
        "area_operacion_id",
        Reference::OperationArea,
        |s| s.area_operacion_id,
    )
    .await?;
    let executed = run_command(
        &state,
        &state.stations,
        REGISTRY_STREAM_ID,
        StationCommand::Register { stations },
        &context,
        registry_refusal(many),
    )
    .await?;
    let records: Vec<Station> = executed
        .events
        .into_iter()
        .filter_map(|event| match event {
            StationEvent::StationRegistered {
                id,
                bomba,
                area_operacion_id,
                permitir_saldo_negativo,
            } => Some(Station {
                id,
                bomba,
                area_operacion_id,
                permitir_saldo_negativo,
            }),
            StationEvent::StationUpdated { .. }
            | StationEvent::AccountingPeriodClosed { .. }
            | StationEvent::AccountingPeriodReopened { .. } => None,
        })
        .collect();
    created(many, records)
}

/// Change a fuel station: its name, area, or overdraft policy
///
/// `PATCH /api/bombas/{id}`: the name and area change in the registry; the overdraft policy in
/// the station's own stream, where refuels are decided (see `aggregates::fuel`), so no refuel can
/// be decided on a policy older than the balance it checks. Two appends, registry first: it also
/// proves the station exists. A failure between them leaves the policy unchanged and the request
/// unanswered; repeating it completes it.
#[utoipa::path(patch, path = "/api/bombas/{id}", params(("id" = i64, Path)), request_body = BombaRequest,
    responses((status = 200, body = Station)))]
pub async fn update(
    State(state): State<AppState>,
    context: CommandContext,
    Path(raw_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Station>, ApiError> {
    let id = parse_id(&raw_id, "la bomba")?;
    let fields = Fields::of(&body, &STATION_FIELDS)?;
    let changes = StationChanges {
        bomba: fields.text("bomba", 10_000)?,
        area_operacion_id: fields.id("area_operacion_id")?,
        permitir_saldo_negativo: None,
    };
    let policy = fields.boolean("permitir_saldo_negativo")?;
    require(
        &state,
        "area_operacion_id",
        Reference::OperationArea,
        changes.area_operacion_id,
    )
    .await?;
    run_command(
        &state,
        &state.stations,
        REGISTRY_STREAM_ID,
        StationCommand::Update { id, changes },
        &context,
        |refusal| match refusal {
            RegistryError::NotFound { id } => station_not_found(id),
            other => other.into(),
        },
    )
    .await?;
    if let Some(permitir_saldo_negativo) = policy {
        run_command(
            &state,
            &state.fuel_stations,
            &id.to_string(),
            FuelCommand::ChangeOverdraftPolicy {
                bomba_id: id,
                permitir_saldo_negativo,
            },
            &context,
            super::tanqueos::refusal,
        )
        .await?;
    }
    read_station(&state, id).await
}

async fn read_station(state: &AppState, id: i64) -> Result<Json<Station>, ApiError> {
    let station = registry::station(&state.read_models, id)
        .await?
        .ok_or_else(|| station_not_found(id))?;
    Ok(Json(station))
}

/// Fuel stations, in id order
#[utoipa::path(get, path = "/api/bombas", responses((status = 200, body = Vec<Station>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Station>>, ApiError> {
    Ok(Json(registry::stations(&state.read_models).await?))
}

/// One fuel station
#[utoipa::path(get, path = "/api/bombas/{id}", params(("id" = i64, Path)),
    responses((status = 200, body = Station)))]
pub async fn get(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<Station>, ApiError> {
    let id = parse_id(&raw_id, "la bomba")?;
    read_station(&state, id).await
}
