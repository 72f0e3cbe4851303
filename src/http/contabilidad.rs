//! The journal's read side: the trial balance and one account's movements.

use std::collections::HashMap;

use super::extract::{echo, Path, Query};
use axum::extract::State;
use axum::Json;
use chrono::{SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::error::ApiError;
use super::fields::as_of_param;
use crate::queries::ledger;
use crate::AppState;
use utoipa::ToSchema;

/// One account's totals.
#[derive(ToSchema)]
pub struct AccountTotals {
    /// `1105-caja`, `1330-anticipos-bomba-{id}`, `5195-combustible-placa-{id}-area-{id}`.
    pub cuenta: String,
    #[schema(value_type = f64)]
    pub debe: String,
    #[schema(value_type = f64)]
    pub haber: String,
    /// `debe − haber`.
    #[schema(value_type = f64)]
    pub saldo: String,
}

/// The trial balance: Σ debe = Σ haber, always.
#[derive(ToSchema)]
#[schema(example = json!({"as_of": "2026-12-06T04:13:22Z", "cuentas": [{"cuenta": "1105-caja", "debe": 0,
    "haber": 500000, "saldo": -500000}, {"cuenta": "1330-anticipos-bomba-1", "debe": 500000, "haber": 0,
    "saldo": 500000}], "total_debe": 500000, "total_haber": 500000}))]
pub struct TrialBalance {
    #[schema(format = DateTime)]
    pub as_of: String,
    pub cuentas: Vec<AccountTotals>,
    #[schema(value_type = f64)]
    pub total_debe: String,
    #[schema(value_type = f64)]
    pub total_haber: String,
}

/// One journal line of an account.
#[derive(ToSchema)]
pub struct AccountLine {
    /// The log position of the event that posted it.
    pub posicion: i64,
    pub tanqueo_id: i64,
    #[schema(format = Date)]
    pub fecha: String,
    pub descripcion: String,
    #[schema(value_type = f64)]
    pub debe: String,
    #[schema(value_type = f64)]
    pub haber: String,
    /// Running `debe − haber`.
    #[schema(value_type = f64)]
    pub saldo: String,
    #[schema(format = DateTime)]
    pub registrado_en: String,
}

/// An account's lines in posting order.
#[derive(ToSchema)]
#[schema(example = json!({"cuenta": "1330-anticipos-bomba-1", "movimientos": [{"posicion": 37, "tanqueo_id": 1,
    "fecha": "2024-03-15", "descripcion": "ANTICIPO 1", "debe": 500000, "haber": 0, "saldo": 500000,
    "registrado_en": "2026-12-06T04:13:22Z"}], "total_debe": 500000, "total_haber": 0, "saldo": 500000}))]
pub struct AccountMovements {
    pub cuenta: String,
    pub movimientos: Vec<AccountLine>,
    #[schema(value_type = f64)]
    pub total_debe: String,
    #[schema(value_type = f64)]
    pub total_haber: String,
    #[schema(value_type = f64)]
    pub saldo: String,
}

/// Longest account name: a code, a word and a plate or an id or two.
const ACCOUNT_LEN_MAX: usize = 128;

/// Trial balance of the double-entry journal
///
/// Totals per account of every entry the ledger had recorded by `as_of` (now by default).
#[utoipa::path(get, path = "/api/contabilidad/balance-prueba", params(
    ("as_of" = Option<String>, Query, description = "When the ledger knew it (default now): an RFC 3339 instant, or a date"),
), responses((status = 200, body = TrialBalance)))]
pub async fn trial_balance(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let as_of = as_of_param(&params, &state.settings.time_zone)?.unwrap_or_else(Utc::now);
    let accounts = ledger::trial_balance(&state.read_models, as_of).await?;
    let total_debe: Decimal = accounts.iter().map(|a| a.debe).sum();
    let total_haber: Decimal = accounts.iter().map(|a| a.haber).sum();
    debug_assert_eq!(total_debe, total_haber);
    let cuentas: Vec<Value> = accounts
        .into_iter()
        .map(|a| json!({ "cuenta": a.cuenta, "debe": a.debe.normalize(), "haber": a.haber.normalize(), "saldo": (a.debe - a.haber).normalize() }))
        .collect();
    Ok(Json(json!({
        "as_of": as_of.to_rfc3339_opts(SecondsFormat::Secs, true),
        "cuentas": cuentas,
        "total_debe": total_debe.normalize(),
        "total_haber": total_haber.normalize(),
    })))
}

/// One account's journal lines, with the running balance
#[utoipa::path(get, path = "/api/contabilidad/cuentas/{cuenta}/movimientos", params(
    ("cuenta" = String, Path, description = "An account of the trial balance"),
), responses((status = 200, body = AccountMovements)))]
pub async fn account_movements(
    State(state): State<AppState>,
    Path(cuenta): Path<String>,
) -> Result<Json<Value>, ApiError> {
    // Accounts are named with letters, digits and hyphens (`1330-anticipos-bomba-1`); any other
    // name has no movements, and is not sent to the database (PostgreSQL refuses a NUL in text).
    let nameable = cuenta.chars().count() <= ACCOUNT_LEN_MAX
        && cuenta.chars().all(|c| c.is_alphanumeric() || c == '-');
    if !nameable {
        return Err(ApiError::NotFound(format!(
            "No hay movimientos en la cuenta {}",
            echo(&cuenta)
        )));
    }
    let entries = ledger::account_entries(&state.read_models, &cuenta).await?;
    if entries.is_empty() {
        return Err(ApiError::NotFound(format!(
            "No hay movimientos en la cuenta {cuenta}"
        )));
    }
    let (mut total_debe, mut total_haber) = (Decimal::ZERO, Decimal::ZERO);
    let mut movimientos = Vec::with_capacity(entries.len());
    for entry in entries {
        total_debe += entry.debe;
        total_haber += entry.haber;
        movimientos.push(json!({
            "posicion": entry.posicion,
            "tanqueo_id": entry.tanqueo_id,
            "fecha": entry.fecha,
            "descripcion": entry.descripcion,
            "debe": entry.debe.normalize(),
            "haber": entry.haber.normalize(),
            "saldo": (total_debe - total_haber).normalize(),
            "registrado_en": entry.registrado_en,
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
