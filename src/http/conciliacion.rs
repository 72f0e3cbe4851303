//! Station statements and reconciliation against the balances stations report.

use std::collections::HashMap;

use super::extract::{Path, Query, ReadHead};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use projections::ledger::StatementLine;
use serde_json::{json, Value};

use super::error::ApiError;
use super::fields::date_param;
use super::fields::query_id;
use super::lookup::{require_station, station_not_found};
use super::parse_id;
use crate::balances::statement;
use crate::queries::registry;
use crate::AppState;
use utoipa::ToSchema;

/// One movement of a statement.
#[derive(ToSchema)]
#[schema(example = json!({"id": 3, "fecha": "2024-03-15", "tipo_operacion": "TANQUEO", "valor": 150000,
    "saldo_calculado": 350000, "saldo_disponible": 350000, "diferencia": 0}))]
pub struct StatementLineView {
    /// The record's id.
    pub id: i64,
    #[schema(format = Date)]
    pub fecha: String,
    pub tipo_operacion: String,
    #[schema(value_type = f64)]
    pub valor: String,
    /// The running balance after this movement, over the whole history.
    #[schema(value_type = f64)]
    pub saldo_calculado: String,
    /// The balance the station reported with it, if any.
    #[schema(value_type = Option<f64>)]
    pub saldo_disponible: Option<String>,
    /// `saldo_disponible − saldo_calculado`, when reported.
    #[schema(value_type = Option<f64>)]
    pub diferencia: Option<String>,
}

/// A station's statement.
#[derive(ToSchema)]
#[schema(example = json!({"bomba_id": 1, "movimientos": [{"id": 1, "fecha": "2024-03-15", "tipo_operacion": "ANTICIPO",
    "valor": 500000, "saldo_calculado": 500000, "saldo_disponible": null, "diferencia": null}]}))]
pub struct Statement {
    pub bomba_id: i64,
    pub movimientos: Vec<StatementLineView>,
}

/// One station's reconciliation.
#[derive(ToSchema)]
pub struct StationReconciliation {
    pub bomba_id: i64,
    pub nombre_bomba: String,
    #[schema(value_type = f64)]
    pub saldo_calculado: String,
    /// The balance the station last reported in the range, if any.
    #[schema(value_type = Option<f64>)]
    pub saldo_reportado: Option<String>,
    #[schema(value_type = Option<f64>)]
    pub diferencia: Option<String>,
    /// The movements whose reported balance differs from the computed one.
    pub discrepancias: Vec<StatementLineView>,
}

/// Reported against computed balances.
#[derive(ToSchema)]
#[schema(example = json!({"bombas": [{"bomba_id": 1, "nombre_bomba": "Bomba Central", "saldo_calculado": 350000,
    "saldo_reportado": 349000, "diferencia": -1000, "discrepancias": [{"id": 3, "fecha": "2024-03-15",
    "tipo_operacion": "TANQUEO", "valor": 150000, "saldo_calculado": 350000, "saldo_disponible": 349000,
    "diferencia": -1000}]}]}))]
pub struct ReconciliationReport {
    pub bombas: Vec<StationReconciliation>,
}

fn line_json(line: &StatementLine) -> Value {
    let movement = &line.movement;
    json!({
        "id": movement.id,
        "fecha": movement.fecha.to_string(),
        "tipo_operacion": movement.tipo_operacion.as_str(),
        "valor": movement.valor,
        "saldo_calculado": line.saldo_calculado,
        "saldo_disponible": movement.saldo_disponible,
        "diferencia": line.diferencia,
    })
}

