//! Station balances (seed 004): one station's balance on either time axis, and every station's
//! with its state.

use std::collections::HashMap;

use super::extract::{Path, Query};
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::error::ApiError;
use super::fields::{as_of_param, date_param};
use super::lookup::{require_station, station_events};
use super::parse_id;
use crate::queries::registry;
use crate::AppState;

/// The station's balance; `fecha_corte` (rare: a statement cut-off) folds the history, the rest
/// is answered by the running balance in memory.
async fn balance_of(
    state: &AppState,
    bomba_id: i64,
    as_of: Option<DateTime<Utc>>,
    fecha_corte: Option<NaiveDate>,
) -> Result<projections::ledger::StationBalance, ApiError> {
    if fecha_corte.is_none() {
        return state
            .balances
            .balance(bomba_id, as_of)
            .await
            .map_err(ApiError::internal);
    }
    let events = station_events(state, bomba_id).await?;
    projections::ledger::station_balance(&events, as_of, fecha_corte).map_err(ApiError::internal)
}

pub async fn station_balance(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let bomba_id = parse_id(&raw_id, "la bomba")?;
    require_station(&state, bomba_id).await?;
    let as_of = as_of_param(&params, state.settings.time_zone.offset)?;
    let fecha_corte = date_param(&params, "fecha_corte")?;
    let balance = balance_of(&state, bomba_id, as_of, fecha_corte).await?;
    Ok(Json(json!({
        "bomba_id": bomba_id,
        "saldo": balance.saldo,
        "total_anticipos": balance.total_anticipos,
        "total_tanqueos": balance.total_tanqueos,
        "movimientos": balance.movimientos,
        "ultimo_movimiento": balance.ultimo_movimiento.map(|d| d.to_string()),
    })))
}

pub async fn all_balances(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let stations = registry::stations(&state.read_models).await?;
    let critico = state.settings.saldo_critico_cop;
    let (mut total_saldo, mut criticos, mut bajos, mut positivos) = (Decimal::ZERO, 0, 0, 0);
    let mut data = Vec::with_capacity(stations.len());
    for station in &stations {
        let bomba_id = station.id;
        let balance = balance_of(&state, bomba_id, None, None).await?;
        let estado = if balance.saldo < critico {
            criticos += 1;
            "CRITICO"
        } else if balance.saldo < Decimal::ZERO {
            bajos += 1;
            "BAJO"
        } else {
            positivos += 1;
            "POSITIVO"
        };
        total_saldo += balance.saldo;
        data.push(json!({
            "bomba_id": bomba_id,
            "nombre_bomba": station.bomba,
            "area_operacion_id": station.area_operacion_id,
            "saldo": balance.saldo,
            "saldo_disponible": balance.ultimo_saldo_reportado,
            "ultima_actualizacion": balance.ultima_actualizacion.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            "estado": estado,
        }));
    }
    Ok(Json(json!({
        "data": data,
        "stats": {
            "total_bombas": stations.len(),
            "total_saldo": total_saldo.normalize(),
            "criticos": criticos,
            "bajos": bajos,
            "positivos": positivos,
        },
    })))
}
