//! Station balances (seed 004): one station's balance on either time axis, and every station's
//! with its state.

use std::collections::HashMap;

use super::extract::{Path, Query, ReadHead};
use axum::extract::State;
use axum::Json;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::error::ApiError;
use super::fields::{as_of_param, date_param};
use super::lookup::require_station;
use super::parse_id;
use crate::balances;
use crate::queries::registry;
use crate::AppState;

pub async fn station_balance(
    State(state): State<AppState>,
    ReadHead(head): ReadHead,
    Path(raw_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let bomba_id = parse_id(&raw_id, "la bomba")?;
    require_station(&state, bomba_id).await?;
    let as_of = as_of_param(&params, &state.settings.time_zone)?;
    let fecha_corte = date_param(&params, "fecha_corte")?;
    let balance = balances::balance(&state, head, bomba_id, as_of, fecha_corte).await?;
    Ok(Json(json!({
        "bomba_id": bomba_id,
        "saldo": balance.saldo,
        "total_anticipos": balance.total_anticipos,
        "total_tanqueos": balance.total_tanqueos,
        "movimientos": balance.movimientos,
        "ultimo_movimiento": balance.ultimo_movimiento.map(|d| d.to_string()),
    })))
}

pub async fn all_balances(
    State(state): State<AppState>,
    ReadHead(head): ReadHead,
) -> Result<Json<Value>, ApiError> {
    let stations = registry::stations(&state.read_models).await?;
    let ids: Vec<i64> = stations.iter().map(|station| station.id).collect();
    let balances = balances::balances_now(&state, head, &ids).await?;
    let critico = state.settings.saldo_critico_cop;
    let (mut total_saldo, mut criticos, mut bajos, mut positivos) = (Decimal::ZERO, 0, 0, 0);
    let mut data = Vec::with_capacity(stations.len());
    for (station, balance) in stations.iter().zip(balances) {
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
            "bomba_id": station.id,
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
