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
use utoipa::ToSchema;

/// A station's balance: Σ anticipos − Σ tanqueos of its live records.
#[derive(ToSchema)]
#[schema(example = json!({"bomba_id": 1, "saldo": 350000, "total_anticipos": 500000, "total_tanqueos": 150000,
    "movimientos": 2, "ultimo_movimiento": "2024-03-15"}))]
pub struct StationBalance {
    pub bomba_id: i64,
    #[schema(value_type = f64)]
    pub saldo: String,
    #[schema(value_type = f64)]
    pub total_anticipos: String,
    #[schema(value_type = f64)]
    pub total_tanqueos: String,
    /// Live records counted.
    pub movimientos: i64,
    /// The latest business date counted.
    #[schema(format = Date)]
    pub ultimo_movimiento: Option<String>,
}

/// One station in the overview.
#[derive(ToSchema)]
pub struct StationBalanceLine {
    pub bomba_id: i64,
    pub nombre_bomba: String,
    pub area_operacion_id: Option<i64>,
    #[schema(value_type = f64)]
    pub saldo: String,
    /// The balance the station last reported, if it ever did.
    #[schema(value_type = Option<f64>)]
    pub saldo_disponible: Option<String>,
    #[schema(format = DateTime)]
    pub ultima_actualizacion: Option<String>,
    /// `CRITICO` (below `--saldo-critico`), `BAJO` (below zero) or `POSITIVO`.
    pub estado: String,
}

/// Counts over every station.
#[derive(ToSchema)]
pub struct BalanceStats {
    pub total_bombas: i64,
    #[schema(value_type = f64)]
    pub total_saldo: String,
    pub criticos: i64,
    pub bajos: i64,
    pub positivos: i64,
}

/// Every station's balance now.
#[derive(ToSchema)]
#[schema(example = json!({"data": [{"bomba_id": 1, "nombre_bomba": "Bomba Central", "area_operacion_id": 1,
    "saldo": 350000, "saldo_disponible": 350000, "ultima_actualizacion": "2026-03-01T10:00:00Z",
    "estado": "POSITIVO"}], "stats": {"total_bombas": 1, "total_saldo": 350000, "criticos": 0, "bajos": 0,
    "positivos": 1}}))]
pub struct AllBalances {
    pub data: Vec<StationBalanceLine>,
    pub stats: BalanceStats,
}

/// A station's balance
///
/// `fecha_corte` is the business date (records dated up to it); `as_of` is when the ledger knew
/// it (records and corrections written up to that instant). Both may be given.
#[utoipa::path(get, path = "/api/bombas/{id}/saldo", params(("id" = i64, Path),
    ("fecha_corte" = Option<String>, Query, format = Date, description = "Business date: only records dated up to it count"),
    ("as_of" = Option<String>, Query, description = "When the ledger knew it: an RFC 3339 instant, or a date (its last instant in the service's zone)"),
), responses((status = 200, body = StationBalance)))]
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

/// Every station's balance, with counts of critical, low and positive ones
#[utoipa::path(get, path = "/api/saldos-bombas", responses((status = 200, body = AllBalances)))]
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
