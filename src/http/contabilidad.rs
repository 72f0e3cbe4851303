//! The journal's read side: the trial balance and one account's movements.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sqlx::Row;

use super::error::ApiError;
use super::fields::as_of_param;
use crate::AppState;

fn exact(row: &sqlx::any::AnyRow, index: usize) -> Result<Decimal, ApiError> {
    let text: String = row.try_get(index)?;
    text.parse()
        .map_err(|_| ApiError::internal(format!("journal amount {text:?} is not a decimal")))
}

/// `GET /api/contabilidad/balance-prueba?as_of=`: totals per account of every entry the ledger
/// had recorded by `as_of` (now by default). Σ debe = Σ haber, always.
pub async fn trial_balance(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let as_of = as_of_param(&params, state.settings.time_zone.offset)?.unwrap_or_else(Utc::now);
    let rows = sqlx::query("SELECT cuenta, debe, haber FROM rm_asientos WHERE registrado_en <= $1")
        .bind(as_of.to_rfc3339_opts(SecondsFormat::Nanos, true))
        .fetch_all(state.read_models.pool())
        .await?;
    let mut accounts: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
    for row in &rows {
        let totals = accounts.entry(row.try_get(0)?).or_default();
        totals.0 += exact(row, 1)?;
        totals.1 += exact(row, 2)?;
    }
    let total_debe: Decimal = accounts.values().map(|t| t.0).sum();
    let total_haber: Decimal = accounts.values().map(|t| t.1).sum();
    debug_assert_eq!(total_debe, total_haber);
    let cuentas: Vec<Value> = accounts
        .into_iter()
        .map(|(cuenta, (debe, haber))| json!({ "cuenta": cuenta, "debe": debe.normalize(), "haber": haber.normalize(), "saldo": (debe - haber).normalize() }))
        .collect();
    Ok(Json(json!({
        "as_of": as_of.to_rfc3339_opts(SecondsFormat::Secs, true),
        "cuentas": cuentas,
        "total_debe": total_debe.normalize(),
        "total_haber": total_haber.normalize(),
    })))
}

/// `GET /api/contabilidad/cuentas/{cuenta}/movimientos`: the account's entries in posting order
/// with the running balance (debe − haber).
pub async fn account_movements(
    State(state): State<AppState>,
    Path(cuenta): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rows = sqlx::query(
        "SELECT posicion, tanqueo_id, fecha, descripcion, debe, haber, registrado_en FROM rm_asientos \
         WHERE cuenta = $1 ORDER BY posicion, linea",
    )
    .bind(&cuenta)
    .fetch_all(state.read_models.pool())
    .await?;
    if rows.is_empty() {
        return Err(ApiError::NotFound(format!(
            "No hay movimientos en la cuenta {cuenta}"
        )));
    }
    let (mut total_debe, mut total_haber) = (Decimal::ZERO, Decimal::ZERO);
    let mut movimientos = Vec::with_capacity(rows.len());
    for row in &rows {
        let (debe, haber) = (exact(row, 4)?, exact(row, 5)?);
        total_debe += debe;
        total_haber += haber;
        movimientos.push(json!({
            "posicion": row.try_get::<i64, _>(0)?,
            "tanqueo_id": row.try_get::<i64, _>(1)?,
            "fecha": row.try_get::<String, _>(2)?,
            "descripcion": row.try_get::<String, _>(3)?,
            "debe": debe.normalize(),
            "haber": haber.normalize(),
            "saldo": (total_debe - total_haber).normalize(),
            "registrado_en": row.try_get::<String, _>(6)?,
        }));
    }
    Ok(Json(json!({
        "cuenta": cuenta,
        "movimientos": movimientos,
        "total_debe": total_debe.normalize(),
        "total_haber": total_haber.normalize(),
        "saldo": (total_debe - total_haber).normalize(),
    })))
}
