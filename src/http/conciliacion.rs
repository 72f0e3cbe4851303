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

/// `GET /api/bombas/{id}/movimientos?desde=&hasta=`: the running balance is computed over the
/// whole history, so the first line of a range already carries what came before it.
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

/// `GET /api/reconciliacion?bomba_id=&desde=&hasta=`, as JSON or, with `Accept: text/csv`, CSV.
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