/// A station's movements with their running balance
///
/// The running balance is computed over the whole history, so the first line of a range
/// already carries what came before it.
#[utoipa::path(get, path = "/api/bombas/{id}/movimientos", params(("id" = i64, Path),
    ("desde" = Option<String>, Query, format = Date, description = "First business date"),
    ("hasta" = Option<String>, Query, format = Date, description = "Last business date"),
), responses((status = 200, body = Statement)))]
pub async fn movements(
    State(state): State<AppState>,
    ReadHead(head): ReadHead,
    Path(raw_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let bomba_id = parse_id(&raw_id, "la bomba")?;
    require_station(&state, bomba_id).await?;
    let (desde, hasta) = (date_param(&params, "desde")?, date_param(&params, "hasta")?);
    let statement = statement(&state, head, bomba_id, desde, hasta).await?;
    let movimientos: Vec<Value> = statement.lines.iter().map(line_json).collect();
    Ok(Json(
        json!({ "bomba_id": bomba_id, "movimientos": movimientos }),
    ))
}

/// One station's line of the reconciliation report.
pub struct Reconciliation {
    pub bomba_id: i64,
    pub nombre_bomba: String,
    pub saldo_calculado: rust_decimal::Decimal,
    pub saldo_reportado: Option<rust_decimal::Decimal>,
    /// The statement lines in the range whose reported balance differs from the computed one.
    pub discrepancias: Vec<StatementLine>,
}

impl Reconciliation {
    pub fn diferencia(&self) -> Option<rust_decimal::Decimal> {
        self.saldo_reportado
            .map(|reported| (reported - self.saldo_calculado).normalize())
    }
}

/// The reconciliation report (every station, or only `only`) over `desde`..`hasta`, as both
/// `GET /api/reconciliacion` and the dashboard answer it.
pub async fn report(
    state: &AppState,
    head: i64,
    only: Option<i64>,
    desde: Option<chrono::NaiveDate>,
    hasta: Option<chrono::NaiveDate>,
) -> Result<Vec<Reconciliation>, ApiError> {
    let stations = registry::stations(&state.read_models).await?;
    let mut report = Vec::new();
    for station in stations {
        let bomba_id = station.id;
        if only.is_some_and(|id| id != bomba_id) {
            continue;
        }
        // Balances are as of the end of the range (everything before it counts); only the
        // discrepancies are limited to the range itself.
        let statement = statement(state, head, bomba_id, desde, hasta).await?;
        report.push(Reconciliation {
            bomba_id,
            nombre_bomba: station.bomba,
            saldo_calculado: statement.saldo_calculado(),
            saldo_reportado: statement.reportado,
            discrepancias: statement
                .lines
                .into_iter()
                .filter(|l| l.diferencia.is_some_and(|d| !d.is_zero()))
                .collect(),
        });
    }
    if let (Some(bomba_id), true) = (only, report.is_empty()) {
        return Err(station_not_found(bomba_id));
    }
    Ok(report)
}

/// Reported against computed balances, per station, with the differing movements
///
/// JSON, or CSV with `Accept: text/csv`.
#[utoipa::path(get, path = "/api/reconciliacion", params(
    ("bomba_id" = Option<i64>, Query, description = "Only this station"),
    ("desde" = Option<String>, Query, format = Date, description = "First business date of the discrepancies"),
    ("hasta" = Option<String>, Query, format = Date, description = "Last business date: balances are as of its end"),
    ("Accept" = Option<String>, Header, description = "`text/csv` for a spreadsheet (cells that could start a formula neutralised)"),
), responses(
    (status = 200, description = "JSON, or with `Accept: text/csv` one CSV line per discrepancy", content(
        (ReconciliationReport = "application/json"),
        (String = "text/csv"),
    )),
))]
pub async fn reconcile(
    State(state): State<AppState>,
    ReadHead(head): ReadHead,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let only = query_id(params.get("bomba_id"), "bomba_id")?;
    let (desde, hasta) = (date_param(&params, "desde")?, date_param(&params, "hasta")?);
    let report = report(&state, head, only, desde, hasta).await?;
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/csv"));
    if wants_csv {
        return Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            csv(&report)?,
        )
            .into_response());
    }
    let stations: Vec<Value> = report
        .iter()
        .map(|r| {
            json!({
                "bomba_id": r.bomba_id,
                "nombre_bomba": r.nombre_bomba,
                "saldo_calculado": r.saldo_calculado,
                "saldo_reportado": r.saldo_reportado,
                "diferencia": r.diferencia(),
                "discrepancias": r.discrepancias.iter().map(line_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({ "bombas": stations })).into_response())
}

/// One line per discrepancy (a station without any still gets its summary line), so the
/// accountant can filter and sum in a spreadsheet.
pub fn csv(report: &[Reconciliation]) -> Result<Vec<u8>, ApiError> {
    let amount =
        |value: Option<rust_decimal::Decimal>| value.map(|d| d.to_string()).unwrap_or_default();
    let mut out = csv::Writer::from_writer(Vec::new());
    let write_error = |e: csv::Error| ApiError::internal(format!("writing CSV: {e}"));
    out.write_record([
        "bomba_id",
        "nombre_bomba",
        "saldo_calculado",
        "saldo_reportado",
        "diferencia",
        "movimiento_id",
        "fecha",
        "saldo_calculado_movimiento",
        "saldo_reportado_movimiento",
        "diferencia_movimiento",
    ])
    .map_err(write_error)?;
    for station in report {
        let summary = [
            station.bomba_id.to_string(),
            spreadsheet_text(&station.nombre_bomba),
            station.saldo_calculado.to_string(),
            amount(station.saldo_reportado),
            amount(station.diferencia()),
        ];
        if station.discrepancias.is_empty() {
            let empty = std::iter::repeat_n(String::new(), 5);
            out.write_record(summary.iter().cloned().chain(empty))
                .map_err(write_error)?;
        }
        for line in &station.discrepancias {
            let movement = [
                line.movement.id.to_string(),
                line.movement.fecha.to_string(),
                line.saldo_calculado.to_string(),
                amount(line.movement.saldo_disponible),
                amount(line.diferencia),
            ];
            out.write_record(summary.iter().chain(&movement))
                .map_err(write_error)?;
        }
    }
    out.into_inner()
        .map_err(|e| ApiError::internal(format!("writing CSV: {e}")))
}

/// Free text as a spreadsheet cell: text that begins like a formula (`=`, `+`, `-`, `@`, a tab
/// or a carriage return) gets a leading `'`, so a station named `=HYPERLINK(…)` opens as text
/// instead of running (OWASP's CSV injection advice). Only free text: amounts are written as
/// numbers, so a negative one stays a number.
fn spreadsheet_text(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    #[test]
    fn formula_like_names_are_neutralised_and_negative_amounts_stay_numbers() {
        let report = [
            Reconciliation {
                bomba_id: 7,
                nombre_bomba: "=HYPERLINK(\"http://x\",\"y\")".into(),
                saldo_calculado: Decimal::from(-25_000),
                saldo_reportado: Some(Decimal::from(-30_000)),
                discrepancias: Vec::new(),
            },
            Reconciliation {
                bomba_id: 8,
                nombre_bomba: "Estación, Norte".into(),
                saldo_calculado: Decimal::from(100),
                saldo_reportado: None,
                discrepancias: Vec::new(),
            },
        ];
        let text = String::from_utf8(csv(&report).unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "7,\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",-25000,-30000,-5000,,,,,"
        );
        assert_eq!(lines[2], "8,\"Estación, Norte\",100,,,,,,,");
        for cell in ["@SUM(A1)", "+1", "-1", "\tx", "\rx"] {
            assert_eq!(spreadsheet_text(cell), format!("'{cell}"));
        }
        assert_eq!(spreadsheet_text("Central"), "Central");
    }
}
